package perf

import (
	"encoding/json"
	"fmt"
	"os"
	"time"
)

// File names written into a results folder.
const (
	SummaryJSON = "perf-summary.json"
	SummaryMD   = "perf-summary.md"
	JUnitName   = "perf-junit.xml"
	ReportHTML  = "report.html"
)

// SchemaName and SchemaVersion identify perf-summary.json. The version
// changes when a field changes meaning or goes away; new fields may be
// added within a version.
const (
	SchemaName    = "disagg-runner/perf-summary"
	SchemaVersion = 1
)

// Summary is perf-summary.json: one run's benchmark numbers, their
// comparison with the baseline, and the verdict.
type Summary struct {
	Schema  string `json:"schema"`
	Version int    `json:"version"`

	RunID  string `json:"run_id"`
	JobID  string `json:"job_id,omitempty"`
	TestID string `json:"test_id"`
	Config string `json:"config,omitempty"`
	// ConcurrencyList is the config's benchmark.concurrency_list as
	// numbers; empty when it was not known.
	ConcurrencyList []int `json:"concurrency_list,omitempty"`
	// Time orders runs for the baseline: the job's end when known, else
	// when the summary was made.
	Time time.Time `json:"time"`
	// Source says where the blocks were read: per-concurrency logs, the
	// job log, both, or none.
	Source string `json:"source"`

	Concurrencies []Point    `json:"concurrencies"`
	Problems      []string   `json:"problems,omitempty"`
	Baseline      *BaseInfo  `json:"baseline,omitempty"`
	Gates         []Gate     `json:"gates"`
	Verdict       PerfResult `json:"verdict"`

	// jobLog is the timeline's facts from a streamed job log, when
	// Collect had one: the report then does not read the log again.
	jobLog *jobLogFacts
}

// Point is the result at one concurrency.
type Point struct {
	Concurrency int `json:"concurrency"`
	// Index is the position in concurrency_list (-1 when not in it).
	Index int `json:"index"`
	// Source is the file and line of the block ("" when none was found).
	Source string `json:"source,omitempty"`
	// Complete is false for failed requests, a missing core metric, a
	// block cut off, or no block at all; Incomplete says which.
	Complete   bool               `json:"complete"`
	Incomplete []string           `json:"incomplete,omitempty"`
	Counts     map[string]float64 `json:"counts"`
	Metrics    map[string]*Value  `json:"metrics"`
}

// Value is one metric at one concurrency, with its comparison.
type Value struct {
	Value     float64   `json:"value"`
	Unit      string    `json:"unit"`
	Direction Direction `json:"direction"`
	// Baseline is the median of the baseline runs' values (absent without
	// one); BaselineRuns how many runs it is the median of.
	Baseline     *float64 `json:"baseline,omitempty"`
	BaselineRuns int      `json:"baseline_runs,omitempty"`
	// ChangePct is (value - baseline) / baseline in percent: its sign is
	// the raw direction of change, not better or worse.
	ChangePct *float64 `json:"change_pct,omitempty"`
	// GatePct is how much worse than the baseline (in percent) the metric
	// may be; absent when the metric is not gated.
	GatePct *float64 `json:"gate_pct,omitempty"`
	// Verdict is one of: no baseline, better, worse, same, regressed
	// (worse by more than the gate).
	Verdict string `json:"verdict"`
}

// BaseInfo says what the baseline was made of.
type BaseInfo struct {
	Path string `json:"path"`
	// Runs are the run ids whose numbers went into the medians.
	Runs []string `json:"runs,omitempty"`
	N    int      `json:"n"`
	Note string   `json:"note,omitempty"`
}

// Gate is a metric whose worsening beyond Pct percent is a regression.
type Gate struct {
	Metric string  `json:"metric"`
	Pct    float64 `json:"pct"`
}

// Verdict statuses.
const (
	StatusPass       = "pass"
	StatusRegressed  = "regressed"
	StatusNoBaseline = "no baseline"
	StatusNoMetrics  = "no metrics"
)

// PerfResult is the performance verdict. Regressed is the one value the
// run's verdict needs: with --fail-on-regression, a run that passed but
// regressed exits 15 (internal/verdict decides).
type PerfResult struct {
	Status      string   `json:"status"`
	Regressed   bool     `json:"regressed"`
	Text        string   `json:"text"`
	Regressions []string `json:"regressions,omitempty"`
	// Incomplete names the concurrencies whose numbers are incomplete
	// (failed requests, missing metrics, no block) and why.
	Incomplete []string `json:"incomplete,omitempty"`
}

// ReadSummary reads a perf-summary.json.
func ReadSummary(path string) (*Summary, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var s Summary
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if s.Schema != SchemaName {
		return nil, fmt.Errorf("%s: not a perf summary (schema %q)", path, s.Schema)
	}
	if s.Version != SchemaVersion {
		return nil, fmt.Errorf("%s: perf summary version %d; this runner reads version %d", path, s.Version, SchemaVersion)
	}
	return &s, nil
}

// Point returns the result at concurrency c, or nil.
func (s *Summary) Point(c int) *Point {
	for i := range s.Concurrencies {
		if s.Concurrencies[i].Concurrency == c {
			return &s.Concurrencies[i]
		}
	}
	return nil
}

// Metric returns metric key at concurrency c, or nil.
func (s *Summary) Metric(c int, key string) *Value {
	if p := s.Point(c); p != nil {
		return p.Metrics[key]
	}
	return nil
}
