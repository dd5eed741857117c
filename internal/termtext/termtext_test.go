package termtext

import (
	"testing"
	"unicode"
	"unicode/utf8"
)

func TestLine(t *testing.T) {
	for in, want := range map[string]string{
		"plain text, ünïcödé ✓":     "plain text, ünïcödé ✓",
		"esc \x1b[31mred\x1b[0m":    `esc \x1b[31mred\x1b[0m`,
		"bel\a nul\x00 del\x7f":     `bel\x07 nul\x00 del\x7f`,
		"binary \xff\xfe end":       `binary \xff\xfe end`,
		"c1 \u0085 \u009b31m":       `c1 \u0085 \u009b31m`,
		"bidi \u202egnp.exe":        `bidi \u202egnp.exe`,
		"two\nlines\r\ttab":         `two\nlines\r\ttab`,
		"backslash \\x41 stays":     `backslash \x41 stays`,
		"osc \x1b]0;title\x07 done": `osc \x1b]0;title\x07 done`,
		"":                          "",
		"emoji 👍🏽 zwj 👩\u200d💻":     "emoji 👍🏽 zwj 👩\u200d💻",
	} {
		if got := Line(in); got != want {
			t.Errorf("Line(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestText(t *testing.T) {
	in := "line 1\n\tindented \x1b[1mbold\r\nend\x00"
	want := "line 1\n\tindented \\x1b[1mbold\\r\nend\\x00"
	if got := Text(in); got != want {
		t.Errorf("Text(%q) = %q, want %q", in, got, want)
	}
}

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
