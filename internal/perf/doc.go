// Package perf reads the numbers a disaggregated-serving perf test exists
// for: the "Serving Benchmark Result" blocks the benchmark client prints
// once per concurrency. It parses them (tolerating every client variant,
// never failing on a malformed log), maps them to the config's
// concurrencies, compares them with a baseline of earlier runs, and writes
// what people and Jenkins look at: perf-summary.json, perf-summary.md, a
// console table, a junit test case for a regression, and report.html.
//
// Parsing and comparing are pure (bytes in, values out); only Collect,
// LoadBaseline, FromResults and the Write functions touch files.
//
// # How a run uses it
//
// Stage 7 (collect), after the fetch and the masking, reads the numbers:
//
//	j.perf = perf.Collect(j.resultsDir, perf.Run{
//		RunID: o.RunID, JobID: o.JobID, TestID: j.testID, Config: o.Config,
//		ConcurrencyList: plan.Config.Benchmark.Concurrency, // "" for attach: from the blocks
//		Time: o.Ended,
//	})
//
// Stage 8 (verdict), after verdict.Decide and writing summary.json (which
// report.html reads), judges them and writes the files:
//
//	j.perf.Compare(perf.LoadBaseline(opt.Perf.Baseline, j.perf.TestID, j.perf.RunID, opt.Perf.BaselineRuns), opt.Perf.Gates)
//	// verdict.Decide turns Verdict.Regressed into exit 15 with --fail-on-regression
//	err := j.perf.Write(j.resultsDir) // perf-summary.json, .md, perf-junit.xml, report.html
//	j.perf.WriteTable(stderr)         // never stdout: that is the job log
//
// Nothing here returns an error for a log it cannot read, a missing
// baseline or a job without results: those are in Summary.Problems and
// the verdict. Only writing the files can fail.
package perf
