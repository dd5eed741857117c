package sbatch

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/disagg-runner/disagg-runner/internal/shellquote"
)

// fetchAttempts bounds how often a fetch cut by a dropped connection is
// repeated; unpacking again over what arrived is harmless.
const fetchAttempts = 3

// Fetch copies what names (file or folder names, or globs such as
// "results*.xml", relative to remoteDir; folders come with everything in
// them) match under remoteDir into localDir, keeping their relative paths.
// It streams one `tar` through a transport session and unpacks it here,
// refusing entries with absolute paths or "..", and skipping links (a
// results folder has no business pointing elsewhere). fetched lists what
// the names matched; missing the names that matched nothing, which is not
// an error: a job that died early leaves no results. Files named in except
// (plain names, not globs) are left out even where a name's glob matches
// them.
func (c *Client) Fetch(ctx context.Context, remoteDir string, names, except []string, localDir string) (fetched []string, missing []string, err error) {
	for _, n := range append(append([]string(nil), names...), except...) {
		if n == "" || path.IsAbs(n) || hasDotDot(n) {
			return nil, nil, fmt.Errorf("fetch: %q is not a name relative to %s", n, remoteDir)
		}
	}
	if len(names) == 0 {
		return nil, nil, nil
	}
	if err := os.MkdirAll(localDir, 0o755); err != nil {
		return nil, nil, fmt.Errorf("fetch: %w", err)
	}
	var entries []string
	for attempt := 1; ; attempt++ {
		entries, err = c.fetchOnce(ctx, remoteDir, names, except, localDir)
		if err == nil || !connectionLost(err) || attempt == fetchAttempts {
			break
		}
		c.logf("%v; fetching again", err)
	}
	if err != nil {
		return nil, nil, err
	}
	seen := map[string]bool{}
	for _, n := range names {
		depth := strings.Count(path.Clean(n), "/") + 1
		matched := false
		for _, e := range entries {
			top := firstComponents(e, depth)
			if ok, _ := path.Match(path.Clean(n), top); ok {
				matched = true
				if !seen[top] {
					seen[top] = true
					fetched = append(fetched, top)
				}
			}
		}
		if !matched {
			missing = append(missing, n)
		}
	}
	sort.Strings(fetched)
	return fetched, missing, nil
}

// fetchOnce runs the remote tar and unpacks its stream; it returns the
// paths of the entries unpacked.
func (c *Client) fetchOnce(ctx context.Context, remoteDir string, names, except []string, localDir string) ([]string, error) {
	quoted := make([]string, len(names))
	for i, n := range names {
		quoted[i] = shellquote.Quote(n)
	}
	skipped := make([]string, len(except))
	for i, n := range except {
		skipped[i] = "seen[" + shellquote.Quote(n) + "]=1;"
	}
	// IFS= leaves $pat whole while it is globbed; nullglob drops a glob
	// that matches nothing, and -e drops a plain name that does not exist.
	cmd := fmt.Sprintf(`cd -- %s || exit 1
shopt -s nullglob
IFS=
declare -A seen
%s
set --
for pat in %s; do
  for f in $pat; do
    if [[ ( -e $f || -L $f ) && -z ${seen[$f]} ]]; then seen[$f]=1; set -- "$@" "$f"; fi
  done
done
[ $# -gt 0 ] || exit 0
tar -cf - -- "$@"
rc=$?
# GNU tar's 1 means a file changed while it was read (a log still being
# written): the archive is complete and usable.
[ $rc -le 1 ] || exit $rc`, shellquote.Quote(remoteDir), strings.Join(skipped, " "), strings.Join(quoted, " "))

	pr, pw := io.Pipe()
	var stderr bytes.Buffer
	runErr := make(chan error, 1)
	go func() {
		err := c.T.Run(ctx, cmd, nil, pw, &stderr)
		pw.CloseWithError(err) // nil: the reader sees io.EOF
		runErr <- err
	}()
	entries, xerr := unpack(tar.NewReader(pr), localDir, c.logf)
	if xerr != nil {
		pr.CloseWithError(xerr) // makes the remote side's writes fail, so Run ends
	} else {
		// tar pads its stream past the end marker; the writer must not
		// block on bytes nobody reads.
		io.Copy(io.Discard, pr)
	}
	err := <-runErr
	switch {
	case connectionLost(err):
		// What arrived was cut short; the unpacking error says nothing.
		return entries, commandError("fetch from "+remoteDir, output{"", stderr.String()}, err)
	case xerr != nil:
		// The remote side's failure, if any, is only the closed pipe.
		return entries, fmt.Errorf("fetch from %s: %w", remoteDir, xerr)
	case err != nil:
		return entries, commandError("fetch from "+remoteDir, output{"", stderr.String()}, err)
	}
	return entries, nil
}

// unpack writes the archive's directories and regular files under dir.
func unpack(tr *tar.Reader, dir string, logf func(string, ...any)) ([]string, error) {
	var entries []string
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return entries, nil
		}
		if err != nil {
			return entries, err
		}
		name := strings.TrimSuffix(hdr.Name, "/")
		clean := path.Clean(name)
		if path.IsAbs(name) || hasDotDot(name) || clean == "." {
			return entries, fmt.Errorf("refusing archive entry %q: it would land outside %s", hdr.Name, dir)
		}
		target := filepath.Join(dir, filepath.FromSlash(clean))
		switch hdr.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(target, 0o755); err != nil {
				return entries, err
			}
		case tar.TypeReg:
			if err := writeEntry(target, tr, hdr); err != nil {
				return entries, err
			}
		default:
			logf("fetch: skipping %s (not a regular file or folder)", hdr.Name)
			continue
		}
		entries = append(entries, clean)
	}
}

// writeEntry replaces target with the entry's content. Removing first
// means an existing symlink at target is replaced, not written through.
func writeEntry(target string, r io.Reader, hdr *tar.Header) error {
	if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
		return err
	}
	if err := os.Remove(target); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	f, err := os.OpenFile(target, os.O_WRONLY|os.O_CREATE|os.O_EXCL, os.FileMode(hdr.Mode)&0o777|0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Chtimes(target, hdr.ModTime, hdr.ModTime)
}

func hasDotDot(p string) bool {
	for _, part := range strings.Split(p, "/") {
		if part == ".." {
			return true
		}
	}
	return false
}

// firstComponents returns the first n slash-separated parts of p.
func firstComponents(p string, n int) string {
	parts := strings.Split(p, "/")
	if len(parts) > n {
		parts = parts[:n]
	}
	return strings.Join(parts, "/")
}
