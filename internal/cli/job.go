package cli

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/disagg-runner/disagg-runner/runner"
	"github.com/disagg-runner/disagg-runner/sbatch"
)

func checkJobID(id string) (sbatch.JobID, error) {
	if !sbatch.ValidJobID(id) {
		return "", badInput(fmt.Errorf("JOBID %q: expected a Slurm job id such as 12345", id))
	}
	return sbatch.JobID(id), nil
}

type attachCmd struct {
	connFlags `embed:""`
	perfFlags `embed:""`

	JobID        string `arg:"" name:"jobid" help:"The Slurm job to follow."`
	JobWorkspace string `name:"job-workspace" env:"DISAGG_JOB_WORKSPACE" help:"The job's workspace on the cluster (where job-output.log is). Default: the folder of the job's output file, as Slurm reports it." placeholder:"DIR"`
	Results      string `name:"results" help:"Local folder for the collected results. Default: ./disagg-runner/attach-<jobid>/results." placeholder:"DIR"`
	FollowRoles  bool   `name:"follow-roles" env:"DISAGG_FOLLOW_ROLES" help:"Also stream the per-role server logs, each line prefixed with its role."`
}

func (c *attachCmd) Run(ctx context.Context, env Env, g *globals, res *result) error {
	id, err := checkJobID(c.JobID)
	if err != nil {
		return err
	}
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
	results := env.abs(c.Results)
	if results == "" {
		results = env.abs(filepath.Join("disagg-runner", "attach-"+c.JobID, "results"))
	}
	res.outcome, err = runner.Attach(ctx, cluster, id, c.JobWorkspace, results, runner.Options{FollowRoles: c.FollowRoles, Perf: po, FailOnRegression: c.FailOnRegression}, con)
	return err
}

type statusCmd struct {
	connFlags `embed:""`

	JobID string `arg:"" name:"jobid" help:"The Slurm job to report on."`
}

// slurmClient validates the job id and opens a Slurm client on the
// cluster for the one-shot job commands; close releases the connection.
func slurmClient(ctx context.Context, env Env, conn connFlags, jobID string) (sc *sbatch.Client, id sbatch.JobID, close func(), err error) {
	if id, err = checkJobID(jobID); err != nil {
		return nil, "", nil, err
	}
	nop := func(string, ...any) {}
	t, err := conn.transport(ctx, env, nop, nop)
	if err != nil {
		return nil, "", nil, err
	}
	return &sbatch.Client{T: t}, id, func() { t.Close() }, nil
}

func (c *statusCmd) Run(ctx context.Context, env Env) error {
	sc, id, done, err := slurmClient(ctx, env, c.connFlags, c.JobID)
	if err != nil {
		return err
	}
	defer done()
	st, err := sc.Query(ctx, id)
	if err != nil {
		return &runner.ClusterError{Err: err}
	}
	if !st.Known {
		return fmt.Errorf("job %s: %w (%s)", id, sbatch.ErrUnknownJob, orUnknown(st.Source))
	}
	fmt.Fprintf(env.Stdout, "job %s: %s", id, st.State)
	if st.CancelledBy != "" {
		fmt.Fprintf(env.Stdout, " by %s", st.CancelledBy)
	}
	if st.Reason != "" && st.Reason != "None" {
		fmt.Fprintf(env.Stdout, " (%s)", st.Reason)
	}
	fmt.Fprintf(env.Stdout, ", exit code %d:%d", st.ExitCode, st.Signal)
	if st.NodeList != "" {
		fmt.Fprintf(env.Stdout, ", nodes %s", st.NodeList)
	}
	if !st.Start.IsZero() {
		fmt.Fprintf(env.Stdout, ", started %s", st.Start.Format(time.RFC3339))
	}
	if !st.End.IsZero() {
		fmt.Fprintf(env.Stdout, ", ended %s", st.End.Format(time.RFC3339))
	}
	fmt.Fprintf(env.Stdout, " [from %s]\n", st.Source)
	return nil
}

type cancelCmd struct {
	connFlags `embed:""`

	JobID string `arg:"" name:"jobid" help:"The Slurm job to cancel."`
}

func (c *cancelCmd) Run(ctx context.Context, env Env) error {
	sc, id, done, err := slurmClient(ctx, env, c.connFlags, c.JobID)
	if err != nil {
		return err
	}
	defer done()
	st, err := sc.Cancel(ctx, id)
	if err != nil && !errors.Is(err, sbatch.ErrUnknownJob) {
		return &runner.ClusterError{Err: err}
	} else if err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "job %s: %s (confirmed from %s)\n", id, st.State, st.Source)
	return nil
}

func orUnknown(s string) string {
	if s == "" {
		return "no answer"
	}
	return "asked " + s
}

func (c *attachCmd) Help() string { return exitCodeHelp }
