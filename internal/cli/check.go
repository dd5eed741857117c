package cli

import (
	"context"
	"time"

	"github.com/disagg-runner/disagg-runner/runner"
)

type checkCmd struct {
	connFlags `embed:""`
	jobFlags  `embed:""`

	JSON bool `name:"json" help:"Print the checklist as JSON instead of a table."`
}

func (c *checkCmd) Run(ctx context.Context, env Env) error {
	if err := c.connFlags.validate(); err != nil {
		return err
	}
	s, err := c.jobFlags.settings(env, c.connFlags, time.Now())
	if err != nil {
		return err
	}
	report := runner.Check(ctx, s, c.connector(env, func(string, ...any) {}, func(string, ...any) {}))
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
