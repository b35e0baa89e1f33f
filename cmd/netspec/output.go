package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// outTarget resolves a download's -o PATH to what it will write. A
// device, FIFO or socket (-o /dev/null, -o /dev/stdout on a pipe) is
// written into, in order, and never renamed over: device is true and
// target is PATH as given (the kernel opens /proc's fd links, which have
// no path of their own). Otherwise symbolic links are followed, so that
// the file behind a link is replaced and the link kept, as a shell's
// redirection or curl -o would: PATH.part then lands beside the file it
// becomes. A link to nothing is refused rather than guessed at.
func outTarget(p string) (target string, device bool, err error) {
	if fi, err := os.Stat(p); err == nil {
		switch {
		case fi.IsDir():
			return "", false, fmt.Errorf("%s is a directory (name the file to write)", p)
		case !fi.Mode().IsRegular():
			return p, true, nil
		}
		t, err := filepath.EvalSymlinks(p)
		if err != nil {
			return "", false, err
		}
		return t, false, nil
	}
	if fi, err := os.Lstat(p); err == nil && fi.Mode()&fs.ModeSymlink != 0 {
		return "", false, fmt.Errorf("%s is a symbolic link to a file that is not there", p)
	}
	dir, err := filepath.EvalSymlinks(filepath.Dir(p))
	if err != nil {
		return "", false, err
	}
	if fi, err := os.Stat(dir); err != nil {
		return "", false, err
	} else if !fi.IsDir() {
		return "", false, fmt.Errorf("%s is not a directory", filepath.Dir(p))
	}
	return filepath.Join(dir, filepath.Base(p)), false, nil
}

// dest is where a download's bytes go: PATH.part, locked so that a
// second download to the same PATH fails at once instead of writing the
// same file, and renamed to PATH only once the download is complete and
// verified, so a failed or interrupted one never leaves a file that
// looks complete; or, for a device, the device itself.
type dest struct {
	path string   // the file the download becomes, or the device
	part string   // PATH.part; empty for a device
	f    *os.File // open for writing (and reading back, for a .part)
	done bool
}

// createDest opens the destination of -o p for a download from
// scratch: PATH.part created or emptied, or the device.
func createDest(verb, p string) (*dest, error) {
	target, device, err := outTarget(p)
	if err != nil {
		return nil, usagef("%s: -o: %v", verb, err)
	}
	if device {
		f, err := os.OpenFile(target, os.O_WRONLY, 0)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", verb, err)
		}
		return &dest{path: target, f: f}, nil
	}
	o := &dest{path: target, part: target + ".part"}
	f, err := os.OpenFile(o.part, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", verb, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: another download is writing %s (%v)", verb, o.part, err)
	}
	if err := f.Truncate(0); err != nil {
		f.Close()
		os.Remove(o.part)
		return nil, fmt.Errorf("%s: %w", verb, err)
	}
	o.f = f
	return o, nil
}

// device reports whether the download writes into a device.
func (o *dest) device() bool { return o.part == "" }

// commit makes the download PATH: the bytes are flushed to the disk and
// PATH.part renamed over PATH. The file stays open for reading.
func (o *dest) commit() error {
	if o.done || o.part == "" {
		o.done = true
		return nil
	}
	if err := o.f.Sync(); err != nil {
		return err
	}
	if err := os.Rename(o.part, o.path); err != nil {
		return err
	}
	o.done = true
	return nil
}

// close releases the destination; PATH.part of a download never
// committed is removed.
func (o *dest) close() error {
	if o == nil || o.f == nil {
		return nil
	}
	err := o.f.Close()
	o.f = nil
	if !o.done && o.part != "" {
		if rerr := os.Remove(o.part); err == nil && !errors.Is(rerr, fs.ErrNotExist) {
			err = rerr
		}
	}
	return err
}

// statusFor returns e, or, when -o p names this process's standard
// output (-o /dev/stdout, /proc/self/fd/1, or the file stdout is
// redirected to), a copy of e whose stdout is its stderr: the download's
// status lines would otherwise land among its bytes. -o - is each
// downloader's own business.
func (e *env) statusFor(p string) *env {
	f, ok := e.stdout.(*os.File)
	if p == "" || p == "-" || !ok {
		return e
	}
	a, err := f.Stat()
	if err != nil {
		return e
	}
	if b, err := os.Stat(p); err != nil || !os.SameFile(a, b) || isDevNull(b) {
		return e
	}
	c := *e
	c.stdout = e.stderr
	return &c
}

// checkOutFiles refuses, before anything is opened, files a command
// would write (outs: flag name, then path; empty paths are unset) that
// are a directory, or the same file as another output or as a file the
// command reads (ins): one would be written over the other.
func checkOutFiles(verb string, outs []string, ins ...string) error {
	for i := 0; i+1 < len(outs); i += 2 {
		name, p := outs[i], outs[i+1]
		if p == "" {
			continue
		}
		if fi, err := os.Stat(p); err == nil && fi.IsDir() {
			return usagef("%s: %s %s is a directory (name the file to write)", verb, name, p)
		}
		for _, in := range ins {
			if samePath(p, in) {
				return usagef("%s: %s %s is the file it reads: it would be written over", verb, name, p)
			}
		}
		for j := i + 2; j+1 < len(outs); j += 2 {
			if outs[j+1] != "" && samePath(p, outs[j+1]) {
				return usagef("%s: %s and %s name the same file, %s", verb, name, outs[j], p)
			}
		}
	}
	return nil
}

// samePath reports whether paths a and b name one file: the same file
// if both exist (a device other than a regular file, /dev/null say, can
// take any number of writers), else the same absolute path.
func samePath(a, b string) bool {
	fa, erra := os.Stat(a)
	fb, errb := os.Stat(b)
	if erra == nil && errb == nil {
		return os.SameFile(fa, fb) && fa.Mode().IsRegular()
	}
	aa, erra := filepath.Abs(a)
	ab, errb := filepath.Abs(b)
	return erra == nil && errb == nil && aa == ab
}

// isDevNull reports whether fi is /dev/null.
func isDevNull(fi os.FileInfo) bool {
	n, err := os.Stat(os.DevNull)
	return err == nil && os.SameFile(fi, n)
}
