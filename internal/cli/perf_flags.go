package cli

import (
	"github.com/disagg-runner/disagg-runner/internal/perf"
)

// baselineFlags choose the baseline and the gates of the performance
// verdict (report; run and attach through perfFlags).
type baselineFlags struct {
	Baseline     string   `name:"baseline" env:"DISAGG_BASELINE" placeholder:"PATH" help:"A previous perf-summary.json, or a folder searched for them: the baseline is the median of the newest --baseline-runs runs of the same test at each concurrency. None or not there: \"no baseline\", never a failure."`
	BaselineRuns int      `name:"baseline-runs" default:"5" placeholder:"N" help:"How many of the newest baseline runs the median is taken over."`
	PerfGate     []string `name:"perf-gate" placeholder:"METRIC=PCT" help:"Regression gate: METRIC may be at most PCT percent worse than the baseline (repeatable; PCT off removes a gate). Default: output_throughput=5, total_token_throughput=5; every other metric is reported, not gated."`
}

// perfFlags are the performance flags of the commands that judge a job
// (run, attach): the baseline and gates, and whether a regression fails
// the run. To be embedded with `embed:""`.
type perfFlags struct {
	baselineFlags `embed:""`

	FailOnRegression bool `name:"fail-on-regression" env:"DISAGG_FAIL_ON_REGRESSION" help:"Exit 15 when pytest passed but a gated metric regressed against the baseline (without it a regression is reported, and recorded as a failing perf-regression test case, but the exit code is pytest's)."`
}

// options resolves the flags (the baseline path against the Env's
// folder); a malformed gate is bad input.
func (f baselineFlags) options(env Env) (perf.Options, error) {
	gates, err := perf.ParseGates(f.PerfGate)
	if err != nil {
		return perf.Options{}, badInput(err)
	}
	if f.BaselineRuns < 1 {
		f.BaselineRuns = perf.DefaultBaselineRuns
	}
	return perf.Options{Baseline: env.abs(f.Baseline), BaselineRuns: f.BaselineRuns, Gates: gates}, nil
}
