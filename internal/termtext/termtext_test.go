package termtext

import (
	"testing"
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
