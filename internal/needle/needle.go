// Package needle finds where the next of a few fixed strings occurs in a
// piece of a stream, searching the piece at most once per string however
// many times it is asked: the line scanners ask after every line they
// take, and a search that started again each time would read a piece
// once per line.
package needle

import "bytes"

// Finder remembers, for the piece it was last Reset for, where each
// needle occurs next.
type Finder struct {
	needles [][]byte
	next    []int // offset of the needle's next occurrence; none: -1; not searched yet: -2
	read    int   // bytes handed to bytes.Index since New, for the tests
}

// New returns a Finder of these needles, none empty.
func New(needles ...string) *Finder {
	f := &Finder{next: make([]int, len(needles))}
	for _, n := range needles {
		if n == "" {
			panic("needle: empty needle")
		}
		f.needles = append(f.needles, []byte(n))
	}
	f.Reset()
	return f
}

// Reset starts a new piece: what was found in the last one is forgotten.
// It must be called before Next is asked about a new piece, even one in
// the same buffer.
func (f *Finder) Reset() {
	for i := range f.next {
		f.next[i] = -2
	}
}

// Next returns the offset in p of the first needle that starts at from or
// after it, or len(p) when none does. Between two Resets, p must be the
// same piece and from must not go back.
func (f *Finder) Next(p []byte, from int) int {
	first := len(p)
	for i, n := range f.needles {
		if f.next[i] == -2 || f.next[i] >= 0 && f.next[i] < from {
			f.next[i] = -1
			f.read += len(p) - from
			if k := bytes.Index(p[from:], n); k >= 0 {
				f.next[i] = from + k
			}
		}
		if f.next[i] >= 0 && f.next[i] < first {
			first = f.next[i]
		}
	}
	return first
}
