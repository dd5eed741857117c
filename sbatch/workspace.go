package sbatch

import (
	"context"
	"fmt"
	"os"
	"strconv"

	"github.com/disagg-runner/disagg-runner/internal/shellquote"
)

// File is one file to put on the cluster.
type File struct {
	Path string
	Data []byte
	Mode os.FileMode
}

// Upload writes each file atomically (a temporary name, then a rename),
// creating folders as needed, so that a job never reads half a script.
func (c *Client) Upload(ctx context.Context, files []File) error {
	for _, f := range files {
		if err := c.T.WriteFile(ctx, f.Path, f.Data, f.Mode); err != nil {
			return fmt.Errorf("upload %s: %w", f.Path, err)
		}
	}
	return nil
}

// MoveAside renames the folder dir to to, so that a new attempt starts in
// an empty job workspace while the old one's files are kept.
func (c *Client) MoveAside(ctx context.Context, dir, to string) error {
	out, err := c.run(ctx, "mv -- "+shellquote.Quote(dir)+" "+shellquote.Quote(to))
	if err != nil {
		return commandError("move "+dir+" aside", out, err)
	}
	return nil
}

// ReadFile returns at most limit bytes of the file at path; a missing file
// is nil, nil.
func (c *Client) ReadFile(ctx context.Context, path string, limit int64) ([]byte, error) {
	f := shellquote.Quote(path)
	out, err := c.run(ctx, "if [ -e "+f+" ]; then head -c "+strconv.FormatInt(limit, 10)+" -- "+f+"; fi")
	if err != nil {
		return nil, commandError("read "+path, out, err)
	}
	if out.stdout == "" {
		return nil, nil
	}
	return []byte(out.stdout), nil
}

// String names the way to the cluster for logs ("local", "ssh user@host:22").
func (c *Client) String() string { return c.T.String() }

// Close releases the connection.
func (c *Client) Close() error { return c.T.Close() }
