package main

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/netspec/netspec/spec/cs"
)

// outTarget follows links to what a download replaces, and says which
// targets are written into rather than renamed over.
func TestOutTarget(t *testing.T) {
	dir := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	real := filepath.Join(dir, "real")
	must(os.WriteFile(filepath.Join(dir, "file"), nil, 0o644))
	must(os.Mkdir(real, 0o755))
	must(os.Symlink("file", filepath.Join(dir, "tofile")))
	must(os.Symlink("real", filepath.Join(dir, "todir")))
	must(os.Symlink("nothing", filepath.Join(dir, "dangling")))
	must(syscall.Mkfifo(filepath.Join(dir, "fifo"), 0o600))
	must(os.Symlink("fifo", filepath.Join(dir, "tofifo")))
	for _, tc := range []struct {
		path, target string
		device       bool
		err          string
	}{
		{"file", "file", false, ""},
		{"tofile", "file", false, ""},
		{"new", "new", false, ""},
		{"todir/new", "real/new", false, ""},
		{"fifo", "fifo", true, ""},
		{"tofifo", "tofifo", true, ""},
		{"real", "", false, "is a directory"},
		{"dangling", "", false, "symbolic link to a file that is not there"},
		{"missing/new", "", false, "no such file"},
		{"file/new", "", false, "not a directory"},
	} {
		target, device, err := outTarget(filepath.Join(dir, tc.path))
		switch {
		case tc.err != "":
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: %q, %v; want an error saying %q", tc.path, target, err, tc.err)
			}
		case err != nil || device != tc.device || target != filepath.Join(dir, tc.target):
			t.Errorf("%s: %q device %v (%v); want %q device %v", tc.path, target, device, err, tc.target, tc.device)
		}
	}
}

// A second download to the same PATH fails at once; the first keeps its
// PATH.part, and only commit makes PATH.
func TestDestLocks(t *testing.T) {
	p := filepath.Join(t.TempDir(), "out")
	a, err := createDest("test", p)
	if err != nil {
		t.Fatal(err)
	}
	defer a.close()
	if b, err := createDest("test", p); err == nil || !strings.Contains(err.Error(), "another download is writing") {
		b.close()
		t.Fatalf("a second download to the same path: %v", err)
	}
	if _, err := a.f.WriteString("whole"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p); err == nil {
		t.Fatal("PATH exists before commit")
	}
	if err := a.commit(); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(p); string(got) != "whole" {
		t.Fatalf("PATH holds %q", got)
	}
}

// cs get -o writes through a symbolic link (the file behind it replaced,
// the link kept) and into a FIFO (kept a FIFO), as a shell's redirection
// would: it renamed its .part over both, and as root over /dev/null.
func TestCSGetOutputThroughLinksAndDevices(t *testing.T) {
	addr, _ := swarmServer(t, "cs", "serve", "-p", "0", "--ip", "127.0.0.1", "--size", "100000", "--seed", "3")
	want, err := cs.Generate(cs.FileSpec{Seed: 3, Size: 100000})
	if err != nil {
		t.Fatal(err)
	}
	host, port := split(t, addr)
	dir := t.TempDir()
	file, link := filepath.Join(dir, "file"), filepath.Join(dir, "link")
	if err := os.WriteFile(file, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("file", link); err != nil {
		t.Fatal(err)
	}
	if code, out, errs := runCmd("cs", "get", "-s", host, "-p", port, "-o", link, "-q"); code != 0 {
		t.Fatalf("cs get -o link: exit %d\n%s%s", code, out, errs)
	}
	if st, err := os.Lstat(link); err != nil || st.Mode().Type() != fs.ModeSymlink {
		t.Fatalf("the link was replaced: %v %v", st, err)
	}
	if got, _ := os.ReadFile(file); !bytes.Equal(got, want) {
		t.Fatalf("the file behind the link holds %d bytes, want the %d downloaded", len(got), len(want))
	}
	fifo := filepath.Join(dir, "fifo")
	got := readFIFO(t, fifo)
	if err := os.Symlink("fifo", filepath.Join(dir, "tofifo")); err != nil {
		t.Fatal(err)
	}
	if code, out, errs := runCmd("cs", "get", "-s", host, "-p", port, "-o", filepath.Join(dir, "tofifo"), "-q"); code != 0 {
		t.Fatalf("cs get -o fifo: exit %d\n%s%s", code, out, errs)
	}
	checkFIFO(t, fifo, got, string(want))
	if left, _ := filepath.Glob(filepath.Join(dir, "*.part")); len(left) != 0 {
		t.Fatalf("left %v", left)
	}
}

// -o naming standard output (here a pipe, through /proc/self/fd) moves
// the status lines to stderr, where they cannot land among the bytes;
// any other -o leaves them on stdout.
func TestStatusForStdout(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	var errb strings.Builder
	e := &env{stdout: w, stderr: &errb}
	if got := e.statusFor(fmt.Sprintf("/proc/self/fd/%d", w.Fd())); got.stdout != &errb {
		t.Fatalf("-o naming stdout's pipe: status goes to %T, want stderr", got.stdout)
	}
	for _, p := range []string{"", "-", "/dev/null", filepath.Join(t.TempDir(), "f")} {
		if got := e.statusFor(p); got.stdout != w {
			t.Errorf("-o %q: status moved off stdout", p)
		}
	}
}
