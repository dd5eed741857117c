// Package fakecluster is an in-memory cluster for tests: it implements
// the runner's Cluster interface with remote files held in a map, Slurm's
// answers set by the test, and hooks and channels where a test needs to
// act at a precise point of a run (never sleeps). The real cluster tests
// (scripts/testcluster) stay the proof on real parts; this one makes every
// branch of the pipeline reachable in milliseconds.
package fakecluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/disagg-runner/disagg-runner/sbatch"
)

// Cluster is a fake cluster. Set its fields before the run; read Calls
// and Files after it. Every method is safe for concurrent use.
type Cluster struct {
	mu sync.Mutex

	// Facts is what Probe answers (Ready fills a healthy cluster's).
	Facts    sbatch.Facts
	ProbeErr error
	// Files are the files on the cluster, by absolute path.
	Files map[string][]byte
	// States answer Query; an id missing here is not Known.
	States   map[sbatch.JobID]sbatch.JobState
	QueryErr error
	// OnQuery runs at each Query, before it answers.
	OnQuery func(id sbatch.JobID)

	// SubmitID is the id Submit gives the job; SubmitErr its refusal.
	SubmitID  sbatch.JobID
	SubmitErr error
	// OnSubmit runs inside Submit (after the id is recorded): a test
	// writes the job's files here, or interrupts the run.
	OnSubmit func(dir string)

	// Changes are reported to Watch's onChange, then Watch returns Final
	// and WatchErr. With Hold set, Watch first closes WatchStarted and
	// waits until Hold closes or the run's context ends.
	Changes      []sbatch.JobState
	Final        sbatch.JobState
	WatchErr     error
	Hold         chan struct{}
	WatchStarted chan struct{}

	// CancelState is what Cancel confirms (default: CANCELLED).
	CancelState sbatch.JobState
	CancelErr   error
	FetchErr    error
	UploadErr   error

	// OnFetch runs at each Fetch, before it copies: a test interrupts
	// the run here. A Fetch whose context then ended fails, as a real
	// one would.
	OnFetch func()

	// FollowErr ends Follow with this error once it wrote the file.
	FollowErr error

	// Calls records each call, in order ("probe", "submit /ws launch.sh", ...).
	Calls  []string
	closed bool
}

// New returns a fake whose checklist answers are all good.
func New() *Cluster {
	return &Cluster{
		Files:  map[string][]byte{},
		States: map[sbatch.JobID]sbatch.JobState{},
		Facts: sbatch.Facts{
			Commands:       map[string]string{"sbatch": "/usr/bin/sbatch", "squeue": "/usr/bin/squeue", "sacct": "/usr/bin/sacct", "scontrol": "/usr/bin/scontrol"},
			Partition:      sbatch.PartitionFacts{Found: true, State: "UP", TotalNodes: 4},
			Account:        sbatch.AccountFacts{Checkable: true, Found: true},
			GPUs:           map[string]int{"node1": 4, "node2": 4, "node3": 4, "node4": 4},
			FilePresent:    []bool{true, true},
			NodeDirPresent: true,
		},
		SubmitID:    "42",
		Final:       sbatch.JobState{ID: "42", Known: true, State: "COMPLETED", NodeList: "node[1-2]", Source: "sacct"},
		CancelState: sbatch.JobState{Known: true, State: "CANCELLED", Source: "scontrol"},
	}
}

func (c *Cluster) record(format string, args ...any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.Calls = append(c.Calls, fmt.Sprintf(format, args...))
}

// Called reports how many calls started with prefix.
func (c *Cluster) Called(prefix string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, call := range c.Calls {
		if strings.HasPrefix(call, prefix) {
			n++
		}
	}
	return n
}

// File returns a remote file's content and whether it exists.
func (c *Cluster) File(p string) ([]byte, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	b, ok := c.Files[p]
	return b, ok
}

// SetFile writes a remote file.
func (c *Cluster) SetFile(p string, data []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.Files[p] = data
}

func (c *Cluster) String() string { return "fake" }

func (c *Cluster) Probe(ctx context.Context, req sbatch.ProbeRequest) (sbatch.Facts, error) {
	c.record("probe")
	c.mu.Lock()
	defer c.mu.Unlock()
	f := c.Facts
	if len(f.FilePresent) != len(req.Files) {
		f.FilePresent = make([]bool, len(req.Files))
		for i := range f.FilePresent {
			f.FilePresent[i] = true
		}
	}
	return f, c.ProbeErr
}

func (c *Cluster) Recorded(ctx context.Context, jobIDFile string) (sbatch.JobID, error) {
	c.record("recorded %s", jobIDFile)
	b, _ := c.File(jobIDFile)
	return sbatch.JobID(strings.TrimSpace(string(b))), nil
}

// Settle is Query: the fake's states are set by the test, final or not.
func (c *Cluster) Settle(ctx context.Context, id sbatch.JobID) (sbatch.JobState, error) {
	return c.Query(ctx, id)
}

func (c *Cluster) Query(ctx context.Context, id sbatch.JobID) (sbatch.JobState, error) {
	c.record("query %s", id)
	if c.OnQuery != nil {
		c.OnQuery(id)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.QueryErr != nil {
		return sbatch.JobState{ID: id}, c.QueryErr
	}
	st, ok := c.States[id]
	if !ok {
		return sbatch.JobState{ID: id, Source: "sacct"}, nil
	}
	st.ID, st.Known = id, true
	return st, nil
}

// MoveAside renames every file below dir to below to.
func (c *Cluster) MoveAside(ctx context.Context, dir, to string) error {
	c.record("moveaside %s %s", dir, to)
	c.mu.Lock()
	defer c.mu.Unlock()
	for p, b := range c.Files {
		if rel, ok := strings.CutPrefix(p, dir+"/"); ok {
			delete(c.Files, p)
			c.Files[path.Join(to, rel)] = b
		}
	}
	return nil
}

func (c *Cluster) Upload(ctx context.Context, files []sbatch.File) error {
	for _, f := range files {
		c.record("upload %s", f.Path)
	}
	if c.UploadErr != nil {
		return c.UploadErr
	}
	for _, f := range files {
		c.SetFile(f.Path, f.Data)
	}
	return nil
}

// Submit records SubmitID in jobIDFile, runs OnSubmit and returns the id.
func (c *Cluster) Submit(ctx context.Context, dir, script, jobIDFile string) (sbatch.JobID, error) {
	c.record("submit %s %s", dir, script)
	if c.SubmitErr != nil {
		return "", c.SubmitErr
	}
	if _, ok := c.File(path.Join(dir, script)); !ok {
		return "", fmt.Errorf("fake sbatch: %s was not uploaded", path.Join(dir, script))
	}
	c.SetFile(jobIDFile, []byte(string(c.SubmitID)+"\n"))
	if c.OnSubmit != nil {
		c.OnSubmit(dir)
	}
	return c.SubmitID, nil
}

func (c *Cluster) Watch(ctx context.Context, id sbatch.JobID, finishedFile string, onChange func(sbatch.JobState)) (sbatch.JobState, error) {
	c.record("watch %s", id)
	for _, st := range c.Changes {
		if onChange != nil {
			onChange(st)
		}
	}
	if c.Hold != nil {
		if c.WatchStarted != nil {
			close(c.WatchStarted)
		}
		select {
		case <-c.Hold:
		case <-ctx.Done():
			return sbatch.JobState{ID: id, Known: true, State: "RUNNING"}, ctx.Err()
		}
	}
	if onChange != nil && c.WatchErr == nil {
		onChange(c.Final)
	}
	return c.Final, c.WatchErr
}

// Follow writes the file as it is, then waits for stop, as a log that
// is complete before the job ends.
func (c *Cluster) Follow(ctx context.Context, p string, w io.Writer, stop <-chan struct{}) (int64, error) {
	c.record("follow %s", p)
	b, _ := c.File(p)
	if _, err := w.Write(b); err != nil {
		return 0, err
	}
	if c.FollowErr != nil {
		return int64(len(b)), c.FollowErr
	}
	select {
	case <-stop:
	case <-ctx.Done():
	}
	return int64(len(b)), nil
}

// FollowMany writes each matching file's lines with its name as prefix.
func (c *Cluster) FollowMany(ctx context.Context, dir, pattern string, w io.Writer, stop <-chan struct{}) error {
	c.record("followmany %s", dir)
	for _, p := range c.match(dir, pattern) {
		b, _ := c.File(p)
		for _, l := range strings.SplitAfter(string(b), "\n") {
			if l != "" {
				fmt.Fprintf(w, "[%s] %s", path.Base(p), l)
			}
		}
	}
	select {
	case <-stop:
	case <-ctx.Done():
	}
	return nil
}

func (c *Cluster) match(dir, pattern string) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var ps []string
	for p := range c.Files {
		if ok, _ := path.Match(path.Join(dir, pattern), p); ok {
			ps = append(ps, p)
		}
	}
	sort.Strings(ps)
	return ps
}

// Fetch copies the files below remoteDir whose first path component
// matches one of names, and that except does not name, into localDir.
func (c *Cluster) Fetch(ctx context.Context, remoteDir string, names, except []string, localDir string) (fetched, missing []string, err error) {
	c.record("fetch %s except %v", remoteDir, except)
	if c.OnFetch != nil {
		c.OnFetch()
	}
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	if c.FetchErr != nil {
		return nil, nil, c.FetchErr
	}
	c.mu.Lock()
	files := map[string][]byte{}
	for p, b := range c.Files {
		if rel, ok := strings.CutPrefix(p, remoteDir+"/"); ok && !slices.Contains(except, rel) {
			files[rel] = b
		}
	}
	c.mu.Unlock()
	seen := map[string]bool{}
	for _, n := range names {
		matched := false
		for rel, b := range files {
			top, _, _ := strings.Cut(rel, "/")
			if ok, _ := path.Match(n, top); !ok {
				continue
			}
			matched = true
			target := filepath.Join(localDir, filepath.FromSlash(rel))
			if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
				return fetched, missing, err
			}
			if err := os.WriteFile(target, b, 0o644); err != nil {
				return fetched, missing, err
			}
			if !seen[top] {
				seen[top] = true
				fetched = append(fetched, top)
			}
		}
		if !matched {
			missing = append(missing, n)
		}
	}
	sort.Strings(fetched)
	return fetched, missing, nil
}

func (c *Cluster) Cancel(ctx context.Context, id sbatch.JobID) (sbatch.JobState, error) {
	c.record("cancel %s", id)
	st := c.CancelState
	st.ID = id
	return st, c.CancelErr
}

func (c *Cluster) ReadFile(ctx context.Context, p string, limit int64) ([]byte, error) {
	c.record("read %s", p)
	b, _ := c.File(p)
	if int64(len(b)) > limit {
		b = b[:limit]
	}
	return b, nil
}

func (c *Cluster) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return errors.New("fake cluster closed twice")
	}
	c.closed = true
	return nil
}

// Closed reports whether the run released its connection.
func (c *Cluster) Closed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}
