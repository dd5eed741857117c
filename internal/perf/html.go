package perf

import (
	"fmt"
	"html"
	"io/fs"
	"math"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/disagg-runner/disagg-runner/internal/atomicfile"
	"github.com/disagg-runner/disagg-runner/internal/lazyre"
)

// WriteHTML writes report.html into a results folder: one self-contained
// page (inline CSS and SVG, no script, nothing from the network) with the
// verdict, the job's identity, a timeline of the run, charts of
// throughput and P99 latency against concurrency, the table, and links
// to the collected files. It takes the runner's summary.json and the logs
// from dir; whatever is missing is left out or said to be missing.
func WriteHTML(dir string, s *Summary) error {
	page := RenderHTML(dir, s, time.Now())
	return atomicfile.Write(filepath.Join(dir, ReportHTML), []byte(page), 0o644)
}

func esc(s string) string { return html.EscapeString(s) }

// RenderHTML is report.html's text for the results folder dir.
func RenderHTML(dir string, s *Summary, now time.Time) string {
	ri := ReadRunInfo(dir)
	var b strings.Builder
	w := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	title := "disagg-runner report"
	if s.TestID != "" {
		title += ": " + s.TestID
	}
	w("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n")
	w("<title>%s</title>\n<style>%s</style>\n</head>\n<body>\n", esc(title), css)
	w("<header><h1>Perf report</h1><p class=\"test\">%s</p></header>\n", esc(orDash(s.TestID)))

	// The verdict: performance first (what this page is for), then the run's own.
	w("<section id=\"verdict\" class=\"verdict status-%s\">\n", strings.ReplaceAll(s.Verdict.Status, " ", "-"))
	w("<p class=\"status\"><strong>%s</strong></p>\n", esc(s.Verdict.Status))
	list := func(class string, items []string) {
		w("<ul class=\"%s\">", class)
		for _, r := range items {
			w("<li>%s</li>", esc(r))
		}
		w("</ul>\n")
	}
	if n := len(s.Verdict.Regressions); n > 0 {
		w("<p class=\"text\">%d gated metric value%s worse than the baseline by more than the gate:</p>\n", n, map[bool]string{true: "s"}[n > 1])
		list("regressions", s.Verdict.Regressions)
	} else {
		text, _, _ := strings.Cut(s.Verdict.Text, "; incomplete: ")
		w("<p class=\"text\">%s</p>\n", esc(text))
	}
	if len(s.Verdict.Incomplete) > 0 {
		w("<p class=\"text\">Incomplete:</p>\n")
		list("incomplete", s.Verdict.Incomplete)
	}
	if ri != nil && ri.ExitCode != nil {
		w("<p class=\"run\">Run: exit %d, %s</p>\n", *ri.ExitCode, esc(ri.Reason))
	}
	w("</section>\n")

	w("<section id=\"identity\"><h2>Job</h2>\n<table class=\"identity\">\n")
	row := func(k, v string) {
		if v != "" {
			w("<tr><th>%s</th><td>%s</td></tr>\n", esc(k), v)
		}
	}
	row("run id", esc(s.RunID))
	row("job id", esc(s.JobID))
	if ri != nil {
		st := ri.State
		if st == "" && ri.JobID != "" {
			// The job ran, but nothing kept its final state (forgotten by
			// a controller without accounting before it was seen to end).
			st = "unknown"
		}
		if ri.CancelledBy != "" {
			st += " by " + ri.CancelledBy
		}
		row("state", esc(st))
		row("nodes", esc(ri.Nodes))
		if ri.PytestCode != nil && *ri.PytestCode >= 0 {
			row("pytest", esc(fmt.Sprintf("exit code %d (from %s)", *ri.PytestCode, ri.PytestSource)))
		}
		row("profile", esc(ri.Profile))
	}
	row("image", esc(imageOf(dir)))
	row("config", esc(s.Config))
	if len(s.ConcurrencyList) > 0 {
		var l []string
		for _, c := range s.ConcurrencyList {
			l = append(l, strconv.Itoa(c))
		}
		row("concurrency_list", esc(strings.Join(l, " ")))
	}
	if ri != nil && ri.BuildURL != "" {
		if u, err := url.Parse(ri.BuildURL); err == nil && (u.Scheme == "https" || u.Scheme == "http") {
			row("build", fmt.Sprintf("<a href=\"%s\">%s</a>", esc(u.String()), esc(ri.BuildURL)))
		}
	}
	if s.Baseline != nil {
		bl := s.Baseline.Path
		if len(s.Baseline.Runs) > 0 {
			bl = fmt.Sprintf("median of %d runs (%s) from %s", len(s.Baseline.Runs), strings.Join(s.Baseline.Runs, ", "), s.Baseline.Path)
		} else if s.Baseline.Note != "" {
			bl += ": " + s.Baseline.Note
		}
		row("baseline", esc(bl))
	} else {
		row("baseline", "none")
	}
	row("results from", esc(s.Source))
	w("</table>\n</section>\n")

	w("<section id=\"timeline\"><h2>Timeline</h2>\n%s</section>\n", presentational(timelineSVG(BuildTimeline(dir, ri, s))))

	w("<section id=\"charts\"><h2>Against concurrency</h2>\n")
	if s.Verdict.Status == StatusNoMetrics {
		w("<p class=\"missing\">No values to chart.</p>\n")
	} else {
		w("<div class=\"charts\">\n")
		w("%s", presentational(chartSVG(s, "Throughput (tok/s)", []string{"output_throughput", "total_token_throughput"})))
		w("%s", presentational(chartSVG(s, "P99 TTFT (ms)", []string{"ttft_p99"})))
		w("%s", presentational(chartSVG(s, "P99 TPOT (ms)", []string{"tpot_p99"})))
		w("</div>\n")
	}
	w("</section>\n")

	w("<section id=\"results\"><h2>Results</h2>\n")
	if len(s.Concurrencies) == 0 {
		w("<p class=\"missing\">No benchmark result was read.</p>\n")
	} else {
		w("<table class=\"metrics\">\n<thead><tr>")
		for _, h := range headerTitles() {
			w("<th>%s</th>", esc(h))
		}
		w("</tr></thead>\n<tbody>\n")
		for i := range s.Concurrencies {
			p := &s.Concurrencies[i]
			cls := ""
			if len(p.Incomplete) > 0 {
				cls = " class=\"incomplete\""
			}
			w("<tr%s><th>%d", cls, p.Concurrency)
			if len(p.Incomplete) > 0 {
				w("<br><small>%s</small>", esc(strings.Join(p.Incomplete, "; ")))
			}
			w("</th>")
			for _, k := range TableKeys {
				v := p.Metrics[k]
				c := ""
				if v != nil {
					c = " class=\"" + strings.ReplaceAll(v.Verdict, " ", "-") + "\""
				}
				tip := ""
				if v != nil && v.ChangePct != nil {
					tip = fmt.Sprintf(" title=\"%s: baseline %s, %+.1f%%\"", esc(k), num(*v.Baseline), *v.ChangePct)
				}
				if v != nil && v.Verdict == "regressed" {
					w("<td%s%s><strong>%s</strong></td>", c, tip, esc(cell(v)))
				} else {
					w("<td%s%s>%s</td>", c, tip, esc(cell(v)))
				}
			}
			w("<td>%s</td></tr>\n", esc(s.Change(p)))
		}
		w("</tbody>\n</table>\n")
		if len(s.Gates) > 0 {
			var g []string
			for _, x := range s.Gates {
				g = append(g, fmt.Sprintf("%s at %s%% worse", x.Metric, num(x.Pct)))
			}
			w("<p class=\"note\">Gated: %s. Throughputs are higher-is-better, latencies lower-is-better.</p>\n", esc(strings.Join(g, ", ")))
		}
	}
	if len(s.Problems) > 0 {
		w("<h3>Not read</h3>\n<ul class=\"problems\">\n")
		for _, p := range s.Problems {
			w("<li>%s</li>\n", esc(p))
		}
		w("</ul>\n")
	}
	w("</section>\n")

	w("<section id=\"files\"><h2>Collected files</h2>\n%s</section>\n", fileList(dir))
	w("<footer>Written by disagg-runner at %s.</footer>\n</body>\n</html>\n", esc(now.UTC().Format(time.RFC3339)))
	return b.String()
}

const css = `
:root{--fg:#1f2328;--muted:#59636e;--line:#d1d9e0;--bg:#fff;--soft:#f6f8fa}
*{box-sizing:border-box}
body{margin:0 auto;max-width:1200px;padding:16px 24px 40px;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;color:var(--fg);background:var(--bg)}
h1{font-size:22px;margin:8px 0 0}h2{font-size:17px;margin:22px 0 8px;border-bottom:1px solid var(--line);padding-bottom:4px}h3{font-size:15px}
.test{font-family:ui-monospace,"DejaVu Sans Mono",monospace;color:var(--muted);margin:2px 0 12px;word-break:break-all}
.verdict{border-radius:6px;padding:10px 16px;border-left:8px solid;background:var(--soft)}
.verdict .status{font-size:20px;font-weight:700;margin:0;text-transform:uppercase;letter-spacing:.04em}
.verdict .text,.verdict .run{margin:4px 0}.verdict ul{margin:4px 0 4px 18px;padding:0}
.status-pass{border-color:#1a7f37}.status-pass .status{color:#1a7f37}
.status-regressed{border-color:#cf222e;background:#ffebe9}.status-regressed .status{color:#cf222e}
.status-no-baseline{border-color:#8c959f}.status-no-baseline .status{color:#59636e}
.status-no-metrics{border-color:#9a6700;background:#fff8c5}.status-no-metrics .status{color:#9a6700}
table{border-collapse:collapse}
table.identity th{text-align:left;font-weight:600;padding:2px 16px 2px 0;color:var(--muted);vertical-align:top}
table.identity td{padding:2px 0;font-family:ui-monospace,"DejaVu Sans Mono",monospace;word-break:break-all}
table.metrics{width:100%;font-variant-numeric:tabular-nums;font-size:13px}
table.metrics th,table.metrics td{border:1px solid var(--line);padding:3px 6px;text-align:right}
table.metrics thead th{background:var(--soft);font-weight:600}
table.metrics tbody th{background:var(--soft)}
table.metrics td.regressed{background:#ffcecb;font-weight:700}table.metrics td.better{color:#1a7f37}table.metrics td.worse{color:#bc4c00}
tr.incomplete th small{color:#9a6700;font-weight:400}
.charts{display:flex;flex-wrap:wrap;gap:12px}
svg{display:block;max-width:100%;height:auto}
svg text{font:11px system-ui,"DejaVu Sans",sans-serif;fill:var(--fg)}
svg .axis{stroke:#8c959f;stroke-width:1}svg .grid{stroke:#eaeef2;stroke-width:1}
svg .lane-bg{fill:var(--soft)}svg .lane-name{font-weight:600}svg .span-label{fill:#fff;font-size:10px}
svg .runner{fill:#6e7781}svg .pending{fill:#d4a72c}svg .running{fill:#2da44e}svg .failed{fill:#cf222e}
svg .install{fill:#8250df}svg .starting{fill:#54aeff}svg .serving{fill:#0969da}svg .bench{fill:#bf3989}
svg .ready{fill:#1a7f37;stroke:#fff}svg .note{fill:var(--muted);font-style:italic}
svg .s0{stroke:#0969da;fill:#0969da}svg .s1{stroke:#bf3989;fill:#bf3989}
svg .line{fill:none;stroke-width:2}svg .base{fill:none;stroke-width:1.5;stroke-dasharray:5 4;opacity:.75}
svg .dot-base{fill:#fff;stroke-width:1.5}
.missing,.note{color:var(--muted)}
ul.problems li{font-family:ui-monospace,"DejaVu Sans Mono",monospace;font-size:12px}
ul.files{columns:2;font-family:ui-monospace,"DejaVu Sans Mono",monospace;font-size:12px;padding-left:18px}
ul.files small{color:var(--muted)}
footer{margin-top:28px;color:var(--muted);font-size:12px}
`

// svgAttrs repeats the SVG rules of the style sheet as presentation
// attributes: Jenkins serves archived HTML with a Content-Security-Policy
// that drops inline style sheets, and the timeline and charts must still
// read right there (the style sheet, where it applies, wins over them).
var svgAttrs = map[string]string{
	"timeline": `font-family="sans-serif" font-size="11"`, "chart": `font-family="sans-serif" font-size="11"`,
	"grid": `stroke="#eaeef2"`, "axis": `stroke="#8c959f"`, "lane-bg": `fill="#f6f8fa"`, "lane-name": `font-weight="600"`,
	"note": `fill="#59636e" font-style="italic"`, "span-label": `fill="#ffffff" font-size="10"`,
	"runner": `fill="#6e7781"`, "pending": `fill="#d4a72c"`, "running": `fill="#2da44e"`, "failed": `fill="#cf222e"`,
	"install": `fill="#8250df"`, "starting": `fill="#54aeff"`, "serving": `fill="#0969da"`, "bench": `fill="#bf3989"`,
	"ready": `fill="#1a7f37" stroke="#ffffff"`,
	"s0":    `stroke="#0969da" fill="#0969da"`, "s1": `stroke="#bf3989" fill="#bf3989"`,
	"line": `fill="none" stroke-width="2"`, "base": `fill="none" stroke-width="1.5" stroke-dasharray="5,4" opacity="0.75"`,
	"dot-base": `fill="#ffffff" stroke-width="1.5"`,
}

var classAttrRE = lazyre.New(`class="([^"]*)"`)

func presentational(svg string) string {
	return classAttrRE.ReplaceAllStringFunc(svg, func(m string) string {
		seen := map[string]bool{}
		var extra []string
		classes := strings.Fields(classAttrRE.FindStringSubmatch(m)[1])
		// Later classes refine earlier ones ("s0 dot-base": white fill).
		for i := len(classes) - 1; i >= 0; i-- {
			for _, a := range strings.Fields(svgAttrs[classes[i]]) {
				name, _, _ := strings.Cut(a, "=")
				if !seen[name] {
					seen[name] = true
					extra = append(extra, a)
				}
			}
		}
		if len(extra) == 0 {
			return m
		}
		return m + " " + strings.Join(extra, " ")
	})
}

// imageOf is the container image named in the collected launch.sh.
var imageRE = lazyre.New(`--container-image[= ]"?([^"\s]+)`)

func imageOf(dir string) string {
	b, err := os.ReadFile(filepath.Join(dir, "launch.sh"))
	if err != nil {
		return ""
	}
	if m := imageRE.FindSubmatch(b); m != nil {
		return string(m[1])
	}
	return ""
}

// fileList links every collected file, relative to the report.
func fileList(dir string) string {
	type entry struct {
		rel  string
		size int64
	}
	var files []entry
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || len(files) >= 1000 {
			return nil
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil || rel == ReportHTML {
			return nil
		}
		info, err := d.Info()
		if err != nil || !info.Mode().IsRegular() {
			return nil
		}
		files = append(files, entry{filepath.ToSlash(rel), info.Size()})
		return nil
	})
	if len(files) == 0 {
		return "<p class=\"missing\">No files were collected.</p>\n"
	}
	sort.Slice(files, func(i, j int) bool {
		di, dj := strings.Count(files[i].rel, "/"), strings.Count(files[j].rel, "/")
		if di != dj {
			return di < dj
		}
		return files[i].rel < files[j].rel
	})
	var b strings.Builder
	b.WriteString("<ul class=\"files\">\n")
	for _, f := range files {
		u := (&url.URL{Path: f.rel}).String()
		fmt.Fprintf(&b, "<li><a href=\"%s\">%s</a> <small>%s</small></li>\n", esc(u), esc(f.rel), esc(size(f.size)))
	}
	b.WriteString("</ul>\n")
	return b.String()
}

func size(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// timelineSVG draws the lanes against clock time.
func timelineSVG(tl Timeline) string {
	const width, left, right, laneH, gap, top = 1150.0, 210.0, 20.0, 22.0, 6.0, 30.0
	var b strings.Builder
	height := top + float64(len(tl.Lanes))*(laneH+gap) + 10
	if tl.Start.IsZero() || !tl.End.After(tl.Start) {
		fmt.Fprintf(&b, "<p class=\"missing\">No timing information: summary.json and the logs give no times.</p>\n")
		if len(tl.Lanes) == 0 {
			return b.String()
		}
	}
	total := tl.End.Sub(tl.Start).Seconds()
	if total <= 0 {
		total = 1
	}
	plot := width - left - right
	x := func(t time.Time) float64 { return left + t.Sub(tl.Start).Seconds()/total*plot }
	fmt.Fprintf(&b, "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"timeline\" width=\"%.0f\" height=\"%.0f\" viewBox=\"0 0 %.0f %.0f\" role=\"img\" aria-label=\"timeline of the run\">\n", width, height, width, height)
	if !tl.Start.IsZero() && tl.End.After(tl.Start) {
		step := niceDuration(total / 8)
		first := tl.Start.Truncate(step)
		if first.Before(tl.Start) {
			first = first.Add(step)
		}
		for t := first; !t.After(tl.End); t = t.Add(step) {
			fmt.Fprintf(&b, "<line class=\"grid\" x1=\"%.1f\" y1=\"%.0f\" x2=\"%.1f\" y2=\"%.0f\"/>", x(t), top-6, x(t), height-6)
			fmt.Fprintf(&b, "<text x=\"%.1f\" y=\"%.0f\" text-anchor=\"middle\">%s</text>\n", x(t), top-10, esc(t.In(tl.Start.Location()).Format("15:04:05")))
		}
		fmt.Fprintf(&b, "<text x=\"%.0f\" y=\"%.0f\" class=\"note\">%s, %s in all</text>\n", 4.0, top-10, esc(tl.Start.Format("2006-01-02 MST")), esc(roundDur(tl.End.Sub(tl.Start))))
	}
	for i, l := range tl.Lanes {
		y := top + float64(i)*(laneH+gap)
		fmt.Fprintf(&b, "<g class=\"lane\"><rect class=\"lane-bg\" x=\"0\" y=\"%.0f\" width=\"%.0f\" height=\"%.0f\"/>", y, width, laneH)
		fmt.Fprintf(&b, "<text class=\"lane-name\" x=\"6\" y=\"%.0f\">%s</text>", y+15, esc(clip(l.Name, 30)))
		if len(l.Spans) == 0 && l.Note != "" {
			fmt.Fprintf(&b, "<text class=\"note\" x=\"%.0f\" y=\"%.0f\">%s</text>", left+4, y+15, esc(l.Note))
		}
		for _, sp := range l.Spans {
			x0, x1 := x(sp.Start), x(sp.End)
			w := math.Max(x1-x0, 2)
			tip := fmt.Sprintf("%s: %s – %s (%s)", sp.Label, sp.Start.Format("15:04:05"), sp.End.Format("15:04:05"), roundDur(sp.End.Sub(sp.Start)))
			if sp.Title != "" {
				tip += ", " + sp.Title
			}
			fmt.Fprintf(&b, "<rect class=\"%s\" x=\"%.1f\" y=\"%.0f\" width=\"%.1f\" height=\"%.0f\" rx=\"3\"><title>%s</title></rect>", sp.Class, x0, y+2, w, laneH-4, esc(tip))
			if label := sp.Label; float64(len(label))*6+8 < w {
				fmt.Fprintf(&b, "<text class=\"span-label\" x=\"%.1f\" y=\"%.0f\">%s</text>", x0+4, y+15, esc(label))
			}
		}
		for _, r := range l.Ready {
			cx := x(r)
			fmt.Fprintf(&b, "<path class=\"ready\" d=\"M%.1f %.0fl5 6-5 6-5-6z\"><title>ready at %s</title></path>", cx, y+5, esc(r.Format("15:04:05")))
		}
		b.WriteString("</g>\n")
	}
	b.WriteString("</svg>\n")
	return b.String()
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-1] + "…"
}

func roundDur(d time.Duration) string {
	switch {
	case d >= time.Minute:
		return d.Round(time.Second).String()
	case d >= time.Second:
		return d.Round(100 * time.Millisecond).String()
	}
	return d.Round(time.Millisecond).String()
}

func niceDuration(sec float64) time.Duration {
	for _, s := range []float64{1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400} {
		if sec <= s {
			return time.Duration(s) * time.Second
		}
	}
	return 86400 * time.Second
}

// niceStep is a round step for about n ticks up to max.
func niceStep(max float64, n int) float64 {
	if max <= 0 {
		return 1
	}
	raw := max / float64(n)
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if raw <= m*mag {
			return m * mag
		}
	}
	return 10 * mag
}

// chartSVG draws metrics against concurrency (one point per concurrency,
// evenly spaced), with the baseline's medians dashed beside them.
func chartSVG(s *Summary, title string, keys []string) string {
	const width, height, left, right, top, bottom = 370.0, 260.0, 62.0, 12.0, 46.0, 40.0
	var b strings.Builder
	fmt.Fprintf(&b, "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"chart\" width=\"%.0f\" height=\"%.0f\" viewBox=\"0 0 %.0f %.0f\" role=\"img\" aria-label=\"%s against concurrency\">\n", width, height, width, height, esc(title))
	fmt.Fprintf(&b, "<text x=\"%.0f\" y=\"16\" font-weight=\"600\">%s</text>\n", left, esc(title))
	var conc []int
	maxV := 0.0
	hasBase := false
	for _, p := range s.Concurrencies {
		keep := false
		for _, k := range keys {
			if v := p.Metrics[k]; v != nil {
				keep = true
				maxV = math.Max(maxV, v.Value)
				if v.Baseline != nil {
					hasBase = true
					maxV = math.Max(maxV, *v.Baseline)
				}
			}
		}
		if keep {
			conc = append(conc, p.Concurrency)
		}
	}
	if len(conc) == 0 {
		fmt.Fprintf(&b, "<text class=\"note\" x=\"%.0f\" y=\"%.0f\">no values</text>\n</svg>\n", left, top+40)
		return b.String()
	}
	step := niceStep(maxV*1.05, 5)
	ymax := math.Ceil(maxV*1.05/step) * step
	if ymax == 0 {
		ymax = 1
	}
	plotW, plotH := width-left-right, height-top-bottom
	xs := func(i int) float64 { return left + (float64(i)+0.5)*plotW/float64(len(conc)) }
	ys := func(v float64) float64 { return top + plotH - v/ymax*plotH }
	for v := 0.0; v <= ymax+step/2; v += step {
		fmt.Fprintf(&b, "<line class=\"grid\" x1=\"%.0f\" y1=\"%.1f\" x2=\"%.0f\" y2=\"%.1f\"/><text x=\"%.0f\" y=\"%.1f\" text-anchor=\"end\">%s</text>\n", left, ys(v), width-right, ys(v), left-4, ys(v)+4, esc(tick(v)))
	}
	fmt.Fprintf(&b, "<line class=\"axis\" x1=\"%.0f\" y1=\"%.0f\" x2=\"%.0f\" y2=\"%.0f\"/>", left, top+plotH, width-right, top+plotH)
	for i, c := range conc {
		fmt.Fprintf(&b, "<text x=\"%.1f\" y=\"%.0f\" text-anchor=\"middle\">%d</text>", xs(i), top+plotH+15, c)
	}
	fmt.Fprintf(&b, "<text x=\"%.0f\" y=\"%.0f\" text-anchor=\"middle\" class=\"note\">concurrency</text>\n", left+plotW/2, height-6)
	lx := left
	for si, k := range keys {
		m := metricByKey[k]
		var pts, base []string
		for i, c := range conc {
			v := s.Metric(c, k)
			if v == nil {
				continue
			}
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", xs(i), ys(v.Value)))
			fmt.Fprintf(&b, "<circle class=\"s%d\" cx=\"%.1f\" cy=\"%.1f\" r=\"3.5\"><title>%s at %d: %s %s</title></circle>", si, xs(i), ys(v.Value), esc(m.Title), c, num(v.Value), esc(m.Unit))
			if v.Baseline != nil {
				base = append(base, fmt.Sprintf("%.1f,%.1f", xs(i), ys(*v.Baseline)))
				fmt.Fprintf(&b, "<circle class=\"s%d dot-base\" cx=\"%.1f\" cy=\"%.1f\" r=\"3\"><title>baseline %s at %d: %s %s</title></circle>", si, xs(i), ys(*v.Baseline), esc(m.Title), c, num(*v.Baseline), esc(m.Unit))
			}
		}
		if len(pts) > 1 {
			fmt.Fprintf(&b, "<polyline class=\"s%d line\" points=\"%s\"/>", si, strings.Join(pts, " "))
		}
		if len(base) > 1 {
			fmt.Fprintf(&b, "<polyline class=\"s%d base\" points=\"%s\"/>", si, strings.Join(base, " "))
		}
		name := m.Title
		if len(keys) == 1 {
			name = "this run"
		}
		fmt.Fprintf(&b, "\n<line class=\"s%d line\" x1=\"%.0f\" y1=\"30\" x2=\"%.0f\" y2=\"30\"/><text x=\"%.0f\" y=\"34\">%s</text>", si, lx, lx+16, lx+20, esc(name))
		lx += 26 + float64(len(name))*6.2
	}
	if hasBase {
		fmt.Fprintf(&b, "<line class=\"s0 base\" x1=\"%.0f\" y1=\"30\" x2=\"%.0f\" y2=\"30\"/><text x=\"%.0f\" y=\"34\">baseline</text>", lx, lx+16, lx+20)
	}
	b.WriteString("\n</svg>\n")
	return b.String()
}

func tick(v float64) string {
	switch {
	case v >= 10000:
		return strconv.FormatFloat(v/1000, 'f', -1, 64) + "k"
	case v == math.Trunc(v):
		return strconv.FormatFloat(v, 'f', 0, 64)
	}
	return strconv.FormatFloat(v, 'f', -1, 64)
}
