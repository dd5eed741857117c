package launch

import (
	"errors"
	"strings"
)

// The messages Python's shlex gives for text that is not valid quoting;
// ours carry the same words so that users can match them.
var (
	errNoClosingQuotation = errors.New("No closing quotation")
	errNoEscapedCharacter = errors.New("No escaped character")
)

// SplitShellWords splits s into words as Python's shlex.split(s) does:
// POSIX rules, nothing expanded, no comments. Words are separated by runs
// of space, tab, \r and \n (only those); single quotes keep everything up
// to the next single quote; double quotes keep everything up to the next
// unescaped double quote, where a backslash escapes only `"` and `\` (and
// is kept before anything else); outside quotes a backslash takes the next
// character literally. Quotes are removed and may join with neighbouring
// text into one word; an empty pair of quotes is an empty word.
//
// It works on bytes: every special character is ASCII, so UTF-8 text
// (and any other byte) passes through unchanged.
func SplitShellWords(s string) ([]string, error) {
	const (
		bare = iota
		single
		double
	)
	var words []string
	var word strings.Builder
	inWord := false // a word has started (it may still be empty: "")
	mode := bare
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch mode {
		case single:
			if c == '\'' {
				mode = bare
			} else {
				word.WriteByte(c)
			}
		case double:
			switch c {
			case '"':
				mode = bare
			case '\\':
				if i+1 >= len(s) {
					return nil, errNoEscapedCharacter
				}
				i++
				if s[i] != '"' && s[i] != '\\' {
					word.WriteByte('\\')
				}
				word.WriteByte(s[i])
			default:
				word.WriteByte(c)
			}
		default:
			switch c {
			case ' ', '\t', '\r', '\n':
				if inWord {
					words = append(words, word.String())
					word.Reset()
					inWord = false
				}
			case '\\':
				if i+1 >= len(s) {
					return nil, errNoEscapedCharacter
				}
				i++
				word.WriteByte(s[i])
				inWord = true
			case '\'':
				mode, inWord = single, true
			case '"':
				mode, inWord = double, true
			default:
				word.WriteByte(c)
				inWord = true
			}
		}
	}
	if mode != bare {
		return nil, errNoClosingQuotation
	}
	if inWord {
		words = append(words, word.String())
	}
	return words, nil
}

// pytestOptionWords reads the pytest line's command as shell words, the way
// v3 reads its options: the text after the line's first '=', stripped, one
// pair of enclosing quotes removed, then split.
func pytestOptionWords(line string) ([]string, error) {
	_, payload, _ := strings.Cut(line, "=")
	payload = pyStrip(payload)
	if len(payload) >= 2 && (payload[0] == '"' || payload[0] == '\'') && payload[len(payload)-1] == payload[0] {
		payload = payload[1 : len(payload)-1]
	}
	return SplitShellWords(payload)
}

// optionValue is the value of option name (such as "--splits") among
// words: the word after the first word equal to name, or what follows the
// '=' of the first word starting with name+"=", whichever comes first. ok
// is false when the option is absent or is the last word without a value.
func optionValue(words []string, name string) (string, bool) {
	for i, w := range words {
		if w == name {
			if i+1 < len(words) {
				return words[i+1], true
			}
			return "", false
		}
		if v, found := strings.CutPrefix(w, name+"="); found {
			return v, true
		}
	}
	return "", false
}

// leadingAssignment finds the value the pytest line's command assigns to
// name in its leading NAME=value words (the environment pytest starts
// with). found is false when no leading word assigns it; the error texts
// are the ones users know from upstream.
func leadingAssignment(line, name string) (value string, found bool, err error) {
	words, err := SplitShellWords(line)
	if err != nil {
		return "", false, errors.New("cannot parse exported pytestCommand: " + err.Error())
	}
	payload, ok := "", false
	for _, w := range words {
		if v, cut := strings.CutPrefix(w, "pytestCommand="); cut {
			payload, ok = v, true
			break
		}
	}
	if !ok {
		return "", false, errors.New("launch prefix has a malformed pytestCommand export")
	}
	cmd, err := SplitShellWords(payload)
	if err != nil {
		return "", false, errors.New("cannot parse pytestCommand payload: " + err.Error())
	}
	for _, w := range cmd {
		n, v, isAssign := strings.Cut(w, "=")
		if !isAssign || !isName(n) {
			break
		}
		if n == name {
			return v, true, nil
		}
	}
	return "", false, nil
}
