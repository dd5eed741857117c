package cli

import (
	"context"
	"fmt"
	"time"

	"github.com/disagg-runner/disagg-runner/runner"
)

type runCmd struct {
	connFlags `embed:""`
	jobFlags  `embed:""`
	perfFlags `embed:""`

	DryRun       bool          `name:"dry-run" help:"Stop after generating launch.sh: print the plan and the script, submit nothing, contact no cluster."`
	FollowRoles  bool          `name:"follow-roles" env:"DISAGG_FOLLOW_ROLES" help:"Also stream the per-role server logs, each line prefixed with its role."`
	PendingEvery time.Duration `name:"pending-every" env:"DISAGG_PENDING_EVERY" default:"3m" help:"While the job is PENDING, repeat its reason and expected start this often."`
}

func (c *runCmd) Run(ctx context.Context, env Env, g *globals, res *result) error {
	if err := c.connFlags.validate(); err != nil {
		return err
	}
	con := g.console(env)
	s, err := c.jobFlags.settings(env, c.connFlags, time.Now())
	if err != nil {
		return err
	}
	po, err := c.perfFlags.options(env)
	if err != nil {
		return err
	}
	connect := c.connector(env, con.Log.Infof, debugf(con))
	opt := runner.Options{DryRun: c.DryRun, FollowRoles: c.FollowRoles, PendingEvery: c.PendingEvery, Perf: po, FailOnRegression: c.FailOnRegression}
	res.outcome, err = runner.Run(ctx, s, opt, connect, con)
	return err
}

// debugf sends the Slurm client's step lines to the debug level.
func debugf(con *runner.Console) func(string, ...any) {
	return func(f string, a ...any) { con.Log.Debug(fmt.Sprintf(f, a...)) }
}

func (c *runCmd) Help() string {
	return "Stages: check prerequisites, write the inputs, generate launch.sh, connect and upload, submit, follow (the job log on stdout, the runner's lines on stderr), collect results, verdict.\n\n" + exitCodeHelp
}
