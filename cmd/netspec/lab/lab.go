// Package lab builds small networks of real hosts on one Linux machine,
// the way mininet does: one network namespace per host, a veth pair from
// each host to a bridge, and tc token-bucket shaping on both ends of each
// veth so every host has an uplink and a downlink of the given rate. It
// starts processes inside hosts and tears everything down again, also
// when a run is interrupted or a process fails.
//
// This kernel has no netem, so links have a rate but no added delay.
package lab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Prefix starts the name of every namespace and link a lab creates, so
// leftovers of a killed run can be found and removed.
const Prefix = "nsl"

// Options describes a network.
type Options struct {
	// Hosts is the number of hosts: h1 .. hN.
	Hosts int
	// Rate shapes each host's uplink and downlink, in bit/s (0: no
	// shaping).
	Rate float64
	// MTU of the links (default 1500).
	MTU int
	// Queue is each shaper's queue, in bytes (default 1,000 full packets,
	// like mininet's default queue).
	Queue int
	// Subnet holds the hosts' addresses: h1 gets the first (default
	// 10.0.0.0/24, so h1 is 10.0.0.1 as in mininet).
	Subnet netip.Prefix
	// Sysctls are set in every host, e.g. net.ipv4.tcp_timestamps=0.
	Sysctls []string
}

// Host is one namespace.
type Host struct {
	Name string     // h1, h2, ...
	NS   string     // the namespace's name
	Addr netip.Addr // its address on the bridge
	veth string     // host end (inside the namespace)
	port string     // bridge end
}

// Network is a running lab.
type Network struct {
	Hosts  []Host
	bridge string
	id     string
	mu     sync.Mutex
	procs  []*Proc
	closed bool
}

// Available reports why namespaces cannot be made here, or nil.
func Available() error {
	if os.Geteuid() != 0 {
		return errors.New("lab: needs root (network namespaces and tc)")
	}
	for _, tool := range []string{"ip", "tc"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("lab: %s not installed (iproute2)", tool)
		}
	}
	name := fmt.Sprintf("%sprobe%d", Prefix, os.Getpid())
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		return fmt.Errorf("lab: cannot create a network namespace: %v: %s", err, bytes.TrimSpace(out))
	}
	_ = exec.Command("ip", "netns", "del", name).Run()
	return nil
}

func run(ctx context.Context, args ...string) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, args[0], args[1:]...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("lab: %s: %v: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

// Create builds a network. On error, whatever was built is removed.
func Create(ctx context.Context, o Options) (n *Network, err error) {
	if o.Hosts < 1 || o.Hosts > 250 {
		return nil, fmt.Errorf("lab: %d hosts; want 1 to 250", o.Hosts)
	}
	if o.MTU == 0 {
		o.MTU = 1500
	}
	if o.Queue == 0 {
		o.Queue = 1000 * (o.MTU + 14)
	}
	if !o.Subnet.IsValid() {
		o.Subnet = netip.MustParsePrefix("10.0.0.0/24")
	}
	// Interface names are at most 15 bytes: nsl<4 hex id>b, nsl<id>h12p.
	id := fmt.Sprintf("%04x", (os.Getpid()*7919+int(time.Now().UnixNano()/1000))&0xffff)
	n = &Network{id: id, bridge: Prefix + id + "b"}
	// Claim the id before building anything, so a concurrent Sweep
	// leaves this network alone.
	if err := claim(id); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			_ = n.Close()
			n = nil
		}
	}()
	if err := run(ctx, "ip", "link", "add", n.bridge, "type", "bridge"); err != nil {
		return n, err
	}
	if err := run(ctx, "ip", "link", "set", n.bridge, "mtu", fmt.Sprint(o.MTU), "up"); err != nil {
		return n, err
	}
	addr := o.Subnet.Masked().Addr()
	for i := 1; i <= o.Hosts; i++ {
		addr = addr.Next()
		h := Host{Name: fmt.Sprintf("h%d", i), NS: fmt.Sprintf("%s%sh%d", Prefix, id, i), Addr: addr,
			veth: fmt.Sprintf("%s%sh%d", Prefix, id, i), port: fmt.Sprintf("%s%sh%dp", Prefix, id, i)}
		n.Hosts = append(n.Hosts, h)
		steps := [][]string{
			{"ip", "netns", "add", h.NS},
			{"ip", "link", "add", h.veth, "mtu", fmt.Sprint(o.MTU), "type", "veth", "peer", "name", h.port, "mtu", fmt.Sprint(o.MTU)},
			{"ip", "link", "set", h.veth, "netns", h.NS},
			{"ip", "link", "set", h.port, "master", n.bridge, "up"},
			{"ip", "netns", "exec", h.NS, "ip", "link", "set", "lo", "up"},
			{"ip", "netns", "exec", h.NS, "ip", "addr", "add", fmt.Sprintf("%s/%d", addr, o.Subnet.Bits()), "dev", h.veth},
			{"ip", "netns", "exec", h.NS, "ip", "link", "set", h.veth, "up"},
		}
		for _, sc := range o.Sysctls {
			steps = append(steps, []string{"ip", "netns", "exec", h.NS, "sysctl", "-q", "-w", sc})
		}
		if o.Rate > 0 {
			// A token bucket on each end: the host's egress is its
			// uplink, the bridge port's egress its downlink.
			tbf := func(dev string) []string {
				burst := max(int(o.Rate/8/250), 2*(o.MTU+14))
				return []string{"tc", "qdisc", "add", "dev", dev, "root", "tbf", "rate", fmt.Sprintf("%dbit", int64(o.Rate)), "burst", fmt.Sprint(burst), "limit", fmt.Sprint(o.Queue)}
			}
			steps = append(steps, append([]string{"ip", "netns", "exec", h.NS}, tbf(h.veth)...), tbf(h.port))
		}
		for _, s := range steps {
			if err := run(ctx, s...); err != nil {
				return n, err
			}
		}
	}
	return n, nil
}

// ID is the tag in the name of every namespace and link this network
// made, unique among the labs running at once.
func (n *Network) ID() string { return n.id }

// Host returns the host called name (h1 ...), or nil.
func (n *Network) Host(name string) *Host {
	for i := range n.Hosts {
		if n.Hosts[i].Name == name {
			return &n.Hosts[i]
		}
	}
	return nil
}

// Proc is a process running in a host.
type Proc struct {
	Host   string
	cmd    *exec.Cmd
	out    bytes.Buffer
	done   chan struct{}
	err    error
	Ended  time.Time
	Output func() string
}

// Start runs argv inside host h, in its own process group so Close can
// stop it and everything it started. ctx bounds its life.
func (n *Network) Start(ctx context.Context, h *Host, argv ...string) (*Proc, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return nil, errors.New("lab: network closed")
	}
	cmd := exec.Command("ip", append([]string{"netns", "exec", h.NS}, argv...)...)
	p := &Proc{Host: h.Name, cmd: cmd, done: make(chan struct{})}
	var mu sync.Mutex
	w := lockedWriter{&mu, &p.out}
	cmd.Stdout, cmd.Stderr = w, w
	p.Output = func() string { mu.Lock(); defer mu.Unlock(); return p.out.String() }
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("lab: start %v in %s: %w", argv, h.Name, err)
	}
	go func() {
		p.err = cmd.Wait()
		p.Ended = time.Now()
		close(p.done)
	}()
	go func() {
		select {
		case <-ctx.Done():
			p.kill()
		case <-p.done:
		}
	}()
	n.procs = append(n.procs, p)
	return p, nil
}

type lockedWriter struct {
	mu *sync.Mutex
	b  *bytes.Buffer
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

// Wait waits for the process to end and returns its error.
func (p *Proc) Wait() error {
	<-p.done
	return p.err
}

// Done is closed when the process has ended.
func (p *Proc) Done() <-chan struct{} { return p.done }

func (p *Proc) kill() {
	if p.cmd.Process == nil {
		return
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(2 * time.Second):
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	}
}

// Close stops every process and removes every namespace and link. It is
// safe to call more than once.
func (n *Network) Close() error {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return nil
	}
	n.closed = true
	procs := n.procs
	n.mu.Unlock()
	for _, p := range procs {
		p.kill()
	}
	var errs []error
	ctx := context.Background()
	for _, h := range n.Hosts {
		// Deleting the namespace deletes its veth end, and so its peer.
		if err := run(ctx, "ip", "netns", "del", h.NS); err != nil && !strings.Contains(err.Error(), "No such file") {
			errs = append(errs, err)
		}
		_ = exec.Command("ip", "link", "del", h.port).Run()
	}
	if err := run(ctx, "ip", "link", "del", n.bridge); err != nil && !strings.Contains(err.Error(), "Cannot find device") {
		errs = append(errs, err)
	}
	if len(errs) == 0 {
		_ = os.Remove(claimPath(n.id))
	}
	return errors.Join(errs...)
}

// claimDir holds a file per network, named for its id and holding the
// PID of the process that made it: Sweep removes only networks whose
// maker is gone.
const claimDir = "/run/netspec-lab"

func claimPath(id string) string { return filepath.Join(claimDir, id) }

func claim(id string) error {
	if err := os.MkdirAll(claimDir, 0o755); err != nil {
		return fmt.Errorf("lab: %w", err)
	}
	if err := os.WriteFile(claimPath(id), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		return fmt.Errorf("lab: %w", err)
	}
	return nil
}

// owned reports whether the namespace or link called name belongs to a
// network (or an Available probe) whose process is still running.
func owned(name string) bool {
	rest := strings.TrimPrefix(name, Prefix)
	if pid, ok := strings.CutPrefix(rest, "probe"); ok {
		return running(pid)
	}
	if len(rest) < 4 {
		return false
	}
	b, err := os.ReadFile(claimPath(rest[:4]))
	return err == nil && running(string(b))
}

func running(pid string) bool {
	n, err := strconv.Atoi(strings.TrimSpace(pid))
	if err != nil || n <= 0 {
		return false
	}
	err = syscall.Kill(n, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// Leftovers lists namespaces and links left by labs (this one's or a
// killed run's).
func Leftovers() ([]string, error) {
	var found []string
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		return nil, fmt.Errorf("lab: ip netns list: %w", err)
	}
	for _, l := range strings.Split(string(out), "\n") {
		if f := strings.Fields(l); len(f) > 0 && strings.HasPrefix(f[0], Prefix) {
			found = append(found, "netns "+f[0])
		}
	}
	out, err = exec.Command("ip", "-o", "link", "show").Output()
	if err != nil {
		return nil, fmt.Errorf("lab: ip link show: %w", err)
	}
	for _, l := range strings.Split(string(out), "\n") {
		f := strings.Fields(l)
		if len(f) > 1 {
			name := strings.SplitN(strings.TrimSuffix(f[1], ":"), "@", 2)[0]
			if strings.HasPrefix(name, Prefix) {
				found = append(found, "link "+name)
			}
		}
	}
	return found, nil
}

// Sweep removes leftovers of killed runs, and leaves alone the networks
// of processes still running (another lab, a test in parallel).
func Sweep() error {
	left, err := Leftovers()
	if err != nil {
		return err
	}
	var errs []error
	dead := map[string]bool{}
	for _, l := range left {
		kind, name, _ := strings.Cut(l, " ")
		if owned(name) {
			continue
		}
		if rest := strings.TrimPrefix(name, Prefix); len(rest) >= 4 && !strings.HasPrefix(rest, "probe") {
			dead[rest[:4]] = true
		}
		if kind == "netns" {
			errs = append(errs, run(context.Background(), "ip", "netns", "del", name))
		} else {
			_ = exec.Command("ip", "link", "del", name).Run()
		}
	}
	for id := range dead {
		_ = os.Remove(claimPath(id))
	}
	return errors.Join(errs...)
}
