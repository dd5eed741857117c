package perf

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
)

// AB compares runs side by side: the first is A, the reference; each
// other run's change is against A.
type AB struct {
	Runs []*Summary
	Rows []ABRow
}

// ABRow is one metric at one concurrency across the runs.
type ABRow struct {
	Concurrency int        `json:"concurrency"`
	Metric      string     `json:"metric"`
	Unit        string     `json:"unit"`
	Direction   Direction  `json:"direction"`
	Values      []*float64 `json:"values"`     // per run; null where a run lacks it
	ChangePct   []*float64 `json:"change_pct"` // per run against A; null for A and where either lacks it
}

// Compare lines runs up by concurrency and metric (TableKeys).
func CompareRuns(runs []*Summary) *AB {
	ab := &AB{Runs: runs}
	seen := map[int]bool{}
	var conc []int
	for _, s := range runs {
		for _, p := range s.Concurrencies {
			if !seen[p.Concurrency] {
				seen[p.Concurrency] = true
				conc = append(conc, p.Concurrency)
			}
		}
	}
	sort.Ints(conc)
	for _, c := range conc {
		for _, k := range TableKeys {
			m := metricByKey[k]
			r := ABRow{Concurrency: c, Metric: k, Unit: m.Unit, Direction: m.Direction}
			any := false
			for _, s := range runs {
				var v *float64
				if mv := s.Metric(c, k); mv != nil {
					v, any = ptr(mv.Value), true
				}
				r.Values = append(r.Values, v)
			}
			if !any {
				continue
			}
			for i, v := range r.Values {
				var ch *float64
				if a := r.Values[0]; i > 0 && v != nil && a != nil && *a != 0 {
					ch = ptr((*v - *a) / *a * 100)
				}
				r.ChangePct = append(r.ChangePct, ch)
			}
			ab.Rows = append(ab.Rows, r)
		}
	}
	return ab
}

// Label names run i in headers: a letter and its run id.
func (ab *AB) Label(i int) string {
	l := string(rune('A' + i%26))
	if i >= 26 {
		l += strconv.Itoa(i / 26)
	}
	return l
}

func (ab *AB) header() []string {
	h := []string{"concurrency", "metric"}
	for i := range ab.Runs {
		h = append(h, ab.Label(i))
		if i > 0 {
			h = append(h, ab.Label(i)+" vs A")
		}
	}
	return h
}

func (ab *AB) cells(r ABRow) []string {
	out := []string{strconv.Itoa(r.Concurrency), metricByKey[r.Metric].Title + unitSuffix(r.Unit)}
	for i, v := range r.Values {
		if v == nil {
			out = append(out, "-")
		} else {
			out = append(out, strconv.FormatFloat(*v, 'f', 2, 64))
		}
		if i > 0 {
			out = append(out, changeCell(r.ChangePct[i], r.Direction))
		}
	}
	return out
}

func unitSuffix(unit string) string {
	if unit == "ms" {
		return " ms"
	}
	return ""
}

// changeCell is the change with a word for its meaning: "+3.1% better".
func changeCell(ch *float64, d Direction) string {
	if ch == nil {
		return "-"
	}
	word := ""
	switch {
	case *ch > 0 && d == HigherIsBetter, *ch < 0 && d == LowerIsBetter:
		word = " better"
	case *ch != 0:
		word = " worse"
	}
	return fmt.Sprintf("%+.1f%%%s", *ch, word)
}

func (ab *AB) legend() []string {
	var l []string
	for i, s := range ab.Runs {
		l = append(l, fmt.Sprintf("%s = run %s (job %s, %s): %s", ab.Label(i), orDash(s.RunID), orDash(s.JobID), orDash(s.TestID), s.Verdict.Status))
	}
	return l
}

// WriteText writes the side-by-side table for a terminal.
func (ab *AB) WriteText(w io.Writer) {
	for _, l := range ab.legend() {
		fmt.Fprintln(w, l)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, strings.Join(ab.header(), "\t")+"\t")
	for _, r := range ab.Rows {
		fmt.Fprintln(tw, strings.Join(ab.cells(r), "\t")+"\t")
	}
	tw.Flush()
}

// WriteMarkdown writes the side-by-side table as Markdown.
func (ab *AB) WriteMarkdown(w io.Writer) {
	fmt.Fprintln(w, "### Performance: side by side")
	fmt.Fprintln(w)
	for _, l := range ab.legend() {
		fmt.Fprintf(w, "- %s\n", mdEscape(l))
	}
	fmt.Fprintln(w)
	var rows [][]string
	for _, r := range ab.Rows {
		rows = append(rows, ab.cells(r))
	}
	writeMDTable(w, ab.header(), rows)
}

// WriteJSON writes the runs' summaries and the rows.
func (ab *AB) WriteJSON(w io.Writer) error {
	e := json.NewEncoder(w)
	e.SetIndent("", "  ")
	return e.Encode(struct {
		Runs []*Summary `json:"runs"`
		Rows []ABRow    `json:"rows"`
	}{ab.Runs, ab.Rows})
}
