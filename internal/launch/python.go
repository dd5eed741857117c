package launch

import (
	"strings"
	"unicode/utf8"
)

// The upstream generators are Python; these reproduce the exact semantics
// of the few str and os.path operations whose Go look-alikes differ at the
// edges (which characters count as whitespace, how paths are joined).

// pySpace reports whether r is whitespace for Python's str.split() and
// str.strip(): it includes the ASCII separators 0x1c–0x1f, which Go's
// unicode.IsSpace does not.
func pySpace(r rune) bool {
	switch r {
	case ' ', '\t', '\n', '\v', '\f', '\r', 0x1c, 0x1d, 0x1e, 0x1f, 0x85, 0xa0,
		0x1680, 0x2028, 0x2029, 0x202f, 0x205f, 0x3000:
		return true
	}
	return r >= 0x2000 && r <= 0x200a
}

// pyFields is str.split() with no arguments.
func pyFields(s string) []string { return strings.FieldsFunc(s, pySpace) }

// pyStrip is str.strip() with no arguments.
func pyStrip(s string) string { return strings.TrimFunc(s, pySpace) }

// pyRstrip is str.rstrip() with no arguments.
func pyRstrip(s string) string { return strings.TrimRightFunc(s, pySpace) }

// pyJoin is os.path.join: an absolute part discards what came before, and a
// separator is added only where the left side does not already end in one.
func pyJoin(parts ...string) string {
	out := ""
	for i, p := range parts {
		switch {
		case i == 0 || strings.HasPrefix(p, "/"):
			out = p
		case out == "" || strings.HasSuffix(out, "/"):
			out += p
		default:
			out += "/" + p
		}
	}
	return out
}

// decodeRune is utf8.DecodeRuneInString; a byte that is not UTF-8 comes
// back as utf8.RuneError, which no rule here treats as special.
func decodeRune(s string) (rune, int) { return utf8.DecodeRuneInString(s) }

// pyDirname is os.path.dirname: everything before the last '/', with
// trailing slashes removed unless it is all slashes ("" for a bare name).
func pyDirname(p string) string {
	head := p[:strings.LastIndexByte(p, '/')+1]
	if head != "" && strings.Trim(head, "/") != "" {
		head = strings.TrimRight(head, "/")
	}
	return head
}

// runeLen is Python's len() of a str.
func runeLen(s string) int { return utf8.RuneCountInString(s) }

// nonEmptyStripped keeps the stripped, non-empty lines, as upstream's
// remove_whitespace_lines does.
func nonEmptyStripped(lines []string) []string {
	out := lines[:0:0]
	for _, l := range lines {
		if s := pyStrip(l); s != "" {
			out = append(out, s)
		}
	}
	return out
}
