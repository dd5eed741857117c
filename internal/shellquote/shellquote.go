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
	if IsSafe(s) {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// SafeChars lists, besides ASCII letters and digits, the characters that
// are never special to a shell, in a word or a path. This is the project's
// one shell-safe rule: every validator of a value written unquoted into a
// script uses it (a second list could drift and open a hole).
const SafeChars = "-_./:=,+@%"

// SafeByte reports whether c is never special to a shell.
func SafeByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte(SafeChars, c) >= 0
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
	if IsSafe(s) {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'"'"'`) + "'"
}

// IsSafe reports whether s is made only of bytes that are never special
// to a shell, so that it reads back unchanged without quotes.
func IsSafe(s string) bool {
	for i := 0; i < len(s); i++ {
		if !SafeByte(s[i]) {
			return false
		}
	}
	return true
}
