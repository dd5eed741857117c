package perf

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/disagg-runner/disagg-runner/internal/lazyre"
)

// Run names the run whose results are collected. The runner fills it
// from its plan and Outcome.
type Run struct {
	RunID  string
	JobID  string
	TestID string // the pytest id; its bracket text names the test's output folder
	Config string // the config path or name, for people
	// ConcurrencyList is benchmark.concurrency_list as written in the
	// config ("1 2 4", "8", "" when unknown).
	ConcurrencyList string
	// Time is the job's end ("" zero: now).
	Time time.Time
	// JobLog, when set, is the job log as it streamed: its blocks (and the
	// report's timeline facts) are taken from it and JobLogName is not
	// read. It must be ended, and must have seen the bytes the results
	// folder keeps.
	JobLog *JobLogScan
}

// JobLogName is the job log in a results folder.
const JobLogName = "job-output.log"

var benchLogRE = lazyre.New(`^trtllm-benchmark\.0\.(\d+)\.log$`)

// Collect reads the benchmark results in a results folder: the
// per-concurrency logs <bracket>/trtllm-benchmark.0.<k>.log first, the
// job log's blocks for any concurrency they lack. It never fails: what
// cannot be read is listed in Problems, and a concurrency without a block
// is listed as incomplete.
func Collect(resultsDir string, run Run) *Summary {
	s := &Summary{Schema: SchemaName, Version: SchemaVersion, RunID: run.RunID, JobID: run.JobID, TestID: run.TestID, Config: run.Config, Time: run.Time}
	if s.Time.IsZero() {
		s.Time = time.Now().UTC()
	}
	list, err := ParseConcurrencyList(run.ConcurrencyList)
	if err != nil {
		s.Problems = append(s.Problems, err.Error())
	}
	s.ConcurrencyList = list

	var problems []Problem
	read := func(rel string) ([]Block, bool) {
		f, err := os.Open(filepath.Join(resultsDir, rel))
		if err != nil {
			return nil, false
		}
		defer f.Close()
		b, p := ParseBlocksFrom(filepath.ToSlash(rel), f)
		problems = append(problems, p...)
		return b, true
	}

	type found struct {
		block Block
		index int // position in the list, -1 unknown
	}
	var got []found
	byIndex := map[int]bool{}
	for _, f := range benchLogs(resultsDir, run.TestID) {
		blocks, _ := read(f.rel)
		if len(blocks) == 0 {
			problems = append(problems, Problem{File: f.rel, Why: "no result block in the log"})
			continue
		}
		b := blocks[len(blocks)-1] // a rerun within one log: the last counts
		got = append(got, found{b, f.k})
		byIndex[f.k] = true
	}
	fromLogs := len(got)
	var (
		jb []Block
		ok bool
	)
	if run.JobLog != nil && run.JobLog.ended {
		jb, ok = run.JobLog.blocks.blocks, true
		problems = append(problems, run.JobLog.blocks.problems...)
		s.jobLog = &run.JobLog.timeline
	} else {
		jb, ok = read(JobLogName)
	}
	if ok {
		used := 0
		for i, b := range jb {
			// Job log blocks come in list order; the block's own
			// concurrency places it when it says.
			idx := i
			if c := b.Concurrency(); c > 0 {
				idx = indexOf(list, c)
			}
			if (idx >= 0 && byIndex[idx]) || (idx < 0 && fromLogs > 0) {
				continue // the per-concurrency log has it
			}
			got = append(got, found{b, idx})
			used++
		}
		switch {
		case fromLogs > 0 && used > 0:
			s.Source = "per-concurrency logs and the job log"
		case used > 0:
			s.Source = "the job log"
		}
	}
	if s.Source == "" && fromLogs > 0 {
		s.Source = "per-concurrency logs"
	}
	if s.Source == "" {
		s.Source = "none"
	}
	for _, p := range problems {
		s.Problems = append(s.Problems, p.String())
	}

	seen := map[int]bool{}
	kept := map[int]map[string]float64{}
	for _, f := range got {
		c := 0
		if f.index >= 0 && f.index < len(list) {
			c = list[f.index]
		}
		if bc := f.block.Concurrency(); bc > 0 {
			if c > 0 && bc != c {
				s.Problems = append(s.Problems, fmt.Sprintf("%s:%d: Maximum request concurrency is %d, but position %d of concurrency_list is %d; reported as %d", f.block.File, f.block.Line, bc, f.index, c, bc))
			}
			c = bc
		}
		if c == 0 {
			s.Problems = append(s.Problems, fmt.Sprintf("metrics unreadable: %s:%d: no concurrency: the block does not say it and concurrency_list has no position %d", f.block.File, f.block.Line, f.index))
			continue
		}
		if seen[c] && reflect.DeepEqual(kept[c], f.block.Values) {
			continue // the same block again (pytest repeats captured output in the job log)
		}
		if seen[c] {
			s.Problems = append(s.Problems, fmt.Sprintf("%s:%d: a second block for concurrency %d; the first is kept", f.block.File, f.block.Line, c))
			continue
		}
		seen[c], kept[c] = true, f.block.Values
		s.Concurrencies = append(s.Concurrencies, pointOf(f.block, c, indexOf(list, c)))
	}
	for i, c := range list {
		if !seen[c] {
			s.Concurrencies = append(s.Concurrencies, Point{Concurrency: c, Index: i, Incomplete: []string{"no result block"},
				Counts: map[string]float64{}, Metrics: map[string]*Value{}})
			seen[c] = true
		}
	}
	sort.SliceStable(s.Concurrencies, func(i, j int) bool { return s.Concurrencies[i].Concurrency < s.Concurrencies[j].Concurrency })
	s.Compare(nil, nil)
	return s
}

func pointOf(b Block, c, index int) Point {
	p := Point{Concurrency: c, Index: index, Source: fmt.Sprintf("%s:%d", b.File, b.Line),
		Incomplete: b.Incomplete(), Counts: map[string]float64{}, Metrics: map[string]*Value{}}
	p.Complete = len(p.Incomplete) == 0
	for k, v := range b.Values {
		if m := metricByKey[k]; m != nil {
			p.Metrics[k] = &Value{Value: v, Unit: m.Unit, Direction: m.Direction}
		} else {
			p.Counts[k] = v
		}
	}
	if _, ok := p.Counts["failed_requests"]; !ok {
		p.Counts["failed_requests"] = b.Failed()
	}
	return p
}

type benchLog struct {
	rel string
	k   int
}

// benchLogs finds trtllm-benchmark.0.<k>.log in the test's output folder
// (the bracket text of the test id), else in any folder one level down,
// ordered by k.
func benchLogs(resultsDir, testID string) []benchLog {
	dirs := []string{}
	if b := TestFolder(testID); b != "" {
		dirs = append(dirs, b)
	} else {
		entries, _ := os.ReadDir(resultsDir)
		for _, e := range entries {
			if e.IsDir() {
				dirs = append(dirs, e.Name())
			}
		}
	}
	var out []benchLog
	for _, d := range dirs {
		entries, _ := os.ReadDir(filepath.Join(resultsDir, d))
		for _, e := range entries {
			m := benchLogRE.FindStringSubmatch(e.Name())
			if m == nil || e.IsDir() {
				continue
			}
			k, err := strconv.Atoi(m[1])
			if err != nil {
				continue
			}
			out = append(out, benchLog{rel: filepath.ToSlash(filepath.Join(d, e.Name())), k: k})
		}
		if len(out) > 0 {
			break
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].k < out[j].k })
	return out
}

// TestFolder is the folder below --output-dir that a test writes its
// outputs into: the text between its pytest id's last [ and its ] ("" when
// there is none, or when it is not one safe folder name).
func TestFolder(testID string) string {
	i := strings.LastIndexByte(testID, '[')
	if i < 0 {
		return ""
	}
	b, _, _ := strings.Cut(testID[i+1:], "]")
	if b == "" || strings.ContainsAny(b, `/\`) || b == "." || b == ".." {
		return ""
	}
	return b
}

// ParseConcurrencyList reads benchmark.concurrency_list as the configs
// write it: one integer, or integers separated by spaces or commas
// (brackets allowed).
func ParseConcurrencyList(s string) ([]int, error) {
	fields := strings.FieldsFunc(s, func(r rune) bool { return r == ' ' || r == ',' || r == '\t' || r == '[' || r == ']' })
	var out []int
	for _, f := range fields {
		n, err := strconv.Atoi(f)
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("benchmark.concurrency_list %q: %q is not a positive integer; concurrencies are taken from the blocks", s, f)
		}
		out = append(out, n)
	}
	return out, nil
}

func indexOf(list []int, c int) int {
	for i, x := range list {
		if x == c {
			return i
		}
	}
	return -1
}
