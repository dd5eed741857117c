// Package inputfile reads the files a user hands the runner (config YAML,
// test list, script prefix, srun args, draft, scripts, SSH keys,
// known_hosts). Each must be a regular file of at most MaxSize bytes: a
// FIFO would block the read forever and /dev/zero would fill the memory,
// so anything else is refused at once, without reading (a FIFO is opened
// non-blocking, and only after a stat said it is a regular file).
package inputfile

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"syscall"
)

// MaxSize is the largest input file read: far above any real input, far
// below what a mistaken path (a log, a disk image) would cost.
const MaxSize = 16 << 20

// NotRegularError is an input that is not a regular file (in the chain of
// Read's *fs.PathError).
type NotRegularError struct{ Kind string }

func (e *NotRegularError) Error() string {
	return "is a " + e.Kind + ", not a regular file (an input must be a file)"
}

// TooLargeError is an input larger than MaxSize (in the chain of Read's
// *fs.PathError).
type TooLargeError struct{ Size int64 }

func (e *TooLargeError) Error() string {
	return fmt.Sprintf("is larger than %d MiB, the limit for an input file", MaxSize>>20)
}

// Read returns the content of the regular file at path (symbolic links
// followed). A missing file yields an error for which errors.Is(err,
// fs.ErrNotExist) holds; a file that is not regular or is larger than
// MaxSize yields an *fs.PathError around a *NotRegularError or a
// *TooLargeError. It never blocks on a FIFO and never reads a device.
func Read(path string) ([]byte, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if err := check(path, st); err != nil {
		return nil, err
	}
	// Between the stat and the open the path may have become a FIFO:
	// O_NONBLOCK keeps the open from waiting for a writer, and the fstat
	// below judges what was actually opened.
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if st, err = f.Stat(); err != nil {
		return nil, err
	}
	if err := check(path, st); err != nil {
		return nil, err
	}
	data, err := io.ReadAll(io.LimitReader(f, MaxSize+1))
	if err != nil {
		return nil, &fs.PathError{Op: "read", Path: path, Err: err}
	}
	if len(data) > MaxSize { // it grew since the stat
		return nil, &fs.PathError{Op: "read", Path: path, Err: &TooLargeError{Size: int64(len(data))}}
	}
	return data, nil
}

// Check says, without opening it, whether path is a regular file Read
// would accept: nil, or the error Read would return.
func Check(path string) error {
	st, err := os.Stat(path)
	if err != nil {
		return err
	}
	return check(path, st)
}

func check(path string, st fs.FileInfo) error {
	if kind := KindOf(st.Mode()); kind != "" {
		return &fs.PathError{Op: "read", Path: path, Err: &NotRegularError{Kind: kind}}
	}
	if st.Size() > MaxSize {
		return &fs.PathError{Op: "read", Path: path, Err: &TooLargeError{Size: st.Size()}}
	}
	return nil
}

// KindOf names what a non-regular file is ("" for a regular file).
func KindOf(m fs.FileMode) string {
	switch {
	case m.IsRegular():
		return ""
	case m.IsDir():
		return "folder"
	case m&fs.ModeNamedPipe != 0:
		return "named pipe (FIFO)"
	case m&fs.ModeCharDevice != 0:
		return "character device"
	case m&fs.ModeDevice != 0:
		return "block device"
	case m&fs.ModeSocket != 0:
		return "socket"
	case m&fs.ModeSymlink != 0:
		return "symbolic link"
	}
	return "special file"
}
