package cli

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/disagg-runner/disagg-runner/runner"
	"github.com/disagg-runner/disagg-runner/sbatch"
)

type attachCmd struct {
	connFlags `embed:""`
	perfFlags `embed:""`

	runFlags `embed:""`

	JobID        string `arg:"" name:"jobid" help:"The Slurm job to follow, or a run id: every job of the run, as the run follows them."`
	JobWorkspace string `name:"job-workspace" env:"DISAGG_JOB_WORKSPACE" help:"The job's workspace on the cluster (where job-output.log is). Default: the folder of the job's output file, as Slurm reports it." placeholder:"DIR"`
	Results      string `name:"results" help:"Local folder for the collected results. Default: ./disagg-runner/attach-<jobid>/results; for a run id, the run's own results folder." placeholder:"DIR"`
	FollowRoles  bool   `name:"follow-roles" env:"DISAGG_FOLLOW_ROLES" help:"Also stream the per-role server logs, each line prefixed with its role."`
	Follow       string `name:"follow" env:"DISAGG_FOLLOW" help:"With a run of several tests: stream this test's job log to stdout." placeholder:"TEST"`
}

func (c *attachCmd) Run(ctx context.Context, env Env, g *globals, res *result) error {
	jobs, err := jobsOrRun(c.JobID, env, c.runFlags)
	if err != nil {
		return err
	}
	id := jobs[0].id
	if err := c.connFlags.validate(); err != nil {
		return err
	}
	po, err := c.perfFlags.options(env)
	if err != nil {
		return err
	}
	con := g.console(env)
	cluster, err := c.connector(env, con.Log.Infof, debugf(con))(ctx)
	if err != nil {
		return err
	}
	defer cluster.Close()
	opt := runner.Options{FollowRoles: c.FollowRoles, Perf: po, FailOnRegression: c.FailOnRegression}
	results := env.abs(c.Results)
	if results == "" && !sbatch.ValidJobID(c.JobID) {
		// By its run id: the run's own results folder.
		results = filepath.Join(runner.RunDir(c.workspace(env), c.JobID), "results")
	}
	if len(jobs) > 1 || jobs[0].test != "" {
		targets := make([]runner.AttachTarget, len(jobs))
		for i, j := range jobs {
			targets[i] = runner.AttachTarget{Test: j.test, ID: j.id}
		}
		con, board := g.manyConsole(env, c.Follow)
		mo := runner.ManyOptions{Follow: c.Follow, Board: board, Classify: classify(ctx)}
		res.many = runner.AttachMany(ctx, cluster, c.JobID, results, targets, opt, mo, con)
		return nil
	}
	if results == "" {
		results = env.abs(filepath.Join("disagg-runner", "attach-"+c.JobID, "results"))
	}
	res.outcome, err = runner.Attach(ctx, cluster, id, c.JobWorkspace, results, opt, con)
	return err
}

type statusCmd struct {
	connFlags `embed:""`
	runFlags  `embed:""`

	JobID string `arg:"" name:"jobid" help:"The Slurm job to report on, or a run id: one line per test of the run."`
}

// slurmClient opens a Slurm client on the cluster for the one-shot job
// commands; close releases the connection.
func slurmClient(ctx context.Context, env Env, conn connFlags) (sc *sbatch.Client, close func(), err error) {
	nop := func(string, ...any) {}
	t, err := conn.transport(ctx, env, nop, nop)
	if err != nil {
		return nil, nil, err
	}
	return &sbatch.Client{T: t}, func() { t.Close() }, nil
}

func (c *statusCmd) Run(ctx context.Context, env Env) error {
	jobs, err := jobsOrRun(c.JobID, env, c.runFlags)
	if err != nil {
		return err
	}
	sc, done, err := slurmClient(ctx, env, c.connFlags)
	if err != nil {
		return err
	}
	defer done()
	if len(jobs) == 1 && jobs[0].test == "" {
		id := jobs[0].id
		st, err := sc.Query(ctx, id)
		if err != nil {
			return &runner.ClusterError{Err: err}
		}
		if !st.Known {
			return fmt.Errorf("job %s: %w (%s)", id, sbatch.ErrUnknownJob, orUnknown(st.Source))
		}
		fmt.Fprintln(env.Stdout, statusLine(id, st))
		return nil
	}
	// One controller query for the whole run.
	ids := make([]sbatch.JobID, len(jobs))
	for i, j := range jobs {
		ids[i] = j.id
	}
	states := sc.QueryMany(ctx, ids)
	var failed error
	for _, j := range jobs {
		a := states[j.id]
		switch {
		case a.Err != nil:
			fmt.Fprintf(env.Stdout, "%s: job %s: %v\n", j.test, j.id, a.Err)
			failed = &runner.ClusterError{Err: a.Err}
		case !a.State.Known:
			fmt.Fprintf(env.Stdout, "%s: job %s: unknown to Slurm (%s)\n", j.test, j.id, orUnknown(a.State.Source))
		default:
			fmt.Fprintf(env.Stdout, "%s: %s\n", j.test, statusLine(j.id, a.State))
		}
	}
	return failed
}

// statusLine is one job's state as status prints it.
func statusLine(id sbatch.JobID, st sbatch.JobState) string {
	var b strings.Builder
	fmt.Fprintf(&b, "job %s: %s", id, st.State)
	if st.CancelledBy != "" {
		fmt.Fprintf(&b, " by %s", st.CancelledBy)
	}
	if st.Reason != "" && st.Reason != "None" {
		fmt.Fprintf(&b, " (%s)", st.Reason)
	}
	fmt.Fprintf(&b, ", exit code %d:%d", st.ExitCode, st.Signal)
	if st.NodeList != "" {
		fmt.Fprintf(&b, ", nodes %s", st.NodeList)
	}
	if !st.Start.IsZero() {
		fmt.Fprintf(&b, ", started %s", st.Start.Format(time.RFC3339))
	}
	if !st.End.IsZero() {
		fmt.Fprintf(&b, ", ended %s", st.End.Format(time.RFC3339))
	}
	fmt.Fprintf(&b, " [from %s]", st.Source)
	return b.String()
}

type cancelCmd struct {
	connFlags `embed:""`
	runFlags  `embed:""`

	JobID string `arg:"" name:"jobid" help:"The Slurm job to cancel, or a run id: every job of the run."`
}

func (c *cancelCmd) Run(ctx context.Context, env Env) error {
	jobs, err := jobsOrRun(c.JobID, env, c.runFlags)
	if err != nil {
		return err
	}
	sc, done, err := slurmClient(ctx, env, c.connFlags)
	if err != nil {
		return err
	}
	defer done()
	type result struct {
		st  sbatch.JobState
		err error
	}
	results := make([]result, len(jobs))
	var wg sync.WaitGroup
	for i, j := range jobs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st, err := sc.Cancel(ctx, j.id)
			results[i] = result{st, err}
		}()
	}
	wg.Wait()
	var first error
	for i, j := range jobs {
		name := ""
		if j.test != "" {
			name = j.test + ": "
		}
		st, err := results[i].st, results[i].err
		switch {
		case err == nil:
			still := ""
			if st.Completing {
				still = "; Slurm is still stopping its processes on " + st.NodeList
			}
			fmt.Fprintf(env.Stdout, "%sjob %s: %s (confirmed from %s%s)\n", name, j.id, st.State, st.Source, still)
		case len(jobs) > 1 && errors.Is(err, sbatch.ErrUnknownJob):
			fmt.Fprintf(env.Stdout, "%sjob %s: unknown to Slurm (nothing to cancel)\n", name, j.id)
		case errors.Is(err, sbatch.ErrUnknownJob):
			first = cmp.Or(first, err)
		default:
			fmt.Fprintf(env.Stdout, "%sjob %s: %v\n", name, j.id, err)
			first = cmp.Or[error](first, &runner.ClusterError{Err: err})
		}
	}
	return first
}

func orUnknown(s string) string {
	if s == "" {
		return "no answer"
	}
	return "asked " + s
}

func (c *attachCmd) Help() string { return exitCodeHelp }
