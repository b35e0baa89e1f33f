package scenario

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/netspec/netspec/sim"
	"github.com/netspec/netspec/spec"
	"github.com/netspec/netspec/spec/cs"
)

// CSCheck swarm-tests seed 001's C/S download (package cs), which has no
// scenario of its own beside the P2P comparison: three clients download
// a 64 kB file from one server, over and over, for as long as the faults
// last, so that every drawn loss, partition and crash meets downloads in
// flight.
type CSCheck struct{}

// Check's workload.
const (
	csCheckClients = 3
	csCheckSize    = 64_000
	// csCheckBound is how long after healing every client has to finish a
	// download with the exact file. A client needs at most a dial
	// timeout (3 s, if it dialled a server that was down at the heal),
	// its pause before trying again (under 2 s) and the download
	// (0.2 s for three clients at 10 Mbit/s): 15 s is ample.
	csCheckBound = 15 * time.Second
	// csCheckIdle is how long a client waits on a silent connection
	// before it gives up and (as its user) tries again.
	csCheckIdle = 5 * time.Second
)

// Name implements Checked.
func (*CSCheck) Name() string { return "cs" }

// Targets implements Checked: the server and every client.
func (*CSCheck) Targets() (partitionable, crashable []string) {
	nodes := []string{"server"}
	for i := 0; i < csCheckClients; i++ {
		nodes = append(nodes, fmt.Sprintf("client%d", i+1))
	}
	return nodes, nodes
}

// Check implements Checked. Each client downloads the file, pauses 0 to
// 2 s, and downloads it again (as a user would after a failure, or to
// fetch it once more), until the network heals; the downloads in flight
// at the heal, or new ones, must then finish.
//
// Safety, throughout: a client that reports a finished download has
// exactly the file (its kept bytes, byte count, MD5 and byte-for-byte
// comparison all agree with the server's file); any other outcome is
// reported as an error (a reset, a refused or timed-out dial, an idle
// connection), never as a short or altered file. Every byte the server
// puts on the wire is the file's byte at that offset, so it never sends
// more than the file, and every "served" event counts exactly the file.
//
// Liveness: within 15 s of the network healing (csCheckBound), every
// client has finished a download with the exact file.
func (c *CSCheck) Check(seed uint64, faults sim.Faults, opt Options) Verdict {
	var v Verdict
	file := cs.FileSpec{Seed: seed, Size: csCheckSize}
	data, err := cs.Generate(file)
	if err != nil {
		v.Safety = err.Error()
		return v
	}
	sum := cs.Digest(data)
	wantMD5 := hex.EncodeToString(sum[:])
	server := netip.MustParseAddrPort("10.0.0.1:52000")
	heal := faults.Until
	unsafe := func(format string, args ...any) {
		if v.Safety == "" {
			v.Safety = fmt.Sprintf(format, args...)
		}
	}
	kept := map[string][]byte{}   // the "file" event of a node's download
	exact := map[string]int{}     // the start of a node whose download was exact
	live := map[string]bool{}     // finished exactly at or after the heal
	downloads := map[string]int{} // exact downloads, in all
	rng := spec.NewRand(seed ^ 0xc5c5)
	var s *sim.Sim
	var srv *sim.Node

	cfg := sim.Config{Seed: seed, Link: sim.Symmetric(sim.Dir{Rate: 10e6, Delay: 5 * time.Millisecond}), Faults: faults, Protocol: "cs"}
	cfg.OnEvent = func(n *sim.Node, now spec.Time, ev spec.Event) {
		switch ev.Name {
		case "file":
			kept[n.Name] = ev.Data
		case "done":
			// A client reports a download finished when the server's FIN
			// arrives: it must hold the whole file, exactly.
			d := ev.Value.(cs.Done)
			matched := d.Match != nil && *d.Match
			if !matched || d.MD5 != wantMD5 || d.Bytes != csCheckSize || !bytes.Equal(kept[n.Name], data) {
				unsafe("%s finished a download with %d bytes (%d kept, md5 %s, match %v); the file has %d (md5 %s)",
					n.Name, d.Bytes, len(kept[n.Name]), d.MD5, matched, csCheckSize, wantMD5)
			} else {
				exact[n.Name] = n.Starts()
				downloads[n.Name]++
				if now.Sub(spec.SimEpoch) >= heal {
					live[n.Name] = true
				}
			}
			delete(kept, n.Name)
		case "served":
			if b := ev.Value.(cs.Served).Bytes; b != csCheckSize {
				unsafe("the server reports serving %d bytes of a %d-byte file", b, csCheckSize)
			}
		}
	}
	cfg.OnNet = func(ev sim.NetEvent) {
		// Every byte the server sends is the file's at its offset.
		if ev.Kind != sim.NetSend || ev.Proto != spec.TCP || ev.From != server || len(ev.Data) == 0 {
			return
		}
		end := ev.Seq + uint64(len(ev.Data))
		if end > csCheckSize {
			unsafe("the server sent bytes %d..%d of a %d-byte file", ev.Seq, end, csCheckSize)
		} else if !bytes.Equal(ev.Data, data[ev.Seq:end]) {
			unsafe("the server sent bytes %d..%d that are not the file's", ev.Seq, end)
		}
	}
	cfg.OnExit = func(n *sim.Node, now spec.Time, exit string) {
		if n == srv {
			return
		}
		// A clean exit follows an exact download; an error follows none.
		switch ok := exact[n.Name] == n.Starts(); {
		case ok && exit != "":
			unsafe("%s exited with %q after an exact download", n.Name, exit)
		case !ok && exit == "":
			unsafe("%s exited cleanly without an exact download", n.Name)
		}
		if live[n.Name] {
			return
		}
		// Pause, then download again, unless a drawn restart has begun a
		// download in the meantime.
		again := now.Sub(spec.SimEpoch) + time.Duration(rng.IntN(2000)+1)*time.Millisecond
		s.At(again, func() {
			if exited, _ := n.Exited(); exited && !n.Up() {
				s.Restart(again, n.Name)
			}
		})
	}
	s = opt.NewSim(cfg)
	scfg := cs.ServerConfig{Addr: server, File: file, Piece: 16 << 10}
	srv = s.MustAddNode(sim.NodeSpec{Name: "server", Addr: server.Addr(), Protocol: "cs", Role: "server", Config: scfg,
		New: func() spec.Machine { return opt.machine("server", cs.NewServer(scfg, data)) }})
	for i := 0; i < csCheckClients; i++ {
		name := fmt.Sprintf("client%d", i+1)
		ccfg := cs.ClientConfig{Server: server, Keep: true, Expect: &file, Idle: csCheckIdle, Linger: 20 * time.Millisecond}
		s.MustAddNode(sim.NodeSpec{Name: name, Protocol: "cs", Role: "client", Config: ccfg,
			Start: time.Duration(rng.IntN(200)) * time.Millisecond,
			New:   func() spec.Machine { return opt.machine(name, cs.NewClient(ccfg, data)) }})
	}
	s.RunUntil(func() bool { return len(live) == csCheckClients }, heal+csCheckBound)
	v.Virtual, v.Events = s.Elapsed(), s.Events()
	if len(live) < csCheckClients {
		var missing []string
		for i := 0; i < csCheckClients; i++ {
			if name := fmt.Sprintf("client%d", i+1); !live[name] {
				missing = append(missing, fmt.Sprintf("%s (%d exact downloads before)", name, downloads[name]))
			}
		}
		v.Live = fmt.Sprintf("%s finished no download of the exact file within %v of the network healing at %v",
			strings.Join(missing, ", "), csCheckBound, heal)
	}
	if vs := s.Violations(); len(vs) > 0 && v.Safety == "" {
		v.Safety = fmt.Sprintf("contract violations: %v", vs)
	}
	_ = s.Close()
	return v
}
