package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseRealFixtures(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("..", "..", "testdata", "shared", "fixtures", "configs", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no fixture configs found beside the repository: %v", err)
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		c, err := Parse(data, f)
		if err != nil {
			t.Errorf("%s: %v", filepath.Base(f), err)
			continue
		}
		if c.Hardware.GPUsPerNode == nil || *c.Hardware.GPUsPerNode <= 0 || c.Gen.GPUs() <= 0 {
			t.Errorf("%s: implausible hardware %+v gen %+v", filepath.Base(f), c.Hardware, c.Gen)
		}
		for _, s := range []string{"hardware", "worker_config", "environment", "benchmark"} {
			if !c.Sections[s] {
				t.Errorf("%s: section %s not seen", filepath.Base(f), s)
			}
		}
	}
}

func TestParseValues(t *testing.T) {
	c, err := Parse([]byte(`
hardware: {gpus_per_node: "4", num_ctx_servers: 0, num_gen_servers: 2}
worker_config:
  gen: {tensor_parallel_size: 8, pipeline_parallel_size: 2, max_batch_size: 64, enable_attention_dp: yes}
benchmark: {mode: gen_only, concurrency_list: 512 1075}
environment: {worker_env_var: "A=1 B=2", server_env_var: ~}
cache_transceiver_precheck: {enabled: off, step_timeout_s: 60}
slurm: {job_time: "01:30:00", extra: [1, 2]}
`), "c.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if *c.Hardware.GPUsPerNode != 4 || *c.Hardware.NumCtxServers != 0 || *c.Hardware.NumGenServers != 2 {
		t.Errorf("hardware %+v", c.Hardware)
	}
	if c.Ctx.GPUs() != 1 || c.Gen.GPUs() != 16 || *c.Gen.MaxBatchSize != 64 || !c.Gen.EnableAttentionDP {
		t.Errorf("workers ctx %+v gen %+v", c.Ctx, c.Gen)
	}
	if c.Benchmark.Mode != "gen_only" || c.Benchmark.Concurrency != "512 1075" {
		t.Errorf("benchmark %+v", c.Benchmark)
	}
	if _, err := c.Benchmark.SingleConcurrency(); err == nil {
		t.Error("SingleConcurrency accepted a list")
	}
	if c.Environment.WorkerEnvVar != "A=1 B=2" || c.Environment.ServerEnvVar != "" {
		t.Errorf("environment %+v", c.Environment)
	}
	if c.Precheck.Enabled || c.Precheck.StepTimeoutS != 60 || c.Slurm.JobTime != "01:30:00" {
		t.Errorf("precheck %+v slurm %+v", c.Precheck, c.Slurm)
	}
	if c.Sections["worker_config"] != true || c.Sections["nonexistent"] {
		t.Errorf("sections %v", c.Sections)
	}

	d, err := Parse([]byte("hardware:\nbenchmark: {}\n"), "d.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if d.Hardware.GPUsPerNode != nil || !d.Precheck.Enabled || d.Precheck.StepTimeoutS != 900 || d.Benchmark.Concurrency != "1" || d.Benchmark.ModePresent {
		t.Errorf("defaults: %+v", d)
	}
	if d.Sections["hardware"] {
		t.Error("a null hardware section counts as present")
	}
}

func TestParseErrors(t *testing.T) {
	cases := []struct{ yaml, want string }{
		{"hardware: {gpus_per_node: four}", `c.yaml:1: hardware.gpus_per_node: expected a positive integer, got "four"`},
		{"hardware: {gpus_per_node: 0}", `hardware.gpus_per_node: expected a positive integer, got "0"`},
		{"hardware: {gpus_per_node: -4}", `hardware.gpus_per_node: expected a positive integer, got "-4"`},
		{"hardware: {gpus_per_node: 4.5}", `hardware.gpus_per_node: expected a positive integer, got "4.5"`},
		{"hardware: {num_ctx_servers: -1}", `hardware.num_ctx_servers: expected a non-negative integer, got "-1"`},
		{"hardware: {num_gen_servers: [1]}", `hardware.num_gen_servers: expected a non-negative integer, got a list`},
		{"hardware: 4", `hardware: expected a mapping, got "4"`},
		{"worker_config: {ctx: {tensor_parallel_size: 0}}", `worker_config.ctx.tensor_parallel_size: expected a positive integer, got "0"`},
		{"worker_config: {gen: {pipeline_parallel_size: two}}", `worker_config.gen.pipeline_parallel_size: expected a positive integer`},
		{"worker_config: {gen: {enable_attention_dp: maybe}}", `worker_config.gen.enable_attention_dp: expected true or false, got "maybe"`},
		{"worker_config: {gen: {max_batch_size: 0}}", `worker_config.gen.max_batch_size: expected a positive integer`},
		{"worker_config: [ctx]", `worker_config: expected a mapping, got a list`},
		{"benchmark: {mode: [e2e]}", `benchmark.mode: expected a string, got a list`},
		{"benchmark: {concurrency_list: {a: 1}}", `benchmark.concurrency_list: expected an integer or a string of integers, got a mapping`},
		{"environment: {worker_env_var: {A: 1}}", `environment.worker_env_var: expected a string, got a mapping`},
		{"- a\n- b\n", `(document): expected a YAML mapping, got a list`},
		{"", `the config is empty`},
		{"hardware: {gpus_per_node: 4\n", `c.yaml: invalid YAML:`},
		{"hardware: {gpus_per_node: 99999999999}", `expected a positive integer, got "99999999999"`},
	}
	for _, c := range cases {
		_, err := Parse([]byte(c.yaml), "c.yaml")
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Parse(%q): error %v, want one containing %q", c.yaml, err, c.want)
			continue
		}
		if strings.Contains(err.Error(), "\n") {
			t.Errorf("Parse(%q): error is not one line: %q", c.yaml, err)
		}
	}
}

// perf-sanity-v2's strict reading of the precheck section is kept aside
// (V2Err), because perf-sanity-v3 reads the same keys the Python way.
func TestPrecheckReadings(t *testing.T) {
	for _, c := range []struct{ yaml, v2Err string }{
		{"cache_transceiver_precheck: {enabled: 'sometimes'}", `cache_transceiver_precheck.enabled: expected true or false`},
		{"cache_transceiver_precheck: {step_timeout_s: 0}", `cache_transceiver_precheck.step_timeout_s: expected a positive integer`},
		{"cache_transceiver_precheck: {step_timeout_s: 1500.9}", `cache_transceiver_precheck.step_timeout_s: expected a positive integer`},
	} {
		cfg, err := Parse([]byte(c.yaml), "c.yaml")
		if err != nil {
			t.Errorf("Parse(%q): %v", c.yaml, err)
			continue
		}
		if cfg.Precheck.V2Err == nil || !strings.Contains(cfg.Precheck.V2Err.Error(), c.v2Err) {
			t.Errorf("Parse(%q): V2Err %v, want one containing %q", c.yaml, cfg.Precheck.V2Err, c.v2Err)
		}
	}
	cfg, err := Parse([]byte(`
cache_transceiver_precheck: {enabled: "false", step_timeout_s: 1500.9, setup_timeout_s: " 6_00 ", wave_timeout_s: ~, rendezvous_timeout_s: 0x10, wireup_timeout_s: 1e3}
benchmark: {concurrency_list: 8.0}
`), "c.yaml")
	if err != nil {
		t.Fatal(err)
	}
	v := cfg.Precheck.Values
	if !v["enabled"].Truthy() || v["enabled"].Kind != KindStr {
		t.Errorf("enabled %+v: the string 'false' is true in Python", v["enabled"])
	}
	for k, want := range map[string]string{"step_timeout_s": "1500", "setup_timeout_s": "600", "rendezvous_timeout_s": "16"} {
		if i, ok := v[k].PyInt(); !ok || i.String() != want {
			t.Errorf("%s: int() = %v, %v; want %s", k, i, ok, want)
		}
	}
	if _, ok := v["wireup_timeout_s"].PyInt(); ok || v["wireup_timeout_s"].Repr() != "'1e3'" {
		t.Errorf("wireup_timeout_s %+v: 1e3 is a string for PyYAML and int() refuses it", v["wireup_timeout_s"])
	}
	if v["wave_timeout_s"].Kind != KindNull {
		t.Errorf("wave_timeout_s %+v", v["wave_timeout_s"])
	}
	if cv := cfg.Benchmark.ConcurrencyValue; cv == nil || cv.Kind != KindFloat || cv.Repr() != "8.0" {
		t.Errorf("concurrency %+v", cv)
	}
}

func TestPyValue(t *testing.T) {
	for _, c := range []struct {
		yaml, repr string
		truthy     bool
	}{
		{"off", "False", false}, {"Yes", "True", true}, {"n", "'n'", true}, {"~", "None", false}, {"", "None", false},
		{"0", "0", false}, {"010", "8", true}, {"0b11", "3", true}, {"1_000", "1000", true}, {"1:30", "90", true},
		{"-0x1F", "-31", true}, {"'0'", "'0'", true}, {`""`, "''", false}, {"1.", "1.0", true}, {".5", "0.5", true},
		{"1.0e+3", "1000.0", true}, {"1.0e3", "'1.0e3'", true}, {"-.inf", "-inf", true}, {"0.0", "0.0", false},
		{"!!str 12", "'12'", true}, {"[]", "a list", false}, {"[1]", "a list", true}, {"{}", "a mapping", false},
		{"512 1075", "'512 1075'", true},
	} {
		cfg, err := Parse([]byte("benchmark: {concurrency_list: x}\ncache_transceiver_precheck:\n  enabled: "+c.yaml+"\n"), "c.yaml")
		if err != nil {
			t.Errorf("%q: %v", c.yaml, err)
			continue
		}
		v := cfg.Precheck.Values["enabled"]
		if v.Repr() != c.repr || v.Truthy() != c.truthy {
			t.Errorf("%q: repr %s truthy %v; want %s %v", c.yaml, v.Repr(), v.Truthy(), c.repr, c.truthy)
		}
	}
}

func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("..", "..", "testdata", "shared", "fixtures", "configs", "*.yaml"))
	for _, p := range files {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte("hardware: {gpus_per_node: 4}\n"))
	f.Add([]byte("a: &x [*x]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data, "fuzz.yaml")
		if err != nil {
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("multi-line error: %q", err)
			}
			return
		}
		// Whatever parses must be safe to compute a layout from.
		if g := c.Hardware.GPUsPerNode; g != nil && *g <= 0 {
			t.Fatalf("accepted gpus_per_node %d", *g)
		}
		for _, w := range []Worker{c.Ctx, c.Gen} {
			if w.TensorParallel <= 0 || w.PipelineParallel <= 0 || w.ContextParallel <= 0 {
				t.Fatalf("accepted a non-positive parallel size: %+v", w)
			}
		}
	})
}
