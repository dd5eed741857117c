package perf

import (
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// FuzzParseBlocks feeds the parser arbitrary bytes. It must never fail,
// and what it reports must hold: blocks and problems point at real lines
// in order, problems are one line each, values are finite and known, and
// garbage before a well-formed block never hides or alters it.
func FuzzParseBlocks(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "*.log"))
	for _, name := range files {
		if b, err := os.ReadFile(name); err == nil {
			f.Add(b)
		}
	}
	good := FormatBlock(sampleValues(4, 1))
	f.Add([]byte(good[:len(good)/2]))
	f.Add([]byte("x" + Header + "\nx" + Footer + "\n"))
	f.Add([]byte(Header + "\nMean TTFT (ms): 1e999\nMean TTFT (ms): 1\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		lines := strings.Count(string(data), "\n") + 1
		blocks, problems := ParseBlocks("f.log", data)
		prev := 0
		for _, b := range blocks {
			if b.Line <= prev || b.Line > lines || b.File != "f.log" {
				t.Fatalf("block at line %d after %d (of %d lines)", b.Line, prev, lines)
			}
			prev = b.Line
			for k, v := range b.Values {
				if math.IsNaN(v) || math.IsInf(v, 0) {
					t.Fatalf("%s = %v", k, v)
				}
				if metricByKey[k] == nil && !countKeys[k] {
					t.Fatalf("unknown key %q", k)
				}
			}
			if inc := b.Incomplete(); len(inc) == 0 && (len(b.Missing()) > 0 || b.Failed() > 0 || !b.Terminated) {
				t.Fatalf("complete block with missing %v, failed %v, terminated %v", b.Missing(), b.Failed(), b.Terminated)
			}
		}
		for _, p := range problems {
			if p.Line < 1 || p.Line > lines || strings.ContainsAny(p.String(), "\n") || !strings.HasPrefix(p.String(), "metrics unreadable: f.log:") {
				t.Fatalf("problem %q (of %d lines)", p.String(), lines)
			}
		}

		want := sampleValues(8, 1.5)
		all, _ := ParseBlocks("f.log", append(append(data, '\n'), FormatBlock(want)...))
		if len(all) == 0 {
			t.Fatal("the appended block was not found")
		}
		last := all[len(all)-1]
		if !last.Terminated || !reflect.DeepEqual(last.Values, want) {
			t.Fatalf("appended block read as %v (terminated %v)", last.Values, last.Terminated)
		}
	})
}
