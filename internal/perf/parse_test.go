package perf

import (
	"math"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
)

func readTestdata(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func parseOne(t *testing.T, name string, data []byte) Block {
	t.Helper()
	blocks, problems := ParseBlocks(name, data)
	if len(problems) > 0 {
		t.Fatalf("problems: %v", problems)
	}
	if len(blocks) != 1 {
		t.Fatalf("%d blocks, want 1", len(blocks))
	}
	return blocks[0]
}

// The newest client: total and failed requests, Std Dev, Min/Max/P50 rows
// this runner does not use, and the decoded-tokens section.
func TestParseNewestClient(t *testing.T) {
	b := parseOne(t, "new.log", readTestdata(t, "client-newest.log"))
	want := map[string]float64{
		"total_requests": 160, "successful_requests": 160, "failed_requests": 0, "max_concurrency": 16,
		"duration_s": 41.24, "total_input_tokens": 163840, "total_output_tokens": 163840,
		"request_throughput": 3.88, "output_throughput": 3972.84, "total_token_throughput": 7945.68, "user_throughput": 248.30,
		"decoded_tokens_per_iter": 2.71,
		"ttft_mean":               812.40, "ttft_median": 790.12, "ttft_std": 88.03, "ttft_p99": 1189.07,
		"tpot_mean": 3.23, "tpot_median": 3.21, "tpot_std": 0.12, "tpot_p99": 3.61,
		"itl_mean": 8.75, "itl_median": 8.70, "itl_std": 1.02, "itl_p99": 12.44,
		"e2el_mean": 4115.61, "e2el_median": 4101.30, "e2el_std": 120.40, "e2el_p99": 4512.88,
	}
	if !reflect.DeepEqual(b.Values, want) {
		t.Errorf("values\n got %v\nwant %v", b.Values, want)
	}
	if b.Line != 5 || !b.Terminated || b.Concurrency() != 16 || len(b.Incomplete()) != 0 {
		t.Errorf("line %d terminated %v concurrency %d incomplete %v", b.Line, b.Terminated, b.Concurrency(), b.Incomplete())
	}
}

// The older client prints one "Avg Decoded Tokens per Iter:" row; gen-only
// adds the device step time.
func TestParseOlderClientGenOnly(t *testing.T) {
	b := parseOne(t, "old.log", readTestdata(t, "client-older.log"))
	if b.Values["decoded_tokens_per_iter"] != 1.00 || b.Values["device_step_time"] != 13.90 {
		t.Errorf("decoded %v step %v", b.Values["decoded_tokens_per_iter"], b.Values["device_step_time"])
	}
	if _, ok := b.Values["ttft_std"]; ok {
		t.Error("std invented")
	}
	if len(b.Incomplete()) != 0 {
		t.Errorf("incomplete: %v", b.Incomplete())
	}
}

// A client without "Failed requests:" and "User throughput" rows: read,
// but incomplete (a core metric is missing).
func TestParseClientWithoutFailedAndUserThroughput(t *testing.T) {
	b := parseOne(t, "nf.log", readTestdata(t, "client-nofailed.log"))
	if b.Failed() != 0 || b.Values["output_throughput"] != 434.40 {
		t.Errorf("failed %v output %v", b.Failed(), b.Values["output_throughput"])
	}
	if got := b.Incomplete(); !reflect.DeepEqual(got, []string{"missing user_throughput"}) {
		t.Errorf("incomplete %q", got)
	}
}

func TestParseFailedRequests(t *testing.T) {
	v := sampleValues(8, 1)
	v["failed_requests"] = 3
	data := strings.Replace(FormatBlock(v), "User throughput", "=======================!FAILED REQUESTS!=======================\nTotal failed requests: 3\n=====================!CHECK LOG FOR ERRORS!====================\nUser throughput", 1)
	b := parseOne(t, "f.log", []byte(data))
	if got := b.Incomplete(); !reflect.DeepEqual(got, []string{"3 failed requests"}) {
		t.Errorf("incomplete %q", got)
	}
	// Without a "Failed requests:" row, total minus successful.
	delete(v, "failed_requests")
	v["total_requests"], v["successful_requests"] = 10, 7
	if b := parseOne(t, "f.log", []byte(FormatBlock(v))); b.Failed() != 3 {
		t.Errorf("failed %v", b.Failed())
	}
}

// Lines carrying a launcher's prefix, Windows line ends, and another
// process's lines in between.
func TestParsePrefixedInterleaved(t *testing.T) {
	v := sampleValues(4, 1)
	var sb strings.Builder
	for i, l := range strings.Split(strings.TrimSuffix(FormatBlock(v), "\n"), "\n") {
		sb.WriteString("[1,0]<stdout>:" + l + "\r\n")
		if i == 3 {
			sb.WriteString("INFO: 127.0.0.1:5000 - \"POST /v1/completions HTTP/1.1\" 200 OK\r\n")
		}
	}
	b := parseOne(t, "job-output.log", []byte("before\n"+sb.String()+"after\n"))
	if !reflect.DeepEqual(b.Values, v) || b.Line != 2 {
		t.Errorf("line %d values\n got %v\nwant %v", b.Line, b.Values, v)
	}
}

func TestParseMalformed(t *testing.T) {
	v := sampleValues(2, 1)
	good := FormatBlock(v)
	bad := strings.Replace(good, "Mean TTFT (ms):                          ", "Mean TTFT (ms):                          x", 1)
	cut := strings.Join(strings.Split(good, "\n")[:10], "\n")
	cases := []struct {
		name, data string
		blocks     int
		want       []string
	}{
		{"not a number", bad, 1, []string{`metrics unreadable: m.log:13: Mean TTFT (ms) "x240.00" is not a number`}},
		{"cut off", cut, 1, []string{"metrics unreadable: m.log:1: result block is cut off: the log ends before its closing line of 50 '='"}},
		{"next header", cut + "\n" + good, 2, []string{"metrics unreadable: m.log:1: result block has no closing line of 50 '=' before the next block (line 11)"}},
		{"twice", strings.Replace(good, "Mean TPOT", "Mean TTFT", 1), 1, nil},
		{"nan", strings.Replace(good, "Mean ITL (ms):                           ", "Mean ITL (ms):                           nan", 1), 1, nil},
		{"no block", "nothing here\n", 0, nil},
		{"empty", "", 0, nil},
	}
	for _, c := range cases {
		blocks, problems := ParseBlocks("m.log", []byte(c.data))
		if len(blocks) != c.blocks {
			t.Errorf("%s: %d blocks, want %d", c.name, len(blocks), c.blocks)
		}
		var got []string
		for _, p := range problems {
			got = append(got, p.String())
		}
		if c.want != nil && !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: problems\n got %q\nwant %q", c.name, got, c.want)
		}
		if c.want == nil && c.blocks > 0 && len(got) != 1 {
			t.Errorf("%s: problems %q, want one", c.name, got)
		}
	}
	if blocks, _ := ParseBlocks("m.log", []byte(cut)); len(blocks[0].Incomplete()) == 0 || blocks[0].Terminated {
		t.Error("a cut-off block is complete")
	}
}

// FormatBlock has the client's exact layout: 40-column labels, a space,
// 10-column values (trailing spaces), Python's centred separators.
func TestFormatBlockLayout(t *testing.T) {
	client := readTestdata(t, "client-newest.log")
	// The client's block without the rows this runner does not keep.
	var want []string
	for _, l := range strings.SplitAfter(string(client), "\n")[4:] {
		if !regexp.MustCompile(`^(Min|Max|P50|Median Avg|P99 Avg) `).MatchString(l) && l != "" {
			want = append(want, l)
		}
	}
	if got := FormatBlock(parseOne(t, "new.log", client).Values); got != strings.Join(want, "") {
		t.Errorf("layout differs\n got:\n%s\nwant:\n%s", got, strings.Join(want, ""))
	}
}

// sampleValues is a complete block for concurrency c, scaled by f.
func sampleValues(c int, f float64) map[string]float64 {
	v := map[string]float64{
		"successful_requests": float64(10 * c), "failed_requests": 0, "max_concurrency": float64(c),
		"duration_s": 60, "total_input_tokens": float64(10240 * c), "total_output_tokens": float64(10240 * c),
	}
	round := func(x float64) float64 { return math.Round(x*100) / 100 }
	v["request_throughput"] = round(0.17 * float64(c) * f)
	v["output_throughput"] = round(170 * float64(c) * f)
	v["total_token_throughput"] = round(340 * float64(c) * f)
	v["user_throughput"] = round(170 * f)
	for i, g := range []string{"ttft", "tpot", "itl", "e2el"} {
		base := []float64{200, 5.5, 5.4, 6000}[i] * (1 + 0.1*float64(c)) / f
		v[g+"_mean"], v[g+"_median"], v[g+"_p99"] = round(base), round(base*0.98), round(base*1.4)
	}
	return v
}

// A job log holds lines far longer than any result block's (a rank's
// progress bar): they are skipped, not held, and the lines after them
// keep their numbers.
func TestParseBlocksFromSkipsOverlongLines(t *testing.T) {
	values := map[string]float64{"successful_requests": 8, "failed_requests": 0, "max_concurrency": 8}
	for _, k := range CoreKeys() {
		values[k] = 42
	}
	long := strings.Repeat("#", 3*lineMax) + "\n"
	log := "first\n" + long + FormatBlock(values) + "\n" + long
	blocks, problems := ParseBlocksFrom("job-output.log", strings.NewReader(log))
	if len(problems) != 0 || len(blocks) != 1 {
		t.Fatalf("blocks %d, problems %v", len(blocks), problems)
	}
	if b := blocks[0]; b.Line != 3 || !b.Terminated || b.Values["output_throughput"] != 42 {
		t.Errorf("block %+v", b)
	}
}
