package atomicfile

import (
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func TestWriteReplaces(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "launch.sh")
	if err := Write(p, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := Write(p, []byte("new"), 0o755); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(p)
	st, _ := os.Stat(p)
	if string(b) != "new" || st.Mode().Perm() != 0o755 {
		t.Fatalf("content %q mode %v", b, st.Mode())
	}
	assertOnly(t, dir, "launch.sh")
}

// A failed write leaves the old file untouched and no temporary file.
func TestWriteFailureLeavesNothing(t *testing.T) {
	dir := t.TempDir()
	// The target is a non-empty folder: the rename must fail.
	target := filepath.Join(dir, "launch.sh")
	if err := os.MkdirAll(filepath.Join(target, "x"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := Write(target, []byte("data"), 0o644); err == nil {
		t.Fatal("write over a non-empty folder succeeded")
	}
	assertOnly(t, dir, "launch.sh")

	if err := Write(filepath.Join(dir, "missing", "f"), []byte("x"), 0o644); err == nil {
		t.Fatal("write into a missing folder succeeded")
	}
	assertOnly(t, dir, "launch.sh")
}

func assertOnly(t *testing.T, dir string, names ...string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != len(names) {
		var got []string
		for _, e := range entries {
			got = append(got, e.Name())
		}
		t.Fatalf("folder holds %v, want %v", got, names)
	}
}

// TestWriteRefusesSpecialTargets: a device, a FIFO, a socket or an empty
// folder in the target's place is refused and left as it is (the rename
// used to replace it: as root, --launch-sh /dev/null would have replaced
// /dev/null with a regular file). Through a symbolic link too.
func TestWriteRefusesSpecialTargets(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty")
	os.Mkdir(empty, 0o755)
	sock := filepath.Join(dir, "sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	fifoLink := filepath.Join(dir, "fifo-link")
	os.Symlink("fifo", fifoLink)
	targets := map[string]fs.FileMode{fifo: fs.ModeNamedPipe, empty: fs.ModeDir, sock: fs.ModeSocket, fifoLink: fs.ModeNamedPipe}
	// A character device of our own (the null device's numbers), where
	// this machine lets us make one.
	dev := filepath.Join(dir, "null")
	if err := syscall.Mknod(dev, syscall.S_IFCHR|0o666, 1<<8|3); err == nil {
		targets[dev] = fs.ModeDevice | fs.ModeCharDevice
	} else {
		t.Logf("no character device: %v", err)
	}
	for p, mode := range targets {
		err := Write(p, []byte("data"), 0o644)
		if err == nil || !strings.Contains(err.Error(), "not a regular file") {
			t.Errorf("Write(%s): %v, want a refusal saying it is not a regular file", p, err)
		}
		st, serr := os.Stat(p)
		if serr != nil || st.Mode().Type() != mode {
			t.Errorf("%s was replaced: %v %v", p, st.Mode(), serr)
		}
	}
	assertOnly(t, dir, "fifo", "empty", "sock", "fifo-link", "null")
}

// TestWriteThroughSymlink: a symbolic link (a chain, a relative one) is
// written through, as submit.py's open() does: the link stays, the file
// it names gets the content, atomically in its own folder. A dangling
// link creates the file it names.
func TestWriteThroughSymlink(t *testing.T) {
	dir := t.TempDir()
	other := filepath.Join(dir, "other")
	os.Mkdir(other, 0o755)
	target := filepath.Join(other, "launch.sh")
	os.WriteFile(target, []byte("old"), 0o644)
	mid := filepath.Join(dir, "mid")
	os.Symlink("other/launch.sh", mid)
	link := filepath.Join(dir, "link")
	os.Symlink(mid, link)
	if err := Write(link, []byte("new"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{link, mid} {
		if st, err := os.Lstat(p); err != nil || st.Mode().Type() != fs.ModeSymlink {
			t.Errorf("%s is no longer a symbolic link: %v %v", p, st.Mode(), err)
		}
	}
	if b, _ := os.ReadFile(target); string(b) != "new" {
		t.Errorf("target holds %q", b)
	}
	assertOnly(t, other, "launch.sh")

	dangling := filepath.Join(dir, "dangling")
	os.Symlink("other/new.sh", dangling)
	if err := Write(dangling, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(other, "new.sh")); string(b) != "x" {
		t.Errorf("dangling link's target holds %q", b)
	}
	if st, _ := os.Lstat(dangling); st.Mode().Type() != fs.ModeSymlink {
		t.Errorf("dangling link replaced")
	}

	loop := filepath.Join(dir, "loop")
	os.Symlink("loop", loop)
	if err := Write(loop, []byte("x"), 0o644); err == nil {
		t.Error("a symbolic link loop was written")
	}
}
