package irlamp

import (
	"bufio"
	"bytes"
	"context"
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

// These tests run the real lircd with its "file" driver, which writes every
// transmission to a file as "pulse N" and "space N" lines (N in µs), each
// code followed by a "space" of the remote's remaining gap. The tests decode
// what lircd "transmitted" with DecodeNEC, so they check the whole path from
// Send to the IR signal, and lircd's real protocol: replies, ERROR, and the
// SIGHUP broadcast.

// lircdConf is the 24-key remote in NEC form, as lircd is configured with.
const lircdConf = "testdata/lircd_LED_24_KEY.conf"

// realLircd is a lircd started by a test.
type realLircd struct {
	t      *testing.T
	cmd    *exec.Cmd
	dir    string
	sock   string // its unix socket
	out    string // the file driver's output
	log    string
	tcp    string // its TCP listener, if asked for
	exited chan struct{}
	stop   func()
}

// startLircd starts lircd in dir (which holds its socket, output, log and
// pid files), with a TCP listener too when withTCP is set, and waits for it
// to accept connections. It is stopped when the test ends.
func startLircd(t *testing.T, dir string, withTCP bool) *realLircd {
	t.Helper()
	prog := realprog.Require(t, "lircd", "lirc")
	conf, err := filepath.Abs(lircdConf)
	if err != nil {
		t.Fatal(err)
	}
	d := &realLircd{
		t:      t,
		dir:    dir,
		sock:   filepath.Join(dir, "lircd"),
		out:    filepath.Join(dir, "ir-out.txt"),
		log:    filepath.Join(dir, "lircd.log"),
		exited: make(chan struct{}),
	}
	// An empty options file, so that the system's lirc_options.conf (with
	// its devinput driver and /var/run socket) plays no part.
	opts := filepath.Join(dir, "lirc_options.conf")
	if err := os.WriteFile(opts, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{
		"--nodaemon",
		"--options-file=" + opts,
		"--driver=file",
		"--device=" + d.out,
		"--output=" + d.sock,
		"--pidfile=" + filepath.Join(dir, "lircd.pid"),
		"--logfile=" + d.log,
		"--loglevel=info",
	}
	if withTCP {
		d.tcp = net.JoinHostPort("127.0.0.1", strconv.Itoa(freePort(t)))
		args = append(args, "--listen="+d.tcp)
	}
	args = append(args, conf)
	var stderr bytes.Buffer
	d.cmd = exec.Command(prog, args...)
	d.cmd.Stdout, d.cmd.Stderr = &stderr, &stderr
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		d.cmd.Wait()
		close(d.exited)
	}()
	var once sync.Once
	d.stop = func() {
		once.Do(func() {
			d.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-d.exited:
			case <-time.After(5 * time.Second):
				d.cmd.Process.Kill()
				<-d.exited
			}
			if t.Failed() {
				logText, _ := os.ReadFile(d.log)
				t.Logf("lircd output:\n%s\nlircd log:\n%s", stderr.String(), logText)
			}
		})
	}
	t.Cleanup(d.stop)

	deadline := time.Now().Add(10 * time.Second)
	for {
		ready := d.accepts("unix", d.sock)
		if ready && d.tcp != "" {
			ready = d.accepts("tcp", d.tcp)
		}
		if ready {
			return d
		}
		select {
		case <-d.exited:
			logText, _ := os.ReadFile(d.log)
			t.Fatalf("lircd exited at start: %v\n%s\n%s", d.cmd.ProcessState, stderr.String(), logText)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("lircd did not open %s within 10s", d.sock)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// accepts reports whether lircd accepts connections at address.
func (d *realLircd) accepts(network, address string) bool {
	c, err := net.DialTimeout(network, address, time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// freePort returns a TCP port that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// frames returns the codes lircd has transmitted so far, each without the
// gap after it.
func (d *realLircd) frames() [][]uint32 {
	d.t.Helper()
	b, err := os.ReadFile(d.out)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		d.t.Fatal(err)
	}
	frames, err := parseFileDriverOutput(b)
	if err != nil {
		d.t.Fatal(err)
	}
	return frames
}

// waitFrames waits until lircd has transmitted n codes in all, and returns
// them. The file driver writes each code before lircd replies, but waiting
// keeps the test independent of that.
func (d *realLircd) waitFrames(n int) [][]uint32 {
	d.t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for {
		f := d.frames()
		if len(f) >= n || time.Now().After(deadline) {
			if len(f) != n {
				d.t.Fatalf("lircd transmitted %d codes, want %d", len(f), n)
			}
			return f
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// parseFileDriverOutput splits the file driver's "pulse N"/"space N" lines
// into codes: a space longer than any inside an IR code (NEC's longest is
// 4.5 ms) ends one. Comment lines ("# ...") are skipped.
func parseFileDriverOutput(b []byte) ([][]uint32, error) {
	const codeBreak = 20000
	var frames [][]uint32
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
			return nil, fmt.Errorf("line %d: %q is not \"pulse N\" or \"space N\"", n, line)
		}
		mark := len(cur)%2 == 0
		switch {
		case kind == "pulse" && mark, kind == "space" && !mark && v < codeBreak:
			cur = append(cur, uint32(v))
		case kind == "space" && !mark:
			frames, cur = append(frames, cur), nil
		default:
			return nil, fmt.Errorf("line %d: %q out of turn", n, line)
		}
	}
	if len(cur) > 0 {
		frames = append(frames, cur) // a code still being written
	}
	return frames, sc.Err()
}

// checkFrame checks that a code lircd transmitted is key of LED24Key:
// the same NEC address and command, and durations within 10%.
func checkFrame(t *testing.T, frame []uint32, key string) {
	t.Helper()
	r := LED24Key()
	want, err := r.Pulses(key)
	if err != nil {
		t.Fatal(err)
	}
	wantAddr, wantCmd, err := DecodeNEC(want)
	if err != nil {
		t.Fatal(err)
	}
	addr, cmd, err := DecodeNEC(frame)
	if err != nil {
		t.Fatalf("lircd's %s is no NEC code: %v: %v", key, err, frame)
	}
	if addr != wantAddr || cmd != wantCmd {
		t.Errorf("lircd sent address %#04x command %#02x for %s, want %#04x %#02x", addr, cmd, key, wantAddr, wantCmd)
	}
	if len(frame) != len(want) {
		t.Fatalf("lircd sent %d durations for %s, want %d", len(frame), key, len(want))
	}
	for i := range frame {
		if d := int64(frame[i]) - int64(want[i]); d*10 > int64(want[i]) || -d*10 > int64(want[i]) {
			t.Errorf("duration %d of %s: lircd sent %d µs, want %d", i, key, frame[i], want[i])
		}
	}
}

func TestLircdReal(t *testing.T) {
	d := startLircd(t, shortTempDir(t), false)
	l := newTestLircd(t, d.sock, LircdOptions{})
	ctx := context.Background()

	// The facts about the remote, from its key table: RED is command 0x04
	// at the 16-bit address 0xEF00 (bytes 0x00 0xEF on air).
	if err := l.Send(ctx, LED24Key(), "RED", 0); err != nil {
		t.Fatal(err)
	}
	f := d.waitFrames(1)
	addr, cmd, err := DecodeNEC(f[0])
	if err != nil || addr != 0xEF00 || cmd != 0x04 {
		t.Errorf("lircd's RED decodes as address %#04x command %#02x (%v), want 0xef00 0x04", addr, cmd, err)
	}
	checkFrame(t, f[0], "RED")

	// Repeats are full codes.
	if err := l.Send(ctx, LED24Key(), "ON", 2); err != nil {
		t.Fatal(err)
	}
	for _, fr := range d.waitFrames(4)[1:] {
		checkFrame(t, fr, "ON")
	}

	// lircd rejects a key its remote lacks, with its own words.
	err = l.Send(ctx, LED24Key(), "FOO", 0)
	if !errors.Is(err, ErrLircdRejected) || !errors.Is(err, ErrUnknownKey) || !strings.Contains(err.Error(), `unknown command: "FOO"`) {
		t.Errorf("Send(FOO) = %v, want lircd's unknown command error", err)
	}
	l2 := newTestLircd(t, d.sock, LircdOptions{Names: map[string]string{"LED_24_KEY": "NOREMOTE"}})
	if err := l2.Send(ctx, LED24Key(), "RED", 0); !errors.Is(err, ErrLircdRejected) || !strings.Contains(err.Error(), `unknown remote: "NOREMOTE"`) {
		t.Errorf("Send to a remote lircd lacks = %v", err)
	}
	d.waitFrames(4) // nothing transmitted

	// The connection survives the rejections.
	if err := l.Send(ctx, LED24Key(), "BLUE", 0); err != nil {
		t.Fatal(err)
	}
	checkFrame(t, d.waitFrames(5)[4], "BLUE")
}

// TestLircdRealSIGHUP sends lircd SIGHUP, which makes it re-read its
// configuration and broadcast BEGIN SIGHUP END to every client; the block
// waits in the client's socket and must be skipped before the next reply.
func TestLircdRealSIGHUP(t *testing.T) {
	d := startLircd(t, shortTempDir(t), false)
	l := newTestLircd(t, d.sock, LircdOptions{})
	ctx := context.Background()
	if err := l.Send(ctx, LED24Key(), "GREEN", 0); err != nil {
		t.Fatal(err)
	}

	// A second client shows when lircd has broadcast the SIGHUP.
	watch, err := net.Dial("unix", d.sock)
	if err != nil {
		t.Fatal(err)
	}
	defer watch.Close()
	watch.SetReadDeadline(time.Now().Add(5 * time.Second))
	// Make sure lircd has taken the watcher on before signalling it.
	if _, err := fmt.Fprintf(watch, "VERSION\n"); err != nil {
		t.Fatal(err)
	}
	wr := bufio.NewReaderSize(watch, maxLircdLine)
	if _, err := readLircdReply(wr, "VERSION"); err != nil {
		t.Fatal(err)
	}
	if err := d.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	for {
		line, err := readLircdLine(wr)
		if err != nil {
			t.Fatalf("no SIGHUP broadcast from lircd: %v", err)
		}
		if line == "SIGHUP" {
			break
		}
	}

	for i, key := range []string{"RED", "WHITE"} {
		if err := l.Send(ctx, LED24Key(), key, 0); err != nil {
			t.Fatalf("Send after SIGHUP: %v", err)
		}
		checkFrame(t, d.waitFrames(2 + i)[1+i], key)
	}

	// SIGHUPs while sends are going on.
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 5 {
			time.Sleep(20 * time.Millisecond)
			d.cmd.Process.Signal(syscall.SIGHUP)
		}
	}()
	n := 3
	for sending := true; sending; {
		select {
		case <-done:
			sending = false
		default:
		}
		if err := l.Send(ctx, LED24Key(), "BLUE", 0); err != nil {
			t.Fatalf("Send during SIGHUPs: %v", err)
		}
		n++
	}
	for _, fr := range d.waitFrames(n)[3:] {
		checkFrame(t, fr, "BLUE")
	}
	t.Logf("%d sends during 5 SIGHUPs", n-3)
}

// TestLircdRealRestart restarts lircd: the transmitter reconnects and the
// key reaches the new lircd once.
func TestLircdRealRestart(t *testing.T) {
	dir := shortTempDir(t)
	d := startLircd(t, dir, false)
	l := newTestLircd(t, d.sock, LircdOptions{})
	ctx := context.Background()
	if err := l.Send(ctx, LED24Key(), "RED", 0); err != nil {
		t.Fatal(err)
	}
	d.waitFrames(1)
	d.stop()
	if err := os.Remove(d.out); err != nil {
		t.Fatal(err)
	}

	d2 := startLircd(t, dir, false)
	if err := l.Send(ctx, LED24Key(), "PURPLE", 0); err != nil {
		t.Fatalf("Send after lircd restarted: %v", err)
	}
	checkFrame(t, d2.waitFrames(1)[0], "PURPLE")
}

func TestLircdRealTCP(t *testing.T) {
	d := startLircd(t, shortTempDir(t), true)
	tx, err := Open("lircd:tcp://" + d.tcp)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Close()
	if err := tx.Send(context.Background(), LED24Key(), "CYAN", 1); err != nil {
		t.Fatal(err)
	}
	for _, fr := range d.waitFrames(2) {
		checkFrame(t, fr, "CYAN")
	}
}
