package perf

import (
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/disagg-runner/disagg-runner/internal/atomicfile"
)

// TableKeys are the metrics of the console table, after the concurrency:
// the four throughputs and the mean and P99 of each latency.
var TableKeys = []string{
	"request_throughput", "output_throughput", "total_token_throughput", "user_throughput",
	"ttft_mean", "ttft_p99", "tpot_mean", "tpot_p99", "itl_mean", "itl_p99", "e2el_mean", "e2el_p99",
}

func cell(v *Value) string {
	if v == nil {
		return "-"
	}
	return strconv.FormatFloat(v.Value, 'f', 2, 64)
}

// Change describes how the point's gated metrics moved against the
// baseline, e.g. "output tok/s -6.1% REGRESSED, total tok/s +0.3%".
func (s *Summary) Change(p *Point) string {
	var parts []string
	for _, g := range s.Gates {
		v := p.Metrics[g.Metric]
		if v == nil || v.ChangePct == nil {
			continue
		}
		t := fmt.Sprintf("%s %+.1f%%", metricByKey[g.Metric].Title, *v.ChangePct)
		if v.Verdict == "regressed" {
			t += " REGRESSED"
		}
		parts = append(parts, t)
	}
	if len(parts) == 0 {
		if s.Baseline == nil || len(s.Baseline.Runs) == 0 {
			return "no baseline"
		}
		return "-"
	}
	return strings.Join(parts, ", ")
}

func headerTitles() []string {
	h := []string{"concurrency"}
	for _, k := range TableKeys {
		m := metricByKey[k]
		t := m.Title
		if m.Unit == "ms" {
			t += " ms"
		}
		h = append(h, t)
	}
	return append(h, "vs baseline")
}

func (s *Summary) rows() [][]string {
	var rows [][]string
	for i := range s.Concurrencies {
		p := &s.Concurrencies[i]
		c := strconv.Itoa(p.Concurrency)
		if len(p.Incomplete) > 0 {
			c += " (incomplete)"
		}
		r := []string{c}
		for _, k := range TableKeys {
			r = append(r, cell(p.Metrics[k]))
		}
		rows = append(rows, append(r, s.Change(p)))
	}
	return rows
}

// WriteTable writes the console table: one row per concurrency, then the
// verdict and any unreadable metrics.
func (s *Summary) WriteTable(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, strings.Join(headerTitles(), "\t")+"\t")
	for _, r := range s.rows() {
		fmt.Fprintln(tw, strings.Join(r, "\t")+"\t")
	}
	tw.Flush()
	fmt.Fprintf(w, "perf verdict: %s\n", s.Verdict.Text)
	for _, p := range s.Problems {
		fmt.Fprintln(w, p)
	}
}

// WriteMarkdown writes perf-summary.md: the verdict, the table, and the
// incomplete concurrencies and unreadable metrics, for a Jenkins build
// summary or a pull request comment.
func (s *Summary) WriteMarkdown(w io.Writer) {
	fmt.Fprintf(w, "### Performance: %s\n\n", mdEscape(s.TestID))
	icon := map[string]string{StatusPass: "✅", StatusRegressed: "❌", StatusNoBaseline: "➖", StatusNoMetrics: "⚠️"}[s.Verdict.Status]
	fmt.Fprintf(w, "%s **%s**%s\n\n", icon, s.Verdict.Status, strings.TrimPrefix(mdEscape(s.Verdict.Text), s.Verdict.Status))
	fmt.Fprintf(w, "Run `%s`, job %s", s.RunID, orDash(s.JobID))
	if s.Baseline != nil && len(s.Baseline.Runs) > 0 {
		fmt.Fprintf(w, ", baseline: median of %d runs from `%s`", len(s.Baseline.Runs), s.Baseline.Path)
	}
	fmt.Fprint(w, ".\n\n")
	writeMDTable(w, headerTitles(), s.rows())
	if len(s.Problems) > 0 {
		fmt.Fprintln(w)
		for _, p := range s.Problems {
			fmt.Fprintf(w, "- %s\n", mdEscape(p))
		}
	}
}

func writeMDTable(w io.Writer, header []string, rows [][]string) {
	fmt.Fprintf(w, "| %s |\n", strings.Join(header, " | "))
	seps := make([]string, len(header))
	for i := range seps {
		seps[i] = "---:"
	}
	fmt.Fprintf(w, "|%s|\n", strings.Join(seps, "|"))
	for _, r := range rows {
		for i := range r {
			r[i] = mdEscape(r[i])
		}
		fmt.Fprintf(w, "| %s |\n", strings.Join(r, " | "))
	}
}

func mdEscape(s string) string {
	return strings.NewReplacer("|", `\|`, "\n", " ", "<", "&lt;", ">", "&gt;").Replace(s)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// MarshalIndent is perf-summary.json's bytes.
func (s *Summary) MarshalIndent() []byte {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		panic(err) // only plain values: cannot happen
	}
	return append(b, '\n')
}

// WriteJUnit writes perf-junit.xml into dir: one test case, perf-regression,
// failing when a gated metric regressed and skipped when there was nothing
// to compare. It is a file of its own (not results*.xml), so that it never
// counts as pytest's result; Jenkins' junit step is given it beside them.
func (s *Summary) WriteJUnit(dir string) error {
	type failure struct {
		Message string `xml:"message,attr"`
		Text    string `xml:",chardata"`
	}
	type skipped struct {
		Message string `xml:"message,attr"`
	}
	type testcase struct {
		Classname string   `xml:"classname,attr"`
		Name      string   `xml:"name,attr"`
		Failure   *failure `xml:"failure,omitempty"`
		Skipped   *skipped `xml:"skipped,omitempty"`
		SystemOut string   `xml:"system-out,omitempty"`
	}
	type testsuite struct {
		XMLName  xml.Name   `xml:"testsuite"`
		Name     string     `xml:"name,attr"`
		Tests    int        `xml:"tests,attr"`
		Failures int        `xml:"failures,attr"`
		Errors   int        `xml:"errors,attr"`
		Skipped  int        `xml:"skipped,attr"`
		Cases    []testcase `xml:"testcase"`
	}
	var table strings.Builder
	s.WriteTable(&table)
	tc := testcase{Classname: "perf." + orDash(TestFolder(s.TestID)), Name: "perf-regression", SystemOut: table.String()}
	ts := testsuite{Name: "disagg-runner perf", Tests: 1}
	switch s.Verdict.Status {
	case StatusRegressed:
		tc.Failure = &failure{Message: s.Verdict.Text, Text: strings.Join(s.Verdict.Regressions, "\n")}
		ts.Failures = 1
	case StatusPass:
	default:
		tc.Skipped = &skipped{Message: s.Verdict.Text}
		ts.Skipped = 1
	}
	ts.Cases = []testcase{tc}
	b, err := xml.MarshalIndent(ts, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.Write(filepath.Join(dir, JUnitName), append([]byte(xml.Header), append(b, '\n')...), 0o644)
}

// Write puts everything into a results folder: perf-summary.json,
// perf-summary.md, perf-junit.xml and report.html (which also shows the
// runner's summary.json and the collected logs found there).
func (s *Summary) Write(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := atomicfile.Write(filepath.Join(dir, SummaryJSON), s.MarshalIndent(), 0o644); err != nil {
		return err
	}
	var md strings.Builder
	s.WriteMarkdown(&md)
	if err := atomicfile.Write(filepath.Join(dir, SummaryMD), []byte(md.String()), 0o644); err != nil {
		return err
	}
	if err := s.WriteJUnit(dir); err != nil {
		return err
	}
	return WriteHTML(dir, s)
}

// WriteTables writes one console table for several tests' results: a row
// per test and concurrency, then each test's verdict.
func WriteTables(w io.Writer, names []string, sums []*Summary) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "test\t"+strings.Join(headerTitles(), "\t")+"\t")
	for i, s := range sums {
		for _, r := range s.rows() {
			fmt.Fprintln(tw, names[i]+"\t"+strings.Join(r, "\t")+"\t")
		}
	}
	tw.Flush()
	for i, s := range sums {
		fmt.Fprintf(w, "perf verdict %s: %s\n", names[i], s.Verdict.Text)
	}
}
