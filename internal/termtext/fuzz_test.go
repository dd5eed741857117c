package termtext

import (
	"testing"
	"unicode"
	"unicode/utf8"
)

// FuzzLine: nothing that acts on a terminal survives (a control, a
// bidirectional control, a byte that is not UTF-8), Text keeping only
// line breaks and tabs; printable text is left alone.
func FuzzLine(f *testing.F) {
	f.Add("esc \x1b[31m\a\x00\xff\u0085\u202e\n\t")
	f.Fuzz(func(t *testing.T, s string) {
		for _, c := range []struct {
			out       string
			keepLines bool
		}{{Line(s), false}, {Text(s), true}} {
			if !utf8.ValidString(c.out) {
				t.Fatalf("invalid UTF-8 out of %q: %q", s, c.out)
			}
			for _, r := range c.out {
				kept := c.keepLines && (r == '\n' || r == '\t')
				if unicode.IsControl(r) && !kept || isBidi(r) {
					t.Fatalf("control %U left in %q (from %q)", r, c.out, s)
				}
			}
		}
		// Plain printable text is left alone.
		plain := true
		for _, r := range s {
			if r == utf8.RuneError || unicode.IsControl(r) || isBidi(r) {
				plain = false
			}
		}
		if plain && Line(s) != s {
			t.Fatalf("printable %q changed to %q", s, Line(s))
		}
	})
}
