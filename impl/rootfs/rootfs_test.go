package rootfs_test

import (
	"errors"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/netspec/netspec/impl/rootfs"
	"github.com/netspec/netspec/spec"
	"github.com/netspec/netspec/spec/file"
	"github.com/netspec/netspec/spec/tftp"
)

// tree builds root/{ok.txt, sub/inner.txt, in -> ok.txt, subin -> sub,
// out -> ../secret, abs -> /etc/passwd, dirout -> ..} next to a secret.
func tree(t *testing.T) (string, string) {
	base := t.TempDir()
	root := filepath.Join(base, "root")
	must(t, os.MkdirAll(filepath.Join(root, "sub"), 0o755))
	must(t, os.WriteFile(filepath.Join(root, "ok.txt"), []byte("fine"), 0o644))
	must(t, os.WriteFile(filepath.Join(root, "sub", "inner.txt"), []byte("inner"), 0o644))
	must(t, os.WriteFile(filepath.Join(base, "secret"), []byte("do not serve"), 0o644))
	must(t, os.Symlink("ok.txt", filepath.Join(root, "in")))
	must(t, os.Symlink("sub", filepath.Join(root, "subin")))
	must(t, os.Symlink("../secret", filepath.Join(root, "out")))
	must(t, os.Symlink("/etc/passwd", filepath.Join(root, "abs")))
	must(t, os.Symlink("..", filepath.Join(root, "dirout")))
	must(t, os.Symlink("sub/../../secret", filepath.Join(root, "sneaky")))
	return root, base
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestConfinement(t *testing.T) {
	dir, _ := tree(t)
	r, err := rootfs.Open(dir)
	must(t, err)
	defer r.Close()
	fsys := r.FS()
	for name, want := range map[string]string{"ok.txt": "fine", "sub/inner.txt": "inner", "in": "fine", "subin/inner.txt": "inner"} {
		got, err := fs.ReadFile(fsys, name)
		if err != nil || string(got) != want {
			t.Errorf("%s: %q, %v; want %q", name, got, err, want)
		}
	}
	// Names the file service refuses before opening, and names it lets
	// through that os.Root must refuse because of where they lead.
	for _, name := range []string{"../secret", "/etc/passwd", "sub/../../secret", "out", "abs", "dirout/secret", "sneaky", "subin/../../secret"} {
		b, err := fs.ReadFile(fsys, name)
		if err == nil {
			t.Errorf("%s: served %q", name, b)
		}
		if file.ValidName(name) == nil && err == nil {
			t.Errorf("%s: neither ValidName nor os.Root refused it", name)
		}
	}
	if _, err := fs.Stat(fsys, "out"); err == nil {
		t.Error("Stat followed a symlink out of the root")
	}
	// A way out is a permission error, so that servers answer it as an
	// access violation (and this notices if os.Root's error changes).
	for _, name := range []string{"out", "abs", "dirout/secret", "sneaky"} {
		_, err := fsys.Open(name)
		_, serr := fs.Stat(fsys, name)
		if !errors.Is(err, rootfs.ErrOutside) || !errors.Is(err, fs.ErrPermission) || !errors.Is(serr, rootfs.ErrOutside) {
			t.Errorf("%s: open %v, stat %v; want %v", name, err, serr, rootfs.ErrOutside)
		}
	}
}

func TestOpenNotADirectory(t *testing.T) {
	dir, _ := tree(t)
	if _, err := rootfs.Open(filepath.Join(dir, "ok.txt")); err == nil {
		t.Error("opened a file as a root")
	}
	if _, err := rootfs.Open(filepath.Join(dir, "nope")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing directory: %v", err)
	}
}

// A TFTP read request for a symlink out of the root is an access
// violation (error 2), as RFC 1350 has it, not an undefined error.
func TestTFTPSymlinkOutIsAccessViolation(t *testing.T) {
	dir, _ := tree(t)
	r, err := rootfs.Open(dir)
	must(t, err)
	defer r.Close()
	srvAddr := netip.MustParseAddrPort("10.0.0.1:69")
	cli := netip.MustParseAddrPort("10.0.0.2:40000")
	for _, name := range []string{"out", "abs", "sneaky", "dirout/secret", "../secret"} {
		s := tftp.NewServer(tftp.ServerConfig{Addr: srvAddr}, r.FS(), nil)
		s.Step(spec.SimEpoch, spec.Input{Kind: spec.InStart}, nil)
		s.Step(spec.SimEpoch, spec.Input{Kind: spec.InBound, Sock: 1, Addr: srvAddr}, nil)
		rrq := (&tftp.Packet{Op: tftp.OpRRQ, Filename: name, Mode: "octet"}).Append(nil)
		var got []string
		for _, o := range s.Step(spec.SimEpoch, spec.Input{Kind: spec.InDatagram, Sock: 1, Addr: cli, Data: rrq}, nil) {
			if o.Kind != spec.OutSend {
				continue
			}
			var p tftp.Packet
			if err := tftp.Decode(o.Data, &p); err != nil || p.Op != tftp.OpERROR || p.Code != tftp.ErrAccess {
				t.Errorf("%s: answered %s, want an access violation", name, tftp.Describe(o.Data))
			}
			got = append(got, tftp.Describe(o.Data))
		}
		if len(got) != 1 {
			t.Errorf("%s: %d answers %q, want one", name, len(got), got)
		}
	}
}

// Upload temporaries are recognised exactly, and listings leave them out.
func TestUploadTempsHidden(t *testing.T) {
	tmp := rootfs.UploadTemp("dir/a.bin", [6]byte{1, 2, 3, 4, 5, 0xab})
	if tmp != "dir/.a.bin.tftp-0102030405ab.part" {
		t.Fatalf("UploadTemp: %q", tmp)
	}
	for name, want := range map[string]bool{
		".a.bin.tftp-0102030405ab.part": true,
		"a.bin.tftp-0102030405ab.part":  false, // not hidden
		".a.bin.tftp-0102030405AB.part": false,
		".a.bin.tftp-0102030405a.part":  false,
		".a.bin.tftp-0102030405abc":     false,
		".a.bin.part":                   false,
		".tftp-0102030405ab.part":       false,
	} {
		if rootfs.IsUploadTemp(name) != want {
			t.Errorf("IsUploadTemp(%q) = %v", name, !want)
		}
	}
	dir := t.TempDir()
	for _, n := range []string{"a.bin", ".a.bin.tftp-0102030405ab.part", ".hidden"} {
		if err := os.WriteFile(filepath.Join(dir, n), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	r, err := rootfs.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	es, err := fs.ReadDir(r.FS(), ".")
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	if err != nil || strings.Join(names, " ") != ".hidden a.bin" {
		t.Fatalf("listing %v, %v", names, err)
	}
}
