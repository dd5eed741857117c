package cli

import (
	"path/filepath"
	"reflect"
	"testing"

	"github.com/alecthomas/kong"

	"github.com/disagg-runner/disagg-runner/internal/perf"
)

// perfFlags as run and attach will embed them: flags, the environment
// variable, repeatable gates, and their resolution.
func TestPerfFlags(t *testing.T) {
	var cmd struct {
		perfFlags `embed:""`
	}
	env := Env{Dir: "/ws", LookupEnv: func(name string) (string, bool) {
		return map[string]string{"DISAGG_BASELINE": "prev", "DISAGG_FAIL_ON_REGRESSION": "true"}[name], name == "DISAGG_BASELINE" || name == "DISAGG_FAIL_ON_REGRESSION"
	}}
	parser, err := kong.New(&cmd, kong.Resolvers(envResolver(env)), kong.Exit(func(int) { t.Fatal("exit") }))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := parser.Parse([]string{"--perf-gate", "ttft_p99=10", "--perf-gate", "output_throughput=off"}); err != nil {
		t.Fatal(err)
	}
	if !cmd.FailOnRegression || cmd.Baseline != "prev" {
		t.Errorf("flags %+v", cmd)
	}
	opt, err := cmd.options(env)
	if err != nil {
		t.Fatal(err)
	}
	want := perf.Options{Baseline: filepath.Join("/ws", "prev"), BaselineRuns: 5, Gates: []perf.Gate{{Metric: "total_token_throughput", Pct: 5}, {Metric: "ttft_p99", Pct: 10}}}
	if !reflect.DeepEqual(opt, want) {
		t.Errorf("options %+v, want %+v", opt, want)
	}
	cmd.PerfGate = []string{"nope=1"}
	if _, err := cmd.options(env); err == nil {
		t.Error("a bad gate accepted")
	} else if code, _ := exitCode(t.Context(), nil, err); code != 11 {
		t.Errorf("a bad gate exits %d", code)
	}
}
