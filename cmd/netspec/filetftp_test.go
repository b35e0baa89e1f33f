package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// netspec file serve --tftp serves the same root over TFTP, beside the
// native protocol: curl downloads the same bytes.
func TestFileServeAlsoServesTFTP(t *testing.T) {
	need(t, "curl")
	root, files := tftpRoot(t)
	out := &syncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"file", "serve", "--addr", "127.0.0.1:0", "--root", root, "--tftp", "127.0.0.1:0"}, strings.NewReader(""), out, io.Discard)
	}()
	defer func() {
		cancel()
		if err := awaitExit(done, 10*time.Second, "file serve"); err != nil {
			t.Error(err)
		}
	}()
	out.wait(t, `file: serving .* on (\S+)\n`)
	host, port, err := net.SplitHostPort(out.wait(t, `tftp: serving .* on (\S+)\n`)[1])
	if err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(t.TempDir(), "kernel")
	if o, err := tool(t, "curl", "-sS", "-o", dst, "tftp://"+host+":"+port+"/dir/kernel.img"); err != nil {
		t.Fatalf("curl: %v\n%s", err, o)
	}
	got, err := os.ReadFile(dst)
	if err != nil || !bytes.Equal(got, files["dir/kernel.img"]) {
		t.Fatalf("curl over file serve --tftp got %d bytes (%v), want %d", len(got), err, len(files["dir/kernel.img"]))
	}
}
