// Package lircdtest starts the real lircd for tests, with its "file" driver,
// which writes every transmission to a file as "pulse N" and "space N"
// lines (N in µs), each code followed by a "space" of the remote's remaining
// gap. Tests decode what lircd "transmitted" (Frames, WaitFrames), so they
// check the whole path from a program to the IR signal.
//
// lircd comes from the Debian package lirc; Start uses realprog.Require, so
// the test is skipped without it on a laptop and fails without it in CI.
//
// The package must not import irlamp: irlamp's own tests use it.
package lircdtest

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pikit/pikit/internal/realprog"
)

// Options configures Start.
type Options struct {
	// Dir holds lircd's socket, output, log and pid files. Unix socket
	// paths are limited to about 100 bytes, so use ShortTempDir rather than
	// t.TempDir. Empty means a new ShortTempDir.
	Dir string
	// Conf is the lircd.conf to load (required), e.g. irlamp's
	// testdata/lircd_LED_24_KEY.conf.
	Conf string
	// TCP also makes lircd listen on a loopback TCP port (Lircd.TCP).
	TCP bool
}

// Lircd is a lircd started by a test. It is stopped when the test ends.
type Lircd struct {
	// Sock is lircd's unix socket; Out the file driver's output; Log its
	// log file; TCP its TCP listener ("127.0.0.1:port") if asked for.
	Sock, Out, Log, TCP string
	// Cmd is the running lircd, e.g. to send it SIGHUP.
	Cmd *exec.Cmd

	t      testing.TB
	exited chan struct{}
	stop   func()
}

// Start starts lircd and waits for it to accept connections.
func Start(t testing.TB, opts Options) *Lircd {
	t.Helper()
	prog := realprog.Require(t, "lircd", "lirc")
	if opts.Conf == "" {
		t.Fatal("lircdtest: Options.Conf is required")
	}
	conf, err := filepath.Abs(opts.Conf)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(conf); err != nil {
		t.Fatalf("lircdtest: %v", err)
	}
	dir := opts.Dir
	if dir == "" {
		dir = ShortTempDir(t)
	}
	d := &Lircd{
		t:      t,
		Sock:   filepath.Join(dir, "lircd"),
		Out:    filepath.Join(dir, "ir-out.txt"),
		Log:    filepath.Join(dir, "lircd.log"),
		exited: make(chan struct{}),
	}
	// An empty options file, so that the system's lirc_options.conf (with
	// its devinput driver and /var/run socket) plays no part.
	optsFile := filepath.Join(dir, "lirc_options.conf")
	if err := os.WriteFile(optsFile, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{
		"--nodaemon",
		"--options-file=" + optsFile,
		"--driver=file",
		"--device=" + d.Out,
		"--output=" + d.Sock,
		"--pidfile=" + filepath.Join(dir, "lircd.pid"),
		"--logfile=" + d.Log,
		"--loglevel=info",
	}
	if opts.TCP {
		d.TCP = net.JoinHostPort("127.0.0.1", strconv.Itoa(FreePort(t)))
		args = append(args, "--listen="+d.TCP)
	}
	args = append(args, conf)
	var stderr bytes.Buffer
	d.Cmd = exec.Command(prog, args...)
	d.Cmd.Stdout, d.Cmd.Stderr = &stderr, &stderr
	if err := d.Cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		d.Cmd.Wait()
		close(d.exited)
	}()
	var once sync.Once
	d.stop = func() {
		once.Do(func() {
			d.Cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-d.exited:
			case <-time.After(5 * time.Second):
				d.Cmd.Process.Kill()
				<-d.exited
			}
			if t.Failed() {
				logText, _ := os.ReadFile(d.Log)
				t.Logf("lircd output:\n%s\nlircd log:\n%s", stderr.String(), logText)
			}
		})
	}
	t.Cleanup(d.stop)

	deadline := time.Now().Add(10 * time.Second)
	for {
		ready := accepts("unix", d.Sock)
		if ready && d.TCP != "" {
			ready = accepts("tcp", d.TCP)
		}
		if ready {
			return d
		}
		select {
		case <-d.exited:
			logText, _ := os.ReadFile(d.Log)
			t.Fatalf("lircd exited at start: %v\n%s\n%s", d.Cmd.ProcessState, stderr.String(), logText)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("lircd did not open %s within 10s", d.Sock)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Stop stops lircd (SIGTERM, then SIGKILL after 5s) and waits for it to
// exit. Stopping twice is harmless; the test's cleanup stops it anyway.
func (d *Lircd) Stop() { d.stop() }

// accepts reports whether something accepts connections at address.
func accepts(network, address string) bool {
	c, err := net.DialTimeout(network, address, time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// ShortTempDir returns a new directory under the system's temporary
// directory, removed when the test ends: t.TempDir's paths can be too long
// for a unix socket.
func ShortTempDir(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "lircd")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// FreePort returns a loopback TCP port that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// Frames returns the codes lircd has transmitted so far, each without the
// gap after it, as alternating mark and space durations in µs. A code lircd
// is still writing (not yet followed by its gap) is left out.
func (d *Lircd) Frames() [][]uint32 {
	d.t.Helper()
	b, err := os.ReadFile(d.Out)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		d.t.Fatal(err)
	}
	frames, _, err := ParseFileDriverOutput(b)
	if err != nil {
		d.t.Fatal(err)
	}
	return frames
}

// WaitFrames waits up to 3 seconds until lircd has transmitted n codes in
// all, and returns them; it fails the test if there are fewer or more. The
// file driver writes each code before lircd replies, but waiting keeps the
// test independent of that.
func (d *Lircd) WaitFrames(n int) [][]uint32 {
	d.t.Helper()
	return d.waitFrames(n, 3*time.Second, true)
}

// WaitAtLeast waits up to timeout until lircd has transmitted at least n
// codes, and returns all of them; it fails the test if there are fewer.
func (d *Lircd) WaitAtLeast(n int, timeout time.Duration) [][]uint32 {
	d.t.Helper()
	return d.waitFrames(n, timeout, false)
}

func (d *Lircd) waitFrames(n int, timeout time.Duration, exact bool) [][]uint32 {
	d.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		f := d.Frames()
		if len(f) >= n || time.Now().After(deadline) {
			if len(f) < n || exact && len(f) != n {
				d.t.Fatalf("lircd transmitted %d codes, want %d", len(f), n)
			}
			return f
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// ParseFileDriverOutput splits the file driver's "pulse N"/"space N" lines
// into codes: a space longer than any inside an IR code (NEC's longest is
// 4.5 ms) ends one; the file driver writes one after every code. Comment
// lines ("# ...") are skipped. What follows the last such space is a code
// still being written, returned as partial.
func ParseFileDriverOutput(b []byte) (frames [][]uint32, partial []uint32, err error) {
	const codeBreak = 20000
	var cur []uint32
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		kind, val, ok := strings.Cut(line, " ")
		v, err := strconv.ParseUint(val, 10, 32)
		if !ok || err != nil {
			return nil, nil, fmt.Errorf("line %d: %q is not \"pulse N\" or \"space N\"", n, line)
		}
		mark := len(cur)%2 == 0
		switch {
		case kind == "pulse" && mark, kind == "space" && !mark && v < codeBreak:
			cur = append(cur, uint32(v))
		case kind == "space" && !mark:
			frames, cur = append(frames, cur), nil
		default:
			return nil, nil, fmt.Errorf("line %d: %q out of turn", n, line)
		}
	}
	return frames, cur, sc.Err()
}
