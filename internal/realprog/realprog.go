// Package realprog lets tests use real peer programs (lircd, aplay, ffmpeg,
// mosquitto, chromium) when they are installed. A test that needs one calls
// Require: on a developer's laptop without the program the test is skipped
// with a message saying what to install; in CI (the CI environment variable
// is set) a missing program fails the test, so a broken install step cannot
// turn real-peer tests into silent skips.
package realprog

import (
	"os"
	"os/exec"
	"strings"
)

// TB is the subset of testing.TB that Require uses.
type TB interface {
	Helper()
	Skipf(format string, args ...any)
	Fatalf(format string, args ...any)
}

// InCI reports whether the tests run in CI, where missing peers are failures.
func InCI() bool {
	v := strings.TrimSpace(os.Getenv("CI"))
	return v != "" && v != "0" && !strings.EqualFold(v, "false")
}

// Require returns the path of the named program. If it is not on PATH, the
// test is skipped (outside CI) or failed (in CI); debPkg names the Debian
// package that provides it, for the message.
func Require(t TB, program, debPkg string) string {
	t.Helper()
	path, err := exec.LookPath(program)
	if err == nil {
		return path
	}
	if InCI() {
		t.Fatalf("%s is required in CI but not found on PATH (install Debian package %s): %v", program, debPkg, err)
		return ""
	}
	t.Skipf("skipping: %s not found on PATH (install Debian package %s to run this test against the real program)", program, debPkg)
	return ""
}
