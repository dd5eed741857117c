package checkoutgen

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// Difference is where two launch scripts first differ.
type Difference struct {
	Line   int // 1-based
	Column int // 1-based, in characters; 0 when one side has no such line
	// The line on each side, without its newline. Missing: the file ended
	// before this line; NoNewline: the line is the file's last and has no
	// newline (so two equal texts can still differ).
	Ours, Theirs                   string
	OursMissing, TheirsMissing     bool
	OursNoNewline, TheirsNoNewline bool
}

// Compare returns where ours and theirs first differ, or nil when they
// are identical byte for byte.
func Compare(ours, theirs []byte) *Difference {
	if string(ours) == string(theirs) {
		return nil
	}
	a, b := splitLines(string(ours)), splitLines(string(theirs))
	for i := 0; ; i++ {
		if i < len(a) && i < len(b) && a[i] == b[i] {
			continue
		}
		d := &Difference{Line: i + 1}
		d.Ours, d.OursMissing, d.OursNoNewline = lineAt(a, i)
		d.Theirs, d.TheirsMissing, d.TheirsNoNewline = lineAt(b, i)
		if !d.OursMissing && !d.TheirsMissing {
			d.Column = firstDifferentRune(d.Ours, d.Theirs)
		}
		return d
	}
}

// splitLines splits s after each newline; the last line may lack one.
func splitLines(s string) []string {
	lines := strings.SplitAfter(s, "\n")
	if lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	return lines
}

// lineAt is line i of lines without its newline, whether there is no such
// line, and whether it lacks the newline (the file's unterminated end).
func lineAt(lines []string, i int) (line string, missing, noNewline bool) {
	if i >= len(lines) {
		return "", true, false
	}
	line, hadNewline := strings.CutSuffix(lines[i], "\n")
	return line, false, !hadNewline
}

func firstDifferentRune(a, b string) int {
	col := 1
	for a != "" && b != "" {
		ra, na := utf8.DecodeRuneInString(a)
		rb, nb := utf8.DecodeRuneInString(b)
		if ra != rb || na != nb {
			return col
		}
		a, b, col = a[na:], b[nb:], col+1
	}
	return col
}

// Format shows the first differing lines of both sides, with their line
// numbers, each side named (for example "disagg-runner" and "submit.py").
func (d *Difference) Format(oursName, theirsName string) string {
	w := max(len(oursName), len(theirsName))
	var b strings.Builder
	where := fmt.Sprintf("line %d", d.Line)
	if d.Column > 0 {
		where += fmt.Sprintf(", column %d", d.Column)
	}
	fmt.Fprintf(&b, "first difference at %s:\n", where)
	side := func(name, line string, missing, noNewline bool) {
		switch {
		case missing:
			fmt.Fprintf(&b, "  %-*s %d: (no such line: the file has %d lines)\n", w, name, d.Line, d.Line-1)
		case noNewline:
			fmt.Fprintf(&b, "  %-*s %d: %s   (no newline at the end of the file)\n", w, name, d.Line, line)
		default:
			fmt.Fprintf(&b, "  %-*s %d: %s\n", w, name, d.Line, line)
		}
	}
	side(oursName, d.Ours, d.OursMissing, d.OursNoNewline)
	side(theirsName, d.Theirs, d.TheirsMissing, d.TheirsNoNewline)
	return b.String()
}
