// Package atomicfile writes files so that readers see either the old
// content or the whole new content, never a partial file: the bytes go to
// a temporary file in the same folder, which is synced and then renamed
// over the target.
//
// Only a regular file is replaced. A symbolic link is written through, as
// open() would: the file it names is replaced, in that file's folder, and
// the link stays. Anything else in the target's place (a device, a FIFO,
// a socket, a folder) is refused and left as it is: renaming over it
// would replace /dev/null with a regular file.
package atomicfile

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"github.com/disagg-runner/disagg-runner/internal/inputfile"
)

// NotRegularError is a target that is not a regular file (in the chain of
// Write's *fs.PathError).
type NotRegularError struct{ Kind string }

func (e *NotRegularError) Error() string {
	return "is a " + e.Kind + ", not a regular file (it is left as it is)"
}

// maxLinks is how many symbolic links Write follows, as the kernel does.
const maxLinks = 40

// target is where a write of path lands: path itself, or the file a chain
// of symbolic links ends at (which need not exist yet).
func target(path string) (string, error) {
	p := path
	for hops := 0; ; hops++ {
		st, err := os.Lstat(p)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return p, nil
		case err != nil:
			return "", err
		case st.Mode().IsRegular():
			return p, nil
		case st.Mode()&fs.ModeSymlink == 0:
			return "", &fs.PathError{Op: "write", Path: path, Err: &NotRegularError{Kind: inputfile.KindOf(st.Mode())}}
		case hops == maxLinks:
			return "", &fs.PathError{Op: "write", Path: path, Err: syscall.ELOOP}
		}
		dest, err := os.Readlink(p)
		if err != nil {
			return "", err
		}
		if !filepath.IsAbs(dest) {
			// Not cleaned: ".." must go where the kernel takes it, which
			// differs from the lexical parent under a linked folder.
			dest = filepath.Dir(p) + string(filepath.Separator) + dest
		}
		p = dest
	}
}

// Write replaces path (or the file it links to) with data, creating it
// with mode.
func Write(path string, data []byte, mode os.FileMode) (err error) {
	if path, err = target(path); err != nil {
		return err
	}
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	tmp, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if _, err = tmp.Write(data); err != nil {
		return err
	}
	// Chmod after creation: CreateTemp's 0600 and the umask must not
	// decide the final mode.
	if err = tmp.Chmod(mode.Perm()); err != nil {
		return err
	}
	if err = tmp.Sync(); err != nil {
		return err
	}
	if err = tmp.Close(); err != nil {
		return err
	}
	if err = os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	// Make the rename itself durable; failing to is not worth failing for.
	if d, derr := os.Open(dir); derr == nil {
		d.Sync()
		d.Close()
	}
	return nil
}
