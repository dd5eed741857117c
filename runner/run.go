package runner

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/disagg-runner/disagg-runner/internal/atomicfile"
	"github.com/disagg-runner/disagg-runner/internal/checklist"
	"github.com/disagg-runner/disagg-runner/internal/exitcode"
	"github.com/disagg-runner/disagg-runner/internal/shellquote"
	"github.com/disagg-runner/disagg-runner/internal/transport"
	"github.com/disagg-runner/disagg-runner/internal/verdict"
	"github.com/disagg-runner/disagg-runner/prefix"
	"github.com/disagg-runner/disagg-runner/sbatch"
)

// Options tune a run beyond its Settings.
type Options struct {
	DryRun      bool // stop after generation; print the plan and the script
	FollowRoles bool // also stream the per-role logs, prefixed with the role
	// PendingEvery is how often a still-PENDING job is reported (default 3 min).
	PendingEvery time.Duration
	Policy       sbatch.Policy // polling intervals (tests shorten them)
}

// Outcome is what a finished run learned; it is also written as the
// machine-readable summary.
type Outcome struct {
	RunID         string    `json:"run_id"`
	JobID         string    `json:"job_id,omitempty"`
	Profile       string    `json:"profile"`
	Config        string    `json:"config"`
	TestID        string    `json:"test_id"`
	Transport     string    `json:"transport,omitempty"`
	JobWorkspace  string    `json:"job_workspace"`
	State         string    `json:"state,omitempty"`
	StateSource   string    `json:"state_source,omitempty"` // which Slurm command gave the final state
	CancelledBy   string    `json:"cancelled_by,omitempty"`
	SlurmExitCode string    `json:"slurm_exit_code,omitempty"`
	Nodes         string    `json:"nodes,omitempty"`
	PytestCode    int       `json:"pytest_exit_code"`
	PytestSource  string    `json:"pytest_exit_code_source,omitempty"`
	ExitCode      int       `json:"exit_code"`
	Reason        string    `json:"reason"`
	Submitted     time.Time `json:"submitted,omitzero"`
	Started       time.Time `json:"started,omitzero"`
	Ended         time.Time `json:"ended,omitzero"`
	EndNoticed    time.Time `json:"end_noticed,omitzero"`
	RunnerStarted time.Time `json:"runner_started"`
	RunnerEnded   time.Time `json:"runner_ended"`
	ResultsDir    string    `json:"results_dir"`
	Fetched       []string  `json:"fetched,omitempty"`
	Missing       []string  `json:"missing,omitempty"`
	BuildURL      string    `json:"build_url,omitempty"`
	Reattached    bool      `json:"reattached,omitempty"`
}

// Run performs every stage and returns the outcome; the error carries the
// exit code (exitcode.Of). A nil error means exit 0.
func Run(ctx context.Context, s Settings, opt Options, connect Connector, con *Console) (*Outcome, error) {
	out := &Outcome{RunID: s.RunID, PytestCode: -1, RunnerStarted: time.Now(), BuildURL: s.BuildURL}

	// Stage 1: the checklist, the same as `check`. With --dry-run the
	// cluster is not contacted.
	done := con.Stage(1, "check prerequisites")
	conn := connect
	if opt.DryRun {
		conn = nil
	}
	report, plan, t := Check(ctx, s, conn)
	if t != nil {
		defer t.Close()
	}
	if err := checkFailure(report, con); err != nil {
		done(err)
		return out, err
	}
	done(nil)
	out.Profile, out.Config, out.TestID = string(plan.Profile), plan.ConfigPath, plan.Files.TestID
	out.JobWorkspace, out.ResultsDir = plan.JobWorkspace, plan.ResultsDir

	// Stage 2: the inputs, in a folder of their own for this run.
	done = con.Stage(2, "write the inputs")
	if err := writeInputs(plan); err != nil {
		done(err)
		return out, exitcode.With(exitcode.Prerequisite, err)
	}
	con.Log.Info("inputs written", "dir", plan.LocalDir, "test", plan.Files.TestID)
	done(nil)

	// Stage 3: launch.sh (already generated and contract-checked while
	// planning; written now).
	done = con.Stage(3, "generate launch.sh")
	launchPath := filepath.Join(plan.LocalDir, LaunchName)
	if err := atomicfile.Write(launchPath, plan.Launch.Script, 0o755); err != nil {
		done(err)
		return out, exitcode.With(exitcode.Prerequisite, err)
	}
	for _, w := range plan.Launch.Warnings {
		con.Log.Warn(w)
	}
	h := plan.Hardware
	con.Log.Info("launch.sh generated", "path", launchPath, "profile", plan.Profile, "nodes", h.TotalNodes, "gpus", h.TotalGPUs,
		"ctx", fmt.Sprintf("%dx%d", h.NumCtxServers, h.GPUsPerCtxServer), "gen", fmt.Sprintf("%dx%d", h.NumGenServers, h.GPUsPerGenServer))
	done(nil)
	if opt.DryRun {
		con.Log.Info("dry run: nothing submitted", "job_workspace", plan.JobWorkspace, "launch", launchPath)
		con.Out.Write(redactExports(plan.Launch.Script))
		if !bytes.HasSuffix(plan.Launch.Script, []byte("\n")) {
			con.Out.Write([]byte("\n"))
		}
		out.Reason = "dry run"
		return out, nil
	}
	out.Transport = t.String()

	// Stage 4: the job workspace on the cluster. A job that an earlier
	// attempt of this run recorded there is looked at first: a live one is
	// followed instead of submitting a second (a retried Jenkins step after
	// a lost connection); a finished one is moved aside, so that this
	// attempt starts clean and collects only its own results.
	done = con.Stage(4, "connect and upload")
	sc := &sbatch.Client{T: t, Policy: opt.Policy, Logf: func(f string, a ...any) { con.Log.Debug(fmt.Sprintf(f, a...)) }}
	remoteJobID := path.Join(plan.JobWorkspace, JobIDName)
	id, err := sc.Recorded(ctx, remoteJobID)
	if err != nil {
		done(err)
		return out, stageError(exitcode.Unreachable, err)
	}
	if id != "" {
		st, err := sc.Query(ctx, id)
		switch {
		case err != nil:
			done(err)
			return out, stageError(exitcode.Unreachable, err)
		case st.Known && !st.Terminal():
			out.Reattached = true
			con.Log.Warn("an earlier attempt of this run submitted a job that is still "+st.State+"; following it instead of submitting again", "job", id)
		default:
			aside := plan.JobWorkspace + ".job" + string(id)
			con.Log.Info("an earlier attempt of this run ended; moving its job workspace aside", "job", id, "state", orText(st.State, "unknown"), "to", aside)
			if err := t.Run(ctx, "mv -- "+shellquote.Quote(plan.JobWorkspace)+" "+shellquote.Quote(aside), nil, nil, nil); err != nil {
				done(err)
				return out, stageError(exitcode.Unreachable, err)
			}
			os.RemoveAll(plan.ResultsDir)
			id = ""
		}
	}
	if id == "" {
		if err := upload(ctx, t, plan); err != nil {
			done(err)
			return out, err
		}
		con.Log.Info("uploaded", "via", t.String(), "job_workspace", plan.JobWorkspace)
	}
	done(nil)

	// Stage 5: submit. The submission itself is not interrupted by a
	// signal: once sbatch has a job, its id must be recorded so that the
	// interrupted run can cancel it rather than leave it behind.
	done = con.Stage(5, "submit")
	if id == "" {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Minute)
		id, err = sc.Submit(sctx, plan.JobWorkspace, LaunchName, remoteJobID)
		cancel()
		switch {
		case id != "" && err != nil:
			// The job exists though something after sbatch failed (its id
			// could not be recorded remotely): follow it anyway.
			con.Log.Warn("submitted, with a problem", "job", id, "err", err)
		case err != nil:
			done(err)
			return out, stageError(exitcode.SubmitRefused, err)
		default:
			con.Log.Info("submitted", "job", id, "partition", s.Partition, "account", s.Account)
		}
	}
	out.JobID = string(id)
	if err := atomicfile.Write(filepath.Join(plan.LocalDir, JobIDName), []byte(string(id)+"\n"), 0o644); err != nil {
		con.Log.Warn("could not record the job id locally", "err", err)
	}
	done(nil)

	return out, followAndFinish(ctx, sc, id, plan.JobWorkspace, plan.ResultsDir, plan.Files.TestID, opt, con, out)
}

// followAndFinish is stages 6–8, shared by `run` and `attach`.
func followAndFinish(ctx context.Context, sc *sbatch.Client, id sbatch.JobID, ws, resultsDir, testID string, opt Options, con *Console, out *Outcome) error {
	done := con.Stage(6, "follow job "+string(id))
	final, followErr := follow(ctx, sc, id, ws, testID, opt, con)
	out.EndNoticed = time.Now()
	interrupted := context.Cause(ctx) != nil && ctx.Err() != nil
	if interrupted {
		con.Log.Warn("interrupted: cancelling the job", "job", id, "cause", context.Cause(ctx))
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 60*time.Second)
		st, err := sc.Cancel(cctx, id)
		cancel()
		if err != nil {
			con.Log.Error("cancel not confirmed", "job", id, "err", err)
		} else {
			final, followErr = st, nil
			con.Log.Info("job cancelled", "job", id, "state", st.State)
		}
	}
	done(followErr)
	if followErr != nil && !interrupted {
		// The job's end could not be learned; what it left is still worth
		// collecting for the person who has to find out why.
		con.Log.Error("following the job failed", "job", id, "err", followErr)
		fillState(out, final)
		if _, err := collect(context.WithoutCancel(ctx), sc, ws, resultsDir, testID, out); err != nil {
			con.Log.Warn("collecting results failed", "err", err)
		}
		runErr := stageError(exitcode.JobFailed, followErr)
		out.ExitCode, out.Reason, out.RunnerEnded = exitcode.Of(runErr), oneLine(followErr.Error()), time.Now()
		if err := writeSummary(resultsDir, out); err != nil {
			con.Log.Warn("could not write the summary", "err", err)
		}
		return runErr
	}
	fillState(out, final)

	// Stage 7: results, even for an interrupted run.
	done = con.Stage(7, "collect results")
	cctx := ctx
	if interrupted {
		var cancel context.CancelFunc
		cctx, cancel = context.WithTimeout(context.WithoutCancel(ctx), 60*time.Second)
		defer cancel()
	}
	ev, err := collect(cctx, sc, ws, resultsDir, testID, out)
	if err != nil {
		con.Log.Error("collecting results failed", "err", err)
	}
	done(err)

	// Stage 8: the verdict.
	done = con.Stage(8, "verdict")
	ev.State, ev.CancelledBy = final.State, final.CancelledBy
	v := verdict.Decide(ev)
	out.ExitCode, out.PytestCode, out.PytestSource, out.Reason = v.Code, v.PytestCode, v.Source, v.Reason
	out.RunnerEnded = time.Now()
	var runErr error
	if interrupted {
		out.Reason = "interrupted; job cancelled (" + v.Reason + ")"
		runErr = context.Cause(ctx)
		out.ExitCode = exitcode.Interrupted
		var sig interface{ ExitCode() int }
		if errors.As(runErr, &sig) {
			out.ExitCode = sig.ExitCode()
		}
	} else if v.Code != 0 {
		// The verdict line below already says it all.
		runErr = exitcode.Shown(exitcode.Withf(v.Code, "%s", verdictLine(out)))
	}
	if err := writeSummary(resultsDir, out); err != nil {
		con.Log.Warn("could not write the summary", "err", err)
	}
	done(nil)
	con.Log.Info(verdictLine(out))
	return runErr
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

// follow streams the job log (and role logs) while watching the state, and
// returns the final state.
func follow(ctx context.Context, sc *sbatch.Client, id sbatch.JobID, ws, testID string, opt Options, con *Console) (sbatch.JobState, error) {
	stop := make(chan struct{})
	var wg sync.WaitGroup
	jobLog := con.Out
	if opt.FollowRoles {
		// Role lines arrive whole; the job log in chunks. Hold its partial
		// lines back so that the two never mix within a line.
		lw := &lineWriter{w: con.Out}
		defer lw.Flush()
		jobLog = lw
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		if _, err := sc.Follow(ctx, path.Join(ws, prefix.JobLogName), jobLog, stop); err != nil && ctx.Err() == nil {
			con.Log.Warn("job log streaming stopped", "err", err)
		}
	}()
	if opt.FollowRoles {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var roles sync.WaitGroup
			for _, dir := range roleLogDirs(ws, testID) {
				roles.Add(1)
				go func() {
					defer roles.Done()
					if err := sc.FollowMany(ctx, dir, roleLogPattern, con.Out, stop); err != nil && ctx.Err() == nil {
						con.Log.Warn("role log streaming stopped", "dir", dir, "err", err)
					}
				}()
			}
			roles.Wait()
		}()
	}

	every := opt.PendingEvery
	if every <= 0 {
		every = 3 * time.Minute
	}
	var mu sync.Mutex
	var last sbatch.JobState
	lastReport := time.Now()
	// While the job waits, repeat why and until when, asking Slurm afresh
	// (2 controller RPCs every few minutes): Watch itself asks the
	// controller rarely, so its reason may be the one from submission.
	ticker := time.NewTicker(every)
	defer ticker.Stop()
	watchDone := make(chan struct{})
	go func() {
		for {
			select {
			case <-watchDone:
				return
			case <-ticker.C:
				mu.Lock()
				pending := last.State == "PENDING" && time.Since(lastReport) >= every/2
				mu.Unlock()
				if !pending {
					continue
				}
				st, err := sc.Query(ctx, id)
				if err != nil || st.State != "PENDING" {
					continue
				}
				con.Log.Info("still PENDING", "job", id, "reason", st.Reason, "expected_start", timeText(st.ExpectedStart))
				mu.Lock()
				lastReport = time.Now()
				mu.Unlock()
			}
		}
	}()
	final, err := sc.Watch(ctx, id, path.Join(ws, FinishedName), func(st sbatch.JobState) {
		mu.Lock()
		same := last.State == st.State && last.Restarts == st.Restarts && last.Reason == st.Reason && last.NodeList == st.NodeList
		last, lastReport = st, time.Now()
		mu.Unlock()
		if same {
			return
		}
		switch st.State {
		case "PENDING":
			con.Log.Info("job PENDING", "job", id, "reason", st.Reason, "expected_start", timeText(st.ExpectedStart), "restarts", st.Restarts)
		case "RUNNING":
			con.Log.Info("job RUNNING", "job", id, "nodes", st.NodeList)
		default:
			con.Log.Info("job "+st.State, "job", id, "exit_code", fmt.Sprintf("%d:%d", st.ExitCode, st.Signal), "end", timeText(st.End))
		}
	})
	close(watchDone)
	close(stop)
	wg.Wait()
	con.Flush()
	return final, err
}

// roleLogPattern matches the per-role logs (gen_server_0.log,
// ctx_server_0.log, disagg_server.log) that both draft generations write.
const roleLogPattern = "*_server*.log"

// roleLogDirs are where they are: v1 drafts write them to the job
// workspace, v2 drafts to the per-test output folder below it.
func roleLogDirs(ws, testID string) []string {
	dirs := []string{ws}
	if b := bracket(testID); b != "" {
		dirs = append(dirs, path.Join(ws, b))
	}
	return dirs
}

// lineWriter passes on whole lines only; Flush writes the rest.
type lineWriter struct {
	w       io.Writer
	pending []byte
}

func (l *lineWriter) Write(p []byte) (int, error) {
	l.pending = append(l.pending, p...)
	if i := bytes.LastIndexByte(l.pending, '\n'); i >= 0 {
		if _, err := l.w.Write(l.pending[:i+1]); err != nil {
			return 0, err
		}
		l.pending = append([]byte(nil), l.pending[i+1:]...)
	}
	return len(p), nil
}

// Flush writes a last partial line.
func (l *lineWriter) Flush() {
	if len(l.pending) > 0 {
		l.w.Write(l.pending)
		l.pending = nil
	}
}

func timeText(t time.Time) string {
	if t.IsZero() {
		return "unknown"
	}
	return t.Format(time.RFC3339)
}

func writeInputs(p *Plan) error {
	if err := os.MkdirAll(p.LocalDir, 0o755); err != nil {
		return err
	}
	for name, data := range map[string][]byte{
		TestListName:     p.Files.TestList,
		ScriptPrefixName: p.Files.ScriptPrefix,
		SrunArgsName:     p.Files.SrunArgs,
	} {
		if err := atomicfile.Write(filepath.Join(p.LocalDir, name), data, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// upload creates the job workspace and puts there what the job reads:
// launch.sh and the test list; run and install scripts only when the
// cluster's checkout lacks them.
func upload(ctx context.Context, t transport.Transport, p *Plan) error {
	files := map[string][]byte{LaunchName: p.Launch.Script, TestListName: p.Files.TestList}
	for name, data := range files {
		if err := t.WriteFile(ctx, path.Join(p.JobWorkspace, name), data, 0o755); err != nil {
			return uploadErr(err)
		}
	}
	nodeDir := strings.TrimSuffix(p.nodeDir(), "/") + "/"
	for _, script := range []string{p.runSh(), p.installSh()} {
		if err := t.Run(ctx, "test -f "+shellquote.Quote(script), nil, nil, nil); err == nil {
			continue
		} else if !isExit(err) {
			return uploadErr(err)
		}
		// Only into the cluster's checkout (which the checklist found):
		// a path elsewhere is a mistake to report, not a folder to create.
		if !strings.HasPrefix(script, nodeDir) {
			return exitcode.Withf(exitcode.Prerequisite, "%s does not exist on the cluster", script)
		}
		data, err := os.ReadFile(p.localPath(script))
		if err != nil {
			return exitcode.Withf(exitcode.Prerequisite, "%s is missing on the cluster and cannot be uploaded: %v", script, err)
		}
		if err := t.WriteFile(ctx, script, data, 0o755); err != nil {
			return uploadErr(err)
		}
	}
	return nil
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// stageError gives an error without a documented exit code the one of the
// stage it stopped; errors that carry their own keep it.
func stageError(code int, err error) error {
	if exitcode.Of(err) != exitcode.InternalFailure {
		return err
	}
	return exitcode.With(code, err)
}

func isExit(err error) bool {
	var e *transport.ExitError
	return errors.As(err, &e)
}

func uploadErr(err error) error {
	if exitcode.Of(err) != exitcode.InternalFailure {
		return err
	}
	return exitcode.With(exitcode.Unreachable, fmt.Errorf("upload to the cluster failed: %w", err))
}

// resultNames are what Jenkins' junit and archiveArtifacts get.
func resultNames(testID string) []string {
	names := []string{"results*.xml", "unfinished_test.txt", "install.log", prefix.JobLogName, "*.log", FinishedName, JobIDName, LaunchName}
	if b := bracket(testID); b != "" {
		names = append(names, b) // the per-test output folder
	}
	return names
}

func bracket(testID string) string {
	i := strings.LastIndexByte(testID, '[')
	if i < 0 {
		return ""
	}
	b, _, _ := strings.Cut(testID[i+1:], "]")
	return b
}

func collect(ctx context.Context, sc *sbatch.Client, ws, resultsDir, testID string, out *Outcome) (verdict.Evidence, error) {
	var ev verdict.Evidence
	if err := os.MkdirAll(resultsDir, 0o755); err != nil {
		return ev, err
	}
	fetched, missing, err := sc.Fetch(ctx, ws, resultNames(testID), resultsDir)
	out.Fetched, out.Missing = fetched, missing
	if log, rerr := os.ReadFile(filepath.Join(resultsDir, prefix.JobLogName)); rerr == nil {
		ev.JobLog = log
	}
	maskResults(resultsDir)
	xmls, _ := filepath.Glob(filepath.Join(resultsDir, "results*.xml"))
	for _, x := range xmls {
		if b, rerr := os.ReadFile(x); rerr == nil {
			ev.JUnit = append(ev.JUnit, b)
		}
	}
	return ev, err
}

// maskResults masks secret-named assignments in the collected scripts and
// logs (set -x traces every export), because Jenkins archives them. The
// verdict reads the job log before this.
func maskResults(dir string) {
	filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() || !(strings.HasSuffix(p, ".log") || strings.HasSuffix(p, ".sh")) {
			return nil
		}
		if b, err := os.ReadFile(p); err == nil {
			if m := MaskAssignments(b); !bytes.Equal(m, b) {
				atomicfile.Write(p, m, info.Mode().Perm())
			}
		}
		return nil
	})
}

func writeSummary(dir string, o *Outcome) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	b, err := json.MarshalIndent(o, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.Write(filepath.Join(dir, SummaryName), append(b, '\n'), 0o644)
}

// checkFailure turns a failed checklist into the run's error: the items
// that block a run decide the exit code (an unreachable cluster 12, only
// invalid inputs 11, anything missing 10); submission items are left to
// sbatch and only logged. It returns nil when nothing blocks.
func checkFailure(r *checklist.Report, con *Console) error {
	var blocking []checklist.Item
	kinds := map[checklist.Kind]bool{}
	for _, it := range r.Failed() {
		if it.Kind == checklist.Submission {
			con.Log.Warn("✗ "+it.Name+": "+it.Detail+" (sbatch will decide)", "fix", it.Fix)
			continue
		}
		con.Log.Error("✗ "+it.Name+": "+it.Detail, "fix", it.Fix)
		blocking = append(blocking, it)
		kinds[it.Kind] = true
	}
	if len(blocking) == 0 {
		return nil
	}
	code := exitcode.Prerequisite
	switch {
	case kinds[checklist.Connection]:
		code = exitcode.Unreachable
	case len(kinds) == 1 && kinds[checklist.Input]:
		code = exitcode.BadInput
	}
	first := blocking[0]
	more := ""
	if len(blocking) > 1 {
		more = fmt.Sprintf(" (and %d more failing checks above)", len(blocking)-1)
	}
	return exitcode.Withf(code, "%s: %s%s", first.Name, first.Detail, more)
}

// Attach follows an existing job from stage 6 on. Without a job workspace
// it uses the folder of the job's output file as Slurm reports it.
func Attach(ctx context.Context, t transport.Transport, id sbatch.JobID, ws, resultsDir string, opt Options, con *Console) (*Outcome, error) {
	sc := &sbatch.Client{T: t, Policy: opt.Policy, Logf: func(f string, a ...any) { con.Log.Debug(fmt.Sprintf(f, a...)) }}
	st, err := sc.Query(ctx, id)
	if err != nil {
		return nil, stageError(exitcode.Unreachable, err)
	}
	if !st.Known {
		return nil, exitcode.Withf(exitcode.BadInput, "attach %s: Slurm does not know this job (%s)", id, orText(st.Source, "no answer"))
	}
	if ws == "" {
		if st.StdOut == "" {
			return nil, exitcode.Withf(exitcode.BadInput, "attach %s: Slurm does not say where the job's output goes (%s); pass --job-workspace", id, st.Source)
		}
		ws = path.Dir(st.StdOut)
		con.Log.Info("job workspace from Slurm", "job", id, "dir", ws)
	}
	out := &Outcome{RunID: "attach-" + string(id), JobID: string(id), PytestCode: -1, RunnerStarted: time.Now(), JobWorkspace: ws, ResultsDir: resultsDir, Transport: t.String(), Reattached: true}
	testID := ""
	var tl bytes.Buffer
	if err := t.Run(ctx, "cat "+shellquote.Quote(path.Join(ws, TestListName)), nil, &tl, nil); err == nil {
		testID = strings.TrimSpace(tl.String())
	}
	out.TestID = testID
	return out, followAndFinish(ctx, sc, id, ws, resultsDir, testID, opt, con, out)
}
