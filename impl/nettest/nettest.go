// Package nettest runs real-socket tests that must listen on the
// wildcard address (0.0.0.0, [::]) inside a network namespace of their
// own, whose only interface is its loopback: what such a test opens is
// reachable from nowhere else, as the project's tests promise.
package nettest

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"
)

// envInside marks a test process started by PrivateNet in its namespace.
const envInside = "NETSPEC_PRIVATE_NET"

// PrivateNet reports whether the calling test runs in a private network
// namespace, and may go on. If it does not, PrivateNet runs the test
// again, alone, in a new namespace (unshare(1): as root, or in a user
// namespace of its own; lo brought up with ip(8)), makes that run's
// outcome the test's, and returns false: the caller returns at once.
// Where no namespace can be made it skips the test, or fails it if
// NETSPEC_REQUIRE_LAB is set.
func PrivateNet(t *testing.T) bool {
	t.Helper()
	if os.Getenv(envInside) == "1" {
		return true
	}
	unavailable := func(why string) bool {
		t.Helper()
		if os.Getenv("NETSPEC_REQUIRE_LAB") != "" {
			t.Fatalf("NETSPEC_REQUIRE_LAB is set: this test listens on every address and runs in a private network namespace, but %s", why)
		}
		t.Skipf("this test listens on every address, so it runs in a private network namespace, but %s", why)
		return false
	}
	unshare, err := exec.LookPath("unshare")
	if err != nil {
		return unavailable("unshare(1) is missing")
	}
	ip, err := exec.LookPath("ip")
	if err != nil {
		return unavailable("ip(8) is missing (iproute2)")
	}
	// As root a network namespace; otherwise one inside a user namespace
	// where the caller is root, where the kernel allows those.
	flags := []string{"--net"}
	if os.Geteuid() != 0 {
		flags = []string{"--user", "--map-root-user", "--net"}
	}
	if out, err := exec.Command(unshare, append(flags, "true")...).CombinedOutput(); err != nil {
		return unavailable(fmt.Sprintf("unshare %s failed: %s", strings.Join(flags, " "), strings.TrimSpace(string(out))))
	}
	deadline := time.Now().Add(5 * time.Minute)
	if d, ok := t.Deadline(); ok {
		deadline = d.Add(-5 * time.Second)
		if time.Until(deadline) < 10*time.Second {
			return unavailable("too little time is left before the test binary's deadline")
		}
	}
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	var run []string
	for _, part := range strings.Split(t.Name(), "/") {
		run = append(run, "^"+regexp.QuoteMeta(part)+"$")
	}
	args := append(flags, "--", "sh", "-c", `"$0" link set lo up && exec "$@"`,
		ip, os.Args[0], "-test.run="+strings.Join(run, "/"), "-test.count=1", "-test.v")
	if testing.Short() {
		args = append(args, "-test.short")
	}
	cmd := exec.CommandContext(ctx, unshare, args...)
	cmd.Env = append(os.Environ(), envInside+"=1")
	// On a timeout, what the test started (nc, say) may hold the output
	// open: stop waiting for it.
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	switch {
	case err != nil:
		t.Fatalf("in a private network namespace: %v\n%s", err, out)
	case bytes.Contains(out, []byte("--- SKIP: "+t.Name())):
		t.Skipf("skipped in its private network namespace:\n%s", out)
	case !bytes.Contains(out, []byte("--- PASS: "+t.Name())):
		t.Fatalf("in a private network namespace, the test did not run:\n%s", out)
	}
	t.Logf("passed in a private network namespace")
	return false
}
