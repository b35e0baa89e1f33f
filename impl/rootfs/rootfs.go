// Package rootfs opens a directory as the confined file system that the
// file-serving machines read (spec/file's server, and TFTP's): paths are
// resolved by os.Root, which refuses ".." and symlinks that lead out of
// the directory, absolute or not. Machines also check names with
// spec/file.ValidName before opening anything; this is the second wall.
package rootfs

import (
	"fmt"
	"io/fs"
	"os"
)

// Root is an open directory.
type Root struct {
	dir string
	r   *os.Root
}

// Open opens dir, which must be a directory.
func Open(dir string) (*Root, error) {
	st, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("rootfs: %w", err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("rootfs: %s is not a directory", dir)
	}
	r, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("rootfs: %w", err)
	}
	return &Root{dir: dir, r: r}, nil
}

// FS is the read-only view machines get: it implements fs.StatFS,
// fs.ReadDirFS and fs.ReadFileFS, and its files are *os.File (seekable).
func (r *Root) FS() fs.FS { return r.r.FS() }

// OS is the underlying os.Root, for servers that also write (TFTP with
// write requests enabled).
func (r *Root) OS() *os.Root { return r.r }

// Dir is the directory's name as given to Open.
func (r *Root) Dir() string { return r.dir }

// Close releases the directory.
func (r *Root) Close() error { return r.r.Close() }
