package file

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/netspec/netspec/spec"
)

// ValidName checks a name a client asked for before anything is opened:
// a relative, slash-separated path inside the root (io/fs.ValidPath: no
// "..", no "." element, no leading or trailing slash, no empty element),
// valid UTF-8, no control characters or backslashes, at most MaxName
// bytes. The file systems the server reads (os.Root's in cmd) refuse
// symlinks that leave the root on top of this. TFTP reuses it.
func ValidName(name string) error {
	switch {
	case name == "":
		return errors.New("empty name")
	case name == ".":
		return errors.New(`"." is the root, not a file`)
	case len(name) > MaxName:
		return fmt.Errorf("name longer than %d bytes", MaxName)
	case !utf8.ValidString(name):
		return errors.New("name is not UTF-8")
	case strings.ContainsFunc(name, func(r rune) bool { return r < 0x20 || (r >= 0x7f && r <= 0x9f) || r == '\\' }):
		return errors.New("name contains a control character or a backslash")
	case !fs.ValidPath(name):
		return fmt.Errorf("%q is not a path inside the root", name)
	}
	return nil
}

// SynthFile describes a file of a synthetic root: Size bytes generated
// from Seed, so traces can record a root in a few bytes of JSON.
type SynthFile struct {
	Name string `json:"name"`
	Size int64  `json:"size"`
	Seed uint64 `json:"seed"`
}

// SynthBytes fills p with the content of a synthetic file of seed at
// offset off. Byte i is byte i%8 (little-endian) of spec.Mix(seed, i/8), so
// any range can be produced directly.
func SynthBytes(seed uint64, off int64, p []byte) {
	for len(p) > 0 && off%8 != 0 {
		var b [8]byte
		binary.LittleEndian.PutUint64(b[:], spec.Mix(seed, uint64(off)/8))
		k := copy(p, b[off%8:])
		p = p[k:]
		off += int64(k)
	}
	for k := uint64(off) / 8; len(p) >= 8; k++ {
		binary.LittleEndian.PutUint64(p, spec.Mix(seed, k))
		p = p[8:]
		off += 8
	}
	for len(p) > 0 {
		w := spec.Mix(seed, uint64(off)/8)
		var b [8]byte
		binary.LittleEndian.PutUint64(b[:], w)
		k := copy(p, b[off%8:])
		p = p[k:]
		off += int64(k)
	}
}

// Synthetic returns a read-only file system holding files; directories
// are implied by the names. Invalid names are left out.
func Synthetic(files []SynthFile) fs.FS {
	s := synthFS{files: map[string]SynthFile{}, dirs: map[string][]string{".": nil}}
	for _, f := range files {
		if ValidName(f.Name) != nil || f.Size < 0 {
			continue
		}
		s.files[f.Name] = f
	}
	for name := range s.files {
		for p := name; p != "."; p = path.Dir(p) {
			d := path.Dir(p)
			if !slices.Contains(s.dirs[d], p) {
				s.dirs[d] = append(s.dirs[d], p)
			}
			if _, ok := s.dirs[d]; !ok {
				s.dirs[d] = nil
			}
		}
	}
	for d := range s.dirs {
		slices.Sort(s.dirs[d])
	}
	return s
}

type synthFS struct {
	files map[string]SynthFile
	dirs  map[string][]string // directory -> its entries' full names
}

func (s synthFS) Open(name string) (fs.File, error) {
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrInvalid}
	}
	if f, ok := s.files[name]; ok {
		return &synthFile{f: f}, nil
	}
	if entries, ok := s.dirs[name]; ok {
		return &synthDir{fs: s, name: name, entries: entries}, nil
	}
	return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
}

func (s synthFS) info(name string) fs.FileInfo {
	if f, ok := s.files[name]; ok {
		return synthInfo{name: path.Base(name), size: f.Size}
	}
	return synthInfo{name: path.Base(name), dir: true}
}

type synthInfo struct {
	name string
	size int64
	dir  bool
}

func (i synthInfo) Name() string { return i.name }
func (i synthInfo) Size() int64  { return i.size }
func (i synthInfo) Mode() fs.FileMode {
	if i.dir {
		return fs.ModeDir | 0o555
	}
	return 0o444
}
func (i synthInfo) ModTime() time.Time         { return time.Time{} }
func (i synthInfo) IsDir() bool                { return i.dir }
func (i synthInfo) Sys() any                   { return nil }
func (i synthInfo) Type() fs.FileMode          { return i.Mode().Type() }
func (i synthInfo) Info() (fs.FileInfo, error) { return i, nil }

type synthFile struct {
	f   SynthFile
	off int64
}

func (f *synthFile) Stat() (fs.FileInfo, error) {
	return synthInfo{name: path.Base(f.f.Name), size: f.f.Size}, nil
}

func (f *synthFile) Read(p []byte) (int, error) {
	n, err := f.ReadAt(p, f.off)
	f.off += int64(n)
	return n, err
}

// ReadAt implements io.ReaderAt.
func (f *synthFile) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fs.ErrInvalid
	}
	if off >= f.f.Size {
		return 0, io.EOF
	}
	n := int(min(int64(len(p)), f.f.Size-off))
	SynthBytes(f.f.Seed, off, p[:n])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// Seek implements io.Seeker.
func (f *synthFile) Seek(off int64, whence int) (int64, error) {
	switch whence {
	case io.SeekCurrent:
		off += f.off
	case io.SeekEnd:
		off += f.f.Size
	}
	if off < 0 {
		return 0, fs.ErrInvalid
	}
	f.off = off
	return off, nil
}

func (f *synthFile) Close() error { return nil }

type synthDir struct {
	fs      synthFS
	name    string
	entries []string
	pos     int
}

func (d *synthDir) Stat() (fs.FileInfo, error) {
	return synthInfo{name: path.Base(d.name), dir: true}, nil
}
func (d *synthDir) Read([]byte) (int, error) {
	return 0, &fs.PathError{Op: "read", Path: d.name, Err: fs.ErrInvalid}
}
func (d *synthDir) Close() error { return nil }

func (d *synthDir) ReadDir(n int) ([]fs.DirEntry, error) {
	rest := d.entries[d.pos:]
	if n > 0 && len(rest) == 0 {
		return nil, io.EOF
	}
	if n > 0 && n < len(rest) {
		rest = rest[:n]
	}
	out := make([]fs.DirEntry, len(rest))
	for i, e := range rest {
		out[i] = d.fs.info(e).(synthInfo)
	}
	d.pos += len(rest)
	return out, nil
}
