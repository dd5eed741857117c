package needle

import (
	"math/rand/v2"
	"strings"
	"testing"
)

// Next agrees with a plain search from scratch at every position asked.
func TestNextMatchesAFreshSearch(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	words := []string{"ab", "abc", "x", "c", "--- ", "-----", "b"}
	needles := []string{"abc", "-----", "cab"}
	f := New(needles...)
	for range 200 {
		var b strings.Builder
		for range rng.IntN(60) {
			b.WriteString(words[rng.IntN(len(words))])
		}
		p := []byte(b.String())
		f.Reset()
		for from := 0; from <= len(p); from += rng.IntN(4) {
			want := len(p)
			for _, n := range needles {
				if k := strings.Index(string(p[from:]), n); k >= 0 && from+k < want {
					want = from + k
				}
			}
			if got := f.Next(p, from); got != want {
				t.Fatalf("%q from %d: %d, want %d", p, from, got, want)
			}
		}
	}
}

// A piece is read about once per needle, however often Next is asked.
func TestNextSearchesAPieceOnce(t *testing.T) {
	p := []byte(strings.Repeat("line without any of them\n", 4000) + "----- marker\n")
	f := New("=====", "-----", "Rank0")
	f.Reset()
	calls := 0
	for from := 0; from < len(p); from += 25 {
		if got := f.Next(p, from); got != len(p)-len("----- marker\n") {
			t.Fatalf("from %d: %d", from, got)
		}
		calls++
	}
	if calls < 4000 || f.read > 3*len(p) {
		t.Errorf("%d calls read %d bytes of a %d-byte piece: want each needle to search it once", calls, f.read, len(p))
	}
}
