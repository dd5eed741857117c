package sbatch

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/disagg-runner/disagg-runner/internal/transport"
)

func writeTree(t *testing.T, root string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestFetch(t *testing.T) {
	remote, local := t.TempDir(), filepath.Join(t.TempDir(), "results")
	writeTree(t, remote, map[string]string{
		"results.xml":                   "<testsuite/>",
		"results-2.xml":                 "<testsuite name='2'/>",
		"install.log":                   "installed\n",
		"-tricky name.log":              "dash\n",
		"test-output/a/server.log":      "deep\n",
		"test-output/b.txt":             "b\n",
		"job-output.log":                "not asked for\n",
		"unfinished_test.txt.not-quite": "no\n",
	})
	os.Symlink("/etc/passwd", filepath.Join(remote, "test-output", "link"))
	var logs []string
	c := &Client{T: transport.Local{}, Logf: func(f string, a ...any) { logs = append(logs, fmt.Sprintf(f, a...)) }}
	names := []string{"results*.xml", "unfinished_test.txt", "install.log", "test-output", "-tricky name.log", "nothing-*.xml"}
	fetched, missing, err := c.Fetch(context.Background(), remote, names, nil, local)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"-tricky name.log", "install.log", "results-2.xml", "results.xml", "test-output"}; !slices.Equal(fetched, want) {
		t.Errorf("fetched %q, want %q", fetched, want)
	}
	if want := []string{"unfinished_test.txt", "nothing-*.xml"}; !slices.Equal(missing, want) {
		t.Errorf("missing %q, want %q", missing, want)
	}
	for name, want := range map[string]string{
		"results.xml": "<testsuite/>", "test-output/a/server.log": "deep\n", "test-output/b.txt": "b\n", "-tricky name.log": "dash\n",
	} {
		if got, err := os.ReadFile(filepath.Join(local, name)); string(got) != want {
			t.Errorf("%s: %q %v", name, got, err)
		}
	}
	for _, absent := range []string{"job-output.log", "test-output/link"} {
		if _, err := os.Lstat(filepath.Join(local, absent)); err == nil {
			t.Errorf("%s was fetched", absent)
		}
	}
	if !strings.Contains(strings.Join(logs, "\n"), "skipping test-output/link") {
		t.Errorf("the skipped link was not logged: %q", logs)
	}

	// Again, over what is there: files are replaced, not appended to.
	writeTree(t, remote, map[string]string{"results.xml": "<new/>"})
	if _, _, err := c.Fetch(context.Background(), remote, []string{"results.xml"}, nil, local); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(filepath.Join(local, "results.xml")); string(got) != "<new/>" {
		t.Errorf("refetched %q", got)
	}
}

func TestFetchNothingThere(t *testing.T) {
	remote, local := t.TempDir(), t.TempDir()
	fetched, missing, err := (&Client{T: transport.Local{}}).Fetch(context.Background(), remote, []string{"results*.xml", "x"}, nil, local)
	if err != nil || len(fetched) != 0 || len(missing) != 2 {
		t.Fatalf("%q %q %v", fetched, missing, err)
	}
	_, _, err = (&Client{T: transport.Local{}}).Fetch(context.Background(), filepath.Join(remote, "none"), []string{"x"}, nil, local)
	if err == nil || !strings.Contains(err.Error(), "none") {
		t.Fatalf("a missing remote folder: %v", err)
	}
}

func TestFetchRefusesBadNames(t *testing.T) {
	for _, n := range []string{"/etc/passwd", "../x", "a/../../x", ""} {
		if _, _, err := (&Client{T: transport.Local{}}).Fetch(context.Background(), t.TempDir(), []string{n}, nil, t.TempDir()); err == nil {
			t.Errorf("%q accepted", n)
		}
	}
}

// tarT answers every command with a prepared archive, as a compromised
// or broken login node might.
type tarT struct {
	fakeT
	archive []byte
}

func (f *tarT) Run(ctx context.Context, cmd string, stdin io.Reader, stdout, stderr io.Writer) error {
	_, err := stdout.Write(f.archive)
	return err
}

func TestFetchRejectsEscapingEntries(t *testing.T) {
	for _, name := range []string{"../evil", "/tmp/evil-abs", "ok/../../evil"} {
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		tw.WriteHeader(&tar.Header{Name: "results.xml", Mode: 0o644, Size: 2, Typeflag: tar.TypeReg})
		tw.Write([]byte("ok"))
		tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: 4, Typeflag: tar.TypeReg})
		tw.Write([]byte("evil"))
		tw.Close()
		local := filepath.Join(t.TempDir(), "deep", "results")
		_, _, err := (&Client{T: &tarT{archive: buf.Bytes()}}).Fetch(context.Background(), "/ws", []string{"results.xml"}, nil, local)
		if err == nil || !strings.Contains(err.Error(), "refusing") {
			t.Errorf("%q: %v", name, err)
		}
		for _, p := range []string{filepath.Join(local, "..", "evil"), filepath.Join(local, "..", "..", "evil"), "/tmp/evil-abs"} {
			if _, err := os.Stat(p); err == nil {
				t.Errorf("%q landed at %s", name, p)
				os.Remove(p)
			}
		}
	}
}

func TestFetchRetriesDroppedConnection(t *testing.T) {
	remote, local := t.TempDir(), t.TempDir()
	big := strings.Repeat("results\n", 100000)
	writeTree(t, remote, map[string]string{"results.xml": big})
	lost := transport.Unreachable(fmt.Errorf("ssh: %w", transport.ErrConnectionLost))
	h := &hookT{cut: func(n int, cmd string, stdout io.Writer, full []byte) error {
		if n == 1 {
			stdout.Write(full[:len(full)/3])
			return lost
		}
		return nil
	}}
	fetched, _, err := (&Client{T: h, Logf: t.Logf}).Fetch(context.Background(), remote, []string{"results.xml"}, nil, local)
	if err != nil || len(fetched) != 1 {
		t.Fatalf("%q %v", fetched, err)
	}
	if got, _ := os.ReadFile(filepath.Join(local, "results.xml")); string(got) != big {
		t.Errorf("got %d bytes, want %d", len(got), len(big))
	}
}
