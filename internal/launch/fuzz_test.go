package launch

import (
	"math"
	"math/big"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/disagg-runner/disagg-runner/internal/config"
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

// FuzzCheckEvalBound: text accepted for an eval'ed role environment,
// once launch.sh's double quotes are removed (\$ is $), holds no command
// separator, redirection or substitution, and every $ starts $name or
// ${name}; a plain one names an inert variable.
func FuzzCheckEvalBound(f *testing.F) {
	for _, s := range []string{
		"TLLM_LOG_LEVEL=INFO TRTLLM_SERVER_DISABLE_GC=1", `DIR=/tmp/c_\${SLURM_LOCALID}`, `A=1 \$(touch /tmp/p)`,
		"A=1; B=2", "A=$stageName", "A=${x:=a}", "A=$jobWorkspace/x", `A=\$'x'`, "A=$((1))", "A=`x`",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if checkDoubleQuoted("f", s) != nil || CheckEvalBound(s) != nil {
			return
		}
		eval := strings.ReplaceAll(s, `\$`, "$")
		if strings.ContainsAny(eval, ";&|<>()`\"\n\r") {
			t.Fatalf("%q accepted: eval'ed as %q", s, eval)
		}
		for i := 0; i < len(eval); i++ {
			if eval[i] != '$' {
				continue
			}
			n := varRefLen(eval[i:])
			if n == 0 {
				t.Fatalf("%q accepted with a $ that is no plain reference at %d", s, i)
			}
			i += n - 1
		}
		// Plain references (not written \$) name inert variables only.
		for i := 0; i < len(s); i++ {
			if s[i] == '\\' {
				i++
				continue
			}
			if s[i] == '$' {
				n := varRefLen(s[i:])
				if name := strings.Trim(s[i+1:i+n], "{}"); !isInert(name) {
					t.Fatalf("%q accepted with a plain reference to %s", s, name)
				}
				i += n - 1
			}
		}
	})
}

// FuzzComputeHardware: any sizes config.Parse lets through give a layout
// whose counts are positive where they must be and bounded, computed
// without overflow (checked against exact arithmetic), or a one-line
// error.
func FuzzComputeHardware(f *testing.F) {
	f.Add(4, 1, 1, 4, 1, 1, 4, 1, 1, false)
	f.Add(4, 1, 1, 2097152, 2097152, 2097152, 1, 1, 1, false)
	f.Add(2147483647, 2147483647, 2147483647, 1, 1, 1, 1, 1, 1, true)
	f.Fuzz(func(t *testing.T, gpn, nctx, ngen, ctp, cpp, ccp, gtp, gpp, gcp int, genOnly bool) {
		bound := func(v, min int) int { // what config.Parse accepts
			if v < min || v > math.MaxInt32 {
				return min
			}
			return v
		}
		gpn, nctx, ngen = bound(gpn, 1), bound(nctx, 0), bound(ngen, 0)
		c := &config.Config{Hardware: config.Hardware{GPUsPerNode: &gpn, NumCtxServers: &nctx, NumGenServers: &ngen}}
		c.Ctx = config.Worker{TensorParallel: bound(ctp, 1), PipelineParallel: bound(cpp, 1), ContextParallel: bound(ccp, 1)}
		c.Gen = config.Worker{TensorParallel: bound(gtp, 1), PipelineParallel: bound(gpp, 1), ContextParallel: bound(gcp, 1)}
		for _, p := range Profiles {
			h, err := computeHardware(p, c, genOnly, "c.yaml")
			if err != nil {
				if strings.Contains(err.Error(), "\n") || !strings.Contains(err.Error(), "expected at most") {
					t.Fatalf("%s: error %q", p, err)
				}
				continue
			}
			exact := func(ws ...int) *big.Int {
				v := big.NewInt(1)
				for _, w := range ws {
					v.Mul(v, big.NewInt(int64(w)))
				}
				return v
			}
			if exact(c.Ctx.TensorParallel, c.Ctx.PipelineParallel, c.Ctx.ContextParallel).Cmp(big.NewInt(int64(h.GPUsPerCtxServer))) != 0 ||
				exact(c.Gen.TensorParallel, c.Gen.PipelineParallel, c.Gen.ContextParallel).Cmp(big.NewInt(int64(h.GPUsPerGenServer))) != 0 {
				t.Fatalf("%s: GPUs per server %d/%d overflowed", p, h.GPUsPerCtxServer, h.GPUsPerGenServer)
			}
			for _, v := range []int{h.TotalNodes, h.TotalGPUs, h.GPUsPerCtxServer, h.GPUsPerGenServer} {
				if v < 0 || v > MaxJobSize {
					t.Fatalf("%s: layout %+v out of bounds", p, h)
				}
			}
			if h.TotalGPUs != h.TotalNodes*h.GPUsPerNode || h.NodesPerCtxServer < 1 || h.NodesPerGenServer < 1 {
				t.Fatalf("%s: layout %+v inconsistent", p, h)
			}
		}
	})
}
