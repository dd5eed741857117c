package perf

import (
	"bytes"
	"io"

	"github.com/disagg-runner/disagg-runner/internal/needle"
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
	// needles, when set, are in every line fn needs, except while busy
	// (when set) says every line matters: the whole lines before the next
	// needle are counted, not passed. A job log is mostly lines that do
	// not matter, and one search of a piece costs less than a call per
	// line.
	needles  *needle.Finder
	busy     func() bool
	n        int    // lines passed so far
	part     []byte // the start of a line cut between pieces
	overlong bool   // the current line reached lineMax: it is passed as nil
}

// Write never fails.
func (s *lineSplitter) Write(p []byte) (int, error) {
	if s.needles != nil {
		s.needles.Reset()
	}
	pos := 0
	for pos < len(p) {
		i := bytes.IndexByte(p[pos:], '\n')
		if i < 0 {
			s.hold(p[pos:])
			break
		}
		if len(s.part) == 0 && !s.overlong {
			s.emit(p[pos : pos+i])
		} else {
			s.hold(p[pos : pos+i])
			s.emit(s.part)
		}
		pos += i + 1
		if s.needles == nil || s.busy != nil && s.busy() {
			continue
		}
		// pos starts a line: the whole lines before the next needle go
		// at once.
		next := s.needles.Next(p, pos)
		if last := bytes.LastIndexByte(p[pos:next], '\n'); last >= 0 {
			s.n += bytes.Count(p[pos:pos+last+1], []byte{'\n'})
			pos += last + 1
		}
	}
	return len(p), nil
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
