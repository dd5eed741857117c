package runner

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sync"
	"time"

	"github.com/disagg-runner/disagg-runner/internal/perf"
	"github.com/disagg-runner/disagg-runner/internal/verdict"
	"github.com/disagg-runner/disagg-runner/prefix"
	"github.com/disagg-runner/disagg-runner/sbatch"
)

// follow streams the job log (and the role logs) while watching the
// state, and returns the final state once the job ended and the streams
// drained.
func (j *jobRun) follow(ctx context.Context) (sbatch.JobState, error) {
	stop := make(chan struct{})
	waitStreams := j.startStreams(ctx, stop)
	reporter := newStateReporter(j.con, j.id)
	pendingDone := make(chan struct{})
	go j.repeatPending(ctx, reporter, pendingDone)
	final, err := j.cluster.Watch(ctx, j.id, path.Join(j.ws, FinishedName), reporter.changed)
	j.out.EndNoticed = time.Now()
	close(pendingDone)
	close(stop)
	waitStreams()
	j.con.Flush()
	return final, err
}

// startStreams starts the job-log stream, and with FollowRoles one per
// role-log folder; they end once stop closes and they have drained. The
// function returned waits for that.
func (j *jobRun) startStreams(ctx context.Context, stop <-chan struct{}) (wait func()) {
	var wg sync.WaitGroup
	jobLog := j.con.Out
	var lw *lineWriter
	if j.opt.FollowRoles {
		// Role lines arrive whole; the job log in chunks. Hold its partial
		// lines back so that the two never mix within a line.
		lw = &lineWriter{w: j.con.Out}
		jobLog = lw
	}
	keep := j.keepJobLog()
	sinks := []io.Writer{jobLog, keep}
	if j.con.row != nil {
		sinks = append(sinks, j.con.row)
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		_, err := j.cluster.Follow(ctx, path.Join(j.ws, prefix.JobLogName), io.MultiWriter(sinks...), stop)
		if err != nil && ctx.Err() == nil {
			j.con.Log.Warn("job log streaming stopped", "err", err)
		}
		keep.finish(err)
	}()
	if j.opt.FollowRoles {
		for _, dir := range roleLogDirs(j.ws, j.testID) {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := j.cluster.FollowMany(ctx, dir, roleLogPattern, j.con.Out, stop); err != nil && ctx.Err() == nil {
					j.con.Log.Warn("role log streaming stopped", "dir", dir, "err", err)
				}
			}()
		}
	}
	return func() {
		wg.Wait()
		if lw != nil {
			lw.Flush()
		}
	}
}

// keptLog is the results folder's copy of the job log, written as it
// streams, so that collecting does not fetch the log a second time. A
// failure to write it never stops the stream to the console: the copy is
// then fetched as before.
//
// Everything else the run needs from the job log is taken from the same
// bytes as they pass, so that a log of gigabytes is read once: the
// verdict's facts (from the log as it came, so that a copy that could not
// be written, a full disk, does not cost the verdict its evidence), and,
// from the log as masked, the copy itself (masked as maskFile would mask
// it, so that collecting need not rewrite it) and the benchmark's blocks
// and timeline (perf.JobLogScan).
type keptLog struct {
	f        *os.File
	buf      *bufio.Writer
	err      error
	facts    *verdict.LogScanner
	masker   lineMasker
	scan     *perf.JobLogScan
	streamed bool // the stream ran to the end: facts and scan saw every byte
	complete bool // ... and every byte was kept in the file
}

func (k *keptLog) Write(p []byte) (int, error) {
	k.facts.Write(p)
	k.masker.Write(p)
	// The buffer only gathers the masker's pieces of one delivery: someone
	// tailing the results copy sees each delivery's whole lines at once.
	if k.buf != nil && k.err == nil {
		k.err = k.buf.Flush()
	}
	return len(p), nil
}

// keep takes the log's bytes once masked.
func (k *keptLog) keep(p []byte) {
	k.scan.Write(p)
	if k.buf != nil && k.err == nil {
		_, k.err = k.buf.Write(p)
	}
}

func (k *keptLog) finish(followErr error) {
	k.streamed = followErr == nil
	k.masker.flush()
	k.scan.End()
	if k.f == nil {
		return
	}
	if k.err == nil {
		k.err = k.buf.Flush()
	}
	if err := k.f.Close(); k.err == nil {
		k.err = err
	}
	k.complete = k.streamed && k.err == nil
}

// keepJobLog opens the results folder's copy of the job log (fresh: a
// re-attached run streams from byte 0 again).
func (j *jobRun) keepJobLog() *keptLog {
	k := &keptLog{facts: verdict.NewLogScanner(), scan: perf.NewJobLogScan()}
	k.masker.emit = k.keep
	j.kept = k
	if err := os.MkdirAll(j.resultsDir, 0o755); err != nil {
		k.err = err
		return k
	}
	k.f, k.err = os.Create(filepath.Join(j.resultsDir, prefix.JobLogName))
	if k.f != nil {
		k.buf = bufio.NewWriterSize(k.f, maskPiece)
	}
	return k
}

// stateReporter logs the job's state changes and remembers the last one
// for the pending reminder.
type stateReporter struct {
	con        *Console
	id         sbatch.JobID
	mu         sync.Mutex
	last       sbatch.JobState
	lastReport time.Time
}

func newStateReporter(con *Console, id sbatch.JobID) *stateReporter {
	return &stateReporter{con: con, id: id, lastReport: time.Now()}
}

func (s *stateReporter) changed(st sbatch.JobState) {
	s.mu.Lock()
	same := s.last.State == st.State && s.last.Restarts == st.Restarts && s.last.Reason == st.Reason && s.last.NodeList == st.NodeList
	s.last, s.lastReport = st, time.Now()
	s.mu.Unlock()
	if same {
		return
	}
	if s.con.row != nil {
		s.con.row.changed(st)
	}
	switch {
	case st.Held():
		// A CI job would otherwise sit silently until Jenkins' own timeout.
		s.con.Log.Warn("job "+st.State+", held: it starts only once released", "job", s.id, "reason", st.Reason, "restarts", st.Restarts,
			"fix", "scontrol release "+string(s.id)+" (or scancel "+string(s.id)+")")
	case st.State == "PENDING":
		s.con.Log.Info("job PENDING", "job", s.id, "reason", st.Reason, "expected_start", timeText(st.ExpectedStart), "restarts", st.Restarts)
	case st.State == "RUNNING":
		s.con.Log.Info("job RUNNING", "job", s.id, "nodes", st.NodeList)
	default:
		s.con.Log.Info("job "+st.State, "job", s.id, "exit_code", fmt.Sprintf("%d:%d", st.ExitCode, st.Signal), "end", timeText(st.End))
	}
}

// pendingDue reports whether a PENDING job has gone unreported for half
// the reminder interval.
func (s *stateReporter) pendingDue(every time.Duration) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last.State == "PENDING" && time.Since(s.lastReport) >= every/2
}

func (s *stateReporter) reported() {
	s.mu.Lock()
	s.lastReport = time.Now()
	s.mu.Unlock()
}

// repeatPending repeats, while the job waits, why and until when, asking
// Slurm afresh (2 controller RPCs every few minutes): Watch itself asks
// the controller rarely, so its reason may be the one from submission.
func (j *jobRun) repeatPending(ctx context.Context, s *stateReporter, done <-chan struct{}) {
	every := j.opt.PendingEvery
	if every <= 0 {
		every = 3 * time.Minute
	}
	ticker := time.NewTicker(every)
	defer ticker.Stop()
	for {
		select {
		case <-done:
			return
		case <-ticker.C:
		}
		if !s.pendingDue(every) {
			continue
		}
		st, err := j.cluster.Query(ctx, j.id)
		if err != nil || st.State != "PENDING" {
			continue
		}
		j.con.Log.Info("still PENDING", "job", j.id, "reason", st.Reason, "expected_start", timeText(st.ExpectedStart))
		s.reported()
	}
}

// roleLogPattern matches the per-role logs (gen_server_0.log,
// ctx_server_0.log, disagg_server.log) that both draft generations write.
const roleLogPattern = "*_server*.log"

// roleLogDirs are where they are: v1 drafts write them to the job
// workspace, v2 drafts to the per-test output folder below it.
func roleLogDirs(ws, testID string) []string {
	dirs := []string{ws}
	if b := perf.TestFolder(testID); b != "" {
		dirs = append(dirs, path.Join(ws, b))
	}
	return dirs
}

// lineWriter passes on whole lines only; Flush writes the rest.
type lineWriter struct {
	w       io.Writer
	pending []byte
}

func (l *lineWriter) Write(p []byte) (int, error) {
	l.pending = append(l.pending, p...)
	if i := bytes.LastIndexByte(l.pending, '\n'); i >= 0 {
		if _, err := l.w.Write(l.pending[:i+1]); err != nil {
			return 0, err
		}
		l.pending = append([]byte(nil), l.pending[i+1:]...)
	}
	return len(p), nil
}

// Flush writes a last partial line.
func (l *lineWriter) Flush() {
	if len(l.pending) > 0 {
		l.w.Write(l.pending)
		l.pending = nil
	}
}

func timeText(t time.Time) string {
	if t.IsZero() {
		return "unknown"
	}
	return t.Format(time.RFC3339)
}
