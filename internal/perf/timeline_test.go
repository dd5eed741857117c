package perf

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestLineTime(t *testing.T) {
	ref := time.Date(2025, 11, 20, 23, 59, 0, 0, time.UTC)
	cases := []struct {
		line string
		prev time.Time
		want string
	}{
		{"[11/21/2025-00:01:02] [TRT-LLM] [I] Uvicorn running on http://n:8336", time.Time{}, "2025-11-21T00:01:02Z"},
		{"2025-11-20 23:59:30,123 INFO starting", time.Time{}, "2025-11-20T23:59:30Z"},
		{"[standin GEN_0 rank0@node1 23:59:50] listening on node1:18100", time.Time{}, "2025-11-20T23:59:50Z"},
		// A time of day after midnight belongs to the next day.
		{"[standin GEN_0 rank0@node1 00:00:10] answered", ref.Add(50 * time.Second), "2025-11-21T00:00:10Z"},
		{"[x 25:00:00] bad hour", time.Time{}, ""},
		{"job time 00:10:00 is not a log time", time.Time{}, ""},
		{"no time at all", time.Time{}, ""},
	}
	for _, c := range cases {
		got, ok := lineTime(c.line, ref, c.prev, time.UTC)
		s := ""
		if ok {
			s = got.Format(time.RFC3339)
		}
		if s != c.want {
			t.Errorf("%q: %q, want %q", c.line, s, c.want)
		}
	}
}

// Without timestamped benchmark lines, each concurrency ends when its log
// was written and lasts its benchmark duration (clipped at the previous
// end); server logs named by no Started line still get their lane; a log
// without timestamps is said to have none.
func TestTimelineFallbacks(t *testing.T) {
	dir := t.TempDir()
	t0 := time.Date(2025, 11, 20, 10, 0, 0, 0, time.UTC)
	ri := &RunInfo{Submitted: t0, Started: t0.Add(time.Minute), Ended: t0.Add(20 * time.Minute), RunnerStarted: t0.Add(-time.Second), RunnerEnded: t0.Add(21 * time.Minute),
		Stages: []StageTime{{N: 1, Name: "check prerequisites", Start: t0.Add(-time.Second), End: t0}}}
	for k, c := range []int{1, 8} {
		v := sampleValues(c, 1)
		v["duration_s"] = 120
		p := filepath.Join(dir, "disagg_upload-x", "trtllm-benchmark.0."+string(rune('0'+k))+".log")
		write(t, p, FormatBlock(v))
		end := t0.Add(time.Duration(10+k) * time.Minute)
		os.Chtimes(p, end, end)
	}
	write(t, filepath.Join(dir, JobLogName), "Started GEN_0 on node1\n")
	write(t, filepath.Join(dir, "disagg_upload-x", "gen_server_0.log"), "no times here\n")
	write(t, filepath.Join(dir, "disagg_upload-x", "ctx_server_0.log"), "[standin CTX_0 rank0@node2 10:02:00] up\n[standin CTX_0 rank0@node2 10:02:05] worker rank 0 up\n[standin CTX_0 rank0@node2 10:19:00] bye\n")
	s := Collect(dir, Run{TestID: "t[disagg_upload-x]", ConcurrencyList: "1 8"})
	tl := BuildTimeline(dir, ri, s)
	got := map[string]string{}
	for _, l := range tl.Lanes {
		var spans []string
		for _, sp := range l.Spans {
			spans = append(spans, sp.Label+" "+sp.Start.Format("15:04:05")+"-"+sp.End.Format("15:04:05"))
		}
		got[l.Name] = strings.Join(spans, ", ") + l.Note
	}
	want := map[string]string{
		"runner":        "1 check prerequisites 09:59:59-10:00:00",
		"job":           "pending 10:00:00-10:01:00, running 10:01:00-10:20:00",
		"install":       "no install.log, or no job start time",
		"GEN_0 (node1)": "no timestamps in disagg_upload-x/gen_server_0.log",
		"CTX_0":         "never ready 10:02:00-10:19:00",
		"BENCHMARK":     "c=1 10:08:00-10:10:00, c=8 10:10:00-10:11:00",
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("lane %s: %q, want %q", k, got[k], v)
		}
	}
	if len(got) != len(want) {
		t.Errorf("lanes %q", got)
	}
	if !tl.Start.Equal(t0.Add(-time.Second)) || !tl.End.Equal(t0.Add(20*time.Minute)) {
		t.Errorf("span %v – %v", tl.Start, tl.End)
	}
}
