// Package rootfs opens a directory as the confined file system that the
// file-serving machines read (spec/file's server, and TFTP's): paths are
// resolved by os.Root, which refuses ".." and symlinks that lead out of
// the directory, absolute or not. Machines also check names with
// spec/file.ValidName before opening anything; this is the second wall.
//
// Only regular files and directories can be opened. Machines run on
// their runner's one goroutine, and opening a FIFO for reading blocks
// until a writer appears (a device may block, or have side effects): one
// named pipe in the root would freeze every session. So files are
// opened non-blocking, checked with fstat, and anything else is closed
// at once and refused (ErrNotRegular), with no window between the check
// and the open for the file to be swapped.
package rootfs

import (
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"slices"
	"strings"
	"syscall"
)

// ErrNotRegular is the error (inside an *fs.PathError) for a name that
// is neither a regular file nor a directory.
var ErrNotRegular = errors.New("not a regular file")

// ErrOutside is the error (inside an *fs.PathError) for a name that
// leads out of the root, through a symlink or "..". It is a permission
// error (errors.Is(err, fs.ErrPermission)), which servers answer with an
// access violation, not a generic failure.
var ErrOutside = fmt.Errorf("leads outside the root: %w", fs.ErrPermission)

// outside turns os.Root's refusal of a path that escapes it, an error
// with no exported identity, into ErrOutside.
func outside(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) && pe.Err != nil && pe.Err.Error() == "path escapes from parent" {
		return &fs.PathError{Op: pe.Op, Path: pe.Path, Err: ErrOutside}
	}
	return err
}

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
// fs.ReadDirFS and fs.ReadFileFS, its files are *os.File (seekable), and
// it opens only regular files and directories.
func (r *Root) FS() fs.FS { return rootFS{r.r} }

// OS is the underlying os.Root, for servers that also write (TFTP with
// write requests enabled).
func (r *Root) OS() *os.Root { return r.r }

// Dir is the directory's name as given to Open.
func (r *Root) Dir() string { return r.dir }

// Close releases the directory.
func (r *Root) Close() error { return r.r.Close() }

// rootFS is Root's fs.FS.
type rootFS struct{ r *os.Root }

func (f rootFS) Open(name string) (fs.File, error) { return f.open("open", name) }

// open opens name for reading without blocking, and only if it is a
// regular file or a directory. O_NONBLOCK stays set on what it returns:
// reads of regular files and directories ignore it.
func (f rootFS) open(op, name string) (*os.File, error) {
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: op, Path: name, Err: fs.ErrInvalid}
	}
	file, err := f.r.OpenFile(name, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, outside(err)
	}
	st, err := file.Stat()
	if err != nil {
		file.Close()
		return nil, err
	}
	if m := st.Mode(); !m.IsRegular() && !m.IsDir() {
		file.Close()
		return nil, &fs.PathError{Op: op, Path: name, Err: ErrNotRegular}
	}
	return file, nil
}

// Stat follows symlinks that stay inside the root, and opens nothing.
func (f rootFS) Stat(name string) (fs.FileInfo, error) {
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: "stat", Path: name, Err: fs.ErrInvalid}
	}
	st, err := f.r.Stat(name)
	return st, outside(err)
}

func (f rootFS) ReadFile(name string) ([]byte, error) {
	file, err := f.open("readfile", name)
	if err != nil {
		return nil, err
	}
	defer file.Close()
	return io.ReadAll(file)
}

// ReadDir lists a directory sorted by name, as fs.ReadDirFS requires.
func (f rootFS) ReadDir(name string) ([]fs.DirEntry, error) {
	file, err := f.open("readdir", name)
	if err != nil {
		return nil, err
	}
	defer file.Close()
	entries, err := file.ReadDir(-1)
	entries = slices.DeleteFunc(entries, func(e fs.DirEntry) bool { return IsUploadTemp(e.Name()) })
	slices.SortFunc(entries, func(a, b fs.DirEntry) int { return strings.Compare(a.Name(), b.Name()) })
	return entries, err
}

// UploadTemp is where an upload of name (a slash path inside the root)
// is written until it is complete: a hidden name beside it, tagged with
// 12 hex digits of tag.
func UploadTemp(name string, tag [6]byte) string {
	return path.Join(path.Dir(name), "."+path.Base(name)+".tftp-"+hex.EncodeToString(tag[:])+".part")
}

// IsUploadTemp reports whether base, a file's last element, is an
// UploadTemp's: listings leave such files out, since they are not files
// yet (or the remains of an upload whose server died).
func IsUploadTemp(base string) bool {
	rest, ok := strings.CutSuffix(base, ".part")
	if !ok || len(rest) < len(".x.tftp-")+12 || rest[0] != '.' {
		return false
	}
	tag := rest[len(rest)-12:]
	if !strings.HasSuffix(rest[:len(rest)-12], ".tftp-") {
		return false
	}
	_, err := hex.DecodeString(tag)
	return err == nil && strings.ToLower(tag) == tag
}
