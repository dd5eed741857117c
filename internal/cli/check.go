package cli

import (
	"context"
	"time"

	"github.com/disagg-runner/disagg-runner/runner"
)

type checkCmd struct {
	connFlags `embed:""`
	jobFlags  `embed:""`

	JSON  bool   `name:"json" help:"Print the checklist as JSON instead of a table."`
	Tests string `name:"tests" env:"DISAGG_TESTS" help:"Check every test this file lists (one config name or test id per line), as run --tests runs them; --config also takes a comma-separated list." placeholder:"FILE"`
}

func (c *checkCmd) Run(ctx context.Context, env Env) error {
	if err := c.connFlags.validate(); err != nil {
		return err
	}
	s, err := c.jobFlags.settings(env, c.connFlags, time.Now())
	if err != nil {
		return err
	}
	connect := c.connector(env, func(string, ...any) {}, func(string, ...any) {})
	tests, err := testList(c.ConfigName, c.Tests, env.abs(c.Tests))
	if err != nil {
		return err
	}
	var report *runner.Report
	if len(tests) == 1 && c.Tests == "" {
		report = runner.Check(ctx, s, connect)
	} else {
		report = runner.CheckMany(ctx, perTest(s, tests), connect)
	}
	if c.JSON {
		if err := report.WriteJSON(env.Stdout); err != nil {
			return err
		}
	} else {
		report.WriteTable(env.Stdout)
	}
	if !report.OK() {
		return &checksFailed{failed: len(report.Failed()), total: len(report.Items)}
	}
	return nil
}

func (c *checkCmd) Help() string {
	return "Exit codes: 0 every check passed; 10 at least one failed (each ✗ says how to fix it)."
}
