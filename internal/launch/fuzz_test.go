package launch

import (
	"strings"
	"testing"
	"unicode/utf8"
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
