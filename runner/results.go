package runner

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/disagg-runner/disagg-runner/internal/atomicfile"
	"github.com/disagg-runner/disagg-runner/internal/perf"
	"github.com/disagg-runner/disagg-runner/internal/verdict"
	"github.com/disagg-runner/disagg-runner/prefix"
)

// Outcome is what a finished run learned; it is also written as the
// machine-readable summary.
type Outcome struct {
	RunID         string    `json:"run_id"`
	Test          string    `json:"test,omitempty"` // within a run of several
	JobID         string    `json:"job_id,omitempty"`
	Profile       string    `json:"profile"`
	Config        string    `json:"config"`
	TestID        string    `json:"test_id"`
	Transport     string    `json:"transport,omitempty"`
	JobWorkspace  string    `json:"job_workspace"`
	State         string    `json:"state,omitempty"`
	StateSource   string    `json:"state_source,omitempty"` // which Slurm command gave the final state
	CancelledBy   string    `json:"cancelled_by,omitempty"`
	SlurmExitCode string    `json:"slurm_exit_code,omitempty"`
	Nodes         string    `json:"nodes,omitempty"`
	PytestCode    int       `json:"pytest_exit_code"`
	PytestSource  string    `json:"pytest_exit_code_source,omitempty"`
	ExitCode      int       `json:"exit_code"`
	Reason        string    `json:"reason"`
	Submitted     time.Time `json:"submitted,omitzero"`
	Started       time.Time `json:"started,omitzero"`
	Ended         time.Time `json:"ended,omitzero"`
	EndNoticed    time.Time `json:"end_noticed,omitzero"`
	RunnerStarted time.Time `json:"runner_started"`
	RunnerEnded   time.Time `json:"runner_ended"`
	ResultsDir    string    `json:"results_dir"`
	Fetched       []string  `json:"fetched,omitempty"`
	Missing       []string  `json:"missing,omitempty"`
	// Unmasked lists result files removed because a secret in them could
	// not be masked (the run then fails rather than archive them).
	Unmasked   []string `json:"unmasked,omitempty"`
	BuildURL   string   `json:"build_url,omitempty"`
	Reattached bool     `json:"reattached,omitempty"`
}

// collect is stage 7: copy back what Jenkins archives, mask secrets in
// it, and gather the verdict's evidence. A failure is logged and the
// verdict still runs on whatever arrived.
func (j *jobRun) collect(ctx context.Context) error {
	// The verdict's facts from the stream, when it ran to the end, stand
	// whatever happens to the local copies below (a full disk).
	if j.kept != nil && j.kept.streamed {
		j.ev.Log = j.kept.facts.Facts()
	}
	if err := os.MkdirAll(j.resultsDir, 0o755); err != nil {
		j.con.Log.Error("collecting results failed", "err", err)
		return err
	}
	var except []string
	if j.kept != nil && j.kept.complete {
		// Streamed whole already: not fetched a second time.
		except = []string{prefix.JobLogName}
	} else if j.kept != nil && j.kept.err != nil {
		j.con.Log.Warn("the streamed job log could not be kept; fetching it", "err", j.kept.err)
	}
	fetched, missing, err := j.cluster.Fetch(ctx, j.ws, resultNames(j.testID), except, j.resultsDir)
	if err != nil && except == nil && j.kept != nil && j.kept.f != nil && !j.kept.streamed {
		j.con.Log.Warn("the job log in the results is what streamed before streaming stopped; fetching the whole log failed")
	}
	if except != nil {
		fetched, missing = append(fetched, prefix.JobLogName), slices.DeleteFunc(missing, func(n string) bool { return n == prefix.JobLogName })
		slices.Sort(fetched)
	}
	j.out.Fetched, j.out.Missing = fetched, missing
	if err != nil {
		j.con.Log.Error("collecting results failed", "err", err)
	}
	// Otherwise the verdict reads the job log as it was fetched, before
	// masking, which may fail and remove it.
	if j.kept == nil || !j.kept.streamed {
		if f, err := os.Open(filepath.Join(j.resultsDir, prefix.JobLogName)); err == nil {
			j.ev.Log = verdict.ReadJobLog(f)
			f.Close()
		}
	}
	if merr := j.maskResults(); merr != nil {
		j.maskErr = merr
		j.con.Log.Error(merr.Error())
		if err == nil {
			err = merr
		}
	}
	xmls, _ := filepath.Glob(filepath.Join(j.resultsDir, "results*.xml"))
	for _, x := range xmls {
		if strings.HasPrefix(filepath.Base(x), precheckJUnitPrefix) {
			continue // the precheck gate's, not pytest's: Jenkins shows it, the verdict does not count it
		}
		if b, rerr := os.ReadFile(x); rerr == nil {
			j.ev.JUnit = append(j.ev.JUnit, b)
		}
	}
	return err
}

// precheckJUnitPrefix names the cache-transceiver precheck gate's junit
// file (results-ct-precheck.xml), collected with pytest's.
const precheckJUnitPrefix = "results-ct-precheck"

// resultNames are what Jenkins' junit and archiveArtifacts get.
func resultNames(testID string) []string {
	names := []string{prefix.JobLogName, "results*.xml", "unfinished_test.txt", "install.log", "*.log", FinishedName, JobIDName, LaunchName}
	if b := perf.TestFolder(testID); b != "" {
		names = append(names, b) // the per-test output folder
	}
	return names
}

// MaskError is a result file in which secrets could not be masked. The
// file is removed, so that Jenkins cannot archive it, and the run fails.
type MaskError struct {
	Files []string
	Err   error
}

func (e *MaskError) Error() string {
	return fmt.Sprintf("could not mask secrets in %s (removed so that it is not archived): %v", strings.Join(e.Files, ", "), e.Err)
}

func (e *MaskError) Unwrap() error { return e.Err }

// maskResults masks secret-named assignments in the collected scripts
// and logs (set -x traces every export), because Jenkins archives them.
func (j *jobRun) maskResults() error {
	var failed []string
	var first error
	// The job log kept whole as it streamed was masked on its way in.
	keptMasked := ""
	if j.kept != nil && j.kept.complete {
		keptMasked = filepath.Join(j.resultsDir, prefix.JobLogName)
	}
	walkErr := filepath.WalkDir(j.resultsDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !(strings.HasSuffix(p, ".log") || strings.HasSuffix(p, ".sh")) || p == keptMasked {
			return err
		}
		if err := maskFile(p); err != nil {
			failed = append(failed, p)
			first = cmp.Or(first, err)
			if rmErr := os.Remove(p); rmErr != nil {
				first = fmt.Errorf("%v; and removing it failed too: %v", err, rmErr)
			}
		}
		return nil
	})
	if walkErr != nil {
		return &MaskError{Files: []string{j.resultsDir}, Err: walkErr}
	}
	if len(failed) > 0 {
		j.out.Unmasked = failed
		return &MaskError{Files: failed, Err: first}
	}
	return nil
}

// maskPiece is the most of a line masked at once: a longer line is masked
// in pieces of at most this size, in constant memory, cut where no secret
// assignment is split (pieceCut).
const maskPiece = 256 << 10

// lineMasker masks a stream written to it in pieces of any size:
// MaskAssignments on every line, a line longer than maskPiece in pieces
// (pieceCut). The result does not depend on how the stream was cut into
// writes, so the job log masked as it streams is byte for byte the file
// maskFile makes. What it passes to emit is valid only during the call.
//
// Lines without '=' cannot change and pass in runs, where they lie; only a
// line cut between two writes is copied.
type lineMasker struct {
	emit    func([]byte)
	part    []byte // the current piece's start, cut between writes
	midLine bool   // the current line already gave a whole piece
	changed bool   // masking changed something (set before that piece is emitted)
}

// Write never fails.
func (m *lineMasker) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		if len(m.part) == 0 && !m.midLine {
			// At a line's start: the whole lines before the next '='
			// pass as they are.
			k := bytes.IndexByte(p, '=')
			if k < 0 {
				k = len(p)
			}
			if ls := bytes.LastIndexByte(p[:k], '\n') + 1; ls > 0 {
				m.emit(p[:ls])
				p = p[ls:]
				continue
			}
		}
		room := maskPiece - len(m.part)
		seg := p[:min(len(p), room)]
		switch i := bytes.IndexByte(seg, '\n'); {
		case i >= 0:
			m.piece(seg[:i+1], false)
			m.midLine = false
			p = p[i+1:]
		case len(seg) == room:
			m.piece(seg, true)
			m.midLine = true
			p = p[room:]
		default:
			m.part = append(m.part, seg...)
			p = nil
		}
	}
	return n, nil
}

// piece masks and passes the current piece, which ends with tail. A full
// piece of a line too long to mask whole (long) ends where pieceCut cuts
// it, and the rest starts the next piece.
func (m *lineMasker) piece(tail []byte, long bool) {
	b := tail
	if len(m.part) > 0 {
		m.part = append(m.part, tail...)
		b = m.part
	}
	cut := len(b)
	if long {
		cut = pieceCut(b)
	}
	out, changed := maskAssignments(b[:cut])
	m.changed = m.changed || changed
	m.emit(out)
	// b may be m.part itself: append moves the rest to its front.
	m.part = append(m.part[:0], b[cut:]...)
}

// flush passes the last line when it has no newline.
func (m *lineMasker) flush() {
	if len(m.part) > 0 {
		m.piece(nil, false)
	}
	m.midLine = false
}

// maskFileHook, when set by a test, replaces the rename that puts a
// masked copy in place, to make it fail on demand.
var maskFileHook func(path string) error

// maskFile masks a file as lineMasker masks a stream, in constant memory
// (job logs reach gigabytes). Most files hold no secret: they are only
// read. From the first piece that needs masking on, a copy is written
// beside the file (the untouched bytes before it copied first) and put in
// its place.
func maskFile(p string) (err error) {
	in, err := os.Open(p)
	if err != nil {
		return err
	}
	defer in.Close()
	var (
		tmp       *os.File
		w         *bufio.Writer
		untouched int64 // bytes before the first masked piece
		werr      error
		m         lineMasker
	)
	defer func() {
		if tmp != nil {
			tmp.Close()
			if err != nil {
				os.Remove(tmp.Name())
			}
		}
	}()
	m.emit = func(b []byte) {
		switch {
		case werr != nil:
		case w == nil && !m.changed:
			untouched += int64(len(b))
		case w == nil:
			if tmp, werr = os.CreateTemp(filepath.Dir(p), "."+filepath.Base(p)+".mask-*"); werr != nil {
				return
			}
			if werr = copyPrefix(tmp, p, untouched); werr != nil {
				return
			}
			w = bufio.NewWriterSize(tmp, maskPiece)
			fallthrough
		default:
			_, werr = w.Write(b)
		}
	}
	buf := make([]byte, maskPiece)
	for werr == nil {
		n, rerr := in.Read(buf)
		m.Write(buf[:n])
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return rerr
		}
	}
	m.flush()
	if werr != nil {
		return werr
	}
	if w == nil {
		return nil
	}
	if err := w.Flush(); err != nil {
		return err
	}
	info, err := in.Stat()
	if err != nil {
		return err
	}
	if err := tmp.Chmod(info.Mode().Perm()); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if maskFileHook != nil {
		return maskFileHook(p)
	}
	return os.Rename(tmp.Name(), p)
}

// copyPrefix copies the first n bytes of the file at p to w.
func copyPrefix(w io.Writer, p string, n int64) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.CopyN(w, f, n)
	return err
}

func writeSummary(dir string, o *Outcome) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	b, err := json.MarshalIndent(o, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.Write(filepath.Join(dir, SummaryName), append(b, '\n'), 0o644)
}
