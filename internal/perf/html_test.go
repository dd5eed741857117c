package perf

import (
	"context"
	"encoding/json"
	"fmt"
	"image"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/html"
)

// exampleRun lays out a realistic results folder: a 3-node job that
// waited 2.5 minutes, installed, started its servers (TensorRT-LLM's
// logger lines), and ran the benchmark at seven concurrencies, the last of
// which came out 8 % slower than five earlier runs. It returns the
// folder and the baseline folder.
func exampleRun(t *testing.T) (dir, baseline string) {
	t.Helper()
	loc := time.FixedZone("UTC", 0)
	at := func(hms string) time.Time {
		tm, err := time.ParseInLocation("2006-01-02 15:04:05", "2025-11-20 "+hms, loc)
		if err != nil {
			t.Fatal(err)
		}
		return tm
	}
	const bracket = "disagg_upload-e2e-deepseek-r1-fp4_1k1k_ctx1_gen1_dep8"
	id := "perf/test_perf_sanity.py::test_e2e[" + bracket + "]"
	list := []int{1, 2, 4, 8, 16, 32, 64}
	values := func(c int, f float64) map[string]float64 {
		v := sampleValues(c, f)
		slow := 1 + 0.035*float64(c-1)
		v["output_throughput"] = roundTo(118*float64(c)/slow*f, 2)
		v["total_token_throughput"] = roundTo(2*v["output_throughput"], 2)
		v["request_throughput"] = roundTo(v["output_throughput"]/1024, 2)
		v["user_throughput"] = roundTo(118/slow*f, 2)
		v["tpot_p99"] = roundTo(8.4*slow*1.3/f, 2)
		v["ttft_p99"] = roundTo(310*(1+0.06*float64(c-1))/f, 2)
		v["duration_s"] = roundTo(10*float64(c)*1024/v["output_throughput"], 2)
		return v
	}

	// Five earlier runs, a little noise around factor 1.
	baseline = t.TempDir()
	for i, f := range []float64{1.0, 0.99, 1.01, 1.0, 0.995} {
		d := filepath.Join(t.TempDir(), "results")
		for k, c := range list {
			write(t, filepath.Join(d, bracket, fmt.Sprintf("trtllm-benchmark.0.%d.log", k)), FormatBlock(values(c, f)))
		}
		s := Collect(d, Run{RunID: fmt.Sprintf("jenkins-disagg-perf-%d", 36+i), TestID: id, ConcurrencyList: "1 2 4 8 16 32 64", Time: at("09:00:00").AddDate(0, 0, i-5)})
		write(t, filepath.Join(baseline, fmt.Sprintf("build-%d", 36+i), SummaryJSON), string(s.MarshalIndent()))
	}

	dir = filepath.Join(t.TempDir(), "results")
	sum := map[string]any{
		"run_id": "jenkins-disagg-perf-41-deepseek-r1-fp4_1k1k_ctx1_gen1_dep8-3f9a1c2e", "job_id": "48213", "profile": "perf-sanity-v2",
		"config": "/home/ci/TensorRT-LLM/tests/scripts/perf-sanity/disaggregated/deepseek-r1-fp4_1k1k_ctx1_gen1_dep8.yaml", "test_id": id,
		"state": "COMPLETED", "nodes": "gb200-[017-019]", "pytest_exit_code": 0, "pytest_exit_code_source": "run script's Rank0 line",
		"exit_code": 0, "reason": "pytest passed", "submitted": at("10:00:04"), "started": at("10:02:31"), "ended": at("10:28:40"),
		"end_noticed": at("10:28:42"), "runner_started": at("10:00:00"), "runner_ended": at("10:28:47"),
		"build_url": "https://jenkins.example/job/disagg-perf/41/",
	}
	b, _ := json.MarshalIndent(sum, "", "  ")
	write(t, filepath.Join(dir, RunSummaryName), string(b))
	write(t, filepath.Join(dir, "launch.sh"), "#!/bin/bash\nsrunArgs=(\n  \"--container-image=nvcr.io#nvidia/tensorrt-llm/release:1.1.0rc5\"\n)\n")
	write(t, filepath.Join(dir, "results.xml"), `<testsuites><testsuite tests="1" failures="0" errors="0"/></testsuites>`)
	touch := func(rel, hms string) {
		if err := os.Chtimes(filepath.Join(dir, rel), at(hms), at(hms)); err != nil {
			t.Fatal(err)
		}
	}
	write(t, filepath.Join(dir, "install.log"), "Installing on gb200-017\nInstallation completed on gb200-017\n")
	touch("install.log", "10:05:12")
	ws := "/lustre/ci/ws/" + bracket
	jl := "Disaggregated job: 1 GEN x 8 GPUs, 1 CTX x 4 GPUs, 3 nodes, 12 GPUs, gen-only=0\n" +
		"Running the install script on all 3 nodes\nInstall finished on all nodes\n" +
		"Started GEN_0 on gb200-017,gb200-018 (log: " + ws + "/gen_server_0.log)\n" +
		"Started CTX_0 on gb200-019 (log: " + ws + "/ctx_server_0.log)\n" +
		"Started DISAGG_SERVER on gb200-017 (log: " + ws + "/disagg_server.log)\nStarting BENCHMARK\n"
	start := at("10:11:02")
	for k, c := range list {
		v := values(c, 1)
		if c == 64 {
			v = values(c, 0.92)
		}
		end := start.Add(time.Duration(v["duration_s"]*float64(time.Second)) + 9*time.Second)
		jl += fmt.Sprintf("[standin BENCHMARK rank0@gb200-017 %s] benchmark client at concurrency %d started\n", start.Format("15:04:05"), c)
		block := FormatBlock(v)
		jl += block
		jl += fmt.Sprintf("[standin BENCHMARK rank0@gb200-017 %s] benchmark client at concurrency %d finished\n", end.Format("15:04:05"), c)
		rel := filepath.Join(bracket, fmt.Sprintf("trtllm-benchmark.0.%d.log", k))
		write(t, filepath.Join(dir, rel), block)
		touch(rel, end.Format("15:04:05"))
		start = end.Add(3 * time.Second)
	}
	jl += "Rank0 Pytest finished execution with exit code 0\nBenchmark passed; waiting up to 30 s for the servers to stop\n"
	write(t, filepath.Join(dir, JobLogName), jl)
	server := func(name, node, begin, ready, end string) {
		d := "11/20/2025-"
		write(t, filepath.Join(dir, bracket, name), "["+d+begin+"] [TRT-LLM] [I] Starting TensorRT-LLM init.\n"+
			"["+d+begin+"] [TRT-LLM] [I] Loading the model on "+node+"\n"+
			"["+d+ready+"] [TRT-LLM] [I] Uvicorn running on http://"+node+":8336\n"+
			"["+d+end+"] [TRT-LLM] [I] Shutting down\n")
	}
	server("gen_server_0.log", "gb200-017", "10:05:20", "10:10:31", "10:28:30")
	server("ctx_server_0.log", "gb200-019", "10:05:19", "10:09:02", "10:28:29")
	server("disagg_server.log", "gb200-017", "10:05:21", "10:10:40", "10:28:33")
	return dir, baseline
}

func roundTo(x float64, d int) float64 {
	p := 1.0
	for range d {
		p *= 10
	}
	return float64(int64(x*p+0.5)) / p
}

func exampleSummary(t *testing.T) (string, *Summary) {
	dir, baseline := exampleRun(t)
	ri := ReadRunInfo(dir)
	s := Judge(dir, Run{RunID: ri.RunID, JobID: ri.JobID, TestID: ri.TestID, Config: ri.Config, ConcurrencyList: "1 2 4 8 16 32 64", Time: ri.Ended},
		Options{Baseline: baseline})
	s.Baseline.Path = "previous-builds/" // as Jenkins' copyArtifacts would name it, not a temporary folder
	if err := s.Write(dir); err != nil {
		t.Fatal(err)
	}
	return dir, s
}

// The report parsed as a browser would: the sections, the charts and the
// timeline as inline SVG, a row per concurrency, links to every
// collected file that resolve, and nothing that reaches outside the page.
func TestReportHTMLStructure(t *testing.T) {
	dir, s := exampleSummary(t)
	if s.Verdict.Status != StatusRegressed {
		t.Fatalf("example verdict %q", s.Verdict.Text)
	}
	f, err := os.Open(filepath.Join(dir, ReportHTML))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	doc, err := html.Parse(f)
	if err != nil {
		t.Fatal(err)
	}
	var (
		ids             = map[string]bool{}
		svgs, metricRow int
		links           []string
		texts           strings.Builder
		laneNames       []string
	)
	var walk func(n *html.Node, inMetrics bool)
	walk = func(n *html.Node, inMetrics bool) {
		if n.Type == html.ElementNode {
			attr := map[string]string{}
			for _, a := range n.Attr {
				attr[a.Key] = a.Val
			}
			switch n.Data {
			case "script", "iframe", "object", "embed", "link", "img":
				t.Errorf("<%s> in a self-contained report", n.Data)
			case "svg":
				svgs++
			case "section":
				ids[attr["id"]] = true
			case "table":
				inMetrics = attr["class"] == "metrics"
			case "tr":
				if inMetrics && n.Parent != nil && n.Parent.Data == "tbody" {
					metricRow++
				}
			case "a":
				links = append(links, attr["href"])
			case "text":
				if attr["class"] == "lane-name" && n.FirstChild != nil {
					laneNames = append(laneNames, n.FirstChild.Data)
				}
			}
			for k, v := range attr {
				if (k == "src" || k == "href" && !strings.HasPrefix(v, "https://jenkins.example/")) && strings.Contains(v, "//") {
					t.Errorf("<%s %s=%q> reaches outside the page", n.Data, k, v)
				}
				if strings.HasPrefix(k, "on") {
					t.Errorf("event handler %s on <%s>", k, n.Data)
				}
			}
		}
		if n.Type == html.TextNode {
			texts.WriteString(n.Data)
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c, inMetrics)
		}
	}
	walk(doc, false)
	for _, id := range []string{"verdict", "identity", "timeline", "charts", "results", "files"} {
		if !ids[id] {
			t.Errorf("no section %q", id)
		}
	}
	if svgs != 4 {
		t.Errorf("%d inline SVGs, want 4 (timeline and three charts)", svgs)
	}
	if metricRow != 7 {
		t.Errorf("%d metric rows, want 7", metricRow)
	}
	wantLanes := []string{"runner", "job", "install", "GEN_0 (gb200-017,gb200-018)", "CTX_0 (gb200-019)", "DISAGG_SERVER (gb200-017)", "BENCHMARK"}
	if strings.Join(laneNames, "|") != strings.Join(wantLanes, "|") {
		t.Errorf("lanes %q, want %q", laneNames, wantLanes)
	}
	text := texts.String()
	for _, want := range []string{"regressed", "48213", "gb200-[017-019]", "nvcr.io#nvidia/tensorrt-llm/release:1.1.0rc5", "output_throughput at concurrency 64 is 8.0% worse", "Throughput (tok/s)", "P99 TTFT (ms)", "P99 TPOT (ms)", "baseline"} {
		if !strings.Contains(text, want) {
			t.Errorf("the page does not say %q", want)
		}
	}
	files := 0
	for _, l := range links {
		if strings.HasPrefix(l, "https://") {
			continue
		}
		files++
		if _, err := os.Stat(filepath.Join(dir, filepath.FromSlash(l))); err != nil {
			t.Errorf("link %q: %v", l, err)
		}
	}
	if files < 15 {
		t.Errorf("%d file links: %q", files, links)
	}
}

// What is missing is said, never a broken page: no summary.json, no logs.
func TestReportHTMLDegrades(t *testing.T) {
	dir := t.TempDir()
	s := Collect(dir, Run{RunID: "r", TestID: "t[x]", ConcurrencyList: "1"})
	page := RenderHTML(dir, s, time.Now())
	for _, want := range []string{"No timing information", "No values to chart", "no metrics", "no times in summary.json", "No files were collected"} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	if _, err := html.Parse(strings.NewReader(page)); err != nil {
		t.Fatal(err)
	}
}

// A summary without a final state (Slurm forgot the job before its end
// was seen, and keeps no accounting) says so instead of leaving the row
// out.
func TestReportHTMLStateUnknown(t *testing.T) {
	dir := t.TempDir()
	summary := `{"run_id":"r","job_id":"7","test_id":"t[x]","pytest_exit_code":1,"exit_code":1,"reason":"pytest exited 1 (tests failed)"}`
	if err := os.WriteFile(filepath.Join(dir, RunSummaryName), []byte(summary), 0o644); err != nil {
		t.Fatal(err)
	}
	page := RenderHTML(dir, Collect(dir, Run{RunID: "r", TestID: "t[x]"}), time.Now())
	if !strings.Contains(page, "<tr><th>state</th><td>unknown</td></tr>") {
		t.Errorf("page has no state row saying unknown:\n%s", page)
	}
}

// chromium finds a headless Chromium: the test skips without one, except
// in CI (CI=true), where it must be there.
func chromium(t *testing.T) string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("no chromium in CI (.ci/run installs the Debian package chromium)")
	}
	t.Skip("no chromium (apt-get install chromium)")
	return ""
}

// screenshot renders a page with headless Chromium, cut off from any
// network, into a PNG of the window's size.
func screenshot(t *testing.T, page, png string, w, h int) {
	t.Helper()
	bin := chromium(t)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars",
		"--user-data-dir="+t.TempDir(), "--screenshot="+png, fmt.Sprintf("--window-size=%d,%d", w, h),
		"file://"+page)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("chromium: %v\n%s", err, out)
	}
}

// The report as a person sees it: rendered by headless Chromium, it is a
// picture of the window's size with real content (many colours, text
// and charts), not a blank page.
func TestReportHTMLRendered(t *testing.T) {
	dir, _ := exampleSummary(t)
	const w, h = 1280, 1800
	out := filepath.Join(t.TempDir(), "report.png")
	screenshot(t, filepath.Join(dir, ReportHTML), out, w, h)
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	if b := img.Bounds(); b.Dx() != w || b.Dy() != h {
		t.Fatalf("screenshot %v, want %dx%d", b, w, h)
	}
	colours, ink := map[uint32]bool{}, 0
	red := 0
	for y := 0; y < h; y += 2 {
		for x := 0; x < w; x += 2 {
			r, g, b, _ := img.At(x, y).RGBA()
			colours[r>>11<<10|g>>11<<5|b>>11] = true
			if r < 0xf000 || g < 0xf000 || b < 0xf000 {
				ink++
			}
			if r > 0xb000 && g < 0x5000 && b < 0x5000 {
				red++
			}
		}
	}
	if share := float64(ink) / float64(w*h/4); share < 0.05 || len(colours) < 50 {
		t.Errorf("the page looks blank: %.1f%% ink, %d colours", 100*share, len(colours))
	}
	if red == 0 {
		t.Error("no red on a page whose verdict is regressed")
	}
	if top := cropInk(img, 0, 0, w, 60); top == 0 {
		t.Error("nothing at the top of the page")
	}
	if os.Getenv("DISAGG_UPDATE_DOCS") != "" {
		b, _ := os.ReadFile(out)
		if err := os.WriteFile(filepath.Join("..", "..", "docs", "report-example.png"), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func cropInk(img image.Image, x0, y0, x1, y1 int) int {
	n := 0
	for y := y0; y < y1; y++ {
		for x := x0; x < x1; x++ {
			if r, g, b, _ := img.At(x, y).RGBA(); r < 0xc000 && g < 0xc000 && b < 0xc000 {
				n++
			}
		}
	}
	return n
}

// Jenkins serves archived HTML under a Content-Security-Policy that drops
// the inline style sheet: the timeline and charts keep their colours (the
// SVG carries them as attributes) and the page stays readable.
func TestReportHTMLUnderJenkinsCSP(t *testing.T) {
	dir, _ := exampleSummary(t)
	page, err := os.ReadFile(filepath.Join(dir, ReportHTML))
	if err != nil {
		t.Fatal(err)
	}
	csp := `<meta http-equiv="Content-Security-Policy" content="default-src 'none'; img-src 'self'; style-src 'self';">`
	strict := filepath.Join(dir, "strict.html")
	write(t, strict, strings.Replace(string(page), "<head>\n", "<head>\n"+csp+"\n", 1))
	out := filepath.Join(t.TempDir(), "strict.png")
	screenshot(t, strict, out, 1280, 1800)
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	near := func(r, g, b uint32, want [3]uint32) bool {
		d := func(a, b uint32) uint32 {
			if a > b {
				return a - b
			}
			return b - a
		}
		return d(r>>8, want[0]) < 24 && d(g>>8, want[1]) < 24 && d(b>>8, want[2]) < 24
	}
	found := map[string]int{}
	colours := map[string][3]uint32{"running": {0x2d, 0xa4, 0x4e}, "bench": {0xbf, 0x39, 0x89}, "serving": {0x09, 0x69, 0xda}}
	bounds := img.Bounds()
	for y := 0; y < bounds.Dy(); y += 2 {
		for x := 0; x < bounds.Dx(); x += 2 {
			r, g, b, _ := img.At(x, y).RGBA()
			for name, c := range colours {
				if near(r, g, b, c) {
					found[name]++
				}
			}
		}
	}
	for name := range colours {
		if found[name] < 20 {
			t.Errorf("without the style sheet, %s is not drawn in its colour (%d pixels)", name, found[name])
		}
	}
}
