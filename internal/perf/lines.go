package perf

import (
	"bytes"
	"io"
)

// lineMax bounds the lines perf looks at: a result block's lines and the
// lines the timeline needs are short, and a longer one (a rank's progress
// bar, say) is passed over rather than held, so that a job log of
// gigabytes is read in constant memory.
const lineMax = 64 << 10

// eachLine calls fn with each line of r, numbered from 1 and without its
// newline, cut as strings.Split would cut r (the piece after a final
// newline too, empty). A line of lineMax bytes or more is passed as nil.
// The slice is valid only during the call. It returns a read error other
// than io.EOF, with the number of the line it cut short.
func eachLine(r io.Reader, fn func(n int, line []byte)) (int, error) {
	s := lineSplitter{fn: fn}
	_, err := io.CopyBuffer(&s, r, make([]byte, 256<<10))
	return s.close(), err
}

// lineSplitter is eachLine for bytes written to it in pieces of any size,
// as a stream delivers them: a line inside one piece is passed where it
// lies, and only a line cut between pieces is copied (up to lineMax).
type lineSplitter struct {
	fn func(n int, line []byte)
	// quiet, when set, may say that none of the whole lines in a region
	// matter to fn: they are then counted, not passed. A job log is mostly
	// lines that do not, and one look at 32 KiB costs less than a call
	// per line.
	quiet    func(region []byte) bool
	n        int    // lines passed so far
	part     []byte // the start of a line cut between pieces
	overlong bool   // the current line reached lineMax: it is passed as nil
}

// Write never fails.
func (s *lineSplitter) Write(p []byte) (int, error) {
	size := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			s.hold(p)
			break
		}
		if len(s.part) == 0 && !s.overlong {
			s.emit(p[:i])
		} else {
			s.hold(p[:i])
			s.emit(s.part)
		}
		p = p[i+1:]
		if s.quiet == nil {
			continue
		}
		// p starts a line: the whole lines up to its last newline are one
		// region.
		if last := bytes.LastIndexByte(p, '\n'); last >= 0 && s.quiet(p[:last]) {
			s.n += bytes.Count(p[:last+1], []byte{'\n'})
			p = p[last+1:]
		}
	}
	return size, nil
}

func (s *lineSplitter) hold(p []byte) {
	if s.overlong {
		return
	}
	if len(s.part)+len(p) >= lineMax {
		s.overlong, s.part = true, s.part[:0]
		return
	}
	s.part = append(s.part, p...)
}

func (s *lineSplitter) emit(line []byte) {
	s.n++
	if s.overlong || len(line) >= lineMax {
		line = nil
	}
	s.fn(s.n, line)
	s.part, s.overlong = s.part[:0], false
}

// close passes the piece after the last newline (empty when the stream
// ended with one) and returns the number of lines passed in all.
func (s *lineSplitter) close() int {
	s.emit(s.part)
	return s.n
}
