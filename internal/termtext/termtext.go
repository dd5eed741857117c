// Package termtext makes text from inputs safe to print on a terminal or
// in a CI log: control characters (C0, DEL, C1), bytes that are not UTF-8
// and the bidirectional-text controls are written as Go-style escapes
// (\x1b, \x00, \xff, \u0085, \u202e; \n, \r and \t as such), so that an ESC or BEL from a config
// or a test list cannot act on the terminal, a NUL cannot cut a line, a
// line break cannot forge one. Printable text, backslashes included, is
// left alone.
package termtext

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Line escapes every control character, line breaks and tabs included:
// for a message that must stay one line.
func Line(s string) string { return escape(s, false) }

// OneLine folds a message onto one line (every run of white space becomes
// one space; CI logs are read line by line) and escapes what is left.
func OneLine(s string) string { return Line(strings.Join(strings.Fields(s), " ")) }

// Text escapes control characters but keeps line breaks and tabs: for a
// multi-line text such as a script.
func Text(s string) string { return escape(s, true) }

func escape(s string, keepLines bool) string {
	if clean(s, keepLines) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case keepLines && (r == '\n' || r == '\t'):
			b.WriteRune(r)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x80 && unicode.IsControl(r):
			fmt.Fprintf(&b, `\x%02x`, r)
		case unicode.IsControl(r) || isBidi(r):
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}

func clean(s string, keepLines bool) bool {
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if (c < 0x20 || c == 0x7f) && !(keepLines && (c == '\n' || c == '\t')) {
				return false
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 || unicode.IsControl(r) || isBidi(r) {
			return false
		}
		i += size
	}
	return true
}

// isBidi reports the characters that reorder how text is shown (Trojan
// Source): the marks, embeddings, overrides and isolates.
func isBidi(r rune) bool {
	switch {
	case r == 0x061c, r == 0x200e, r == 0x200f:
		return true
	case r >= 0x202a && r <= 0x202e, r >= 0x2066 && r <= 0x2069:
		return true
	}
	return false
}
