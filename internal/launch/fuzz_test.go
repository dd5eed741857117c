package launch

import (
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/disagg-runner/disagg-runner/internal/shellquote"
)

func FuzzParseTestList(f *testing.F) {
	f.Add("perf/test_perf_sanity.py::test_e2e[disagg_upload-deepseek-r1-fp4_1k1k] TIMEOUT (120)\n", 0)
	f.Add("t[disagg-gen_only-a-b]\nt[disagg-e2e-c]\n", 2)
	f.Add("\n\n[]", 1)
	f.Add("x]y[disagg-e2e-", 0)
	f.Fuzz(func(t *testing.T, data string, split int) {
		for _, p := range Profiles {
			id, err := ParseTestList(p, []byte(data), "tl", split)
			if err != nil {
				// The selected line is one line, so the message is too
				// (a \r inside a line is the only line break it may hold).
				if strings.Contains(err.Error(), "\n") {
					t.Fatalf("multi-line error: %q", err)
				}
				continue
			}
			// What parses must be safe to put unquoted into a script and a
			// path: the whole bracket reaches the script in v2.
			for _, v := range []string{id.Bracket, id.ConfigName} {
				if strings.ContainsAny(v, "/$`;&|<>(){}[]*?!~#^ \t\r\n\"'\\") {
					t.Fatalf("unsafe test id text %q accepted", v)
				}
			}
			if id.ConfigName == "" {
				t.Fatalf("empty config name accepted from %q", data)
			}
			if p == V2 && id.Mode != "e2e" && id.Mode != "gen_only" {
				t.Fatalf("mode %q", id.Mode)
			}
			if p == V3 && id.Mode != "e2e" && id.Mode != "gen_only" && id.Mode != "gen_only_no_context" {
				t.Fatalf("v3 mode %q", id.Mode)
			}
			if id.Modifier != "" && (p != V3 || id.Mode != "e2e") {
				t.Fatalf("modifier %q with %s mode %q", id.Modifier, p, id.Mode)
			}
		}
	})
}

func FuzzGroupPytestArgs(f *testing.F) {
	f.Add(`export pytestCommand="A=1 launch pytest -v --timeout=3600 --rootdir /r -o x --csv=/a"`)
	f.Add("pytest -x -y -é v --z")
	f.Add("pytest\v--a\x1cb")
	f.Fuzz(func(t *testing.T, line string) {
		groups := GroupPytestArgs(line)
		// Grouping only joins neighbouring tokens with one space: the
		// tokens come back in order, none lost or invented.
		var tokens []string
		for _, g := range groups {
			if g == "" {
				t.Fatalf("empty group in %q", groups)
			}
			tokens = append(tokens, strings.Split(g, " ")...)
		}
		want := pyFields(line)
		if utf8.ValidString(line) && strings.Join(tokens, "\x00") != strings.Join(want, "\x00") {
			t.Fatalf("tokens %q, want %q", tokens, want)
		}
		for _, g := range groups {
			if strings.Count(g, " ") > 1 {
				t.Fatalf("group of more than two tokens: %q", g)
			}
		}
	})
}

func FuzzSplitShellWords(f *testing.F) {
	f.Add(`LLM_ROOT=/src LLM_MODELS_ROOT=/m __LUNOWUD="-thread_pool_size=12" pytest -k 'a or b' --x=\"y\"`)
	f.Add(`a\ b "c\"d\\e\f" 'g\h' "" ''`)
	f.Add("x\vy\u00a0z\r\n#c")
	f.Add(`"unclosed`)
	f.Add(`trailing\`)
	f.Fuzz(func(t *testing.T, s string) {
		words, err := SplitShellWords(s)
		if err != nil {
			if err != errNoClosingQuotation && err != errNoEscapedCharacter {
				t.Fatalf("unexpected error %v", err)
			}
			// Only quotes and backslashes make text unsplittable.
			if !strings.ContainsAny(s, `"'\`) {
				t.Fatalf("%q: %v without a quote or backslash", s, err)
			}
		} else {
			// Round trip: the words, quoted as Python's shlex.quote does
			// and joined, split back into the same words.
			quoted := make([]string, len(words))
			for i, w := range words {
				quoted[i] = shellquote.ShlexQuote(w)
			}
			again, err := SplitShellWords(strings.Join(quoted, " "))
			if err != nil || !reflect.DeepEqual(again, words) && !(len(again) == 0 && len(words) == 0) {
				t.Fatalf("%q: words %q quoted as %q split back as %q, %v", s, words, quoted, again, err)
			}
			// Without quotes and backslashes it is a split on the four
			// separators.
			if !strings.ContainsAny(s, `"'\`) {
				want := strings.FieldsFunc(s, func(r rune) bool { return strings.ContainsRune(" \t\r\n", r) })
				if !reflect.DeepEqual(words, want) && !(len(words) == 0 && len(want) == 0) {
					t.Fatalf("%q: words %q, want %q", s, words, want)
				}
			}
		}
		// Any string quoted is one word again, whatever it holds.
		if w, err := SplitShellWords(shellquote.ShlexQuote(s)); err != nil || len(w) != 1 || w[0] != s {
			t.Fatalf("ShlexQuote(%q) splits as %q, %v", s, w, err)
		}
	})
}

func FuzzParseDurations(f *testing.F) {
	f.Add([]byte(`{"t[a]": 300.5, "t[b]": 900, "t[c]": 600.25}`), "t[a] TIMEOUT (1)\nt[b]\nt[c]\nt[d]\nt[b]", uint8(2))
	f.Add([]byte(`[["t[a]", 1], ["t[a]", 2], [3, 4]]`), "t[a]\nt[x]", uint8(3))
	f.Add([]byte(`{}`), "t[a]", uint8(1))
	f.Add([]byte(`"x"`), "t[a]", uint8(1))
	f.Add([]byte(`{"t[a]": -5, "t[b]": 0}`), "t[b]\nt[a]\nt[a]", uint8(4))
	f.Fuzz(func(t *testing.T, data []byte, list string, splits uint8) {
		d, err := parseDurations(data, "dur.json")
		if err != nil {
			if strings.Contains(err.Error(), "\n") || !strings.Contains(err.Error(), "dur.json") {
				t.Fatalf("error does not name the file on one line: %q", err)
			}
			return
		}
		lines := runnableLines(list)
		groups := int(splits)%8 + 1
		if len(lines) == 0 {
			return
		}
		// The groups partition the list: every line lands in exactly one,
		// and each group keeps list order.
		seen := map[string]int{}
		for _, l := range lines {
			seen[l]++
		}
		for g := 1; g <= groups; g++ {
			got, err := leastDurationGroup(lines, d, "dur.json", groups, g)
			if err != nil {
				if strings.Contains(err.Error(), "\n") || !strings.Contains(err.Error(), "Invalid pytest-split durations file: dur.json") {
					t.Fatalf("error %q", err)
				}
				return
			}
			pos := 0
			for _, l := range got {
				seen[l]--
				for pos < len(lines) && lines[pos] != l {
					pos++
				}
				if pos == len(lines) {
					t.Fatalf("group %d lines %q are not in list order of %q", g, got, lines)
				}
				pos++
			}
		}
		for l, n := range seen {
			if n != 0 {
				t.Fatalf("line %q is in %d groups too many (groups of %q)", l, -n, lines)
			}
		}
	})
}

func FuzzWaived(f *testing.F) {
	f.Add("# c\nperf/t.py::t[a] SKIP (https://nvbugs/1)\nfull:GB200_NVL/perf/t.py::t[c] SKIP\n", "perf/t.py::t[c] TIMEOUT (9)", "GB200-12_GPUs")
	f.Add("t[a] TIMEOUT (1)\n", "t[a]", "")
	f.Add("full:sm100/t[a] SKIP\n", "t[a]", "sm100-x")
	f.Fuzz(func(t *testing.T, waives, line, testPrefix string) {
		got := waived(waives, line, testPrefix)
		// Comments, blank lines and indentation change nothing.
		var noisy strings.Builder
		noisy.WriteString("# SKIP " + line + "\n\n")
		for _, l := range strings.Split(waives, "\n") {
			noisy.WriteString("  " + l + "\t\n# " + l + "\n")
		}
		if waived(noisy.String(), line, testPrefix) != got {
			t.Fatalf("comments or blank lines changed the answer for %q in %q", line, waives)
		}
		// More waives never un-waive a test.
		if got && !waived(waives+"\nt[other] SKIP\n", line, testPrefix) {
			t.Fatalf("appending a waive un-waived %q", line)
		}
		// Without full: entries the test prefix does not matter.
		if !strings.Contains(waives, "full:") && waived(waives, line, "") != got {
			t.Fatalf("the test prefix changed the answer without full: entries")
		}
		// A line's own node id with SKIP waives it.
		id, _ := splitMarker(pyStrip(line))
		if id = pyStrip(id); id != "" && !strings.HasPrefix(id, "#") && !strings.HasPrefix(id, "full:") &&
			!strings.ContainsAny(id, "\n") && pyStrip(line) == line {
			if own, _ := splitMarker(id + " SKIP"); own == id && !waived(id+" SKIP\n", line, testPrefix) {
				t.Fatalf("%q SKIP does not waive %q", id, line)
			}
		}
	})
}
