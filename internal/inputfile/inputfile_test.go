package inputfile

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// read runs Read with a deadline: a FIFO that blocks must fail the test,
// not hang it (it would block for good, so the deadline can be generous
// for a loaded machine).
func read(t *testing.T, path string) ([]byte, error) {
	t.Helper()
	type result struct {
		b   []byte
		err error
	}
	done := make(chan result, 1)
	go func() {
		b, err := Read(path)
		done <- result{b, err}
	}()
	select {
	case r := <-done:
		return r.b, r.err
	case <-time.After(30 * time.Second):
		t.Fatalf("Read(%s) blocked", path)
		return nil, nil
	}
}

func TestReadRegular(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	if err := os.WriteFile(p, []byte("hello\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink(p, link); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{p, link} {
		b, err := read(t, path)
		if err != nil || string(b) != "hello\n" {
			t.Errorf("Read(%s) = %q, %v", path, b, err)
		}
	}
	empty := filepath.Join(dir, "empty")
	os.WriteFile(empty, nil, 0o644)
	if b, err := read(t, empty); err != nil || len(b) != 0 {
		t.Errorf("empty file: %q, %v", b, err)
	}
}

func TestReadMissing(t *testing.T) {
	_, err := read(t, filepath.Join(t.TempDir(), "nope"))
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("missing file: %v, want fs.ErrNotExist", err)
	}
}

// TestReadRefusesNonRegular: a device, a FIFO, a folder or a socket is
// refused at once, with a one-line reason naming the path and what it is.
func TestReadRefusesNonRegular(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	fifoLink := filepath.Join(dir, "fifo-link")
	os.Symlink(fifo, fifoLink)
	zeroLink := filepath.Join(dir, "zero-link")
	os.Symlink("/dev/zero", zeroLink)
	cases := []struct{ path, want string }{
		{"/dev/zero", "character device"},
		{"/dev/urandom", "character device"},
		{"/dev/null", "character device"},
		{zeroLink, "character device"},
		{fifo, "named pipe"},
		{fifoLink, "named pipe"},
		{dir, "folder"},
	}
	for _, c := range cases {
		b, err := read(t, c.path)
		if err == nil {
			t.Errorf("Read(%s) = %d bytes, want a refusal", c.path, len(b))
			continue
		}
		var nr *NotRegularError
		if !errors.As(err, &nr) {
			t.Errorf("Read(%s): %v is not a NotRegularError", c.path, err)
		}
		if msg := err.Error(); !strings.Contains(msg, c.path) || !strings.Contains(msg, c.want) || !strings.Contains(msg, "not a regular file") || strings.Contains(msg, "\n") {
			t.Errorf("Read(%s): %q, want one line naming the path, %q and 'not a regular file'", c.path, msg, c.want)
		}
	}
}

func TestReadRefusesTooLarge(t *testing.T) {
	p := filepath.Join(t.TempDir(), "big")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(MaxSize + 1); err != nil { // sparse: costs no disk
		t.Fatal(err)
	}
	f.Close()
	_, err = Read(p)
	var tl *TooLargeError
	if !errors.As(err, &tl) || !strings.Contains(err.Error(), "16 MiB") || !strings.Contains(err.Error(), p) {
		t.Fatalf("Read of %d bytes: %v, want a TooLargeError naming the path and 16 MiB", MaxSize+1, err)
	}
	// Exactly the limit is fine.
	if err := os.Truncate(p, MaxSize); err != nil {
		t.Fatal(err)
	}
	if b, err := Read(p); err != nil || len(b) != MaxSize {
		t.Fatalf("Read of exactly %d bytes: %d, %v", MaxSize, len(b), err)
	}
}
