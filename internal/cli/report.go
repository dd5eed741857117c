package cli

import (
	"fmt"

	"github.com/disagg-runner/disagg-runner/internal/perf"
)

type reportCmd struct {
	baselineFlags `embed:""`

	Dirs   []string `arg:"" name:"dir" help:"Results folders (a run's results/, or the run folder above it)."`
	Format string   `name:"format" enum:"text,markdown,json" default:"text" help:"Output format: text (the console table), markdown (as perf-summary.md), or json (perf-summary.json; with several folders, the runs and the side-by-side rows)."`
	Write  bool     `name:"write" help:"Also write perf-summary.json, perf-summary.md, perf-junit.xml and report.html into the (one) results folder, as a run does."`
}

func (c *reportCmd) Run(env Env) error {
	opt, err := c.options(env)
	if err != nil {
		return err
	}
	if c.Write && len(c.Dirs) > 1 {
		return badInput(fmt.Errorf("--write takes one results folder, got %d", len(c.Dirs)))
	}
	var runs []*perf.Summary
	for _, d := range c.Dirs {
		s, err := perf.FromResults(env.abs(d))
		if err != nil {
			return badInput(err)
		}
		// A baseline given here judges the run anew; without one, the
		// verdict the run recorded stands.
		if opt.Baseline != "" || c.PerfGate != nil {
			s.Compare(perf.LoadBaseline(opt.Baseline, s.TestID, s.RunID, opt.BaselineRuns), opt.Gates)
		}
		runs = append(runs, s)
	}
	if c.Write {
		rd, _ := perf.ResultsDir(env.abs(c.Dirs[0]))
		if err := runs[0].Write(rd); err != nil {
			return err
		}
	}
	if len(runs) == 1 {
		s := runs[0]
		switch c.Format {
		case "markdown":
			s.WriteMarkdown(env.Stdout)
		case "json":
			_, err := env.Stdout.Write(s.MarshalIndent())
			return err
		default:
			s.WriteTable(env.Stdout)
		}
		return nil
	}
	ab := perf.CompareRuns(runs)
	switch c.Format {
	case "markdown":
		ab.WriteMarkdown(env.Stdout)
	case "json":
		return ab.WriteJSON(env.Stdout)
	default:
		ab.WriteText(env.Stdout)
	}
	return nil
}

func (c *reportCmd) Help() string {
	return "Reads results folders that exist (no cluster): perf-summary.json when the run wrote one, else the benchmark logs (trtllm-benchmark.0.<k>.log, then the job log). One folder: the table and the performance verdict. Two or more: a side-by-side table, each against the first.\n\nExit codes: 0 the report was printed; 11 a folder is not a results folder or a flag is wrong."
}
