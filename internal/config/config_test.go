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
	// Merge keys, tags and documents PyYAML reads or refuses.
	f.Add([]byte("d: &d {tensor_parallel_size: 4}\nworker_config: {gen: {<<: [*d, {pipeline_parallel_size: 2}]}}\nhardware: {<<: {gpus_per_node: 010}}\n"))
	f.Add([]byte("a: &a {<<: *a}\n"))
	f.Add([]byte("a: !!python/tuple [1]\n---\nb: 1\n"))
	f.Add([]byte("? [a]\n: 1\nt: 2024-02-30\n"))
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

// TestParseAsPyYAML: the config is read as submit.py's PyYAML (YAML 1.1,
// safe loader) reads it: merge keys, 1.1 integers (010 is octal 8,
// 1:30 is 90, 0o10 is a string), one document only, and what its safe
// loader refuses is refused here too. (Checked against PyYAML 6.0.)
func TestParseAsPyYAML(t *testing.T) {
	c, err := Parse([]byte(`
defaults: &defaults {tensor_parallel_size: 4, pipeline_parallel_size: 2}
hw: &hw {gpus_per_node: 4, num_ctx_servers: 1}
more: &more {pipeline_parallel_size: 8, context_parallel_size: 3}
hardware:
  <<: *hw
  num_gen_servers: 2
worker_config:
  ctx:
    <<: *defaults
    tensor_parallel_size: 1
  gen:
    <<: [*defaults, *more]
benchmark: {mode: e2e, concurrency_list: 010}
environment: {<<: {worker_env_var: "A=1"}}
`), "c.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if *c.Hardware.GPUsPerNode != 4 || *c.Hardware.NumCtxServers != 1 || *c.Hardware.NumGenServers != 2 {
		t.Errorf("hardware through a merge key: %+v", c.Hardware)
	}
	// The mapping's own keys win over merged ones; in a list of merges
	// the earlier mapping wins.
	if c.Ctx.TensorParallel != 1 || c.Ctx.PipelineParallel != 2 || c.Ctx.ContextParallel != 1 {
		t.Errorf("ctx %+v", c.Ctx)
	}
	if c.Gen.TensorParallel != 4 || c.Gen.PipelineParallel != 2 || c.Gen.ContextParallel != 3 {
		t.Errorf("gen %+v", c.Gen)
	}
	if c.Environment.WorkerEnvVar != "A=1" || !c.Sections["hardware"] {
		t.Errorf("environment %+v sections %v", c.Environment, c.Sections)
	}
	if n, err := c.Benchmark.SingleConcurrency(); err != nil || n != 8 {
		t.Errorf("concurrency_list: 010 is %d (%v), PyYAML reads 8", n, err)
	}

	for yaml, want := range map[string]int{
		"010": 8, "0o10": -1, "1_000": 1000, "0x1F": 31, "0b11": 3, "+4": 4, "1:30": 90, "0_10": 8,
		`"010"`: 10, `'1_000'`: 1000, "!!int '010'": 8, "08": 8, "4.0": -1, "true": -1, "'0x10'": -1, "1e3": -1,
	} {
		c, err := Parse([]byte("hardware: {gpus_per_node: "+yaml+"}\n"), "c.yaml")
		switch {
		case want < 0 && err == nil:
			t.Errorf("gpus_per_node: %s read as %d, want a refusal", yaml, *c.Hardware.GPUsPerNode)
		case want >= 0 && err != nil:
			t.Errorf("gpus_per_node: %s: %v, want %d", yaml, err, want)
		case want >= 0 && *c.Hardware.GPUsPerNode != want:
			t.Errorf("gpus_per_node: %s read as %d, want %d", yaml, *c.Hardware.GPUsPerNode, want)
		}
	}

	// Booleans are YAML 1.1's: y and n are strings for PyYAML (and so
	// refused where a boolean is needed); on/off are booleans.
	for yaml, want := range map[string]int{"on": 1, "Off": 0, "YES": 1, "y": -1, "n": -1, "tRuE": -1, "'true'": -1} {
		c, err := Parse([]byte("worker_config: {gen: {enable_attention_dp: "+yaml+"}}\n"), "c.yaml")
		switch {
		case want < 0 && err == nil:
			t.Errorf("enable_attention_dp: %s read as %v, want a refusal", yaml, c.Gen.EnableAttentionDP)
		case want >= 0 && (err != nil || c.Gen.EnableAttentionDP != (want == 1)):
			t.Errorf("enable_attention_dp: %s: %v %v", yaml, c, err)
		}
	}

	for _, ok := range []string{"---\nhardware: {gpus_per_node: 4}\n...\n", "%YAML 1.1\n---\nhardware: {}\n", "a: ! 010\n", "a: !!binary aGk=\nb: !!set {x}\nc: !!omap [x: 1]\nd: 2024-02-29\n"} {
		if _, err := Parse([]byte(ok), "c.yaml"); err != nil {
			t.Errorf("Parse(%q): %v (PyYAML reads it)", ok, err)
		}
	}
	for yaml, want := range map[string]string{
		"hardware: {}\n---\nbenchmark: {}\n":    "c.yaml:2: expected a single document in the stream, but found another document",
		"hardware: {}\n--- \n":                  "expected a single document",
		"metadata: !foo x\n":                    `c.yaml:1: metadata: PyYAML's safe loader has no constructor for the tag "!foo"`,
		"metadata: {a: !!python/tuple [1]}\n":   `metadata.a: PyYAML's safe loader has no constructor for the tag "!!python/tuple"`,
		"? [a]\n: 1\n":                          "(document): a list cannot be a mapping key (PyYAML: found unhashable key)",
		"metadata: {date: 2024-13-45}\n":        `metadata.date: "2024-13-45" is not a valid date`,
		"metadata: {at: 2024-01-01 25:00:00}\n": `metadata.at: "2024-01-01 25:00:00" is not a valid date`,
		"metadata: {x: !!bool maybe}\n":         `metadata.x: "maybe" is not a valid !!bool`,
		"metadata: {x: !!int abc}\n":            `metadata.x: "abc" is not a valid !!int`,
		"hardware: {<<: 1}\n":                   "hardware: a merge key (<<) needs a mapping or a list of mappings",
		"hardware: {<<: [{a: 1}, 2]}\n":         "hardware: a merge key (<<) needs a mapping or a list of mappings",
	} {
		_, err := Parse([]byte(yaml), "c.yaml")
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Parse(%q): %v, want an error containing %q", yaml, err, want)
		}
	}
}
