package runner

import (
	"context"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/disagg-runner/disagg-runner/internal/atomicfile"
	"github.com/disagg-runner/disagg-runner/internal/exitcode"
	"github.com/disagg-runner/disagg-runner/internal/perf"
	"github.com/disagg-runner/disagg-runner/sbatch"
)

// ManyOptions tune a run of several tests beyond Options.
type ManyOptions struct {
	// MaxJobs bounds how many of the run's jobs are in Slurm at once
	// (0: all).
	MaxJobs int
	// Follow names the test whose job log streams to stdout ("": none;
	// each log goes to its results folder only).
	Follow string
	// Board, when not nil, shows each test's status on stdout (see
	// Board); Follow must be "" then.
	Board *Board
	// Classify maps an error that stopped one test before its verdict
	// (sbatch's refusal, a lost cluster) to its exit code: the CLI's one
	// mapping, so that a test's code is what a run of it alone would exit
	// with.
	Classify func(error) int
}

// RunSummary is a run of several tests: each test's outcome and the
// run's overall exit code. It is written as results/summary.json.
type RunSummary struct {
	RunID      string     `json:"run_id"`
	ExitCode   int        `json:"exit_code"`
	Reason     string     `json:"reason"`
	ResultsDir string     `json:"results_dir"`
	Tests      []*Outcome `json:"tests"`
	Started    time.Time  `json:"runner_started"`
	Ended      time.Time  `json:"runner_ended"`
}

// RunDir is a run's folder below the workspace. A run of several tests
// keeps each test's inputs under tests/<test>/ and results under
// results/<test>/ there.
func RunDir(workspace, runID string) string {
	return filepath.Join(workspace, "disagg-runner", runID)
}

// RunMany runs several tests as one run: every test's checklist and
// inputs first (bad input anywhere submits nothing), then one connection,
// then each test's job submitted and followed concurrently, at most
// MaxJobs in Slurm at once; the watches share their Slurm queries (see
// sbatch's shared.go). tests are the tests' Settings: the same but for
// ConfigName and Test, and one RunID for the run.
//
// A nil error means every test reached an outcome: the process exits
// with RunSummary.ExitCode. An error says why the run stopped before any
// job was submitted.
func RunMany(ctx context.Context, tests []Settings, opt Options, mo ManyOptions, connect Connector, con *Console) (*RunSummary, error) {
	sum := &RunSummary{RunID: tests[0].RunID, Started: time.Now(),
		ResultsDir: filepath.Join(RunDir(tests[0].Workspace, tests[0].RunID), "results")}
	runs := make([]*run, len(tests))
	for i, s := range tests {
		runs[i] = &run{s: s, opt: opt, con: con.ForTest(s.Test, s.Test == mo.Follow, mo.row(s.Test)),
			out: &Outcome{RunID: s.RunID, Test: s.Test, PytestCode: -1, RunnerStarted: sum.Started, BuildURL: s.BuildURL}}
		sum.Tests = append(sum.Tests, runs[i].out)
	}
	for _, st := range []struct {
		n    int
		name string
		do   func(*run) func(context.Context) error
	}{
		{1, "check prerequisites", func(r *run) func(context.Context) error { return r.check }},
		{2, "write the inputs", func(r *run) func(context.Context) error { return r.writeInputs }},
		{3, "generate launch.sh", func(r *run) func(context.Context) error { return r.generate }},
	} {
		for _, r := range runs {
			if err := r.stage(ctx, stage{st.n, st.name, st.do(r)}); err != nil {
				return sum, fmt.Errorf("%s: %w", r.s.Test, err)
			}
		}
	}
	if opt.DryRun {
		for _, r := range runs {
			r.printDryRun()
		}
		return sum, nil
	}

	// The cluster half of the checklist once: the tests differ only in
	// their configs, and the partition must hold the largest.
	var cluster Cluster
	var upload []string
	err := runStage(ctx, con, stage{4, "connect and check the cluster", func(ctx context.Context) error {
		c, err := connect(ctx)
		if err != nil {
			report := &Report{}
			report.Add(reachableItem(tests[0], nil, err))
			return blocking(report, con)
		}
		cluster = c
		plans := make([]*Plan, len(runs))
		for i, r := range runs {
			plans[i] = r.plan
		}
		largest := runs[largestPlan(plans)]
		report := &Report{}
		upload = checkCluster(ctx, report, largest.s, largest.plan, c)
		return blocking(report, con)
	}})
	if cluster != nil {
		defer cluster.Close()
	}
	if err != nil {
		return sum, err
	}
	for _, r := range runs {
		r.cluster, r.upload = cluster, upload
		r.out.Transport = cluster.String()
	}

	inSlurm := len(runs)
	if mo.MaxJobs > 0 && mo.MaxJobs < inSlurm {
		inSlurm = mo.MaxJobs
		con.Log.Info(fmt.Sprintf("at most %d of the %d jobs in Slurm at once", inSlurm, len(runs)))
	}
	slots := make(chan struct{}, inSlurm)
	// The first wave's jobs are all submitted before any is followed, so
	// that their first looks share one Slurm query (see sbatch's
	// ExpectJobs); later ones are followed as they are submitted.
	if e, ok := cluster.(interface{ ExpectJobs(int) }); ok {
		e.ExpectJobs(len(runs))
	}
	wave := newFirstWave(inSlurm)
	mo.startBoard()
	var wg sync.WaitGroup
	for _, r := range runs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.runQueued(ctx, slots, mo.Classify, wave)
		}()
	}
	wg.Wait()
	mo.stopBoard()

	jobs := make([]*jobRun, len(runs))
	for i, r := range runs {
		jobs[i] = r.job
	}
	sum.finish(jobs, con)
	return sum, nil
}

// finish decides the run's code from its tests' outcomes, writes the
// run's summary and junit file, and prints one table and the verdicts.
// jobs[i] ran Tests[i]'s stages 6-8 (nil when it stopped before).
func (sum *RunSummary) finish(jobs []*jobRun, con *Console) {
	sum.Ended = time.Now()
	codes := make([]int, len(sum.Tests))
	var failed []string
	for i, o := range sum.Tests {
		codes[i] = o.ExitCode
		if codes[i] != exitcode.OK {
			failed = append(failed, fmt.Sprintf("%s exit %d", o.Test, codes[i]))
		}
	}
	sum.ExitCode = exitcode.Worst(codes)
	sum.Reason = fmt.Sprintf("%d of %d tests passed", len(codes)-len(failed), len(codes))
	if len(failed) > 0 {
		sum.Reason += " (" + strings.Join(failed, ", ") + ")"
	}
	if err := writeRunSummary(sum); err != nil {
		con.Log.Warn("could not write the run's summary", "err", err)
	}
	if err := writeTestsJUnit(sum); err != nil {
		con.Log.Warn("could not write the run's junit file", "err", err)
	}
	var names []string
	var perfs []*perf.Summary
	for i, j := range jobs {
		if j != nil && j.perf != nil && len(j.perf.Concurrencies) > 0 {
			names, perfs = append(names, sum.Tests[i].Test), append(perfs, j.perf)
		}
	}
	if len(perfs) > 0 {
		con.Table(func(w io.Writer) { perf.WriteTables(w, names, perfs) })
	}
	for _, o := range sum.Tests {
		con.Log.Info(fmt.Sprintf("%s: %s", o.Test, verdictLine(o)))
	}
	con.Log.Info(fmt.Sprintf("run verdict: exit %d: %s", sum.ExitCode, sum.Reason), "summary", filepath.Join(sum.ResultsDir, SummaryName))
}

// AttachTarget is one job of a run of several tests, to follow again.
type AttachTarget struct {
	Test string
	ID   sbatch.JobID
}

// AttachMany follows every job of a run of several tests from stage 6 on,
// together, as RunMany does after submission: each test's results go to
// resultsDir/<test>, and the run's summary, junit file and code come out
// as a run's. Each job's workspace is the folder of its output file, as
// Slurm reports it.
func AttachMany(ctx context.Context, c Cluster, runID, resultsDir string, targets []AttachTarget, opt Options, mo ManyOptions, con *Console) *RunSummary {
	sum := &RunSummary{RunID: runID, Started: time.Now(), ResultsDir: resultsDir}
	jobs := make([]*jobRun, len(targets))
	rows := make([]*BoardRow, len(targets))
	for i, t := range targets {
		rows[i] = mo.row(t.Test)
	}
	mo.startBoard()
	var wg sync.WaitGroup
	for i, t := range targets {
		o := &Outcome{RunID: runID, Test: t.Test, JobID: string(t.ID), PytestCode: -1, RunnerStarted: sum.Started,
			ResultsDir: filepath.Join(resultsDir, t.Test), Transport: c.String(), Reattached: true}
		sum.Tests = append(sum.Tests, o)
		wg.Add(1)
		go func() {
			defer wg.Done()
			tcon := con.ForTest(t.Test, t.Test == mo.Follow, rows[i])
			j, err := attach(ctx, c, t.ID, "", o, opt, tcon, true)
			jobs[i] = j
			if err != nil && j == nil {
				o.ExitCode, o.Reason, o.RunnerEnded = mo.Classify(err), err.Error(), time.Now()
				tcon.Log.Error("could not follow the job", "job", t.ID, "exit_code", o.ExitCode, "err", err)
				tcon.decided(o)
			} else if err != nil {
				tcon.Log.Error(err.Error())
			}
		}()
	}
	wg.Wait()
	mo.stopBoard()
	sum.finish(jobs, con)
	return sum
}

// row adds a test's line to the board, if there is one.
func (mo ManyOptions) row(test string) *BoardRow {
	if mo.Board == nil {
		return nil
	}
	return mo.Board.Row(test)
}

func (mo ManyOptions) startBoard() {
	if mo.Board != nil {
		mo.Board.Start()
	}
}

func (mo ManyOptions) stopBoard() {
	if mo.Board != nil {
		mo.Board.Stop()
	}
}

// runQueued takes one test of a run of several from the cluster side of
// its checklist to its verdict, once a slot is free, following its job
// once the rest of the first wave is submitted. A test that stops before
// its verdict gets the exit code its error maps to.
func (r *run) runQueued(ctx context.Context, slots chan struct{}, classify func(error) int, wave *firstWave) {
	submitted := func() {}
	stop := func(err error) {
		submitted()
		o := r.out
		o.ExitCode, o.Reason, o.RunnerEnded = classify(err), err.Error(), time.Now()
		r.con.Log.Error("stopped before its verdict", "exit_code", o.ExitCode, "err", err)
		r.con.decided(o)
		if werr := writeSummary(r.plan.ResultsDir, o); werr != nil {
			r.con.Log.Warn("could not write the summary", "err", werr)
		}
	}
	select {
	case slots <- struct{}{}:
	case <-ctx.Done():
		stop(context.Cause(ctx))
		return
	}
	defer func() { <-slots }()
	submitted = wave.join(ctx)
	for _, st := range []stage{{4, "upload", r.prepare}, {5, "submit", r.submit}} {
		if err := r.stage(ctx, st); err != nil {
			stop(err)
			return
		}
	}
	submitted()
	if err := r.finish(ctx); err != nil {
		// The verdict was reached (a result file whose secrets could not
		// be masked): its code stands.
		r.con.Log.Error(err.Error())
	}
}

// firstWave holds back the following of the first wave's jobs (the tests
// that got a slot at once) until each of them is submitted or stopped.
type firstWave struct {
	mu      sync.Mutex
	joined  int // tests that took a slot so far
	size    int
	waiting int // tests of the wave not submitted or stopped yet
	done    chan struct{}
}

func newFirstWave(size int) *firstWave {
	return &firstWave{size: size, waiting: size, done: make(chan struct{})}
}

// join is called by a test once it holds a slot. The function returned is
// called once its job is submitted (or the test stopped), and waits for
// the rest of the wave; a test after the wave waits for nothing.
func (w *firstWave) join(ctx context.Context) (submitted func()) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.joined++; w.joined > w.size {
		return func() {}
	}
	var once sync.Once
	return func() {
		once.Do(w.arrive)
		// An interrupt may keep part of the wave from ever submitting.
		select {
		case <-w.done:
		case <-ctx.Done():
		}
	}
}

func (w *firstWave) arrive() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.waiting--; w.waiting == 0 {
		close(w.done)
	}
}

// writeRunSummary writes results/summary.json of a run of several tests.
func writeRunSummary(sum *RunSummary) error {
	if err := os.MkdirAll(sum.ResultsDir, 0o755); err != nil {
		return err
	}
	b, err := json.MarshalIndent(sum, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.Write(filepath.Join(sum.ResultsDir, SummaryName), append(b, '\n'), 0o644)
}

// TestsJUnitName is the run's junit file: one testsuite per test, whose
// one testcase is the test's verdict, so that Jenkins shows each test of
// the list (pytest's own files stay in results/<test>/).
const TestsJUnitName = "tests-junit.xml"

type junitSuites struct {
	XMLName  xml.Name     `xml:"testsuites"`
	Name     string       `xml:"name,attr"`
	Tests    int          `xml:"tests,attr"`
	Failures int          `xml:"failures,attr"`
	Suites   []junitSuite `xml:"testsuite"`
}

type junitSuite struct {
	Name     string    `xml:"name,attr"`
	Tests    int       `xml:"tests,attr"`
	Failures int       `xml:"failures,attr"`
	Time     string    `xml:"time,attr"`
	Case     junitCase `xml:"testcase"`
}

type junitCase struct {
	Name      string        `xml:"name,attr"`
	ClassName string        `xml:"classname,attr"`
	Time      string        `xml:"time,attr"`
	Failure   *junitFailure `xml:"failure,omitempty"`
	SystemOut string        `xml:"system-out,omitempty"`
}

type junitFailure struct {
	Message string `xml:"message,attr"`
	Text    string `xml:",chardata"`
}

func writeTestsJUnit(sum *RunSummary) error {
	all := junitSuites{Name: "disagg-runner " + sum.RunID, Tests: len(sum.Tests)}
	for _, o := range sum.Tests {
		secs := "0"
		if !o.Started.IsZero() && !o.Ended.IsZero() {
			secs = fmt.Sprintf("%.0f", o.Ended.Sub(o.Started).Seconds())
		}
		c := junitCase{Name: orText(o.TestID, o.Test), ClassName: "disagg-runner." + o.Test, Time: secs, SystemOut: verdictLine(o)}
		s := junitSuite{Name: o.Test, Tests: 1, Time: secs}
		if o.ExitCode != exitcode.OK {
			c.Failure = &junitFailure{Message: fmt.Sprintf("exit %d: %s", o.ExitCode, o.Reason), Text: verdictLine(o)}
			s.Failures, all.Failures = 1, all.Failures+1
		}
		s.Case = c
		all.Suites = append(all.Suites, s)
	}
	b, err := xml.MarshalIndent(all, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.Write(filepath.Join(sum.ResultsDir, TestsJUnitName), append([]byte(xml.Header), append(b, '\n')...), 0o644)
}
