package rootfs_test

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/netspec/netspec/impl/rootfs"
	"github.com/netspec/netspec/spec/file"
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
