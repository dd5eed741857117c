package runner

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"strings"
	"time"

	"github.com/disagg-runner/disagg-runner/internal/perf"
	"github.com/disagg-runner/disagg-runner/internal/transport"
	"github.com/disagg-runner/disagg-runner/internal/verdict"
	"github.com/disagg-runner/disagg-runner/sbatch"
)

// Interrupt is the cancellation cause the CLI gives a run's context when
// a signal stops it: after submission the run cancels its job, collects
// what exists and exits with the signal's code.
type Interrupt struct{ Signal os.Signal }

func (i Interrupt) Error() string { return "interrupted by " + i.Signal.String() }

// jobRun takes a job that exists to its verdict: stages 6–8, shared by
// `run` after submission and by `attach`.
type jobRun struct {
	cluster    Cluster
	id         sbatch.JobID
	ws         string // the job workspace on the cluster
	resultsDir string
	testID     string
	// concurrency is the config's benchmark.concurrency_list as written
	// ("" for attach: the benchmark's own blocks say it).
	concurrency string
	opt         Options
	con         *Console
	out         *Outcome

	final     sbatch.JobState
	interrupt os.Signal // the signal that stopped the runner, if any
	lost      error     // why the job's end could not be learned
	ev        verdict.Evidence
	maskErr   error
	kept      *keptLog // the job log as it streamed, when it did
	perf      *perf.Summary

	// late: the signal came after the job's end was learned (while
	// collecting), so there was nothing to cancel.
	late bool
	// noTable: the run prints one table for all its tests at the end.
	noTable bool
}

func (j *jobRun) finish(ctx context.Context) error {
	j.stage(6, "follow job "+string(j.id), func() error { return j.followStage(ctx) })
	cctx, cancel := j.collectContext(ctx)
	defer cancel()
	j.stage(7, "collect results", func() error { return j.collect(cctx) })
	if j.interrupt == nil {
		var in Interrupt
		if errors.As(context.Cause(ctx), &in) {
			j.interrupt, j.late = in.Signal, true
		}
	}
	j.stage(8, "verdict", j.decide)
	return j.maskErr
}

func (j *jobRun) stage(n int, name string, do func() error) {
	done := j.con.Stage(n, name)
	done(do())
}

// followStage is stage 6: stream the log while watching the state until
// the job ends. A signal cancels the job and waits to see it end.
func (j *jobRun) followStage(ctx context.Context) error {
	final, err := j.follow(ctx)
	if ctx.Err() != nil {
		j.interrupt = os.Interrupt
		var in Interrupt
		if errors.As(context.Cause(ctx), &in) {
			j.interrupt = in.Signal
		}
		j.con.Log.Warn("interrupted: cancelling the job", "job", j.id, "cause", context.Cause(ctx))
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 60*time.Second)
		st, cerr := j.cluster.Cancel(cctx, j.id)
		cancel()
		if cerr != nil {
			j.con.Log.Error("cancel not confirmed", "job", j.id, "err", cerr)
		} else {
			final, err = st, nil
			if st.Completing {
				j.con.Log.Warn("job cancelled; Slurm is still stopping its processes", "job", j.id, "state", st.State, "nodes", st.NodeList)
			} else {
				j.con.Log.Info("job cancelled", "job", j.id, "state", st.State)
			}
		}
	} else if err != nil {
		// The job's end could not be learned; what it left is still worth
		// collecting for the person who has to find out why.
		j.lost = err
		j.con.Log.Error("following the job failed", "job", j.id, "err", err)
	} else if final.Completing {
		j.con.Log.Warn("Slurm forgot the job while it was COMPLETING and keeps no accounting: its end is known, its final state is not", "job", j.id, "nodes", final.NodeList)
	} else if final.EndUnrecorded {
		j.con.Log.Warn("Slurm forgot the job before its end was seen and keeps no accounting: it has ended, its final state is unknown; pytest's code in the job log decides", "job", j.id, "nodes", final.NodeList)
	}
	j.final = final
	fillState(j.out, final)
	return err
}

// collectGrace bounds collecting once the run was interrupted or lost
// its job.
const collectGrace = 60 * time.Second

// collectContext outlives an interruption (for a bounded time): an
// interrupted run still collects what exists, also when the signal
// arrives while it collects.
func (j *jobRun) collectContext(ctx context.Context) (context.Context, context.CancelFunc) {
	if j.interrupt != nil || j.lost != nil || ctx.Err() != nil {
		return context.WithTimeout(context.WithoutCancel(ctx), collectGrace)
	}
	cctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	stop := context.AfterFunc(ctx, func() { time.AfterFunc(collectGrace, cancel) })
	return cctx, func() { stop(); cancel() }
}

// decide is stage 8: the exit code from what the job left, the summary,
// and the one-line verdict.
func (j *jobRun) decide() error {
	j.judgePerf()
	j.ev.State, j.ev.CancelledBy = j.final.State, j.final.CancelledBy

	j.ev.Interrupt, j.ev.Lost, j.ev.InterruptedLate = j.interrupt, j.lost, j.late
	j.ev.LostLoginNode = errors.Is(j.lost, transport.ErrUnreachable)
	v := verdict.Decide(j.ev)
	o := j.out
	o.ExitCode, o.PytestCode, o.PytestSource, o.Reason = v.Code, v.PytestCode, v.Source, v.Reason
	j.con.decided(o)
	o.RunnerEnded = time.Now()
	err := writeSummary(j.resultsDir, o)
	if err != nil {
		j.con.Log.Warn("could not write the summary", "err", err)
	}
	// After summary.json: report.html reads it.
	if perr := j.perf.Write(j.resultsDir); perr != nil {
		j.con.Log.Warn("could not write the benchmark results", "err", perr)
		err = cmp.Or(err, perr)
	}
	if j.noTable || !j.con.Table(j.perf.WriteTable) {
		j.con.Log.Info("benchmark: " + j.perf.Verdict.Text)
	}
	j.con.Log.Info(verdictLine(o))
	return err
}

// judgePerf reads the benchmark's numbers from the collected results and
// compares them with the baseline; the verdict then decides whether a
// regression fails the run.
func (j *jobRun) judgePerf() {
	o := j.out
	run := perf.Run{RunID: o.RunID, JobID: o.JobID, TestID: j.testID, Config: o.Config,
		ConcurrencyList: j.concurrency, Time: o.Ended}
	if j.kept != nil && j.kept.streamed {
		run.JobLog = j.kept.scan // the log is not read again
	}
	j.perf = perf.Collect(j.resultsDir, run)
	po := j.opt.Perf
	j.perf.Compare(perf.LoadBaseline(po.Baseline, j.perf.TestID, j.perf.RunID, po.BaselineRuns), po.Gates)
	j.ev.PerfRegressed, j.ev.PerfText, j.ev.FailOnRegression = j.perf.Verdict.Regressed, j.perf.Verdict.Text, j.opt.FailOnRegression
}

func verdictLine(o *Outcome) string {
	wall := ""
	if !o.Started.IsZero() && !o.Ended.IsZero() {
		wall = ", wall " + o.Ended.Sub(o.Started).Round(time.Second).String()
	}
	pytest := "no pytest result"
	if o.PytestCode >= 0 {
		pytest = fmt.Sprintf("pytest %d from %s", o.PytestCode, o.PytestSource)
	}
	state := o.State
	if o.CancelledBy != "" {
		state += " by " + o.CancelledBy
	}
	return fmt.Sprintf("verdict: exit %d: %s (job %s %s on %s, %s%s)", o.ExitCode, o.Reason, o.JobID, orText(state, "UNKNOWN"), orText(o.Nodes, "no nodes"), pytest, wall)
}

func fillState(out *Outcome, st sbatch.JobState) {
	out.State, out.CancelledBy, out.Nodes, out.StateSource = st.State, st.CancelledBy, st.NodeList, st.Source
	out.SlurmExitCode = fmt.Sprintf("%d:%d", st.ExitCode, st.Signal)
	out.Submitted, out.Started, out.Ended = st.Submit, st.Start, st.End
}

// Attach follows an existing job from stage 6 on. Without a job workspace
// it uses the folder of the job's output file as Slurm reports it.
func Attach(ctx context.Context, c Cluster, id sbatch.JobID, ws, resultsDir string, opt Options, con *Console) (*Outcome, error) {
	out := &Outcome{RunID: "attach-" + string(id), JobID: string(id), PytestCode: -1, RunnerStarted: time.Now(),
		ResultsDir: resultsDir, Transport: c.String(), Reattached: true}
	j, err := attach(ctx, c, id, ws, out, opt, con, false)
	if j == nil {
		return nil, err
	}
	return out, err
}

// attach is Attach filling in out; the jobRun is nil when it stopped
// before stage 6. noTable: a run of several prints one table at the end.
func attach(ctx context.Context, c Cluster, id sbatch.JobID, ws string, out *Outcome, opt Options, con *Console, noTable bool) (*jobRun, error) {
	st, err := c.Query(ctx, id)
	if err != nil {
		return nil, &ClusterError{err}
	}
	if !st.Known {
		return nil, fmt.Errorf("attach %s: %w (%s)", id, sbatch.ErrUnknownJob, orText(st.Source, "no answer"))
	}
	if ws == "" {
		if st.StdOut == "" {
			return nil, &NoWorkspaceError{ID: id, Source: st.Source}
		}
		ws = path.Dir(st.StdOut)
		con.Log.Info("job workspace from Slurm", "job", id, "dir", ws)
	}
	out.JobWorkspace = ws
	if tl, err := c.ReadFile(ctx, path.Join(ws, TestListName), 4096); err == nil {
		out.TestID = strings.TrimSpace(string(tl))
	}
	j := &jobRun{cluster: c, id: id, ws: ws, resultsDir: out.ResultsDir, testID: out.TestID, opt: opt, con: con, out: out, noTable: noTable}
	return j, j.finish(ctx)
}

// NoWorkspaceError is an attach to a job whose workspace Slurm cannot
// tell: the user must name it.
type NoWorkspaceError struct {
	ID     sbatch.JobID
	Source string
}

func (e *NoWorkspaceError) Error() string {
	return fmt.Sprintf("attach %s: Slurm does not say where the job's output goes (%s); name the job workspace", e.ID, e.Source)
}
