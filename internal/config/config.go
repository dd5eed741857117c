// Package config is the typed model of a TensorRT-LLM disaggregated-serving
// config YAML. It reads only the fields the runner uses and ignores the rest
// (metadata, slurm details, profiling, placeholders such as
// <container_image>), but is strict about the fields it uses: a wrong type
// or an impossible size is reported as one line naming the YAML path and the
// value, instead of surfacing later as a crash or a bad launch script.
//
// Presence is kept separate from value (pointers, Present flags) because the
// two generator profiles word their "missing" errors differently; deciding
// what is required is the generator's business, not the model's.
package config

import (
	"bytes"
	"fmt"
	"io"
	"math"
	"math/big"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/disagg-runner/disagg-runner/internal/py"
	"github.com/disagg-runner/disagg-runner/internal/termtext"
)

// Config is the part of a disaggregated config YAML the runner uses.
type Config struct {
	Hardware    Hardware
	Ctx, Gen    Worker
	Benchmark   Benchmark
	Environment Environment
	Precheck    Precheck
	Slurm       Slurm

	// Sections lists which of the top-level mappings the checklist asks
	// for (hardware, worker_config, environment, benchmark) are present.
	Sections map[string]bool
}

// Hardware is `hardware.*`. Nil means absent (or YAML null).
type Hardware struct {
	GPUsPerNode   *int // > 0
	NumCtxServers *int // >= 0
	NumGenServers *int // >= 0
}

// Worker is `worker_config.ctx` or `worker_config.gen`. Parallel sizes
// default to 1, as upstream's generators assume.
type Worker struct {
	TensorParallel    int
	PipelineParallel  int
	ContextParallel   int
	MaxBatchSize      *int
	EnableAttentionDP bool
}

// GPUs is the number of GPUs one server of this kind occupies.
// It can overflow for absurd sizes; launch computes the layout exactly.
func (w Worker) GPUs() int { return w.TensorParallel * w.PipelineParallel * w.ContextParallel }

// Benchmark is `benchmark.*`.
type Benchmark struct {
	Mode        string // "" when absent; each profile applies its own default
	ModePresent bool
	// Concurrency is `benchmark.concurrency_list` as written ("1" when
	// absent). It may be a list such as "512 1075"; it is only interpreted
	// where a profile uses it (see SingleConcurrency).
	Concurrency string
	// ConcurrencyValue is the same key as Python loads it (nil when the key
	// is absent), for perf-sanity-v3, which checks its type.
	ConcurrencyValue *Value
}

// SingleConcurrency interprets concurrency_list where a single value is
// needed (gen-only queue sizing).
func (b Benchmark) SingleConcurrency() (int, error) {
	n, err := strconv.Atoi(strings.TrimSpace(b.Concurrency))
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("benchmark.concurrency_list: expected one positive integer where it is used (gen-only), got %q", b.Concurrency)
	}
	return n, nil
}

// Environment is `environment.*`: extra variables per role, each "" when absent.
type Environment struct {
	WorkerEnvVar    string
	CtxWorkerEnvVar string
	GenWorkerEnvVar string
	ServerEnvVar    string
	BenchmarkEnvVar string
}

// Precheck is `cache_transceiver_precheck.*`. The two profiles that use it
// read it differently: perf-sanity-v2 strictly (Enabled, StepTimeoutS,
// V2Err), perf-sanity-v3 the Python way (Values: truthiness, int()), so
// Parse does not fail on a value only one of them refuses.
type Precheck struct {
	Enabled      bool // perf-sanity-v2's reading; default true
	StepTimeoutS int  // perf-sanity-v2's reading; default 900
	// V2Err is why perf-sanity-v2 refuses the section (enabled not a
	// boolean, step_timeout_s not a positive integer); nil when it is fine.
	V2Err error
	// Values holds the keys PrecheckKeys that are present, as Python loads
	// them (YAML null included).
	Values map[string]Value
}

// PrecheckKeys are the `cache_transceiver_precheck` keys perf-sanity-v3 reads.
var PrecheckKeys = []string{"enabled", "step_timeout_s", "setup_timeout_s", "rendezvous_timeout_s", "wave_timeout_s", "wireup_timeout_s"}

// Slurm is the part of `slurm.*` the runner uses.
type Slurm struct {
	JobTime string // `slurm.job_time`, "" when absent
}

// FieldError names a YAML path and what was wrong with its value.
type FieldError struct {
	Path     string // the file
	Field    string // dotted YAML path
	Line     int    // 0 when unknown
	Expected string
	Got      string
}

func (e *FieldError) Error() string {
	loc := e.Path
	if e.Line > 0 {
		loc = fmt.Sprintf("%s:%d", e.Path, e.Line)
	}
	return fmt.Sprintf("%s: %s: expected %s, got %s", loc, e.Field, e.Expected, e.Got)
}

// Parse reads a config YAML. path is used only in error messages.
// It reads YAML as upstream's PyYAML safe loader does (see pyyaml.go).
func Parse(data []byte, path string) (*Config, error) {
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		if err == io.EOF {
			return nil, fmt.Errorf("%s: the config is empty, expected a YAML mapping with hardware, worker_config, benchmark and environment", path)
		}
		return nil, fmt.Errorf("%s: invalid YAML: %s", path, termtext.OneLine(err.Error()))
	}
	var next yaml.Node
	switch err := dec.Decode(&next); {
	case err == io.EOF:
	case err != nil:
		return nil, fmt.Errorf("%s: invalid YAML: %s", path, termtext.OneLine(err.Error()))
	default:
		return nil, fmt.Errorf("%s:%d: expected a single document in the stream, but found another document (PyYAML reads one)", path, next.Line)
	}
	p := parser{path: path}
	if err := p.prepare(&doc, ""); err != nil {
		return nil, err
	}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	root = resolveAlias(root)
	if root.Kind != yaml.MappingNode {
		return nil, p.fail("(document)", root, "a YAML mapping")
	}

	c := &Config{Sections: map[string]bool{}}
	for _, s := range []string{"hardware", "worker_config", "environment", "benchmark"} {
		n := lookup(root, s)
		c.Sections[s] = n != nil && !isNull(n)
	}

	hw, err := p.mapping(root, "hardware")
	if err != nil {
		return nil, err
	}
	if c.Hardware.GPUsPerNode, err = p.optInt(hw, "hardware", "gpus_per_node", 1); err != nil {
		return nil, err
	}
	if c.Hardware.NumCtxServers, err = p.optInt(hw, "hardware", "num_ctx_servers", 0); err != nil {
		return nil, err
	}
	if c.Hardware.NumGenServers, err = p.optInt(hw, "hardware", "num_gen_servers", 0); err != nil {
		return nil, err
	}

	wc, err := p.mapping(root, "worker_config")
	if err != nil {
		return nil, err
	}
	for _, role := range []struct {
		name string
		dst  *Worker
	}{{"ctx", &c.Ctx}, {"gen", &c.Gen}} {
		w, err := p.mapping(wc, "worker_config."+role.name)
		if err != nil {
			return nil, err
		}
		if err := p.worker(w, "worker_config."+role.name, role.dst); err != nil {
			return nil, err
		}
	}

	bm, err := p.mapping(root, "benchmark")
	if err != nil {
		return nil, err
	}
	if n := lookup(bm, "mode"); n != nil && !isNull(n) {
		if c.Benchmark.Mode, err = p.str(n, "benchmark.mode"); err != nil {
			return nil, err
		}
		c.Benchmark.ModePresent = true
	}
	c.Benchmark.Concurrency = "1"
	if n := lookup(bm, "concurrency_list"); n != nil && !isNull(n) {
		if n.Kind != yaml.ScalarNode {
			return nil, p.fail("benchmark.concurrency_list", n, "an integer or a string of integers")
		}
		c.Benchmark.Concurrency = n.Value
		if v := pyValue(n); v.Kind == KindInt { // 010 is 8 for PyYAML
			c.Benchmark.Concurrency = v.Int.String()
		}
	}
	if n := lookup(bm, "concurrency_list"); n != nil {
		v := pyValue(n)
		c.Benchmark.ConcurrencyValue = &v
	}

	env, err := p.mapping(root, "environment")
	if err != nil {
		return nil, err
	}
	for _, f := range []struct {
		key string
		dst *string
	}{
		{"worker_env_var", &c.Environment.WorkerEnvVar},
		{"ctx_worker_env_var", &c.Environment.CtxWorkerEnvVar},
		{"gen_worker_env_var", &c.Environment.GenWorkerEnvVar},
		{"server_env_var", &c.Environment.ServerEnvVar},
		{"benchmark_env_var", &c.Environment.BenchmarkEnvVar},
	} {
		if n := lookup(env, f.key); n != nil && !isNull(n) {
			if *f.dst, err = p.str(n, "environment."+f.key); err != nil {
				return nil, err
			}
		}
	}

	pc, err := p.mapping(root, "cache_transceiver_precheck")
	if err != nil {
		return nil, err
	}
	c.Precheck.Values = map[string]Value{}
	for _, k := range PrecheckKeys {
		if n := lookup(pc, k); n != nil {
			c.Precheck.Values[k] = pyValue(n)
		}
	}
	c.Precheck.Enabled = true
	if n := lookup(pc, "enabled"); n != nil && !isNull(n) {
		c.Precheck.Enabled, c.Precheck.V2Err = p.boolean(n, "cache_transceiver_precheck.enabled")
	}
	c.Precheck.StepTimeoutS = 900
	if v, err := p.optInt(pc, "cache_transceiver_precheck", "step_timeout_s", 1); err != nil {
		if c.Precheck.V2Err == nil {
			c.Precheck.V2Err = err
		}
	} else if v != nil {
		c.Precheck.StepTimeoutS = *v
	}

	sl, err := p.mapping(root, "slurm")
	if err != nil {
		return nil, err
	}
	if n := lookup(sl, "job_time"); n != nil && !isNull(n) {
		if n.Kind != yaml.ScalarNode {
			return nil, p.fail("slurm.job_time", n, "a time such as 02:00:00")
		}
		c.Slurm.JobTime = n.Value
	}
	return c, nil
}

func (p *parser) worker(w *yaml.Node, field string, dst *Worker) error {
	sizes := []struct {
		key string
		dst *int
	}{
		{"tensor_parallel_size", &dst.TensorParallel},
		{"pipeline_parallel_size", &dst.PipelineParallel},
		{"context_parallel_size", &dst.ContextParallel},
	}
	for _, s := range sizes {
		*s.dst = 1
		v, err := p.optInt(w, field, s.key, 1)
		if err != nil {
			return err
		}
		if v != nil {
			*s.dst = *v
		}
	}
	var err error
	if dst.MaxBatchSize, err = p.optInt(w, field, "max_batch_size", 1); err != nil {
		return err
	}
	if n := lookup(w, "enable_attention_dp"); n != nil && !isNull(n) {
		if dst.EnableAttentionDP, err = p.boolean(n, field+".enable_attention_dp"); err != nil {
			return err
		}
	}
	return nil
}

type parser struct {
	path  string
	flat  map[*yaml.Node]bool // mappings whose merge keys are flattened
	depth int                 // of merge keys being flattened
}

func (p *parser) fail(field string, n *yaml.Node, expected string) error {
	return &FieldError{Path: p.path, Field: field, Line: n.Line, Expected: expected, Got: describe(n)}
}

// mapping returns the mapping under key, or nil when it is absent or null
// (upstream treats `key:` with no value like an empty mapping).
func (p *parser) mapping(parent *yaml.Node, field string) (*yaml.Node, error) {
	key := field[strings.LastIndexByte(field, '.')+1:]
	n := lookup(parent, key)
	if n == nil || isNull(n) {
		return nil, nil
	}
	if n.Kind != yaml.MappingNode {
		return nil, p.fail(field, n, "a mapping")
	}
	return n, nil
}

// optInt reads an integer that must be at least min. Integers written as
// strings ("4") are accepted because upstream converts them with int().
func (p *parser) optInt(parent *yaml.Node, section, key string, min int) (*int, error) {
	n := lookup(parent, key)
	if n == nil || isNull(n) {
		return nil, nil
	}
	field := section + "." + key
	expected := "a positive integer"
	if min == 0 {
		expected = "a non-negative integer"
	}
	if n.Kind != yaml.ScalarNode {
		return nil, p.fail(field, n, expected)
	}
	v, ok := pyInt(n)
	if !ok || v.Cmp(big.NewInt(int64(min))) < 0 || v.Cmp(big.NewInt(math.MaxInt32)) > 0 {
		return nil, p.fail(field, n, expected)
	}
	i := int(v.Int64())
	return &i, nil
}

// pyInt reads an integer as PyYAML types it (010 is 8, 1:30 is 90, 0o10
// is a string), or a string Python's int() takes ("4", "010" is 10).
// Booleans and floats are refused.
func pyInt(n *yaml.Node) (*big.Int, bool) {
	switch v := pyValue(n); v.Kind {
	case KindInt:
		return v.Int, true
	case KindStr:
		return py.IntString(v.Text)
	}
	return nil, false
}

// str reads a value upstream formats into text: a string as it is, an
// integer, boolean or float as Python's str() writes what PyYAML made of
// it (010 is 8, yes is True).
func (p *parser) str(n *yaml.Node, field string) (string, error) {
	if n.Kind == yaml.ScalarNode {
		switch v := pyValue(n); v.Kind {
		case KindStr:
			return v.Text, nil
		case KindInt, KindBool, KindFloat:
			return v.Repr(), nil
		}
	}
	return "", p.fail(field, n, "a string")
}

// boolean reads a YAML 1.1 boolean, as PyYAML types it: true/false,
// yes/no, on/off in their three cases. Anything else, a string such as
// y, n or "true" included (Python would find it true), is refused.
func (p *parser) boolean(n *yaml.Node, field string) (bool, error) {
	if v := pyValue(n); n.Kind == yaml.ScalarNode && v.Kind == KindBool {
		return v.Bool, nil
	}
	return false, p.fail(field, n, "true or false")
}

func lookup(m *yaml.Node, key string) *yaml.Node {
	if m == nil || m.Kind != yaml.MappingNode {
		return nil
	}
	// Later duplicates win, as in PyYAML.
	var found *yaml.Node
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			found = m.Content[i+1]
		}
	}
	return resolveAlias(found)
}

func resolveAlias(n *yaml.Node) *yaml.Node {
	for depth := 0; n != nil && n.Kind == yaml.AliasNode && depth < 16; depth++ {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool { return n.Kind == yaml.ScalarNode && n.Tag == "!!null" }

func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	}
	return strconv.Quote(n.Value)
}
