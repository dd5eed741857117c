package perf

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/disagg-runner/disagg-runner/internal/config"
)

// RunSummaryName is the runner's own summary in a results folder.
const RunSummaryName = "summary.json"

// RunInfo is the part of the runner's summary.json (runner.Outcome) that
// the report shows. Every field is optional: a report is made from
// whatever is there.
type RunInfo struct {
	RunID         string    `json:"run_id"`
	JobID         string    `json:"job_id"`
	Profile       string    `json:"profile"`
	Config        string    `json:"config"`
	TestID        string    `json:"test_id"`
	State         string    `json:"state"`
	CancelledBy   string    `json:"cancelled_by"`
	Nodes         string    `json:"nodes"`
	PytestCode    *int      `json:"pytest_exit_code"`
	PytestSource  string    `json:"pytest_exit_code_source"`
	ExitCode      *int      `json:"exit_code"`
	Reason        string    `json:"reason"`
	Submitted     time.Time `json:"submitted"`
	Started       time.Time `json:"started"`
	Ended         time.Time `json:"ended"`
	EndNoticed    time.Time `json:"end_noticed"`
	RunnerStarted time.Time `json:"runner_started"`
	RunnerEnded   time.Time `json:"runner_ended"`
	BuildURL      string    `json:"build_url"`
	// Stages are the runner's stage times, when the runner records them
	// (an optional field of summary.json: [{"n":1,"name":"check
	// prerequisites","start":...,"end":...}]); without them the report's
	// timeline shows the phases the other times give.
	Stages []StageTime `json:"stages"`
}

// StageTime is one runner stage's span.
type StageTime struct {
	N     int       `json:"n"`
	Name  string    `json:"name"`
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
}

// ReadRunInfo reads summary.json in dir; nil when there is none or it
// cannot be read.
func ReadRunInfo(dir string) *RunInfo {
	b, err := os.ReadFile(filepath.Join(dir, RunSummaryName))
	if err != nil {
		return nil
	}
	var r RunInfo
	if json.Unmarshal(b, &r) != nil {
		return nil
	}
	return &r
}

// Options choose the baseline and the gates.
type Options struct {
	Baseline     string // a perf-summary.json or a folder of them; "" none
	BaselineRuns int    // 0: DefaultBaselineRuns
	Gates        []Gate // nil: DefaultGates
}

// Judge collects a results folder's numbers and compares them with the
// baseline: stage 7 and the comparison of stage 8 in one call, for
// callers that have nothing to do in between.
func Judge(resultsDir string, run Run, opt Options) *Summary {
	s := Collect(resultsDir, run)
	s.Compare(LoadBaseline(opt.Baseline, s.TestID, s.RunID, opt.BaselineRuns), opt.Gates)
	return s
}

// ResultsDir finds the results folder of dir: dir itself when it holds a
// summary, perf-summary.json or job log, else its results/ subfolder (a
// run folder).
func ResultsDir(dir string) (string, error) {
	info, err := os.Stat(dir)
	if err != nil {
		return "", err
	}
	if !info.IsDir() {
		return "", fmt.Errorf("%s: not a folder", dir)
	}
	for _, d := range []string{dir, filepath.Join(dir, "results")} {
		for _, n := range []string{SummaryJSON, RunSummaryName, JobLogName} {
			if _, err := os.Stat(filepath.Join(d, n)); err == nil {
				return d, nil
			}
		}
	}
	return "", fmt.Errorf("%s: not a results folder (no %s, %s or %s in it or in its results/)", dir, SummaryJSON, RunSummaryName, JobLogName)
}

// FromResults reads a results folder: its perf-summary.json when there is
// one, else the benchmark logs, with the run's identity from summary.json
// and the concurrencies from the config it names (when that file is
// readable here).
func FromResults(dir string) (*Summary, error) {
	rd, err := ResultsDir(dir)
	if err != nil {
		return nil, err
	}
	s, err := ReadSummary(filepath.Join(rd, SummaryJSON))
	if err == nil {
		return s, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	run := Run{}
	if ri := ReadRunInfo(rd); ri != nil {
		run = Run{RunID: ri.RunID, JobID: ri.JobID, TestID: ri.TestID, Config: ri.Config, Time: ri.Ended}
		if data, err := os.ReadFile(ri.Config); err == nil && ri.Config != "" {
			if c, err := config.Parse(data, ri.Config); err == nil {
				run.ConcurrencyList = c.Benchmark.Concurrency
			}
		}
	}
	if run.RunID == "" {
		run.RunID = filepath.Base(filepath.Dir(rd))
	}
	if run.Time.IsZero() {
		if info, err := os.Stat(rd); err == nil {
			run.Time = info.ModTime().UTC()
		}
	}
	return Collect(rd, run), nil
}
