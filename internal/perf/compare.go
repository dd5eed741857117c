package perf

import (
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// DefaultBaselineRuns is how many of the newest baseline runs the median is taken over.
const DefaultBaselineRuns = 5

// DefaultGates: the output and total token throughputs may be at most 5 %
// worse than the baseline; every other metric is reported, not gated.
func DefaultGates() []Gate {
	return []Gate{{"output_throughput", 5}, {"total_token_throughput", 5}}
}

// ParseGates applies METRIC=PCT settings (PCT a percentage, or "off") on
// top of the default gates.
func ParseGates(specs []string) ([]Gate, error) {
	gates := DefaultGates()
	for _, spec := range specs {
		key, val, ok := strings.Cut(strings.TrimSpace(spec), "=")
		key = strings.TrimSpace(key)
		if !ok || metricByKey[key] == nil {
			return nil, fmt.Errorf("perf gate %q: expected METRIC=PCT with METRIC one of %s", spec, strings.Join(metricKeys(), ", "))
		}
		kept := gates[:0]
		for _, g := range gates {
			if g.Metric != key {
				kept = append(kept, g)
			}
		}
		gates = kept
		val = strings.TrimSuffix(strings.TrimSpace(val), "%")
		if val == "off" {
			continue
		}
		pct, err := strconv.ParseFloat(val, 64)
		if err != nil || pct < 0 || math.IsInf(pct, 0) || math.IsNaN(pct) {
			return nil, fmt.Errorf("perf gate %q: PCT must be a percentage such as 5 or 2.5, or off", spec)
		}
		gates = append(gates, Gate{key, pct})
	}
	sort.SliceStable(gates, func(i, j int) bool { return metricOrder(gates[i].Metric) < metricOrder(gates[j].Metric) })
	return gates, nil
}

func metricKeys() []string {
	var keys []string
	for _, m := range Metrics {
		keys = append(keys, m.Key)
	}
	return keys
}

func metricOrder(key string) int {
	for i, m := range Metrics {
		if m.Key == key {
			return i
		}
	}
	return len(Metrics)
}

// Baseline is what earlier runs of the same test measured.
type Baseline struct {
	Info BaseInfo
	// values[c][metric] are the usable values, newest run first.
	values map[int]map[string][]float64
}

// Median is the median of the newest N values of metric at concurrency
// c, and how many values it is the median of (0: none).
func (b *Baseline) Median(c int, key string) (float64, int) {
	if b == nil {
		return 0, 0
	}
	vs := b.values[c][key]
	if len(vs) > b.Info.N {
		vs = vs[:b.Info.N]
	}
	if len(vs) == 0 {
		return 0, 0
	}
	s := append([]float64(nil), vs...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2], len(s)
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2, len(s)
}

// LoadBaseline reads a previous perf-summary.json, or every
// perf-summary.json below a folder, and keeps the runs of testID other
// than excludeRunID (the run being judged). n is how many of the newest
// runs count (DefaultBaselineRuns when n <= 0). It never fails: a missing
// or unreadable baseline is a Baseline without values whose Info.Note
// says why, and judges as "no baseline". path "" gives nil.
func LoadBaseline(path, testID, excludeRunID string, n int) *Baseline {
	if path == "" {
		return nil
	}
	if n <= 0 {
		n = DefaultBaselineRuns
	}
	b := &Baseline{Info: BaseInfo{Path: path, N: n}, values: map[int]map[string][]float64{}}
	info, err := os.Stat(path)
	if err != nil {
		b.Info.Note = fmt.Sprintf("baseline %s: %v", path, errText(err))
		return b
	}
	var files []string
	if info.IsDir() {
		filepath.WalkDir(path, func(p string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() && d.Name() == SummaryJSON {
				files = append(files, p)
			}
			return nil
		})
	} else {
		files = []string{path}
	}
	var runs []*Summary
	var notes []string
	other := 0
	for _, f := range files {
		s, err := ReadSummary(f)
		switch {
		case err != nil:
			notes = append(notes, "skipped "+err.Error())
		case s.TestID != testID:
			other++
		case excludeRunID != "" && s.RunID == excludeRunID:
		default:
			runs = append(runs, s)
		}
	}
	sort.SliceStable(runs, func(i, j int) bool { return runs[i].Time.After(runs[j].Time) })
	used := map[string]bool{}
	for _, s := range runs {
		for _, p := range s.Concurrencies {
			if !usable(p) {
				continue
			}
			for k, v := range p.Metrics {
				if b.values[p.Concurrency] == nil {
					b.values[p.Concurrency] = map[string][]float64{}
				}
				if len(b.values[p.Concurrency][k]) < n {
					b.values[p.Concurrency][k] = append(b.values[p.Concurrency][k], v.Value)
					if !used[s.RunID] {
						used[s.RunID] = true
						b.Info.Runs = append(b.Info.Runs, s.RunID)
					}
				}
			}
		}
	}
	switch {
	case len(files) == 0:
		notes = append([]string{fmt.Sprintf("no %s in %s", SummaryJSON, path)}, notes...)
	case len(b.Info.Runs) == 0 && other > 0:
		notes = append([]string{fmt.Sprintf("%d summaries in %s, none of test %s", other, path, testID)}, notes...)
	case len(b.Info.Runs) == 0:
		notes = append([]string{fmt.Sprintf("no usable earlier run of this test in %s", path)}, notes...)
	}
	b.Info.Note = strings.Join(notes, "; ")
	return b
}

func errText(err error) string {
	if os.IsNotExist(err) {
		return "not found"
	}
	return err.Error()
}

// usable says whether a point's numbers may serve as a baseline: a block
// was read in full and no request failed.
func usable(p Point) bool {
	if p.Source == "" || p.Counts["failed_requests"] > 0 {
		return false
	}
	for _, why := range p.Incomplete {
		if why == "cut off" {
			return false
		}
	}
	return true
}

// Compare fills every metric's comparison with the baseline (nil: none)
// and decides the verdict; gates nil means DefaultGates.
func (s *Summary) Compare(base *Baseline, gates []Gate) {
	if gates == nil {
		gates = DefaultGates()
	}
	s.Gates = gates
	s.Baseline = nil
	if base != nil {
		info := base.Info
		s.Baseline = &info
	}
	gate := map[string]float64{}
	for _, g := range gates {
		gate[g.Metric] = g.Pct
	}
	var regressions, incomplete []string
	metrics, compared := 0, 0
	for i := range s.Concurrencies {
		p := &s.Concurrencies[i]
		if len(p.Incomplete) > 0 {
			incomplete = append(incomplete, fmt.Sprintf("concurrency %d (%s)", p.Concurrency, strings.Join(p.Incomplete, "; ")))
		}
		for _, key := range sortedKeys(p.Metrics) {
			v := p.Metrics[key]
			metrics++
			v.Baseline, v.BaselineRuns, v.ChangePct, v.GatePct = nil, 0, nil, nil
			if g, ok := gate[key]; ok {
				v.GatePct = ptr(g)
			}
			med, runs := base.Median(p.Concurrency, key)
			if runs == 0 {
				v.Verdict = "no baseline"
				continue
			}
			v.Baseline, v.BaselineRuns = ptr(med), runs
			if med == 0 {
				v.Verdict = "same"
				if v.Value != 0 {
					v.Verdict = "no baseline" // no change in percent from zero
				}
				continue
			}
			change := (v.Value - med) / math.Abs(med) * 100
			v.ChangePct = ptr(change)
			worse := change
			if v.Direction == HigherIsBetter {
				worse = -change
			}
			if v.GatePct != nil {
				compared++
			}
			switch {
			case v.GatePct != nil && worse > *v.GatePct:
				v.Verdict = "regressed"
				regressions = append(regressions, fmt.Sprintf("%s at concurrency %d is %.1f%% worse than the baseline (%s vs %s %s; gate %s%%)",
					key, p.Concurrency, worse, num(v.Value), num(med), v.Unit, num(*v.GatePct)))
			case worse > 0:
				v.Verdict = "worse"
			case worse < 0:
				v.Verdict = "better"
			default:
				v.Verdict = "same"
			}
		}
	}
	r := PerfResult{Regressions: regressions, Incomplete: incomplete}
	switch {
	case metrics == 0:
		r.Status, r.Text = StatusNoMetrics, "no metrics: no benchmark result block was read"
	case len(regressions) > 0:
		r.Status, r.Regressed = StatusRegressed, true
		r.Text = "regressed: " + strings.Join(regressions, "; ")
	case compared == 0:
		r.Status = StatusNoBaseline
		r.Text = "no baseline"
		switch {
		case base == nil:
			r.Text += ": none given (--baseline)"
		case base.Info.Note != "":
			r.Text += ": " + base.Info.Note
		default:
			r.Text += ": the baseline has no gated metric at these concurrencies"
		}
	default:
		r.Status = StatusPass
		r.Text = fmt.Sprintf("pass: %s within %s of the baseline (median of up to %d runs)", gateNames(gates), gatePcts(gates), base.Info.N)
		if len(gates) == 0 {
			r.Text = "pass: no metric is gated"
		}
	}
	if len(incomplete) > 0 {
		r.Text += "; incomplete: " + strings.Join(incomplete, ", ")
	}
	s.Verdict = r
}

func gateNames(gates []Gate) string {
	var n []string
	for _, g := range gates {
		n = append(n, g.Metric)
	}
	return strings.Join(n, ", ")
}

func gatePcts(gates []Gate) string {
	seen := map[string]bool{}
	var p []string
	for _, g := range gates {
		s := num(g.Pct) + "%"
		if !seen[s] {
			seen[s] = true
			p = append(p, s)
		}
	}
	return strings.Join(p, "/")
}

func ptr(f float64) *float64 { return &f }

// num prints a number as the client does (two decimals), without a
// trailing ".00" for whole numbers.
func num(f float64) string {
	if f == math.Trunc(f) && math.Abs(f) < 1e15 {
		return strconv.FormatInt(int64(f), 10)
	}
	return strconv.FormatFloat(f, 'f', 2, 64)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		oi, oj := metricOrder(keys[i]), metricOrder(keys[j])
		if oi != oj {
			return oi < oj
		}
		return keys[i] < keys[j]
	})
	return keys
}
