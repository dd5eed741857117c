package runner

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"time"

	"github.com/disagg-runner/disagg-runner/internal/atomicfile"
	"github.com/disagg-runner/disagg-runner/internal/checkoutgen"
	"github.com/disagg-runner/disagg-runner/internal/inputfile"
	"github.com/disagg-runner/disagg-runner/internal/launch"
	"github.com/disagg-runner/disagg-runner/internal/termtext"
	"github.com/disagg-runner/disagg-runner/sbatch"
)

// run is one run of the pipeline; its stage methods are called in
// PIPELINE.md's order, each filling in what the next one needs.
type run struct {
	s       Settings
	opt     Options
	con     *Console
	connect Connector

	plan    *Plan
	launch  *launch.Result
	cluster Cluster
	upload  []string // node paths of scripts the cluster's checkout lacks
	id      sbatch.JobID
	out     *Outcome
	job     *jobRun // stages 6-8, once they began
}

// inList reports whether the run is one test of a run of several
// (RunMany), which owns the connection, checks the cluster once for all
// its tests and prints the one table at the end.
func (r *run) inList() bool { return r.s.Test != "" }

// stage is one step of the pipeline, numbered as in PIPELINE.md.
type stage struct {
	n    int
	name string
	do   func(context.Context) error
}

// Run performs every stage and returns the outcome. A nil error means the
// pipeline ran to its verdict: the process exits with Outcome.ExitCode.
// An error says why it stopped before (a failed checklist, an unreachable
// cluster, sbatch's refusal, an interruption before submission).
func Run(ctx context.Context, s Settings, opt Options, connect Connector, con *Console) (*Outcome, error) {
	r := &run{s: s, opt: opt, con: con, connect: connect,
		out: &Outcome{RunID: s.RunID, PytestCode: -1, RunnerStarted: time.Now(), BuildURL: s.BuildURL}}
	defer r.close()
	stages := []stage{
		{1, "check prerequisites", r.check},
		{2, "write the inputs", r.writeInputs},
		{3, "generate launch.sh", r.generate},
	}
	if !opt.DryRun {
		stages = append(stages,
			stage{4, "connect and upload", r.connectAndUpload},
			stage{5, "submit", r.submit})
	}
	for _, st := range stages {
		if err := r.stage(ctx, st); err != nil {
			return r.out, err
		}
	}
	if opt.DryRun {
		r.printDryRun()
		return r.out, nil
	}
	return r.out, r.finish(ctx)
}

// stage runs one stage between its header and its end line.
func (r *run) stage(ctx context.Context, st stage) error { return runStage(ctx, r.con, st) }

// runStage runs a stage between its header and its end line on con. A
// signal before submission stops the run at the next stage boundary.
func runStage(ctx context.Context, con *Console, st stage) error {
	if err := context.Cause(ctx); err != nil {
		return err
	}
	done := con.Stage(st.n, st.name)
	err := st.do(ctx)
	done(err)
	return err
}

func (r *run) close() {
	if r.cluster != nil {
		r.cluster.Close()
	}
}

// check is stage 1: the local half of the checklist, launch.sh rendered
// in memory included (as `check` does), so that the generator's refusal
// too comes before anything is written. (The checkout's own generator
// reads files: with profile checkout, stage 3 renders from the inputs
// stage 2 wrote.) It contacts no cluster: bad local input is reported
// before any connection is tried.
func (r *run) check(ctx context.Context) error {
	report, plan := checkLocal(r.s)
	if plan != nil && !plan.Checkout {
		var it Item
		r.launch, it = generateItem(ctx, r.s, plan)
		report.Add(it)
	}
	if err := blocking(report, r.con); err != nil {
		return err
	}
	r.plan = plan
	p := plan
	r.out.Profile, r.out.Config, r.out.TestID = string(p.generatorProfile()), p.ConfigPath, p.Files.TestID
	r.out.JobWorkspace, r.out.ResultsDir = p.JobWorkspace, p.ResultsDir
	return nil
}

// writeInputs is stage 2: the test list, script prefix and srun args, in
// a folder of this run's own.
func (r *run) writeInputs(context.Context) (err error) {
	p := r.plan
	created, err := mkdirAll(p.LocalDir)
	if err != nil {
		return &WorkspaceError{err}
	}
	defer func() {
		if err != nil {
			removeCreated(created)
		}
	}()
	if err := p.writeInputsTo(p.LocalDir); err != nil {
		return &WorkspaceError{err}
	}
	r.con.Log.Info("inputs written", "dir", p.LocalDir, "test", p.Files.TestID)
	return nil
}

// writeFile writes a file of the run folder (a test makes it fail).
var writeFile = atomicfile.Write

// mkdirAll is os.MkdirAll that returns the folders it created, outermost
// first, so that a failed stage can take them away again.
func mkdirAll(dir string) (created []string, err error) {
	for d := filepath.Clean(dir); ; d = filepath.Dir(d) {
		if _, err := os.Lstat(d); err == nil {
			break
		}
		created = append([]string{d}, created...)
		if filepath.Dir(d) == d {
			break
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		removeCreated(created)
		return nil, err
	}
	return created, nil
}

// removeCreated removes what mkdirAll created: the innermost folder (the
// run's own) with its content, the outer ones only when empty (another
// run may have put its folder there meanwhile).
func removeCreated(created []string) {
	for i := len(created) - 1; i >= 0; i-- {
		if i == len(created)-1 {
			os.RemoveAll(created[i])
		} else if os.Remove(created[i]) != nil {
			return
		}
	}
}

// generate is stage 3: launch.sh as stage 1 rendered and checked it (the
// contract check included), written beside the inputs; with profile
// checkout, the checkout's own generator renders it here from the inputs
// stage 2 wrote.
func (r *run) generate(ctx context.Context) error {
	p, res := r.plan, r.launch
	if res == nil {
		var err error
		if res, err = p.render(ctx, r.s, p.LocalDir); err != nil {
			return &CheckFailed{Items: []Item{renderFailed(r.s, err)}}
		}
		if len(res.Contract) > 0 {
			return &CheckFailed{Items: []Item{{Name: "draft matches profile", Kind: Input, Detail: launch.FormatMissing(p.DraftPath, p.generatorProfile(), res.Contract)}}}
		}
		r.launch = res
	}
	launchPath := filepath.Join(p.LocalDir, LaunchName)
	if err := writeFile(launchPath, res.Script, 0o755); err != nil {
		return &WorkspaceError{err}
	}
	for _, w := range res.Warnings {
		r.con.Log.Warn(w)
	}
	h := res.Hardware
	by := string(p.Profile)
	if p.Checkout {
		by = checkoutgen.Profile + ": the checkout's " + checkoutgen.Script(p.Profile)
	}
	r.con.Log.Info("launch.sh generated", "path", launchPath, "profile", by, "nodes", h.TotalNodes, "gpus", h.TotalGPUs,
		"ctx", fmt.Sprintf("%dx%d", h.NumCtxServers, h.GPUsPerCtxServer), "gen", fmt.Sprintf("%dx%d", h.NumGenServers, h.GPUsPerGenServer))
	return nil
}

func (r *run) printDryRun() {
	r.con.Log.Info("dry run: nothing submitted", "job_workspace", r.plan.JobWorkspace, "launch", filepath.Join(r.plan.LocalDir, LaunchName))
	// The file keeps its bytes (it is the job's script); the console gets
	// its control bytes escaped.
	r.con.Out.Write([]byte(termtext.Text(string(redactExports(r.launch.Script)))))
	if !bytes.HasSuffix(r.launch.Script, []byte("\n")) {
		r.con.Out.Write([]byte("\n"))
	}
	r.con.Flush()
	r.out.Reason = "dry run"
}

// connectAndUpload is stage 4: the run's one connection, the cluster half
// of the checklist, then the job workspace. A job that an earlier attempt
// of this run recorded there is looked at first: a live one is followed
// instead of submitting a second (a retried Jenkins step after a lost
// connection); a finished one is moved aside, so that this attempt starts
// clean and collects only its own results.
func (r *run) connectAndUpload(ctx context.Context) error {
	c, err := r.connect(ctx)
	if err != nil {
		report := &Report{}
		report.Add(reachableItem(r.s, nil, err))
		return blocking(report, r.con)
	}
	r.cluster = c
	r.out.Transport = c.String()
	return r.prepare(ctx)
}

// prepare is stage 4 on a connection: the cluster half of the checklist,
// then the job workspace.
func (r *run) prepare(ctx context.Context) error {
	c := r.cluster
	if !r.inList() {
		report := &Report{}
		r.upload = checkCluster(ctx, report, r.s, r.plan, c)
		if err := blocking(report, r.con); err != nil {
			return err
		}
	}
	ws := r.plan.JobWorkspace
	id, err := c.Recorded(ctx, path.Join(ws, JobIDName))
	if err != nil {
		return &ClusterError{err}
	}
	if id != "" {
		if r.id, err = r.reuseOrMoveAside(ctx, id); err != nil || r.id != "" {
			return err
		}
	}
	if err := r.uploadFiles(ctx); err != nil {
		return err
	}
	r.con.Log.Info("uploaded", "via", c.String(), "job_workspace", ws)
	return nil
}

// reuseOrMoveAside returns id when that job still lives (this run follows
// it), or "" once the ended job's workspace is moved aside.
func (r *run) reuseOrMoveAside(ctx context.Context, id sbatch.JobID) (sbatch.JobID, error) {
	st, err := r.cluster.Settle(ctx, id)
	if err != nil {
		return "", &ClusterError{err}
	}
	if st.Live() {
		r.out.Reattached = true
		r.con.Log.Warn("an earlier attempt of this run submitted a job that is still "+st.State+"; following it instead of submitting again", "job", id)
		return id, nil
	}
	ws := r.plan.JobWorkspace
	aside := ws + ".job" + string(id)
	state := orText(st.State, "unknown")
	if st.EndUnrecorded {
		state = "ended (Slurm forgot it; accounting still says " + st.State + ")"
	}
	r.con.Log.Info("an earlier attempt of this run ended; moving its job workspace aside", "job", id, "state", state, "to", aside)
	if err := r.cluster.MoveAside(ctx, ws, aside); err != nil {
		return "", &ClusterError{err}
	}
	if err := os.RemoveAll(r.plan.ResultsDir); err != nil {
		return "", &WorkspaceError{err}
	}
	return "", nil
}

// uploadFiles puts what the job reads into its workspace: launch.sh and
// the test list, and the run and install scripts the cluster's checkout
// lacks (the checklist found which).
func (r *run) uploadFiles(ctx context.Context) error {
	ws := r.plan.JobWorkspace
	files := []sbatch.File{
		{Path: path.Join(ws, LaunchName), Data: r.launch.Script, Mode: 0o755},
		{Path: path.Join(ws, TestListName), Data: r.plan.Files.TestList, Mode: 0o644},
	}
	for _, script := range r.upload {
		local, _ := r.plan.localPath(r.s, script)
		data, err := inputfile.Read(local)
		if err != nil {
			return &CheckFailed{Items: []Item{{Name: "run script exists", Kind: Prerequisite,
				Detail: fmt.Sprintf("%s is missing on the cluster and cannot be uploaded: %v", script, err)}}}
		}
		files = append(files, sbatch.File{Path: script, Data: data, Mode: 0o755})
	}
	if err := r.cluster.Upload(ctx, files); err != nil {
		return &ClusterError{err}
	}
	return nil
}

// submit is stage 5. The submission itself is not interrupted by a
// signal: once sbatch has a job, its id must be recorded so that the
// interrupted run can cancel it rather than leave it behind.
func (r *run) submit(ctx context.Context) error {
	if r.id == "" {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Minute)
		id, err := r.cluster.Submit(sctx, r.plan.JobWorkspace, LaunchName, path.Join(r.plan.JobWorkspace, JobIDName))
		cancel()
		switch {
		case id != "" && err != nil:
			// The job exists though something after sbatch failed (its id
			// could not be recorded remotely): follow it anyway.
			r.con.Log.Warn("submitted, with a problem", "job", id, "err", err)
		case errors.Is(err, sbatch.ErrSubmitRefused):
			return err
		case err != nil:
			return &ClusterError{err}
		default:
			r.con.Log.Info("submitted", "job", id, "partition", r.s.Partition, "account", r.s.Account)
		}
		r.id = id
	}
	r.out.JobID = string(r.id)
	if r.con.row != nil {
		r.con.row.submitted(r.id)
	}
	if err := atomicfile.Write(filepath.Join(r.plan.LocalDir, JobIDName), []byte(string(r.id)+"\n"), 0o644); err != nil {
		r.con.Log.Warn("could not record the job id locally", "err", err)
	}
	return nil
}

// finish is stages 6–8, for a job that exists: `run` after submission
// and `attach` both end here.
func (r *run) finish(ctx context.Context) error {
	j := &jobRun{cluster: r.cluster, id: r.id, ws: r.plan.JobWorkspace, resultsDir: r.plan.ResultsDir,
		testID: r.plan.Files.TestID, concurrency: r.plan.Config.Benchmark.Concurrency, opt: r.opt, con: r.con, out: r.out,
		noTable: r.inList()}
	r.job = j
	return j.finish(ctx)
}

// ClusterError is a step on the cluster that failed before the job was
// submitted: reading the recorded job, asking Slurm, moving an old
// workspace aside, uploading.
type ClusterError struct{ Err error }

func (e *ClusterError) Error() string { return e.Err.Error() }
func (e *ClusterError) Unwrap() error { return e.Err }

// WorkspaceError is a local file that could not be written: the workspace
// is missing, full or not writable.
type WorkspaceError struct{ Err error }

func (e *WorkspaceError) Error() string { return "workspace: " + e.Err.Error() }
func (e *WorkspaceError) Unwrap() error { return e.Err }
