package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	iofs "io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/netspec/netspec/cmd/netspec/timeline"
	"github.com/netspec/netspec/conformance"
	"github.com/netspec/netspec/impl/rootfs"
	"github.com/netspec/netspec/spec"
	"github.com/netspec/netspec/spec/all"
	"github.com/netspec/netspec/spec/cs"
	"github.com/netspec/netspec/spec/file"
	"github.com/netspec/netspec/spec/p2p"
	"github.com/netspec/netspec/spec/tftp"
)

func replayGroup() *group {
	return &group{
		name:   "replay",
		args:   "FILE",
		help:   "replay a trace against the pure machines and the socket runner",
		direct: runReplay,
	}
}

func runReplay(ctx context.Context, e *env, args []string) error {
	fs := e.flags("replay", "FILE [flags]", "Replays every node of an NDJSON trace against a fresh pure machine and against\nthe socket runner on loopback, and reports the first divergence.")
	node := fs.String("node", "", "replay only the node called `NAME`")
	specOnly := fs.Bool("spec-only", false, "replay against the pure machines only")
	root := fs.String("root", "", "rebuild file and tftp servers over `DIR`, the directory a --trace run served (default: the synthetic files of their configs), and look there for the files cs and p2p servers were given with -f")
	pos, err := e.parse(fs, args, 1, 1)
	if err != nil {
		return err
	}
	lookup := all.Lookup
	if *root != "" {
		rt, err := rootfs.Open(*root)
		if err != nil {
			return usagef("replay: --root: %v", err)
		}
		defer rt.Close()
		lookup = overRoot(rt.FS())
	}
	lookup = withServedFiles(lookup, *root)
	t, err := conformance.Load(pos[0])
	if err != nil {
		return fmt.Errorf("replay: %w", err)
	}
	opt := conformance.ReplayOptions{SpecOnly: *specOnly}
	if *node != "" {
		// An unknown name would replay nothing and read as a pass.
		if _, ok := t.Header.Node(*node); !ok {
			names := make([]string, len(t.Header.Nodes))
			for i, n := range t.Header.Nodes {
				names[i] = n.Name
			}
			return usagef("replay: %s has no node %q (it has %s)", pos[0], timeline.Clean(*node), timeline.Clean(strings.Join(names, ", ")))
		}
		if len(t.NodeRecords(*node)) == 0 {
			// Nothing to replay would read as a pass too.
			return fmt.Errorf("replay: %s: node %q has no records to replay", pos[0], timeline.Clean(*node))
		}
		opt.Nodes = []string{*node}
	}
	var failures []error
	failed := 0 // nodes, where failures counts spec and impl apiece
	var skipped []conformance.Skip
	rows := [][]string{}
	reports := conformance.Replay(ctx, t, lookup, opt)
	if len(reports) == 1 && errors.Is(reports[0].Spec, conformance.ErrNoNodes) {
		return fmt.Errorf("replay: %s: %w", pos[0], reports[0].Spec)
	}
	for _, rep := range reports {
		before := len(failures)
		// Node names can come from records alone (NOT IN HEADER): what
		// reaches the terminal is cleaned.
		row := []string{timeline.Clean(rep.Node), "ok", "ok"}
		switch {
		case errors.Is(rep.Spec, conformance.ErrUnknownNode):
			row[1] = "NOT IN HEADER"
			failures = append(failures, rep.Spec)
		case rep.Spec != nil:
			row[1] = "DIVERGES"
			failures = append(failures, rep.Spec)
		}
		switch {
		case !rep.ImplRun:
			row[2] = "not run"
		case errors.Is(rep.Impl, conformance.ErrSkip):
			row[2] = "skipped (" + rep.Impl.Error() + ")"
		case rep.Impl != nil:
			row[2] = "DIVERGES"
			failures = append(failures, rep.Impl)
		}
		if n := len(rep.Skipped); n > 0 {
			row[2] += fmt.Sprintf(" (%d record(s) not replayed)", n)
			skipped = append(skipped, rep.Skipped...)
		}
		if len(failures) > before {
			failed++
		}
		rows = append(rows, row)
	}
	tbl := tableOf(fmt.Sprintf("%s: %s trace from %s, %d records", pos[0], t.Header.Protocol, t.Header.Source, len(t.Records)), []string{"node", "spec", "impl"}, rows)
	if err := renderTable(e.stdout, tbl); err != nil {
		return err
	}
	for _, s := range skipped {
		fmt.Fprintln(e.stdout, s)
	}
	for _, f := range failures {
		fmt.Fprintln(e.stdout, f)
	}
	if failed > 0 && *root == "" && t.Header.Source == "impl" && (t.Header.Protocol == "file" || t.Header.Protocol == "tftp") {
		fmt.Fprintf(e.stdout, "(a %s server recorded on sockets served a real directory: replay it over the same files with --root DIR)\n", t.Header.Protocol)
	}
	if failed > 0 {
		return fmt.Errorf("replay: %d node(s) failed", failed)
	}
	return nil
}

// withServedFiles is lookup with C/S and P2P servers that were given a
// file from disk (-f, recorded as the config's path) serving that file
// again, read from where the trace says (relative paths under root, if
// set): a trace of such a run replays only where the file is.
func withServedFiles(lookup conformance.Lookup, root string) conformance.Lookup {
	return func(name string) (spec.Protocol, bool) {
		p, ok := lookup(name)
		if !ok || (name != "cs" && name != "p2p") {
			return p, ok
		}
		build := p.New
		p.New = func(role string, config []byte) (spec.Machine, error) {
			var c struct {
				Path string `json:"path"`
				MD5  string `json:"pathMD5"`
			}
			if role != "server" || json.Unmarshal(config, &c) != nil || c.Path == "" {
				return build(role, config)
			}
			path := c.Path
			if root != "" && !filepath.IsAbs(path) {
				path = filepath.Join(root, path)
			}
			// A trace names any path: read only a regular file of a
			// size a server could have held.
			data, err := []byte(nil), error(nil)
			if st, serr := os.Stat(path); serr != nil {
				err = serr
			} else if !st.Mode().IsRegular() || st.Size() > cs.MaxGenerated {
				err = fmt.Errorf("%s is not a regular file of at most %d bytes", path, int64(cs.MaxGenerated))
			} else {
				data, err = os.ReadFile(path)
			}
			if err != nil {
				return nil, fmt.Errorf("the recorded server served %s, which cannot be read here (replay where it is, or give --root): %w", c.Path, err)
			}
			if sum := cs.Digest(data); c.MD5 != "" && hex.EncodeToString(sum[:]) != c.MD5 {
				return nil, fmt.Errorf("the recorded server served %s with md5 %s; it is now %x: the file changed since", c.Path, c.MD5, sum)
			}
			if name == "cs" {
				var sc cs.ServerConfig
				if err := json.Unmarshal(config, &sc); err != nil {
					return nil, fmt.Errorf("cs: server config: %w", err)
				}
				return cs.NewServer(sc, data), nil
			}
			var sc p2p.ServerConfig
			if err := json.Unmarshal(config, &sc); err != nil {
				return nil, fmt.Errorf("p2p: server config: %w", err)
			}
			return p2p.NewServerOf(sc, data)
		}
		return p, true
	}
}

// overRoot is all.Lookup with file and tftp servers serving fsys: a
// server recorded over a real directory answers as it did only over the
// same files. (TFTP uploads are hashed and discarded, as in any replay.)
func overRoot(fsys iofs.FS) conformance.Lookup {
	return func(name string) (spec.Protocol, bool) {
		p, ok := all.Lookup(name)
		if !ok || (name != "file" && name != "tftp") {
			return p, ok
		}
		build := p.New
		p.New = func(role string, config []byte) (spec.Machine, error) {
			if role != "server" {
				return build(role, config)
			}
			switch name {
			case "file":
				var c file.ServerConfig
				if err := json.Unmarshal(config, &c); err != nil {
					return nil, fmt.Errorf("file: server config: %w", err)
				}
				return file.NewServer(c, fsys), nil
			default:
				var c tftp.ServerConfig
				if err := json.Unmarshal(config, &c); err != nil {
					return nil, fmt.Errorf("tftp: server config: %w", err)
				}
				return tftp.NewServer(c, fsys, nil), nil
			}
		}
		return p, true
	}
}
