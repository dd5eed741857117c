package launch

import (
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/disagg-runner/disagg-runner/internal/config"
)

func TestGroupPytestArgs(t *testing.T) {
	cases := []struct {
		line string
		want []string
	}{
		{
			`export pytestCommand="A=1 launch pytest -v --timeout=3600 --rootdir /r -o junit_logging=out-err --splits 1 -k x --flag --x= --csv=/a.csv"`,
			[]string{`export`, `pytestCommand="A=1`, `launch`, `pytest`, `-v`, `--timeout=3600`, `--rootdir /r`, `-o junit_logging=out-err`, `--splits 1`, `-k x`, `--flag`, `--x=`, `--csv=/a.csv"`},
		},
		// No pytest token: every token stays single.
		{"a --b c -d e", []string{"a", "--b", "c", "-d", "e"}},
		// Only the first `pytest` starts grouping; a value never starts with '-'.
		{"pytest --a -b --c d pytest -vv x", []string{"pytest", "--a", "-b", "--c d", "pytest", "-vv", "x"}},
		// -x followed by a dash token stays alone; "-é" is two characters, as in Python.
		{"pytest -x -y -é v", []string{"pytest", "-x", "-y", "-é v"}},
		// Python's whitespace includes \v and \x1c.
		{"pytest\v--a\x1cb", []string{"pytest", "--a b"}},
	}
	for _, c := range cases {
		if got := GroupPytestArgs(c.line); !reflect.DeepEqual(got, c.want) {
			t.Errorf("GroupPytestArgs(%q)\n got %q\nwant %q", c.line, got, c.want)
		}
	}
}

func TestOutputDirValue(t *testing.T) {
	cases := []struct {
		line, want string
		ok         bool
	}{
		{`pytest --output-dir=/ws/ -v`, "/ws/", true},
		{`pytest --output-dir /ws -v`, "/ws", true},
		{`pytest --output-dir="/ws a" -v`, "/ws", true},
		{`pytest --output-dir==/ws`, "/ws", true},
		// An empty quoted value does not match; the search goes on.
		{`pytest --output-dir="" --output-dir=/b`, "/b", true},
		{`pytest --output-dirx=/a`, "", false},
		{`pytest -v`, "", false},
	}
	for _, c := range cases {
		got, ok := outputDirValue(c.line)
		if got != c.want || ok != c.ok {
			t.Errorf("outputDirValue(%q) = %q, %v; want %q, %v", c.line, got, ok, c.want, c.ok)
		}
	}
	if got := testOutputDir(`--output-dir=/ws/`, "disagg-e2e-x"); got != "/ws/disagg-e2e-x" {
		t.Errorf("join with trailing slash: %q", got)
	}
	if got := testOutputDir(`--output-dir=/ws`, ""); got != "/ws" {
		t.Errorf("empty bracket: %q", got)
	}
}

func TestPyJoin(t *testing.T) {
	for _, c := range []struct {
		parts []string
		want  string
	}{
		{[]string{"trtllm", "a/", "b.yaml"}, "trtllm/a/b.yaml"},
		{[]string{"trtllm/", "a"}, "trtllm/a"},
		{[]string{"", "a"}, "a"},
		{[]string{"x", "/abs", "b"}, "/abs/b"},
	} {
		if got := pyJoin(c.parts...); got != c.want {
			t.Errorf("pyJoin(%q) = %q, want %q", c.parts, got, c.want)
		}
	}
}

func TestParseTestList(t *testing.T) {
	ok := []struct {
		p     Profile
		data  string
		split int
		want  TestID
	}{
		{V1, "  perf/t.py::test_e2e[disagg_upload-my-cfg] TIMEOUT (120)\nother[disagg-x]\n", 0,
			TestID{Line: "perf/t.py::test_e2e[disagg_upload-my-cfg] TIMEOUT (120)", Bracket: "disagg_upload-my-cfg", ConfigName: "my-cfg"}},
		{V2, "\n\n t[disagg-e2e-a] \nt[disagg_upload-gen_only-b-c]\n", 2,
			TestID{Line: "t[disagg_upload-gen_only-b-c]", Bracket: "disagg_upload-gen_only-b-c", ConfigName: "b-c", Mode: "gen_only"}},
		{V2, "t[x][disagg-e2e-last]", 0,
			TestID{Line: "t[x][disagg-e2e-last]", Bracket: "disagg-e2e-last", ConfigName: "last", Mode: "e2e"}},
		// v3 skips comment lines and knows the no-context mode and the modifier.
		{V3, "# t[disagg-e2e-comment]\n\n t[disagg-e2e-a] \n#x\nt[disagg_upload-gen_only_no_context-b-c] SKIP\n", 2,
			TestID{Line: "t[disagg_upload-gen_only_no_context-b-c] SKIP", Bracket: "disagg_upload-gen_only_no_context-b-c", ConfigName: "b-c", Mode: "gen_only_no_context"}},
		{V3, "t[disagg-e2e-time_breakdown-cfg-x]", 0,
			TestID{Line: "t[disagg-e2e-time_breakdown-cfg-x]", Bracket: "disagg-e2e-time_breakdown-cfg-x", ConfigName: "cfg-x", Mode: "e2e", Modifier: "time_breakdown"}},
		{V3, "t[disagg-e2e-cfg-time_breakdown]", 0,
			TestID{Line: "t[disagg-e2e-cfg-time_breakdown]", Bracket: "disagg-e2e-cfg-time_breakdown", ConfigName: "cfg-time_breakdown", Mode: "e2e"}},
	}
	for _, c := range ok {
		got, err := ParseTestList(c.p, []byte(c.data), "tl", c.split)
		if err != nil || got != c.want {
			t.Errorf("ParseTestList(%s, %q, %d) = %+v, %v; want %+v", c.p, c.data, c.split, got, err, c.want)
		}
	}
	bad := []struct {
		p       Profile
		data    string
		split   int
		wantErr string
	}{
		{V1, "\nt[disagg-x]", 0, "Invalid test list format. Expected test name with brackets: "},
		{V1, "t[disagg]", 0, "Invalid test name format. Expected format: prefix-config_name, got: disagg"},
		{V1, "t[aggr-x]", 0, "Invalid test name format. Expected format: disagg-config_name, got: aggr-x"},
		{V2, "\n \n", 0, "Test list is empty: tl"},
		{V2, "t[disagg-e2e-a]", 2, "split_group 2 exceeds number of tests in test list (1)"},
		{V2, "t[disagg]", 0, "Invalid test name (need at least prefix and config): disagg"},
		{V2, "t[aggr-cfg-server]", 0, "Invalid test name prefix 'aggr'. Expected starts-with 'aggr' or 'disagg'."},
		{V2, "t[disagg-cfg]", 0, "Invalid disagg test format. Expected disagg[_upload]-{e2e|gen_only}-{config_base}, got: disagg-cfg"},
		{V2, "t[disagg-ctx_only-cfg]", 0, "Invalid disagg benchmark_mode: ctx_only. Expected 'e2e' or 'gen_only'."},
		// A config name that would reach the shell unquoted.
		{V1, "t[disagg-x$(reboot)]", 0, "is not allowed"},
		{V2, "t[disagg-e2e-a/../../etc/passwd]", 0, "is not allowed"},
		// The prefix part reaches v2's testOutputDir unquoted too.
		{V2, "t[disagg$(touch${IFS}/tmp/x)-e2e-cfg]", 0, "is not allowed"},
		{V1, "t[disagg-]", 0, "the config name is empty"},
		{V3, "# only a comment\n", 0, "Test list is empty: tl"},
		{V3, "t[disagg-e2e-a]\n# t[disagg-e2e-b]", 2, "split_group 2 exceeds number of tests in test list (1)"},
		{V3, "t[disagg-cfg]", 0, "Invalid disagg test format. Expected disagg[_upload]-{e2e|gen_only|gen_only_no_context}[-{modifier}]-{config_base}, got: disagg-cfg"},
		{V3, "t[disagg-ctx_only-cfg]", 0, "Invalid disagg benchmark_mode: ctx_only. Expected one of 'e2e', 'gen_only', 'gen_only_no_context'."},
		{V3, "t[aggr-e2e-cfg]", 0, "aggregated tests are not supported"},
		{V3, "t[disagg-e2e-time_breakdown]", 0, "Test name has a modifier but no config: disagg-e2e-time_breakdown"},
		{V3, "t[disagg-gen_only_no_context-time_breakdown-c]", 0, "The time_breakdown modifier is not generated for benchmark_mode 'gen_only_no_context'; supported modes are e2e, ctx_only: disagg-gen_only_no_context-time_breakdown-c"},
		{V3, "t[disagg-e2e-a;b]", 0, "is not allowed"},
	}
	for _, c := range bad {
		_, err := ParseTestList(c.p, []byte(c.data), "tl", c.split)
		if err == nil || !strings.Contains(err.Error(), c.wantErr) {
			t.Errorf("ParseTestList(%s, %q): error %v, want one containing %q", c.p, c.data, err, c.wantErr)
		}
	}
}

// memFS builds a ReadFunc over an in-memory checkout.
func memFS(files map[string]string) ReadFunc {
	return func(p string) ([]byte, error) {
		if d, ok := files[p]; ok {
			return []byte(d), nil
		}
		return nil, &fs.PathError{Op: "open", Path: p, Err: fs.ErrNotExist}
	}
}

const v2Draft = `mkdir -p "$testOutputDir"
srun "${srunArgs[@]}" -N $nodesPerGenServer --ntasks-per-node=$gpusPerNodePerGenServer $runScript
if [ "${ctPrecheckEnabled:-0}" = 1 ]; then echo "$pytestCommandGENPrecheck"; fi
`

func baseFiles(profile Profile, cfgYAML string) (Request, map[string]string) {
	req := Request{
		Profile: profile, LLMSrc: "src", TestListPath: "tl", DraftPath: "src/d/draft.sh",
		PrefixPath: "prefix", SrunArgsPath: "srun", RunSh: "/n/run.sh", InstallSh: "/n/install.sh",
	}
	files := map[string]string{
		"prefix":            "#!/bin/bash\nexport jobWorkspace=/ws\nexport pytestCommand=\"pytest -v --output-dir=/ws/\"\n",
		"srun":              "--container-image=img --mpi=pmix",
		"src/d/draft.sh":    "echo $jobWorkspace $totalNodes\n",
		"src/d/" + GateFile: "gate() { :; }\n",
	}
	switch profile {
	case V1:
		files["tl"] = "t[disagg-cfg]\n"
		files[ConfigPath(V1, "src", "cfg")] = cfgYAML
	case V2:
		files["tl"] = "t[disagg-e2e-cfg]\n"
		files[ConfigPath(V2, "src", "cfg")] = cfgYAML
	case V3:
		files["tl"] = "t[disagg-e2e-cfg]\n"
		files[ConfigPath(V3, "src", "cfg")] = cfgYAML
		files["src/"+PrecheckConfigPath] = ""
		files["prefix"] = "#!/bin/bash\nexport jobWorkspace=/ws\nexport pytestCommand=\"LLM_MODELS_ROOT=/models pytest -v --output-dir=/ws/\"\n"
	}
	return req, files
}

const goodYAML = `
hardware: {gpus_per_node: 4, num_ctx_servers: 1, num_gen_servers: 2}
worker_config:
  ctx: {tensor_parallel_size: 2, pipeline_parallel_size: 2}
  gen: {tensor_parallel_size: 8, max_batch_size: 16, enable_attention_dp: true}
benchmark: {mode: e2e, concurrency_list: "512 1075"}
environment: {worker_env_var: "A=1", server_env_var: "S=1"}
metadata: {model_name: whatever}
`

func TestGenerateHardware(t *testing.T) {
	for _, p := range Profiles {
		cfg := goodYAML
		if p == V3 { // v3 refuses a list of concurrencies even where unused
			cfg = strings.Replace(cfg, `"512 1075"`, "512", 1)
		}
		req, files := baseFiles(p, cfg)
		res, err := Generate(req, memFS(files))
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		want := Hardware{NumCtxServers: 1, NumGenServers: 2, GPUsPerNode: 4, GPUsPerCtxServer: 4, GPUsPerGenServer: 8,
			NodesPerCtxServer: 1, NodesPerGenServer: 2, GPUsPerNodePerCtxServer: 4, GPUsPerNodePerGenServer: 4,
			TotalNodes: 5, TotalGPUs: 20}
		if res.Hardware != want {
			t.Errorf("%s: hardware %+v, want %+v", p, res.Hardware, want)
		}
		if !strings.Contains(string(res.Script), "export totalNodes=5\n") {
			t.Errorf("%s: script lacks totalNodes=5", p)
		}
	}
}

func TestGenerateQueueCapWarning(t *testing.T) {
	req, files := baseFiles(V2, strings.Replace(goodYAML, `{mode: e2e, concurrency_list: "512 1075"}`, `{mode: gen_only, concurrency_list: 512}`, 1))
	files["tl"] = "t[disagg-gen_only-cfg]\n"
	res, err := Generate(req, memFS(files))
	if err != nil {
		t.Fatal(err)
	}
	// max_batch_size 16 x tp 8 with attention DP = 128 < 512.
	if !strings.Contains(string(res.Script), "TLLM_BENCHMARK_REQ_QUEUES_SIZE=128 ") {
		t.Errorf("queue size not capped to 128")
	}
	if len(res.Warnings) != 1 || !strings.Contains(res.Warnings[0], "capped to 128 (max_batch_size=16, tp_size=8, attention_dp=True) instead of concurrency=512") {
		t.Errorf("warnings %q", res.Warnings)
	}
}

func TestGenerateErrors(t *testing.T) {
	cases := []struct {
		name    string
		profile Profile
		edit    func(r *Request, f map[string]string)
		wantErr string
	}{
		{"no gpus_per_node v1", V1, func(r *Request, f map[string]string) {
			f[ConfigPath(V1, "src", "cfg")] = "hardware: {num_ctx_servers: 1, num_gen_servers: 1}\n"
		}, "Missing required hardware configuration: hardware.gpus_per_node not set"},
		{"zero gpus_per_node", V2, func(r *Request, f map[string]string) {
			f[ConfigPath(V2, "src", "cfg")] = "hardware: {gpus_per_node: 0, num_ctx_servers: 1, num_gen_servers: 1}\n"
		}, "hardware.gpus_per_node: expected a positive integer, got \"0\""},
		{"missing gate", V2, func(r *Request, f map[string]string) { delete(f, "src/d/"+GateFile) }, "slurm_ct_precheck_gate.sh not found at src/d/slurm_ct_precheck_gate.sh"},
		{"missing prefix", V1, func(r *Request, f map[string]string) { delete(f, "prefix") }, "script prefix prefix: file does not exist"},
		{"injected run-sh", V1, func(r *Request, f map[string]string) { r.RunSh = "/x;reboot" }, `run script "/x;reboot": character ';' is not allowed`},
		{"injected stage", V2, func(r *Request, f map[string]string) { r.StageName = `GB200"; reboot; "` }, "stage name \"GB200"},
		{"injected srun arg", V1, func(r *Request, f map[string]string) { f["srun"] = "--container-name=x-$(reboot)" }, "srun: value \"--container-name=x-$(reboot)\": only $name or ${name} may follow $"},
		{"injected env var", V2, func(r *Request, f map[string]string) {
			f[ConfigPath(V2, "src", "cfg")] = strings.Replace(goodYAML, `"A=1"`, "'A=`reboot`'", 1)
		}, "environment.worker_env_var: value \"A=`reboot`\": character '`' is not allowed"},
		{"v2 precheck not a boolean", V2, func(r *Request, f map[string]string) {
			f[ConfigPath(V2, "src", "cfg")] = goodYAML + "cache_transceiver_precheck: {enabled: sometimes}\n"
		}, `cache_transceiver_precheck.enabled: expected true or false, got "sometimes"`},
		{"gen-only bad concurrency", V1, func(r *Request, f map[string]string) {
			f[ConfigPath(V1, "src", "cfg")] = strings.Replace(goodYAML, "mode: e2e", "mode: gen_only", 1)
		}, `benchmark.concurrency_list: expected one positive integer where it is used (gen-only), got "512 1075"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req, files := baseFiles(c.profile, goodYAML)
			c.edit(&req, files)
			_, err := Generate(req, memFS(files))
			if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Fatalf("error %v, want one containing %q", err, c.wantErr)
			}
			if strings.ContainsAny(err.Error(), "\n") {
				t.Errorf("error is not one line: %q", err)
			}
		})
	}
}

// TestGenerateRefusesEvalInjection: the role environments are pasted
// between double quotes in launch.sh and the result is eval'ed by the run
// script on the nodes, so anything that is inert in launch.sh but acts at
// the eval is refused too (upstream passes it through), in every profile
// and every environment field.
func TestGenerateRefusesEvalInjection(t *testing.T) {
	fields := []string{"worker_env_var", "ctx_worker_env_var", "gen_worker_env_var", "server_env_var", "benchmark_env_var"}
	bad := map[string]string{
		`A=1 \\$(touch /tmp/pwned)`: "only $name or ${name} may follow $",
		`A=1; touch /tmp/pwned`:     "';'",
		`A=1 && touch /tmp/pwned`:   "'&'",
		`A=1 || touch /tmp/pwned`:   "'|'",
		`A=1 > /tmp/pwned`:          "'>'",
		`A=1 < /etc/passwd`:         "'<'",
		`A=(x)`:                     "'('",
		`A=1 \\${x:=a}`:             "only $name or ${name} may follow $",
		`A=1 \\${!x}`:               "only $name or ${name} may follow $",
		`A=1 \\$((1+1))`:            "only $name or ${name} may follow $",
		`A=$stageName`:              "$stageName",
		`A=${HOME}`:                 "$HOME",
		`A=1 \\$'x'`:                "only $name or ${name} may follow $",
	}
	for _, p := range Profiles {
		for _, f := range fields {
			for v, want := range bad {
				yaml := goodYAML + "environment: {" + f + ": \"" + v + "\"}\n"
				yaml = strings.Replace(yaml, "environment: {worker_env_var: \"A=1\", server_env_var: \"S=1\"}\n", "", 1)
				if p == V3 {
					yaml = strings.Replace(yaml, `"512 1075"`, "512", 1)
				}
				req, files := baseFiles(p, yaml)
				res, err := Generate(req, memFS(files))
				if err == nil {
					t.Errorf("%s %s %q: accepted:\n%s", p, f, v, res.Script)
					continue
				}
				if msg := err.Error(); !strings.Contains(msg, "environment."+f) || !strings.Contains(msg, want) || !strings.Contains(msg, "eval") {
					t.Errorf("%s %s %q: %q\nwant it to name environment.%s, %q and the eval", p, f, v, msg, f, want)
				}
			}
		}
	}
	// What real configs hold stays accepted: NAME=value words, values
	// deferred to the node with \$, and the inert variables.
	for _, v := range []string{
		"TLLM_LOG_LEVEL=INFO TRTLLM_SERVER_DISABLE_GC=1 ENROOT_ALLOW_DEV=yes NCCL_GRAPH_MIXING_SUPPORT=0",
		`UCX_TLS=^ib,cuda_copy X=a:b/c@d%e+f`,
		`DIR=/tmp/cache_\\${SLURM_LOCALID} HOME_ON_NODE=\\$HOME`,
		`OUT=$jobWorkspace/out SRC=${llmSrcNode} JOB=$SLURM_JOB_ID`,
		`A='x y' B=*`,
		``,
	} {
		for _, p := range Profiles {
			yaml := strings.Replace(goodYAML, `worker_env_var: "A=1"`, `worker_env_var: "`+v+`"`, 1)
			if p == V3 {
				yaml = strings.Replace(yaml, `"512 1075"`, "512", 1)
			}
			req, files := baseFiles(p, yaml)
			if _, err := Generate(req, memFS(files)); err != nil {
				t.Errorf("%s: %q refused: %v", p, v, err)
			}
		}
	}
}

// TestRealConfigsPassEvalCheck: the environment rule refuses nothing a
// real config holds (the golden cases run it too).
func TestRealConfigsPassEvalCheck(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("..", "..", "testdata", "shared", "fixtures", "configs", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no fixture configs: %v", err)
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		c, err := config.Parse(data, f)
		if err != nil {
			t.Fatal(err)
		}
		if err := checkEnvStrings(c, f); err != nil {
			t.Errorf("a real config is refused: %v", err)
		}
	}
}

// TestGenerateSizeOverflow: sizes each within bounds whose products
// overflow (tp=pp=cp=2097152 made #SBATCH --nodes negative) or are absurd
// are refused, naming the config fields, for every profile.
func TestGenerateSizeOverflow(t *testing.T) {
	cases := []struct{ name, yaml, want string }{
		{"ctx parallel sizes", `
hardware: {gpus_per_node: 4, num_ctx_servers: 1, num_gen_servers: 1}
worker_config:
  ctx: {tensor_parallel_size: 2097152, pipeline_parallel_size: 2097152, context_parallel_size: 2097152}
  gen: {tensor_parallel_size: 4}
benchmark: {mode: e2e, concurrency_list: 1}
`, "worker_config.ctx: tensor_parallel_size × pipeline_parallel_size × context_parallel_size = 2097152 × 2097152 × 2097152 = 9223372036854775808 GPUs per server, expected at most 1048576"},
		{"gen parallel sizes", `
hardware: {gpus_per_node: 4, num_ctx_servers: 1, num_gen_servers: 1}
worker_config:
  ctx: {tensor_parallel_size: 4}
  gen: {tensor_parallel_size: 2147483647, pipeline_parallel_size: 2}
benchmark: {mode: e2e, concurrency_list: 1}
`, "worker_config.gen: tensor_parallel_size × pipeline_parallel_size × context_parallel_size = 2147483647 × 2 × 1 = 4294967294 GPUs per server"},
		{"gen servers", `
hardware: {gpus_per_node: 4, num_ctx_servers: 1, num_gen_servers: 2147483647}
worker_config:
  ctx: {tensor_parallel_size: 4}
  gen: {tensor_parallel_size: 1048576}
benchmark: {mode: e2e, concurrency_list: 1}
`, "hardware.num_ctx_servers × nodes per CTX server + hardware.num_gen_servers × nodes per GEN server = 1 × 1 + 2147483647 × 262144 = 562949953159169 nodes, expected at most 1048576"},
		{"gpus per node", `
hardware: {gpus_per_node: 2147483647, num_ctx_servers: 1, num_gen_servers: 1}
worker_config:
  ctx: {tensor_parallel_size: 1}
  gen: {tensor_parallel_size: 1}
benchmark: {mode: e2e, concurrency_list: 1}
`, "nodes × hardware.gpus_per_node = 2 × 2147483647 = 4294967294 GPUs in all, expected at most 1048576"},
	}
	for _, p := range Profiles {
		for _, c := range cases {
			req, files := baseFiles(p, c.yaml)
			res, err := Generate(req, memFS(files))
			if err == nil {
				t.Errorf("%s %s: accepted, hardware %+v", p, c.name, res.Hardware)
				continue
			}
			if !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), ConfigPath(p, "src", "cfg")) {
				t.Errorf("%s %s: %v\nwant it to name the file and %q", p, c.name, err, c.want)
			}
		}
	}
}

func TestContractV2DraftWithV1Profile(t *testing.T) {
	req, files := baseFiles(V1, goodYAML)
	files["src/d/draft.sh"] = v2Draft
	res, err := Generate(req, memFS(files))
	if err != nil {
		t.Fatal(err)
	}
	want := []MissingVar{{"testOutputDir", 1}, {"gpusPerNodePerGenServer", 2}, {"pytestCommandGENPrecheck", 3}}
	if !reflect.DeepEqual(res.Contract, want) {
		t.Fatalf("missing %v, want %v", res.Contract, want)
	}
	// The same draft with its own profile is clean.
	req2, files2 := baseFiles(V2, goodYAML)
	files2["src/d/draft.sh"] = v2Draft
	res2, err := Generate(req2, memFS(files2))
	if err != nil || len(res2.Contract) != 0 {
		t.Fatalf("v2 draft with v2 profile: %v, missing %v", err, res2.Contract)
	}
}

func TestCheckContractScanner(t *testing.T) {
	draft := `# $commentVar is not expanded
echo '$singleQuoted' "$doubleQuoted" \$escaped $'ansi $x'
f() { local loc=1; echo $loc $1 $@ $? $$ $! ${#arr[@]}; }
for host in a b; do echo $host; done
read -r first second <<< "x y"; echo $first $second
mapfile -t nodes < <(echo); echo ${nodes[0]}
echo ${withDefault:-$innerUndefined} ${alt:+x} ${x=1}
cat <<'END'
$quotedHeredoc
END
cat <<END
$openHeredoc
END
(( count++ )); echo $count
echo $(echo $inSubst) "$(echo "$nested")" $SLURM_JOB_ID $SECONDS $fromPrefix
`
	got := CheckContract(ContractInput{Draft: []byte(draft), Defined: [][]byte{[]byte("export fromPrefix=1\n")}})
	want := []MissingVar{{"doubleQuoted", 2}, {"arr", 3}, {"innerUndefined", 7}, {"openHeredoc", 12}, {"inSubst", 15}, {"nested", 15}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v\nwant %v", got, want)
	}
}

func TestDetect(t *testing.T) {
	files := map[string]bool{"src/jenkins/scripts/perf/submit.py": true}
	dirs := map[string]bool{"src/tests/scripts/perf-sanity/disaggregated/": true}
	isF := func(p string) bool { return files[p] }
	isD := func(p string) bool { return dirs[p] || dirs[p+"/"] }
	if p := Detect("src", isF, isD); p != V2 {
		t.Errorf("both present: %s", p)
	}
	if p := Detect("src", isF, func(string) bool { return false }); p != V1 {
		t.Errorf("no config folder: %s", p)
	}
	if _, err := ParseProfile("v3"); err == nil {
		t.Error("ParseProfile accepted v3")
	}
	if p, err := ParseProfile("perf-sanity-v3"); p != V3 || err != nil {
		t.Errorf("ParseProfile(perf-sanity-v3) = %s, %v", p, err)
	}

	// v3: both helper modules, whatever else the checkout has.
	files["src/jenkins/scripts/perf/cluster_env.py"] = true
	files["src/jenkins/scripts/perf/benchmark_utils.py"] = true
	if p, err := DetectChecked("src", isF, isD); p != V3 || err != nil {
		t.Errorf("both v3 modules: %s, %v", p, err)
	}
	if p := Detect("src", isF, func(string) bool { return false }); p != V3 {
		t.Errorf("both v3 modules, no config folder: %s", p)
	}
	// Exactly one: refused, naming both files and --profile; Detect keeps
	// its old answer.
	for _, only := range []string{"cluster_env.py", "benchmark_utils.py"} {
		delete(files, "src/jenkins/scripts/perf/"+only)
		p, err := DetectChecked("src", isF, isD)
		if err == nil || p != "" {
			t.Errorf("without %s: %s, %v; want a refusal", only, p, err)
		} else {
			for _, want := range []string{"src/jenkins/scripts/perf/cluster_env.py", "src/jenkins/scripts/perf/benchmark_utils.py", "--profile", "not pinned"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("without %s: %q lacks %q", only, err, want)
				}
			}
		}
		if p := Detect("src", isF, isD); p != V2 {
			t.Errorf("without %s: Detect = %s, want the v2 rule's answer", only, p)
		}
		files["src/jenkins/scripts/perf/"+only] = true
	}
}
