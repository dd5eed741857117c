package perf

import "github.com/disagg-runner/disagg-runner/internal/needle"

// JobLogScan takes what Collect and the report's timeline need from a job
// log written to it as it streams, so that a log of gigabytes is not read
// again once it has arrived. It holds a line at a time, plus the result
// blocks and the few timeline lines it finds.
type JobLogScan struct {
	split    lineSplitter
	blocks   blockParser
	timeline jobLogFacts
	ended    bool
}

// NewJobLogScan starts a scan of JobLogName from its first byte.
func NewJobLogScan() *JobLogScan {
	s := &JobLogScan{blocks: blockParser{name: JobLogName}}
	s.split.fn = func(n int, line []byte) {
		s.blocks.line(n, line)
		s.timeline.take(line)
	}
	// Inside a result block every line counts.
	s.split.busy = func() bool { return s.blocks.cur != nil }
	s.split.needles = needle.New(scanNeedles...)
	return s
}

// scanNeedles are in every line that blockParser.line and jobLogFacts.take
// look at outside a block (pieces of headerMark and of their tests).
var scanNeedles = []string{"Benchmark Result", "Install script failed", "Started ", "benchmark client at concurrency "}

// Write takes the next bytes of the log; it never fails.
func (s *JobLogScan) Write(p []byte) (int, error) {
	if s.ended {
		panic("perf: JobLogScan written after End")
	}
	return s.split.Write(p)
}

// End says the log is complete: its last line, even without a newline,
// is taken, and a block still open is cut off. Only an ended scan may
// stand in for the file.
func (s *JobLogScan) End() {
	if s.ended {
		return
	}
	s.ended = true
	s.split.close()
	s.blocks.end()
}
