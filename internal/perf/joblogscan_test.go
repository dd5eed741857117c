package perf

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/disagg-runner/disagg-runner/internal/needle"
)

// writeInPieces writes data to w in pieces of random sizes up to max.
func writeInPieces(t *testing.T, w interface{ Write([]byte) (int, error) }, data []byte, max int, rng *rand.Rand) {
	t.Helper()
	for len(data) > 0 {
		n := min(1+rng.IntN(max), len(data))
		if k, err := w.Write(data[:n]); k != n || err != nil {
			t.Fatalf("Write: %d, %v", k, err)
		}
		data = data[n:]
	}
}

// However a stream cuts the log, the lines come out as strings.Split
// cuts the whole, with every line of lineMax bytes or more passed empty.
func TestLineSplitterAnyPieces(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var b strings.Builder
	for _, n := range []int{0, 1, 5, 0, lineMax - 1, lineMax, lineMax + 1, 17, 3 * lineMax, 2, lineMax - 2} {
		b.WriteString(strings.Repeat("x", n))
		b.WriteString("\n")
	}
	for _, tail := range []string{"", "last line without newline", strings.Repeat("y", lineMax)} {
		data := []byte(b.String() + tail)
		var want []string
		for _, l := range strings.Split(string(data), "\n") {
			if len(l) >= lineMax {
				l = ""
			}
			want = append(want, l)
		}
		for _, max := range []int{1 << 20, 70000, 4096, 3} {
			var got []string
			s := lineSplitter{fn: func(n int, line []byte) {
				if n != len(got)+1 {
					t.Fatalf("line %d numbered %d", len(got)+1, n)
				}
				got = append(got, string(line))
			}}
			writeInPieces(t, &s, data, max, rng)
			if n := s.close(); n != len(want) {
				t.Errorf("tail %.10q, pieces up to %d: close says %d lines, want %d", tail, max, n, len(want))
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("tail %.10q, pieces up to %d: lines differ from strings.Split", tail, max)
			}
			if cap(s.part) > 2*lineMax {
				t.Errorf("pieces up to %d: held %d bytes for a line", max, cap(s.part))
			}
		}
	}
}

// A splitter told what the lines that matter hold passes them with the
// numbers they have in the whole, skips the others, and counts right.
func TestLineSplitterSkipsQuietRegions(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	var lines []string
	for i := range 5000 {
		switch {
		case i%997 == 0:
			lines = append(lines, fmt.Sprintf("keep %d", i))
		case i%1301 == 0:
			lines = append(lines, strings.Repeat("k", lineMax+5)+"keep, but too long")
		default:
			lines = append(lines, strings.Repeat("filler ", rng.IntN(20)))
		}
	}
	data := []byte(strings.Join(lines, "\n"))
	var want []string
	for i, l := range lines {
		if strings.Contains(l, "keep") && len(l) < lineMax {
			want = append(want, fmt.Sprintf("%d %s", i+1, l))
		}
	}
	for _, max := range []int{len(data), 32 << 10, 500, 1} {
		var got []string
		passed := 0
		s := lineSplitter{
			fn: func(n int, line []byte) {
				passed++
				if bytes.Contains(line, []byte("keep")) {
					got = append(got, fmt.Sprintf("%d %s", n, line))
				}
			},
			needles: needle.New("keep"),
		}
		writeInPieces(t, &s, data, max, rng)
		if n := s.close(); n != len(lines) {
			t.Errorf("pieces up to %d: %d lines counted, want %d", max, n, len(lines))
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("pieces up to %d: lines\n got %q\nwant %q", max, got, want)
		}
		if max > 100 && passed > len(lines)/2 {
			t.Errorf("pieces up to %d: %d of %d lines passed one by one: want the quiet ones skipped", max, passed, len(lines))
		}
	}
}

// A job log scanned as it streamed gives Collect and the report's timeline
// what reading the file gives, and the file is then not read again.
func TestCollectFromStreamedJobLog(t *testing.T) {
	dir, _ := exampleRun(t)
	ri := ReadRunInfo(dir)
	run := Run{RunID: ri.RunID, JobID: ri.JobID, TestID: ri.TestID, ConcurrencyList: "1 2 4 8 16 32 64", Time: ri.Ended}
	logPath := filepath.Join(dir, JobLogName)
	orig, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	// The per-concurrency logs out of the way: every block from the job log,
	// and one more cut off at the end, so that its problem comes through.
	if err := os.RemoveAll(filepath.Join(dir, "disagg_upload-e2e-deepseek-r1-fp4_1k1k_ctx1_gen1_dep8")); err != nil {
		t.Fatal(err)
	}
	data := append(bytes.Clone(orig), Header+"\nprinted just before the end"...)
	write(t, logPath, string(data))
	fromFile := Collect(dir, run)
	tlFile := BuildTimeline(dir, ri, fromFile)
	if fromFile.Source != "the job log" || len(fromFile.Concurrencies) != 7 || len(fromFile.Problems) != 2 {
		t.Fatalf("the case does not test what it should: source %q, %d points, problems %q", fromFile.Source, len(fromFile.Concurrencies), fromFile.Problems)
	}
	if len(tlFile.Lanes) < 5 {
		t.Fatalf("the case does not test what it should: timeline lanes %+v", tlFile.Lanes)
	}
	// Once scanned, the file says nothing: what Collect finds is the scan's.
	write(t, logPath, "")
	rng := rand.New(rand.NewPCG(3, 4))
	for _, max := range []int{len(data), 4096, 100, 1} {
		t.Run(fmt.Sprintf("pieces_up_to_%d", max), func(t *testing.T) {
			scan := NewJobLogScan()
			writeInPieces(t, scan, data, max, rng)
			scan.End()
			run := run
			run.JobLog = scan
			got := Collect(dir, run)
			if g, w := got.MarshalIndent(), fromFile.MarshalIndent(); !bytes.Equal(g, w) {
				t.Errorf("summary from the stream:\n%s\nfrom the file:\n%s", g, w)
			}
			if tl := BuildTimeline(dir, ri, got); !reflect.DeepEqual(tl, tlFile) {
				t.Errorf("timeline from the stream:\n%+v\nfrom the file:\n%+v", tl, tlFile)
			}
		})
	}
	// A scan not ended is not a whole log: Collect reads the file.
	scan := NewJobLogScan()
	scan.Write(data)
	run.JobLog = scan
	if got := Collect(dir, run); got.Source != "none" {
		t.Errorf("an unended scan was used: source %q", got.Source)
	}
}
