package perf

import (
	"bufio"
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/disagg-runner/disagg-runner/internal/lazyre"
)

// Span is a stretch of time on a timeline lane.
type Span struct {
	Label string
	Class string // how it is drawn: runner, pending, running, install, failed, starting, serving, bench
	Start time.Time
	End   time.Time
	Title string // shown on hover
}

// Lane is one row of the timeline.
type Lane struct {
	Name  string
	Spans []Span
	// Ready marks instants (a server ready to serve).
	Ready []time.Time
	Note  string // why the lane has no spans, or what is uncertain
}

// Timeline is the run over time: the runner, the job, the install step,
// each role's server and each benchmark concurrency.
type Timeline struct {
	Start, End time.Time
	Lanes      []Lane
}

// BuildTimeline takes what summary.json (ri, may be nil) and the
// collected logs in dir give. It never fails: what is missing leaves a
// lane out or notes why it is empty.
func BuildTimeline(dir string, ri *RunInfo, s *Summary) Timeline {
	var tl Timeline
	if ri == nil {
		ri = &RunInfo{}
	}
	var jobLog jobLogFacts
	if s != nil && s.jobLog != nil {
		jobLog = *s.jobLog
	} else {
		jobLog = scanJobLog(filepath.Join(dir, JobLogName))
	}
	ref := firstTime(ri.Started, ri.Submitted, ri.RunnerStarted, ri.Ended)
	if ref.IsZero() {
		if info, err := os.Stat(filepath.Join(dir, JobLogName)); err == nil {
			ref = info.ModTime()
		}
	}
	jobEnd := firstTime(ri.Ended, ri.EndNoticed, ri.RunnerEnded)

	// The runner: its stages when summary.json has them, else the phases
	// its times give.
	runner := Lane{Name: "runner"}
	if len(ri.Stages) > 0 {
		for _, st := range ri.Stages {
			runner.Spans = appendSpan(runner.Spans, Span{Label: fmt.Sprintf("%d %s", st.N, st.Name), Class: "runner", Start: st.Start, End: st.End})
		}
	} else {
		followEnd := firstTime(ri.EndNoticed, ri.Ended)
		runner.Spans = appendSpan(runner.Spans, Span{Label: "prepare, submit", Class: "runner", Start: ri.RunnerStarted, End: ri.Submitted})
		runner.Spans = appendSpan(runner.Spans, Span{Label: "follow", Class: "runner", Start: ri.Submitted, End: followEnd})
		runner.Spans = appendSpan(runner.Spans, Span{Label: "collect, verdict", Class: "runner", Start: followEnd, End: ri.RunnerEnded})
	}
	tl.add(runner, "no times in summary.json")

	job := Lane{Name: "job"}
	job.Spans = appendSpan(job.Spans, Span{Label: "pending", Class: "pending", Start: ri.Submitted, End: ri.Started})
	state := ri.State
	if state == "" {
		state = "running"
	}
	cls := "running"
	if ri.State != "" && ri.State != "COMPLETED" {
		cls = "failed"
	}
	job.Spans = appendSpan(job.Spans, Span{Label: state, Class: cls, Start: ri.Started, End: ri.Ended})
	tl.add(job, "no job times in summary.json")

	// The install step ends when install.log was last written (the fetch
	// keeps modification times); the job log says how it ended.
	install := Lane{Name: "install"}
	if end, ok := mtimeWithin(filepath.Join(dir, "install.log"), ri.Started, jobEnd); ok && !ri.Started.IsZero() {
		c, label := "install", "install"
		if jobLog.installFailed {
			c, label = "failed", "install failed"
		}
		install.Spans = appendSpan(install.Spans, Span{Label: label, Class: c, Start: ri.Started, End: end})
	}
	tl.add(install, "no install.log, or no job start time")

	// Each role's server, from its log's timestamps; the draft's "Started
	// ROLE on NODES" lines name the roles and their nodes.
	loc := ref.Location()
	if ref.IsZero() {
		loc = time.Local
	}
	for _, r := range roles(dir, jobLog) {
		lane := Lane{Name: r.name}
		if r.nodes != "" {
			lane.Name += " (" + r.nodes + ")"
		}
		if r.log == "" {
			lane.Note = "no log collected"
			tl.Lanes = append(tl.Lanes, lane)
			continue
		}
		first, ready, last := logTimes(filepath.Join(dir, r.log), ref, loc)
		if end, ok := mtimeWithin(filepath.Join(dir, r.log), first, jobEnd); ok && end.After(last) {
			last = end
		}
		switch {
		case first.IsZero():
			lane.Note = "no timestamps in " + r.log
		case ready.IsZero():
			lane.Spans = appendSpan(lane.Spans, Span{Label: "never ready", Class: "starting", Start: first, End: last, Title: r.log})
		default:
			lane.Spans = appendSpan(lane.Spans, Span{Label: "start", Class: "starting", Start: first, End: ready, Title: r.log})
			lane.Spans = appendSpan(lane.Spans, Span{Label: "serving", Class: "serving", Start: ready, End: last, Title: r.log})
			lane.Ready = append(lane.Ready, ready)
		}
		tl.Lanes = append(tl.Lanes, lane)
	}

	tl.add(benchLane(dir, jobLog, s, ref, loc, ri.Started, jobEnd), "no benchmark times")

	for _, l := range tl.Lanes {
		for _, sp := range l.Spans {
			tl.widen(sp.Start)
			tl.widen(sp.End)
		}
	}
	return tl
}

func (tl *Timeline) add(l Lane, note string) {
	if len(l.Spans) == 0 {
		l.Note = note
	}
	tl.Lanes = append(tl.Lanes, l)
}

func (tl *Timeline) widen(t time.Time) {
	if t.IsZero() {
		return
	}
	if tl.Start.IsZero() || t.Before(tl.Start) {
		tl.Start = t
	}
	if t.After(tl.End) {
		tl.End = t
	}
}

// appendSpan keeps only spans whose both ends are known and in order.
func appendSpan(spans []Span, s Span) []Span {
	if s.Start.IsZero() || s.End.IsZero() || s.End.Before(s.Start) {
		return spans
	}
	return append(spans, s)
}

func firstTime(ts ...time.Time) time.Time {
	for _, t := range ts {
		if !t.IsZero() {
			return t
		}
	}
	return time.Time{}
}

// mtimeWithin is a file's modification time when it lies within the job
// (a minute of slack at the end; masking may have rewritten it later).
func mtimeWithin(path string, from, to time.Time) (time.Time, bool) {
	info, err := os.Stat(path)
	if err != nil {
		return time.Time{}, false
	}
	m := info.ModTime()
	if (!from.IsZero() && m.Before(from)) || (!to.IsZero() && m.After(to.Add(time.Minute))) {
		return time.Time{}, false
	}
	return m, true
}

type role struct{ name, nodes, log string }

var (
	startedRE = lazyre.New(`(?m)^Started (\S+) on (\S+)(?: \(log: ([^)]+)\))?`)
	roleLogRE = lazyre.New(`^(gen|ctx)_server_(\d+)\.log$|^disagg_server\.log$`)
)

// roles lists the servers: from the draft's lines, with their logs found
// in the results folder, plus any server log no line named.
func roles(dir string, jobLog jobLogFacts) []role {
	logs := map[string]string{} // base name → path relative to dir
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && roleLogRE.MatchString(d.Name()) {
			if rel, err := filepath.Rel(dir, p); err == nil {
				if _, dup := logs[d.Name()]; !dup {
					logs[d.Name()] = filepath.ToSlash(rel)
				}
			}
		}
		return nil
	})
	var out []role
	named := map[string]bool{}
	for _, m := range jobLog.started {
		r := role{name: string(m[1]), nodes: string(m[2])}
		base := roleLogName(r.name)
		if len(m[3]) > 0 {
			base = filepath.Base(string(m[3]))
		}
		r.log = logs[base]
		named[base] = true
		out = append(out, r)
	}
	var rest []string
	for base := range logs {
		if !named[base] {
			rest = append(rest, base)
		}
	}
	sort.Strings(rest)
	for _, base := range rest {
		out = append(out, role{name: roleFromLog(base), log: logs[base]})
	}
	return out
}

func roleLogName(name string) string {
	if name == "DISAGG_SERVER" {
		return "disagg_server.log"
	}
	kind, i, ok := strings.Cut(name, "_")
	if !ok {
		return ""
	}
	return strings.ToLower(kind) + "_server_" + i + ".log"
}

func roleFromLog(base string) string {
	m := roleLogRE.FindStringSubmatch(base)
	if m == nil || m[1] == "" {
		return "DISAGG_SERVER"
	}
	return strings.ToUpper(m[1]) + "_" + m[2]
}

var (
	isoTimeRE = lazyre.New(`\b(\d{4})-(\d{2})-(\d{2})[ T](\d{2}):(\d{2}):(\d{2})`)
	// TensorRT-LLM's logger: [11/27/2025-12:34:56]
	trtTimeRE = lazyre.New(`\b(\d{2})/(\d{2})/(\d{4})-(\d{2}):(\d{2}):(\d{2})\b`)
	// A time of day closing a bracketed prefix: "[standin GEN_0 rank0@node1 12:34:56]".
	todRE   = lazyre.New(`^\[[^\]]*?\b(\d{2}):(\d{2}):(\d{2})(?:[.,]\d+)?\]`)
	readyRE = lazyre.New(`(?i)listening on|application startup complete|uvicorn running on|server is ready`)
)

// lineTime is the time a log line carries, if any. A time of day alone
// takes its date from ref (the job's start), moved by a day when that
// puts it more than 12 hours from prev (a job across midnight).
func lineTime(line string, ref, prev time.Time, loc *time.Location) (time.Time, bool) {
	atoi := func(s string) int { n, _ := strconv.Atoi(s); return n }
	if m := isoTimeRE.FindStringSubmatch(line); m != nil {
		return valid(time.Date(atoi(m[1]), time.Month(atoi(m[2])), atoi(m[3]), atoi(m[4]), atoi(m[5]), atoi(m[6]), 0, loc))
	}
	if m := trtTimeRE.FindStringSubmatch(line); m != nil {
		return valid(time.Date(atoi(m[3]), time.Month(atoi(m[1])), atoi(m[2]), atoi(m[4]), atoi(m[5]), atoi(m[6]), 0, loc))
	}
	if m := todRE.FindStringSubmatch(line); m != nil && !ref.IsZero() {
		r := ref.In(loc)
		t := time.Date(r.Year(), r.Month(), r.Day(), atoi(m[1]), atoi(m[2]), atoi(m[3]), 0, loc)
		if t.Hour() != atoi(m[1]) || t.Minute() != atoi(m[2]) || t.Second() != atoi(m[3]) {
			return time.Time{}, false
		}
		near := firstTime(prev, ref)
		if t.Sub(near) > 12*time.Hour {
			t = t.AddDate(0, 0, -1)
		} else if near.Sub(t) > 12*time.Hour {
			t = t.AddDate(0, 0, 1)
		}
		return t, true
	}
	return time.Time{}, false
}

func valid(t time.Time) (time.Time, bool) { return t, t.Year() > 1970 && t.Year() < 3000 }

// logTimes is a log's first timestamp, the first on a line saying the
// server is ready, and the last.
func logTimes(path string, ref time.Time, loc *time.Location) (first, ready, last time.Time) {
	f, err := os.Open(path)
	if err != nil {
		return
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		t, ok := lineTime(sc.Text(), ref, last, loc)
		if !ok {
			continue
		}
		if first.IsZero() {
			first = t
		}
		if ready.IsZero() && readyRE.MatchString(sc.Text()) {
			ready = t
		}
		if t.After(last) {
			last = t
		}
	}
	return
}

var benchLineRE = lazyre.New(`benchmark client at concurrency (\d+) (started|finished)`)

// jobLogFacts is what the timeline takes from the job log, gathered in one
// pass that holds a line at a time: real job logs reach gigabytes.
type jobLogFacts struct {
	installFailed bool
	started       [][][]byte // startedRE's submatches, in order
	benchLines    []string   // lines benchLineRE matches, in order
}

func scanJobLog(p string) jobLogFacts {
	var f jobLogFacts
	file, err := os.Open(p)
	if err != nil {
		return f
	}
	defer file.Close()
	eachLine(file, func(_ int, line []byte) { f.take(line) })
	return f
}

func (f *jobLogFacts) take(line []byte) {
	if bytes.Contains(line, []byte("Install script failed")) {
		f.installFailed = true
	}
	if !bytes.HasPrefix(line, []byte("Started ")) && !bytes.Contains(line, []byte("benchmark client at concurrency ")) {
		return // the cheap test first: a job log is mostly other lines
	}
	if m := startedRE.FindSubmatch(line); m != nil {
		for i := range m {
			m[i] = bytes.Clone(m[i])
		}
		f.started = append(f.started, m)
	}
	if benchLineRE.Match(line) {
		f.benchLines = append(f.benchLines, string(line))
	}
}

// benchLane has one span per concurrency: from timestamped "benchmark
// client at concurrency C started/finished" lines when the job log has
// them, else ending when its trtllm-benchmark.0.<k>.log was written and
// lasting its "Benchmark duration (s)" (no earlier than the previous end).
func benchLane(dir string, jobLog jobLogFacts, s *Summary, ref time.Time, loc *time.Location, jobStart, jobEnd time.Time) Lane {
	lane := Lane{Name: "BENCHMARK"}
	starts := map[int]time.Time{}
	var prev time.Time
	for _, line := range jobLog.benchLines {
		m := benchLineRE.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		t, ok := lineTime(line, ref, prev, loc)
		if !ok {
			continue
		}
		prev = t
		c, _ := strconv.Atoi(m[1])
		if m[2] == "started" {
			starts[c] = t
		} else if st, ok := starts[c]; ok {
			lane.Spans = appendSpan(lane.Spans, Span{Label: "c=" + m[1], Class: "bench", Start: st, End: t, Title: "concurrency " + m[1]})
			delete(starts, c)
		}
	}
	if len(lane.Spans) > 0 || s == nil {
		return lane
	}
	prev = jobStart
	for _, p := range s.Concurrencies {
		file, _, _ := strings.Cut(p.Source, ":")
		if !benchLogRE.MatchString(filepath.Base(file)) {
			continue
		}
		end, ok := mtimeWithin(filepath.Join(dir, filepath.FromSlash(file)), jobStart, jobEnd)
		if !ok {
			continue
		}
		start := end.Add(-time.Duration(p.Counts["duration_s"] * float64(time.Second)))
		if !prev.IsZero() && start.Before(prev) {
			start = prev
		}
		lane.Spans = appendSpan(lane.Spans, Span{Label: "c=" + strconv.Itoa(p.Concurrency), Class: "bench", Start: start, End: end, Title: fmt.Sprintf("concurrency %d (%s)", p.Concurrency, file)})
		prev = end
	}
	return lane
}
