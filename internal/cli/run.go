package cli

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
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

	Tests   string `name:"tests" env:"DISAGG_TESTS" help:"Run the tests this file lists, one config name or full test id per line (# comments and blank lines ignored), as one run: one connection, one job per test. Instead of --config (which also takes a comma-separated list)." placeholder:"FILE"`
	MaxJobs int    `name:"max-jobs" env:"DISAGG_MAX_JOBS" default:"0" help:"With several tests: at most this many of the run's jobs in Slurm at once (0: all)."`
	Follow  string `name:"follow" env:"DISAGG_FOLLOW" help:"With several tests: stream this test's job log to stdout (each log is always kept in results/<test>/job-output.log)." placeholder:"TEST"`
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
	tests, err := testList(c.ConfigName, c.Tests, env.abs(c.Tests))
	if err != nil {
		return err
	}
	if c.MaxJobs < 0 {
		return badInput(fmt.Errorf("DISAGG_MAX_JOBS=%d: expected 0 (all) or a positive number of jobs", c.MaxJobs))
	}
	if len(tests) == 1 && c.Tests == "" {
		if c.Follow != "" && c.Follow != tests[0].config {
			return badInput(fmt.Errorf("--follow %s: not a test of this run (%s)", c.Follow, tests[0].config))
		}
		res.outcome, err = runner.Run(ctx, s, opt, connect, con)
		return err
	}
	many, err := c.manySettings(env, tests, time.Now())
	if err != nil {
		return err
	}
	con, board := g.manyConsole(env, c.Follow)
	mo := runner.ManyOptions{MaxJobs: c.MaxJobs, Follow: c.Follow, Board: board, Classify: classify(ctx)}
	// Each job's log, sentinel and Slurm polls are commands of their own
	// (only the Slurm queries are shared): more helper shells keep them
	// off fresh sessions, each of which costs a login shell.
	conn := c.connFlags
	conn.helperShells = 4
	connect = conn.connector(env, con.Log.Infof, debugf(con))
	res.many, err = runner.RunMany(ctx, many, opt, mo, connect, con)
	return err
}

// manySettings are the Settings of each test of a run of several: one run
// id, named after the list (a digest of the names keeps the runs of two
// lists apart under one BUILD_TAG), each test named after its config.
func (c *runCmd) manySettings(env Env, tests []listedTest, now time.Time) ([]runner.Settings, error) {
	names := make([]string, len(tests))
	for i, t := range tests {
		names[i] = t.config
	}
	if c.Follow != "" && !slices.Contains(names, c.Follow) {
		return nil, badInput(fmt.Errorf("--follow %s: not a test of this run (%s)", c.Follow, strings.Join(names, ", ")))
	}
	j := c.jobFlags
	sum := sha256.Sum256([]byte(strings.Join(names, "\x00")))
	j.ConfigName = fmt.Sprintf("%dtests-%s", len(tests), hex.EncodeToString(sum[:3]))
	s, err := j.settings(env, c.connFlags, now)
	if err != nil {
		return nil, err
	}
	return perTest(s, tests), nil
}

// debugf sends the Slurm client's step lines to the debug level.
func debugf(con *runner.Console) func(string, ...any) {
	return func(f string, a ...any) { con.Log.Debug(fmt.Sprintf(f, a...)) }
}

func (c *runCmd) Help() string {
	return "Stages: check prerequisites, write the inputs, generate launch.sh, connect and upload, submit, follow (the job log on stdout, the runner's lines on stderr), collect results, verdict.\n\n" + exitCodeHelp
}
