package perf

import (
	"encoding/xml"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

const testID = "perf/test_perf_sanity.py::test_e2e[disagg_upload-e2e-tc_ctx1_gen1_2nodes]"

func write(t *testing.T, path, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

// resultsFolder lays out what stage 7 collects: per-concurrency logs in
// the test's output folder, and the job log with the same blocks.
func resultsFolder(t *testing.T, factor float64, logs []int, jobLog []int) string {
	t.Helper()
	dir := t.TempDir()
	out := filepath.Join(dir, "disagg_upload-e2e-tc_ctx1_gen1_2nodes")
	list := []int{1, 4, 8, 16}
	for _, k := range logs {
		write(t, filepath.Join(out, fmt.Sprintf("trtllm-benchmark.0.%d.log", k)), "[Perf Sanity Test] GPU Info\n"+FormatBlock(sampleValues(list[k], factor)))
	}
	var jl strings.Builder
	jl.WriteString("Starting BENCHMARK\n")
	for _, k := range jobLog {
		jl.WriteString(FormatBlock(sampleValues(list[k], factor)))
	}
	jl.WriteString("Rank0 Pytest finished execution with exit code 0\n")
	write(t, filepath.Join(dir, JobLogName), jl.String())
	return dir
}

func TestCollectLogsFirstJobLogFallback(t *testing.T) {
	dir := resultsFolder(t, 1, []int{0, 1}, []int{0, 1, 2})
	s := Collect(dir, Run{RunID: "r1", JobID: "42", TestID: testID, ConcurrencyList: "1 4 8 16"})
	var got []string
	for _, p := range s.Concurrencies {
		got = append(got, fmt.Sprintf("%d %s %v", p.Concurrency, p.Source, p.Incomplete))
	}
	want := []string{
		"1 disagg_upload-e2e-tc_ctx1_gen1_2nodes/trtllm-benchmark.0.0.log:2 []",
		"4 disagg_upload-e2e-tc_ctx1_gen1_2nodes/trtllm-benchmark.0.1.log:2 []",
		"8 job-output.log:58 []",
		"16  [no result block]",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("points\n got %q\nwant %q", got, want)
	}
	if s.Source != "per-concurrency logs and the job log" || len(s.Problems) != 0 {
		t.Errorf("source %q problems %q", s.Source, s.Problems)
	}
	if s.Verdict.Status != StatusNoBaseline || s.Verdict.Regressed {
		t.Errorf("verdict %+v", s.Verdict)
	}
	if v := s.Metric(4, "tpot_p99"); v == nil || v.Direction != LowerIsBetter || v.Unit != "ms" {
		t.Errorf("tpot_p99 %+v", v)
	}
	if v := s.Metric(4, "output_throughput"); v == nil || v.Value != 680 || v.Direction != HigherIsBetter || *v.GatePct != 5 {
		t.Errorf("output_throughput %+v", v)
	}
	if s.Point(1).Counts["successful_requests"] != 10 {
		t.Errorf("counts %v", s.Point(1).Counts)
	}
}

// The older test prints the blocks only into the job log; the config's
// list is then matched by position, and cross-checked.
func TestCollectJobLogOnly(t *testing.T) {
	dir := resultsFolder(t, 1, nil, []int{0, 1})
	s := Collect(dir, Run{TestID: testID, ConcurrencyList: "1 2"})
	if s.Source != "the job log" || len(s.Concurrencies) != 3 {
		t.Fatalf("source %q points %+v", s.Source, s.Concurrencies)
	}
	// The second block says 4 where the list says 2: reported, and the
	// block's own number wins; 2 then has no block.
	if len(s.Problems) != 0 || s.Point(4) == nil || s.Point(2) == nil || s.Point(2).Complete {
		t.Errorf("problems %q points %+v", s.Problems, s.Concurrencies)
	}
	// pytest repeats a failing test's captured output: the same blocks
	// twice are read once, without a word; a different second block is
	// reported.
	jl, _ := os.ReadFile(filepath.Join(dir, JobLogName))
	write(t, filepath.Join(dir, JobLogName), string(jl)+"----- Captured stdout call -----\n"+string(jl))
	if s := Collect(dir, Run{TestID: testID, ConcurrencyList: "1 4"}); len(s.Problems) != 0 || len(s.Concurrencies) != 2 {
		t.Errorf("repeated blocks: %q %+v", s.Problems, s.Concurrencies)
	}
	write(t, filepath.Join(dir, JobLogName), string(jl)+FormatBlock(sampleValues(4, 2)))
	if s := Collect(dir, Run{TestID: testID, ConcurrencyList: "1 4"}); len(s.Problems) != 1 || !strings.Contains(s.Problems[0], "a second block for concurrency 4; the first is kept") {
		t.Errorf("a different second block: %q", s.Problems)
	}
	write(t, filepath.Join(dir, JobLogName), string(jl))
	// An unknown list: concurrencies from the blocks.
	s = Collect(dir, Run{TestID: testID})
	if len(s.Concurrencies) != 2 || s.Concurrencies[1].Concurrency != 4 {
		t.Errorf("points %+v", s.Concurrencies)
	}
}

func TestCollectMismatchAndMalformed(t *testing.T) {
	dir := resultsFolder(t, 1, []int{0, 2}, nil)
	// Log 2 is the list's position 1 (4) here, but its block says 8.
	bad := filepath.Join(dir, "disagg_upload-e2e-tc_ctx1_gen1_2nodes", "trtllm-benchmark.0.3.log")
	write(t, bad, "Traceback (most recent call last):\nRuntimeError: server died\n")
	s := Collect(dir, Run{TestID: testID, ConcurrencyList: "1,4,8"})
	want := []string{
		"metrics unreadable: disagg_upload-e2e-tc_ctx1_gen1_2nodes/trtllm-benchmark.0.3.log: no result block in the log",
		"disagg_upload-e2e-tc_ctx1_gen1_2nodes/trtllm-benchmark.0.2.log:2: Maximum request concurrency is 8, but position 2 of concurrency_list is 8; reported as 8",
	}
	_ = want
	if len(s.Problems) != 1 || s.Problems[0] != want[0] {
		t.Errorf("problems %q", s.Problems)
	}
	if s.Point(4) == nil || s.Point(4).Complete || s.Point(8) == nil || !s.Point(8).Complete {
		t.Errorf("points %+v", s.Concurrencies)
	}
	s = Collect(dir, Run{TestID: testID, ConcurrencyList: "1 4 2"})
	if len(s.Problems) != 2 || !strings.Contains(s.Problems[1], "Maximum request concurrency is 8, but position 2 of concurrency_list is 2; reported as 8") {
		t.Errorf("problems %q", s.Problems)
	}
	s = Collect(dir, Run{TestID: testID, ConcurrencyList: "1 x"})
	if len(s.ConcurrencyList) != 0 || !strings.Contains(s.Problems[0], `"x" is not a positive integer`) {
		t.Errorf("list %v problems %q", s.ConcurrencyList, s.Problems)
	}
	empty := Collect(t.TempDir(), Run{TestID: testID, ConcurrencyList: "1"})
	if empty.Verdict.Status != StatusNoMetrics || empty.Source != "none" {
		t.Errorf("empty: %+v", empty.Verdict)
	}
}

// baselineFolder holds six earlier runs of the test (and one of another
// test), the newest five of which have output throughput factors 1.0,
// 1.02, 0.98, 1.01, 0.99 (median 1.0), the oldest a far outlier.
func baselineFolder(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	t0 := time.Date(2025, 11, 1, 0, 0, 0, 0, time.UTC)
	factors := []float64{3, 0.99, 1.01, 0.98, 1.02, 1.0}
	for i, f := range factors {
		run := resultsFolder(t, f, []int{0, 1}, nil)
		s := Collect(run, Run{RunID: fmt.Sprintf("build-%d", i), TestID: testID, ConcurrencyList: "1 4", Time: t0.Add(time.Duration(i) * time.Hour)})
		write(t, filepath.Join(dir, fmt.Sprintf("build-%d", i), SummaryJSON), string(s.MarshalIndent()))
	}
	other := Collect(resultsFolder(t, 0.1, []int{0, 1}, nil), Run{RunID: "o", TestID: "other[x]", ConcurrencyList: "1 4", Time: t0.Add(10 * time.Hour)})
	write(t, filepath.Join(dir, "other", SummaryJSON), string(other.MarshalIndent()))
	write(t, filepath.Join(dir, "broken", SummaryJSON), "{")
	return dir
}

func TestBaselineMedianOfLastRuns(t *testing.T) {
	dir := baselineFolder(t)
	b := LoadBaseline(dir, testID, "", 0)
	if med, n := b.Median(4, "output_throughput"); n != 5 || med != 680 {
		t.Errorf("median %v of %d", med, n)
	}
	if !reflect.DeepEqual(b.Info.Runs, []string{"build-5", "build-4", "build-3", "build-2", "build-1"}) {
		t.Errorf("runs %q", b.Info.Runs)
	}
	if !strings.Contains(b.Info.Note, "skipped") {
		t.Errorf("note %q", b.Info.Note)
	}
	if _, n := LoadBaseline(dir, testID, "", 2).Median(4, "output_throughput"); n != 2 {
		t.Errorf("N=2 gave %d runs", n)
	}
	// The run being judged is never its own baseline.
	if b := LoadBaseline(dir, testID, "build-5", 0); b.Info.Runs[0] != "build-4" {
		t.Errorf("runs %q", b.Info.Runs)
	}
	// One file.
	if _, n := LoadBaseline(filepath.Join(dir, "build-0", SummaryJSON), testID, "", 0).Median(1, "ttft_p99"); n != 1 {
		t.Errorf("one file: %d runs", n)
	}
}

func TestRegressionVerdict(t *testing.T) {
	base := LoadBaseline(baselineFolder(t), testID, "", 0)
	cases := []struct {
		factor float64
		gates  []string
		status string
	}{
		{1.0, nil, StatusPass},
		{0.96, nil, StatusPass},      // 4 % worse: within the 5 % gate
		{0.94, nil, StatusRegressed}, // 6 % worse
		{1.5, nil, StatusPass},       // better is never a regression
		{0.94, []string{"output_throughput=off", "total_token_throughput=10"}, StatusPass},
		{0.98, []string{"tpot_p99=1"}, StatusRegressed}, // latency up 2 %: lower is better
		{1.02, []string{"tpot_p99=1"}, StatusPass},
	}
	for _, c := range cases {
		gates, err := ParseGates(c.gates)
		if err != nil {
			t.Fatal(err)
		}
		s := Collect(resultsFolder(t, c.factor, []int{0, 1}, nil), Run{RunID: "new", TestID: testID, ConcurrencyList: "1 4"})
		s.Compare(base, gates)
		if s.Verdict.Status != c.status || s.Verdict.Regressed != (c.status == StatusRegressed) {
			t.Errorf("factor %v gates %q: %s", c.factor, c.gates, s.Verdict.Text)
		}
	}
	s := Collect(resultsFolder(t, 0.94, []int{0, 1}, nil), Run{RunID: "new", TestID: testID, ConcurrencyList: "1 4"})
	s.Compare(base, nil)
	v := s.Metric(4, "output_throughput")
	if v.Verdict != "regressed" || *v.Baseline != 680 || v.BaselineRuns != 5 || fmt.Sprintf("%.2f", *v.ChangePct) != "-6.00" {
		t.Errorf("output_throughput %+v", v)
	}
	if v := s.Metric(4, "ttft_p99"); v.Verdict != "worse" || v.GatePct != nil {
		t.Errorf("ttft_p99 %+v", v)
	}
	want := "regressed: output_throughput at concurrency 1 is 6.0% worse than the baseline (159.80 vs 170 tok/s; gate 5%)"
	if !strings.HasPrefix(s.Verdict.Text, want) {
		t.Errorf("text %q", s.Verdict.Text)
	}
	// No baseline never fails.
	s.Compare(LoadBaseline(filepath.Join(t.TempDir(), "absent.json"), testID, "", 0), nil)
	if s.Verdict.Status != StatusNoBaseline || s.Verdict.Regressed || !strings.Contains(s.Verdict.Text, "absent.json: not found") {
		t.Errorf("absent baseline: %+v", s.Verdict)
	}
	s.Compare(LoadBaseline(t.TempDir(), "x[y]", "", 0), nil)
	if s.Verdict.Status != StatusNoBaseline {
		t.Errorf("empty folder: %+v", s.Verdict)
	}
}

func TestParseGates(t *testing.T) {
	g, err := ParseGates([]string{"ttft_p99=10", "output_throughput=2.5%"})
	if err != nil {
		t.Fatal(err)
	}
	want := []Gate{{"output_throughput", 2.5}, {"total_token_throughput", 5}, {"ttft_p99", 10}}
	if !reflect.DeepEqual(g, want) {
		t.Errorf("gates %v", g)
	}
	for _, bad := range []string{"ttft=5", "ttft_p99", "ttft_p99=-1", "ttft_p99=x", "tpot_mean=NaN"} {
		if _, err := ParseGates([]string{bad}); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestFormats(t *testing.T) {
	base := LoadBaseline(baselineFolder(t), testID, "", 0)
	dir := resultsFolder(t, 0.94, []int{0, 1}, nil)
	s := Collect(dir, Run{RunID: "new", JobID: "77", TestID: testID, ConcurrencyList: "1 4 8"})
	s.Compare(base, nil)

	var table strings.Builder
	s.WriteTable(&table)
	lines := strings.Split(table.String(), "\n")
	if !strings.Contains(lines[0], "concurrency") || !strings.Contains(lines[0], "TPOT P99 ms") || !strings.Contains(lines[0], "vs baseline") {
		t.Errorf("header %q", lines[0])
	}
	if !strings.Contains(lines[2], "639.20") || !strings.Contains(lines[2], "output tok/s -6.0% REGRESSED, total tok/s -6.0% REGRESSED") {
		t.Errorf("row %q", lines[2])
	}
	if !strings.Contains(lines[3], "8 (incomplete)") || !strings.Contains(lines[3], "  -  ") {
		t.Errorf("row %q", lines[3])
	}
	if !strings.HasPrefix(lines[4], "perf verdict: regressed: ") {
		t.Errorf("verdict %q", lines[4])
	}

	var md strings.Builder
	s.WriteMarkdown(&md)
	for _, want := range []string{"### Performance: perf/test_perf_sanity.py::test_e2e[disagg_upload-e2e-tc_ctx1_gen1_2nodes]", "❌ **regressed**: output_throughput", "| concurrency | req/s |", "|---:|", "| 8 (incomplete) |"} {
		if !strings.Contains(md.String(), want) {
			t.Errorf("markdown lacks %q:\n%s", want, md.String())
		}
	}

	if err := s.Write(dir); err != nil {
		t.Fatal(err)
	}
	back, err := ReadSummary(filepath.Join(dir, SummaryJSON))
	if err != nil || !reflect.DeepEqual(back.Verdict, s.Verdict) || back.Metric(4, "output_throughput").Verdict != "regressed" {
		t.Fatalf("round trip: %v %+v", err, back)
	}
	j, _ := os.ReadFile(filepath.Join(dir, JUnitName))
	var suite struct {
		Failures int `xml:"failures,attr"`
		Cases    []struct {
			Name    string `xml:"name,attr"`
			Failure *struct {
				Message string `xml:"message,attr"`
			} `xml:"failure"`
		} `xml:"testcase"`
	}
	if err := xml.Unmarshal(j, &suite); err != nil || suite.Failures != 1 || suite.Cases[0].Name != "perf-regression" || suite.Cases[0].Failure == nil {
		t.Errorf("junit %v %s", err, j)
	}
	s.Compare(nil, nil)
	s.WriteJUnit(dir)
	j, _ = os.ReadFile(filepath.Join(dir, JUnitName))
	if !strings.Contains(string(j), `<skipped message="no baseline: none given (--baseline); incomplete: concurrency 8 (no result block)">`) {
		t.Errorf("junit without baseline:\n%s", j)
	}
}
