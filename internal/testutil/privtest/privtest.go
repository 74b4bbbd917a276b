// Package privtest runs privileged integration tests safely: each such test
// re-executes itself inside a fresh private mount namespace, so mounts it
// makes never reach the machine's own tree. A test that needs root or a
// tool that is missing fails when CI=true and skips only on a developer's
// non-root machine.
package privtest

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

const childEnv = "STRATA_PRIVTEST_CHILD"

// InCI reports whether the tests run in CI (CI=true), where a missing
// privilege or tool is a failure rather than a skip.
func InCI() bool {
	v := strings.ToLower(os.Getenv("CI"))
	return v == "true" || v == "1" || v == "yes"
}

// Missing fails the test in CI and skips it elsewhere.
func Missing(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if InCI() {
		t.Fatalf("CI=true and %s", msg)
	}
	t.Skip(msg)
}

// RequireRoot stops the test unless it runs as root.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		Missing(t, "this test needs root")
	}
}

// RequireTools stops the test unless every named program is on PATH.
func RequireTools(t testing.TB, names ...string) {
	t.Helper()
	for _, n := range names {
		if _, err := exec.LookPath(n); err != nil {
			Missing(t, "this test needs %s (run ./scripts/deps test)", n)
		}
	}
}

// InMountNS arranges for the calling test to run inside a new private
// mount namespace. In the parent process it re-executes the test binary
// for just this test with CLONE_NEWNS, relays the child's output, fails the
// test if the child failed, and returns false: the caller must return at
// once. In the child it prepares the namespace (everything private to it,
// then / shared again inside it, a tmpfs on /run) and returns true.
func InMountNS(t *testing.T) bool {
	t.Helper()
	RequireRoot(t)
	if os.Getenv(childEnv) == t.Name() {
		prepareChild(t)
		return true
	}
	parts := strings.Split(t.Name(), "/")
	for i, p := range parts {
		parts[i] = "^" + regexp.QuoteMeta(p) + "$"
	}
	args := []string{"-test.run=" + strings.Join(parts, "/"), "-test.v", "-test.count=1"}
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), childEnv+"="+t.Name())
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNS, Pdeathsig: syscall.SIGKILL}
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	err := cmd.Run()
	text := out.String()
	if strings.Contains(text, "--- SKIP") && err == nil && !strings.Contains(text, "--- PASS") {
		t.Log(text)
		t.Skip("skipped in the mount namespace")
	}
	if err != nil {
		t.Fatalf("test in private mount namespace failed: %v\n%s", err, text)
	}
	if testing.Verbose() {
		t.Log(text)
	}
	return false
}

func prepareChild(t *testing.T) {
	t.Helper()
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		t.Fatalf("make / private in test namespace: %v", err)
	}
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_SHARED, ""); err != nil {
		t.Fatalf("make / shared in test namespace: %v", err)
	}
	if err := unix.Mount("tmpfs", "/run", "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=0755"); err != nil {
		t.Fatalf("mount tmpfs on /run in test namespace: %v", err)
	}
}
