package irlamp

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pikit/pikit/internal/lircdtest"
)

// These tests run the real lircd with its "file" driver, which writes every
// transmission to a file as "pulse N" and "space N" lines (N in µs), each
// code followed by a "space" of the remote's remaining gap. The tests decode
// what lircd "transmitted" with DecodeNEC, so they check the whole path from
// Send to the IR signal, and lircd's real protocol: replies, ERROR, and the
// SIGHUP broadcast.

// lircdConf is the 24-key remote in NEC form, as lircd is configured with.
const lircdConf = "testdata/lircd_LED_24_KEY.conf"

// startLircd starts lircd in dir (which holds its socket, output, log and
// pid files) with the 24-key remote, with a TCP listener too when withTCP
// is set, and waits for it to accept connections. It is stopped when the
// test ends.
func startLircd(t *testing.T, dir string, withTCP bool) *lircdtest.Lircd {
	t.Helper()
	return lircdtest.Start(t, lircdtest.Options{Dir: dir, Conf: lircdConf, TCP: withTCP})
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
	l := newTestLircd(t, d.Sock, LircdOptions{})
	ctx := context.Background()

	// The facts about the remote, from its key table: RED is command 0x04
	// at the 16-bit address 0xEF00 (bytes 0x00 0xEF on air).
	if err := l.Send(ctx, LED24Key(), "RED", 0); err != nil {
		t.Fatal(err)
	}
	f := d.WaitFrames(1)
	addr, cmd, err := DecodeNEC(f[0])
	if err != nil || addr != 0xEF00 || cmd != 0x04 {
		t.Errorf("lircd's RED decodes as address %#04x command %#02x (%v), want 0xef00 0x04", addr, cmd, err)
	}
	checkFrame(t, f[0], "RED")

	// Repeats are full codes.
	if err := l.Send(ctx, LED24Key(), "ON", 2); err != nil {
		t.Fatal(err)
	}
	for _, fr := range d.WaitFrames(4)[1:] {
		checkFrame(t, fr, "ON")
	}

	// lircd rejects a key its remote lacks, with its own words.
	err = l.Send(ctx, LED24Key(), "FOO", 0)
	if !errors.Is(err, ErrLircdRejected) || !errors.Is(err, ErrUnknownKey) || !strings.Contains(err.Error(), `unknown command: "FOO"`) {
		t.Errorf("Send(FOO) = %v, want lircd's unknown command error", err)
	}
	l2 := newTestLircd(t, d.Sock, LircdOptions{Names: map[string]string{"LED_24_KEY": "NOREMOTE"}})
	if err := l2.Send(ctx, LED24Key(), "RED", 0); !errors.Is(err, ErrLircdRejected) || !strings.Contains(err.Error(), `unknown remote: "NOREMOTE"`) {
		t.Errorf("Send to a remote lircd lacks = %v", err)
	}
	d.WaitFrames(4) // nothing transmitted

	// The connection survives the rejections.
	if err := l.Send(ctx, LED24Key(), "BLUE", 0); err != nil {
		t.Fatal(err)
	}
	checkFrame(t, d.WaitFrames(5)[4], "BLUE")
}

// TestLircdRealSIGHUP sends lircd SIGHUP, which makes it re-read its
// configuration and broadcast BEGIN SIGHUP END to every client; the block
// waits in the client's socket and must be skipped before the next reply.
func TestLircdRealSIGHUP(t *testing.T) {
	d := startLircd(t, shortTempDir(t), false)
	l := newTestLircd(t, d.Sock, LircdOptions{})
	ctx := context.Background()
	if err := l.Send(ctx, LED24Key(), "GREEN", 0); err != nil {
		t.Fatal(err)
	}

	// A second client shows when lircd has broadcast the SIGHUP.
	watch, err := net.Dial("unix", d.Sock)
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
	if err := d.Cmd.Process.Signal(syscall.SIGHUP); err != nil {
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
		checkFrame(t, d.WaitFrames(2 + i)[1+i], key)
	}

	// SIGHUPs while sends are going on.
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 5 {
			time.Sleep(20 * time.Millisecond)
			d.Cmd.Process.Signal(syscall.SIGHUP)
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
	for _, fr := range d.WaitFrames(n)[3:] {
		checkFrame(t, fr, "BLUE")
	}
	t.Logf("%d sends during 5 SIGHUPs", n-3)
}

// TestLircdRealRestart restarts lircd: the transmitter reconnects and the
// key reaches the new lircd once.
func TestLircdRealRestart(t *testing.T) {
	dir := shortTempDir(t)
	d := startLircd(t, dir, false)
	l := newTestLircd(t, d.Sock, LircdOptions{})
	ctx := context.Background()
	if err := l.Send(ctx, LED24Key(), "RED", 0); err != nil {
		t.Fatal(err)
	}
	d.WaitFrames(1)
	d.Stop()
	if err := os.Remove(d.Out); err != nil {
		t.Fatal(err)
	}

	d2 := startLircd(t, dir, false)
	if err := l.Send(ctx, LED24Key(), "PURPLE", 0); err != nil {
		t.Fatalf("Send after lircd restarted: %v", err)
	}
	checkFrame(t, d2.WaitFrames(1)[0], "PURPLE")
}

func TestLircdRealTCP(t *testing.T) {
	d := startLircd(t, shortTempDir(t), true)
	tx, err := Open("lircd:tcp://" + d.TCP)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Close()
	if err := tx.Send(context.Background(), LED24Key(), "CYAN", 1); err != nil {
		t.Fatal(err)
	}
	for _, fr := range d.WaitFrames(2) {
		checkFrame(t, fr, "CYAN")
	}
}
