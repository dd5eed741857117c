// Package shellquote turns arbitrary strings into words that a POSIX shell
// reads back unchanged, so that no input value can inject a command into a
// generated script or a remote command line.
package shellquote

import "strings"

// Quote returns s as one shell word. Words made only of characters that are
// never special are returned as they are, which keeps generated scripts and
// logged commands readable; everything else is single-quoted.
func Quote(s string) string {
	if s == "" {
		return "''"
	}
	if isSafe(s) {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// ShlexQuote is Python's shlex.quote, byte for byte: the same words stay
// unquoted as with Quote (the same safe characters), and a single quote
// inside a quoted word is closed, double-quoted and reopened ('"'"')
// where Quote escapes it with a backslash. Generators that must reproduce
// a Python tool's output use it; everything else uses Quote.
func ShlexQuote(s string) string {
	if s == "" {
		return "''"
	}
	if isSafe(s) {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'"'"'`) + "'"
}

// Join quotes every word and joins them with spaces into a command line.
func Join(words ...string) string {
	q := make([]string, len(words))
	for i, w := range words {
		q[i] = Quote(w)
	}
	return strings.Join(q, " ")
}

func isSafe(s string) bool {
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
		case strings.ContainsRune("-_./:=,+@%", r):
		default:
			return false
		}
	}
	return true
}
