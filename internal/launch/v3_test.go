package launch

import (
	"bytes"
	"errors"
	"io/fs"
	"reflect"
	"strings"
	"testing"

	"github.com/disagg-runner/disagg-runner/internal/config"
)

const v3YAML = `
hardware: {gpus_per_node: 4, num_ctx_servers: 1, num_gen_servers: 1}
worker_config:
  ctx: {tensor_parallel_size: 4}
  gen: {tensor_parallel_size: 8}
benchmark: {mode: e2e, concurrency_list: "16"}
environment: {worker_env_var: "A=1"}
`

// v3Case is a small v3 checkout in memory.
func v3Case(t *testing.T) (Request, map[string]string) {
	t.Helper()
	req, files := baseFiles(V3, v3YAML)
	return req, files
}

func generateV3Err(t *testing.T, req Request, files map[string]string) error {
	t.Helper()
	_, err := Generate(req, memFS(files))
	if err != nil && strings.Contains(err.Error(), "\n") {
		t.Errorf("error is not one line: %q", err)
	}
	return err
}

func TestSplitShellWords(t *testing.T) {
	cases := []struct {
		in   string
		want []string
		err  error
	}{
		{`a b  c`, []string{"a", "b", "c"}, nil},
		{`A="x y" 'p q'r "" ''`, []string{"A=x y", "p qr", "", ""}, nil},
		{`a\ b \'c "d\"e\\f\g" 'h\i'`, []string{"a b", "'c", `d"e\f\g`, `h\i`}, nil},
		{"#not-a-comment x\vy\tz", []string{"#not-a-comment", "x\vy", "z"}, nil},
		{"é\u00a0ü", []string{"é\u00a0ü"}, nil},
		{` `, nil, nil},
		{`a "b`, nil, errNoClosingQuotation},
		{`a 'b`, nil, errNoClosingQuotation},
		{`a\`, nil, errNoEscapedCharacter},
		{`"a\`, nil, errNoEscapedCharacter},
	}
	for _, c := range cases {
		got, err := SplitShellWords(c.in)
		if !errors.Is(err, c.err) || !reflect.DeepEqual(got, c.want) {
			t.Errorf("SplitShellWords(%q) = %q, %v; want %q, %v", c.in, got, err, c.want, c.err)
		}
	}
}

func TestPytestOptions(t *testing.T) {
	line := `export pytestCommand="LLM_MODELS_ROOT='/m x' pytest --splits 3 --group=2 --durations-path --test-prefix=GB200-x --splitting-algorithm"`
	words, err := pytestOptionWords(line)
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{"--splits": "3", "--group": "2", "--durations-path": "--test-prefix=GB200-x"} {
		if v, ok := optionValue(words, name); !ok || v != want {
			t.Errorf("%s = %q, %v; want %q", name, v, ok, want)
		}
	}
	// The last word has no value; an absent option neither.
	for _, name := range []string{"--splitting-algorithm", "--nope"} {
		if v, ok := optionValue(words, name); ok {
			t.Errorf("%s = %q, want absent", name, v)
		}
	}
	// Whichever comes first: --x=v before --x w.
	if v, _ := optionValue([]string{"--x=1", "--x", "2"}, "--x"); v != "1" {
		t.Errorf("--x = %q, want 1", v)
	}
	// Only a matching pair of enclosing quotes is removed.
	if w, err := pytestOptionWords(`export pytestCommand='a "b c"'`); err != nil || !reflect.DeepEqual(w, []string{"a", "b c"}) {
		t.Errorf("single-quoted payload: %q, %v", w, err)
	}
	if _, err := pytestOptionWords(`export pytestCommand="a 'b"`); !errors.Is(err, errNoClosingQuotation) {
		t.Errorf("unbalanced quote inside: %v", err)
	}
}

func TestLeadingAssignment(t *testing.T) {
	cases := []struct {
		line, value string
		found       bool
		err         string
	}{
		{`export pytestCommand="A=1 LLM_MODELS_ROOT=/m pytest"`, "/m", true, ""},
		{`export pytestCommand="LLM_MODELS_ROOT= pytest"`, "", true, ""},
		{`export pytestCommand="A=1 LLM_MODELS_ROOT='/a b' LLM_MODELS_ROOT=/c pytest"`, "/a b", true, ""},
		// After the command starts it is an argument, not the environment.
		{`export pytestCommand="timeout 7200 LLM_MODELS_ROOT=/m pytest"`, "", false, ""},
		{`export pytestCommand="1A=x LLM_MODELS_ROOT=/m pytest"`, "", false, ""},
		// A quote inside the payload is read as the shell reads the export.
		{`export pytestCommand="A=\"x y\" LLM_MODELS_ROOT=/m pytest"`, "/m", true, ""},
		{`export pytestCommand="A=x LLM_MODELS_ROOT=/m`, "", false, "cannot parse exported pytestCommand: No closing quotation"},
		{`export pytestCommand="A='x LLM_MODELS_ROOT=/m"`, "", false, "cannot parse pytestCommand payload: No closing quotation"},
		{`export pytestCommand="A=\"x LLM_MODELS_ROOT=/m"`, "", false, "cannot parse pytestCommand payload: No closing quotation"},
		{`echo "export pytestCommand=x"`, "", false, "launch prefix has a malformed pytestCommand export"},
	}
	for _, c := range cases {
		v, found, err := leadingAssignment(c.line, "LLM_MODELS_ROOT")
		gotErr := ""
		if err != nil {
			gotErr = err.Error()
		}
		if v != c.value || found != c.found || !strings.Contains(gotErr, c.err) || (c.err == "") != (err == nil) {
			t.Errorf("leadingAssignment(%q) = %q, %v, %v; want %q, %v, %q", c.line, v, found, err, c.value, c.found, c.err)
		}
	}
}

func TestSplitMarker(t *testing.T) {
	for line, want := range map[string][2]string{
		"t[a] TIMEOUT (120)":       {"t[a]", "TIMEOUT"},
		"t[a]  SKIP (https://x)":   {"t[a]", "SKIP"},
		"t[a]\tXFAIL":              {"t[a]", "XFAIL"},
		"t[a] UNSTABLE(reason)":    {"t[a]", "UNSTABLE"},
		"t[a] SKIPPED":             {"t[a] SKIPPED", ""},
		"t[a]SKIP":                 {"t[a]SKIP", ""},
		"t[a] TIMEOUTX SKIP (1)":   {"t[a] TIMEOUTX", "SKIP"},
		"t[a] # SKIP":              {"t[a] #", "SKIP"},
		"t[a]\u00a0TIMEOUT\u2028x": {"t[a]", "TIMEOUT"},
	} {
		if id, m := splitMarker(line); id != want[0] || m != want[1] {
			t.Errorf("splitMarker(%q) = %q, %q; want %q, %q", line, id, m, want[0], want[1])
		}
	}
}

func TestWaived(t *testing.T) {
	waives := `# comment
perf/t.py::t[a] SKIP (https://nvbugs/1)
perf/t.py::t[b] TIMEOUT (90)
full:GB200_NVL/perf/t.py::t[c] SKIP (https://nvbugs/2)
full:sm100_GB200/perf/t.py::t[d] SKIP
full:GB200 SKIP
`
	cases := []struct {
		line, prefix string
		want         bool
	}{
		{"perf/t.py::t[a]", "", true},
		{"perf/t.py::t[a] TIMEOUT (60)", "", true},
		{"perf/t.py::t[b]", "", false},                // waived, but not with SKIP
		{"perf/t.py::t[c]", "", false},                // full: needs a --test-prefix
		{"perf/t.py::t[c]", "GB200-12_GPUs-3", true},  // GB200 is in the scope
		{"perf/t.py::t[c]", "GB300-12_GPUs-3", false}, // GB300 is not
		{"perf/t.py::t[d]", "GB200-x", false},         // sm... scopes never count
	}
	for _, c := range cases {
		if got := waived(waives, c.line, c.prefix); got != c.want {
			t.Errorf("waived(%q, prefix %q) = %v, want %v", c.line, c.prefix, got, c.want)
		}
	}
	// The line's own SKIP marker counts, but not after a '#'.
	for line, want := range map[string]bool{"t[x] SKIP (bug)": true, "t[x] # SKIP": false} {
		if got, err := skippedByWaiver(line, "", "src", memFS(nil)); got != want || err != nil {
			t.Errorf("skippedByWaiver(%q) = %v, %v; want %v", line, got, err, want)
		}
	}
}

func TestLeastDurationGroup(t *testing.T) {
	lines := []string{"t[a] TIMEOUT (1)", "t[b]", "t[c]", "t[d]", "t[b]"}
	// a 10, b 3 (both lines), c 6, d absent: mean of a, b, c = 19/3.
	d := durations{"t[a]": []byte("10"), "t[b]": []byte("3.0"), "t[c]": []byte("6"), "t[z]": []byte(`"junk"`)}
	// Order: a 10, d 6.33, c 6, b 3, b 3. Two groups: a->1, d->2, c->2
	// (6.33 < 10), b->1 (10 < 12.33), b->1 (13 < 12.33? no: 12.33 -> 2).
	got1, err := leastDurationGroup(lines, d, "dur", 2, 1)
	if err != nil {
		t.Fatal(err)
	}
	got2, _ := leastDurationGroup(lines, d, "dur", 2, 2)
	if want := []string{"t[a] TIMEOUT (1)", "t[b]"}; !reflect.DeepEqual(got1, want) {
		t.Errorf("group 1 = %q, want %q", got1, want)
	}
	if want := []string{"t[c]", "t[d]", "t[b]"}; !reflect.DeepEqual(got2, want) {
		t.Errorf("group 2 = %q, want %q", got2, want)
	}
	// Equal totals go to the lowest group; equal durations keep node-id order.
	eq := []string{"t[y]", "t[x]"}
	g1, _ := leastDurationGroup(eq, durations{}, "dur", 2, 1)
	if !reflect.DeepEqual(g1, []string{"t[x]"}) {
		t.Errorf("ties: group 1 = %q, want t[x]", g1)
	}
	// A used entry must be a number.
	if _, err := leastDurationGroup([]string{"t[z]"}, d, "dur", 1, 1); err == nil || !strings.Contains(err.Error(), "Invalid pytest-split durations file: dur") {
		t.Errorf("junk duration: %v", err)
	}
}

func TestParseDurations(t *testing.T) {
	m, err := parseDurations([]byte(`[["t[a]", 1], ["t[a]", 2.5], [3, 4]]`), "dur")
	if err != nil {
		t.Fatal(err)
	}
	if s, ok, err := m.seconds("t[a]", "dur"); s != 2.5 || !ok || err != nil {
		t.Errorf("later pairs win: %v %v %v", s, ok, err)
	}
	for data, want := range map[string]string{
		`"x"`:         "Invalid pytest-split durations file: dur",
		`12`:          "Invalid pytest-split durations file: dur",
		`null`:        "Invalid pytest-split durations file: dur",
		`[["a"]]`:     "item 1 is not an [id, seconds] pair",
		`["ab"]`:      "item 1 is not an [id, seconds] pair",
		`{"a": 1`:     "pytest-split durations file dur is not valid JSON",
		`{} {}`:       "pytest-split durations file dur is not valid JSON",
		"":            "pytest-split durations file dur is not valid JSON",
		`{"a": NaN}`:  "pytest-split durations file dur is not valid JSON",
		"{\n\"a\" 1}": "pytest-split durations file dur is not valid JSON",
	} {
		_, err := parseDurations([]byte(data), "dur")
		if err == nil || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("parseDurations(%q): %v, want one line containing %q", data, err, want)
		}
	}
}

func TestV3Selection(t *testing.T) {
	const list = "t[disagg-e2e-a]\nt[disagg-e2e-b]\nt[disagg-e2e-c]\n"
	pytest := func(opts string) string {
		return "export pytestCommand=\"LLM_MODELS_ROOT=/m pytest --output-dir=/ws/ " + opts + "\"\n"
	}
	cases := []struct {
		name, opts, durations string
		split                 int
		want, err             string
	}{
		{"no split options: the N-th line", "--splits 3", "", 2, "disagg-e2e-b", ""},
		{"split", "--splitting-algorithm least_duration --splits 3 --group 3", `{"t[disagg-e2e-a]": 5, "t[disagg-e2e-b]": 9, "t[disagg-e2e-c]": 1}`, 3, "disagg-e2e-c", ""},
		{"algorithm", "--splitting-algorithm duration_based_chunks --splits 3 --group 1", "", 1, "", "only supports pytest-split's least_duration algorithm, got 'duration_based_chunks'"},
		{"splits not a number", "--splitting-algorithm=least_duration --splits three --group 1", "", 1, "", "pytest --splits in the pytestCommand line: expected an integer, got 'three'"},
		{"group not a number", "--splitting-algorithm=least_duration --splits 3 --group 1.0", "", 1, "", "pytest --group in the pytestCommand line: expected an integer, got '1.0'"},
		{"int() spellings", "--splitting-algorithm=least_duration --splits=+0_3 --group=' 2 '", "{}", 2, "disagg-e2e-b", ""},
		{"group differs", "--splitting-algorithm=least_duration --splits 3 --group 1", "", 2, "", "submit.py split_group=2 disagrees with pytest --group=1"},
		{"no durations", "--splitting-algorithm=least_duration --splits 3 --group 1", "", 1, "", "pytest-split durations file not found: src/tests/integration/defs/.test_durations"},
		{"bad json", "--splitting-algorithm=least_duration --splits 3 --group 1", "{", 1, "", "pytest-split durations file src/tests/integration/defs/.test_durations is not valid JSON"},
		{"splits 0", "--splitting-algorithm=least_duration --splits 0 --group 1", "{}", 1, "", "pytest --splits must be >= 1, got 0"},
		{"group too large", "--splitting-algorithm=least_duration --splits 2 --group 3", "{}", 3, "", "pytest --group must be in [1, 2], got 3"},
		{"huge splits: empty group", "--splitting-algorithm=least_duration --splits 123456789012345678901234567890 --group 5", "{}", 5, "", "but group 5/123456789012345678901234567890 selected 0 tests using src/tests/integration/defs/.test_durations: []"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req, files := v3Case(t)
			files["tl"] = list
			files["prefix"] = pytest(c.opts)
			for _, n := range []string{"a", "b", "c"} {
				files[ConfigPath(V3, "src", n)] = v3YAML
			}
			if c.durations != "" {
				files["src/tests/integration/defs/.test_durations"] = c.durations
			}
			req.SplitGroup = c.split
			res, err := Generate(req, memFS(files))
			switch {
			case c.err != "":
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("error %v, want one containing %q", err, c.err)
				}
			case err != nil:
				t.Fatal(err)
			case res.TestID.Bracket != c.want:
				t.Fatalf("selected %s, want %s", res.TestID.Bracket, c.want)
			}
		})
	}
	// A bad quote in the pytest line is reported before the test id, with
	// the file it is in.
	req, files := v3Case(t)
	files["prefix"] = "export pytestCommand=\"pytest -k 'x\"\n"
	files["tl"] = "no brackets"
	if err := generateV3Err(t, req, files); err == nil || !strings.Contains(err.Error(), "script prefix prefix: the exported pytestCommand is not valid shell quoting (No closing quotation)") {
		t.Errorf("unbalanced quote: %v", err)
	}
}

func TestV3PrecheckSwitchAndRoot(t *testing.T) {
	str := func(s string) *string { return &s }
	cases := []struct {
		name          string
		sw            *string
		yaml, prefix  string
		env           string
		waive         bool
		enabled, root string // "" root: no LLM_MODELS_ROOT line
		rootEnv       string
		warning, err  string
	}{
		{name: "yaml default on", enabled: "1", root: "/models", rootEnv: "LLM_MODELS_ROOT=/models"},
		{name: "switch spellings", sw: str(" TRUE "), enabled: "1", root: "/models", rootEnv: "LLM_MODELS_ROOT=/models"},
		{name: "switch off", sw: str("Off"), prefix: "#!/bin/bash\n", enabled: "0", rootEnv: "''"},
		{name: "switch bad", sw: str("enabled"), err: "TRTLLM_DISAGG_CT_PRECHECK must be a boolean (1/0/true/false/on/off/yes/no), got 'enabled'"},
		{name: "switch empty", sw: str(""), err: "got ''"},
		{name: "yaml string false is on", yaml: `cache_transceiver_precheck: {enabled: "false"}`, enabled: "1", root: "/models", rootEnv: "LLM_MODELS_ROOT=/models"},
		{name: "yaml 0 is off", yaml: "cache_transceiver_precheck: {enabled: 0}", enabled: "0", rootEnv: "''"},
		{name: "env root", prefix: "export pytestCommand=\"pytest -v\"\n", env: "/env/m", enabled: "1", root: "/env/m", rootEnv: "LLM_MODELS_ROOT=/env/m"},
		{name: "line wins over env", env: "/env/m", enabled: "1", root: "/models", rootEnv: "LLM_MODELS_ROOT=/models"},
		{name: "quoted root", prefix: "export pytestCommand=\"LLM_MODELS_ROOT='/mnt/llm models/o'\\''neil' pytest\"\n", enabled: "1",
			root: `'/mnt/llm models/o'"'"'neil'`, rootEnv: `'LLM_MODELS_ROOT='"'"'/mnt/llm models/o'"'"'"'"'"'"'"'"'neil'"'"''`},
		{name: "no pytest line", prefix: "#!/bin/bash\n", env: "/env/m", err: "launch prefix does not export pytestCommand"},
		{name: "no root", prefix: "export pytestCommand=\"pytest -v\"\n", err: "pytestCommand does not set leading environment variable LLM_MODELS_ROOT"},
		{name: "empty root", prefix: "export pytestCommand=\"LLM_MODELS_ROOT= pytest -v\"\n", env: "/env/m", err: "enabled cache-transceiver precheck requires LLM_MODELS_ROOT"},
		{name: "skipped without root warns", prefix: "export pytestCommand=\"pytest -v\"\n", waive: true, enabled: "0", rootEnv: "''", warning: "WARNING: pytestCommand does not set leading environment variable LLM_MODELS_ROOT"},
		{name: "skipped keeps the root", waive: true, enabled: "0", rootEnv: "LLM_MODELS_ROOT=/models"},
		{name: "payload quoting", prefix: "export pytestCommand=\"A=\\\"x pytest\"\n", err: "cannot parse pytestCommand payload: No closing quotation"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req, files := v3Case(t)
			req.PrecheckSwitch, req.ModelsRootEnv = c.sw, c.env
			if c.yaml != "" {
				files[ConfigPath(V3, "src", "cfg")] = v3YAML + c.yaml + "\n"
			}
			if c.prefix != "" {
				files["prefix"] = c.prefix
			}
			if c.waive {
				files["src/"+WaivesPath] = "t[disagg-e2e-cfg] SKIP (https://nvbugs/1)\n"
			}
			res, err := Generate(req, memFS(files))
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("error %v, want one containing %q", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			script := string(res.Script)
			if !strings.Contains(script, "\nexport ctPrecheckEnabled="+c.enabled+"\n") {
				t.Errorf("want ctPrecheckEnabled=%s", c.enabled)
			}
			if has := strings.Contains(script, "\nexport LLM_MODELS_ROOT="); has != (c.root != "") {
				t.Errorf("LLM_MODELS_ROOT line present %v, want root %q", has, c.root)
			} else if c.root != "" && !strings.Contains(script, "\nexport LLM_MODELS_ROOT="+c.root+"\n") {
				t.Errorf("want LLM_MODELS_ROOT=%s", c.root)
			}
			if !strings.Contains(script, "\nexport ctPrecheckModelRootEnv="+c.rootEnv+"\n") {
				t.Errorf("want ctPrecheckModelRootEnv=%s", c.rootEnv)
			}
			switchOn := c.sw == nil && c.yaml != "cache_transceiver_precheck: {enabled: 0}" || c.sw != nil && strings.Contains(strings.ToLower(*c.sw), "true")
			if has := strings.Contains(script, `"--container-env=LLM_MODELS_ROOT"`); has != switchOn {
				t.Errorf("--container-env=LLM_MODELS_ROOT present %v, want %v", has, switchOn)
			}
			if c.warning != "" && (len(res.Warnings) != 1 || !strings.HasPrefix(res.Warnings[0], c.warning)) {
				t.Errorf("warnings %q, want %q", res.Warnings, c.warning)
			}
		})
	}
}

func TestV3Timeouts(t *testing.T) {
	cases := []struct {
		ctxTP, genTP int
		precheck     string
		want, err    string
	}{
		{4, 8, "", "1200", ""},
		{1, 2, "{step_timeout_s: 781}", "781", ""},
		{1, 2, "{step_timeout_s: 780}", "", "must exceed the longest phase watchdog (780s), got 780s"},
		{3, 1, "{step_timeout_s: 810}", "", "(810s), got 810s"},
		{4, 8, "{step_timeout_s: 900}", "", "must exceed the longest phase watchdog (960s), got 900s"},
		{4, 8, "{step_timeout_s: 1801}", "", "must not exceed the global health-check limit (1800s), got 1801s"},
		{4, 8, `{step_timeout_s: "1500"}`, "1500", ""},
		{4, 8, "{step_timeout_s: 1500.9}", "1500", ""},
		{4, 8, "{step_timeout_s: 1000, setup_timeout_s: 900}", "", "(1080s), got 1000s"},
		{4, 8, "{step_timeout_s: 1000, wireup_timeout_s: 10, wave_timeout_s: 10.5}", "1000", ""},
		{4, 8, "{step_timeout_s: 1000, wireup_timeout_s: 10, setup_timeout_s: 10, rendezvous_timeout_s: 10, wave_timeout_s: 10}", "1000", ""},
		{4, 8, "{wave_timeout_s: ten}", "", "cache_transceiver_precheck.wave_timeout_s: expected a number of seconds, got 'ten'"},
		{4, 8, "{step_timeout_s: [1]}", "", "cache_transceiver_precheck.step_timeout_s: expected a number of seconds, got a list"},
		// Checked even with the precheck off.
		{4, 8, "{enabled: false, step_timeout_s: 900}", "", "(960s), got 900s"},
	}
	for _, c := range cases {
		req, files := v3Case(t)
		cfg := strings.Replace(strings.Replace(v3YAML, "ctx: {tensor_parallel_size: 4}", "ctx: {tensor_parallel_size: "+itoa(c.ctxTP)+"}", 1),
			"gen: {tensor_parallel_size: 8}", "gen: {tensor_parallel_size: "+itoa(c.genTP)+"}", 1)
		if c.precheck != "" {
			cfg += "cache_transceiver_precheck: " + c.precheck + "\n"
		}
		files[ConfigPath(V3, "src", "cfg")] = cfg
		res, err := Generate(req, memFS(files))
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%s: error %v, want one containing %q", c.precheck, err, c.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", c.precheck, err)
		} else if !strings.Contains(string(res.Script), "\nexport ctPrecheckTimeout="+c.want+"\n") {
			t.Errorf("%s: want ctPrecheckTimeout=%s", c.precheck, c.want)
		}
	}
}

func TestV3Concurrency(t *testing.T) {
	for value, want := range map[string]string{
		`" 1_024 "`:  "TLLM_BENCHMARK_REQ_QUEUES_SIZE=1024 ",
		"0x10":       "TLLM_BENCHMARK_REQ_QUEUES_SIZE=16 ",
		"'512 1075'": "benchmark.concurrency_list must be a positive integer, got '512 1075'",
		"0":          "must be a positive integer, got 0",
		"true":       "must be a positive integer, got True",
		"~":          "must be a positive integer, got None",
		"8.0":        "must be a positive integer, got 8.0",
		`"-3"`:       "must be a positive integer, got '-3'",
	} {
		req, files := v3Case(t)
		files["tl"] = "t[disagg-gen_only-cfg]\n"
		files[ConfigPath(V3, "src", "cfg")] = strings.Replace(v3YAML, `concurrency_list: "16"`, "concurrency_list: "+value, 1)
		res, err := Generate(req, memFS(files))
		got := ""
		if err != nil {
			got = err.Error()
		} else {
			got = string(res.Script)
		}
		if !strings.Contains(got, want) {
			t.Errorf("concurrency_list %s: got %q, want it to contain %q", value, clip(got), want)
		}
	}
	// Absent: 1.
	req, files := v3Case(t)
	files["tl"] = "t[disagg-gen_only-cfg]\n"
	files[ConfigPath(V3, "src", "cfg")] = strings.Replace(v3YAML, `, concurrency_list: "16"`, "", 1)
	if res, err := Generate(req, memFS(files)); err != nil || !strings.Contains(string(res.Script), "TLLM_BENCHMARK_REQ_QUEUES_SIZE=1 ") {
		t.Errorf("absent concurrency_list: %v", err)
	}
}

func TestV3UCX(t *testing.T) {
	for cluster, want := range map[string]string{
		"":               "unset UCX_CUDA_IPC_ENABLE_MNNVL UCX_TLS UCX_NET_DEVICES &&",
		"dlcluster":      "unset UCX_CUDA_IPC_ENABLE_MNNVL UCX_TLS UCX_NET_DEVICES &&",
		"aws-cmh-cs-001": "unset UCX_CUDA_IPC_ENABLE_MNNVL UCX_TLS UCX_NET_DEVICES && export UCX_TLS=cuda_ipc,cuda_copy,sm,self,tcp UCX_NET_DEVICES=eth0,",
		"GCP-NRT":        "unset UCX_CUDA_IPC_ENABLE_MNNVL UCX_TLS UCX_NET_DEVICES && export UCX_NET_DEVICES=rocep145s0:1,",
		"AWS-DFW":        "unset UCX_CUDA_IPC_ENABLE_MNNVL UCX_TLS UCX_NET_DEVICES && export UCX_TLS=^gdr_copy &&",
		"x-aws-dfw":      "unset UCX_CUDA_IPC_ENABLE_MNNVL UCX_TLS UCX_NET_DEVICES &&",
	} {
		got := ucxCommandV3(cluster)
		if !strings.HasPrefix(got, want) || (!strings.Contains(want, "export") && got != want) {
			t.Errorf("ucxCommandV3(%q) = %q, want %q...", cluster, got, want)
		}
	}
}

func TestV3UCXRow(t *testing.T) {
	for cluster, want := range map[string]string{
		"": "", "dlcluster": "", "x-aws-dfw": "",
		"aws-cmh-cs-001": "aws-cmh", "GCP-NRT": "gcp-nrt", "oci-aga-1": "oci-aga", "nsc-svg": "nsc-svg", "Aws-Dfw-2": "aws-dfw",
	} {
		if got := UCXRow(cluster); got != want {
			t.Errorf("UCXRow(%q) = %q, want %q", cluster, got, want)
		}
	}
	if got := strings.Join(UCXRows(), " "); got != "gcp-nrt oci-aga nsc-svg aws-cmh aws-dfw" {
		t.Errorf("UCXRows() = %s", got)
	}
}

func TestV3MissingFiles(t *testing.T) {
	req, files := v3Case(t)
	delete(files, "src/"+PrecheckConfigPath)
	if err := generateV3Err(t, req, files); err == nil || !strings.Contains(err.Error(), "src/tests/scripts/perf-sanity/cache_transceiver_precheck/precheck_config.py is missing") {
		t.Errorf("no precheck_config.py: %v", err)
	}
	// The gate library: beside the draft first, then in the checkout.
	req, files = v3Case(t)
	req.DraftPath = "draft.sh"
	files["draft.sh"] = files["src/d/draft.sh"]
	if err := generateV3Err(t, req, files); err == nil || !strings.Contains(err.Error(), "precheck gate library slurm_ct_precheck_gate.sh not found; looked in: slurm_ct_precheck_gate.sh, src/jenkins/scripts/perf/disaggregated/slurm_ct_precheck_gate.sh") {
		t.Errorf("no gate: %v", err)
	}
	files["src/"+GatePath] = "from_checkout() { :; }\n"
	res, err := Generate(req, memFS(files))
	if err != nil || !strings.Contains(string(res.Script), "from_checkout()") {
		t.Errorf("gate from the checkout: %v", err)
	}
	files["slurm_ct_precheck_gate.sh"] = "beside_draft() { :; }\n"
	res, err = Generate(req, memFS(files))
	if err != nil || !strings.Contains(string(res.Script), "beside_draft()") || strings.Contains(string(res.Script), "from_checkout()") {
		t.Errorf("gate beside the draft wins: %v", err)
	}
}

// The in-memory inputs give the same script as the files, without reading
// them; the paths still name them in messages.
func TestRequestInMemoryInputs(t *testing.T) {
	for _, p := range Profiles {
		cfgYAML := goodYAML
		if p == V3 {
			cfgYAML = v3YAML
		}
		req, files := baseFiles(p, cfgYAML)
		want, err := Generate(req, memFS(files))
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		mem := req
		mem.TestList, mem.ScriptPrefix, mem.SrunArgs = []byte(files["tl"]), []byte(files["prefix"]), []byte(files["srun"])
		cfgPath := ConfigPath(p, "src", "cfg")
		if mem.Config, err = config.Parse([]byte(files[cfgPath]), cfgPath); err != nil {
			t.Fatal(err)
		}
		for _, name := range []string{"tl", "prefix", "srun", cfgPath} {
			delete(files, name)
		}
		got, err := Generate(mem, memFS(files))
		if err != nil {
			t.Fatalf("%s in memory: %v", p, err)
		}
		if !bytes.Equal(got.Script, want.Script) {
			t.Errorf("%s: in-memory script differs", p)
		}
		mem.SrunArgs = []byte("--x=$(reboot)")
		if _, err := Generate(mem, memFS(files)); err == nil || !strings.HasPrefix(err.Error(), "srun: ") {
			t.Errorf("%s: in-memory srun args: message should name the path: %v", p, err)
		}
	}
}

// Files v3 reads only when needed are not read otherwise.
func TestV3ReadsOnlyWhatItNeeds(t *testing.T) {
	req, files := v3Case(t)
	off := "0"
	req.PrecheckSwitch = &off
	var read []string
	fsys := memFS(files)
	_, err := Generate(req, func(p string) ([]byte, error) {
		read = append(read, p)
		return fsys(p)
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range read {
		if strings.Contains(p, "waives") || strings.Contains(p, "durations") {
			t.Errorf("read %s with the precheck off and no split", p)
		}
	}
	if !errors.Is(func() error { _, err := memFS(nil)("x"); return err }(), fs.ErrNotExist) {
		t.Fatal("memFS")
	}
}
