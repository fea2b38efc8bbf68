package irlamp

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeLircd serves lircd's protocol on a listener, answering each command
// line with a scripted handler. It records the commands it received and
// notices a client that sends a command before the previous one's reply.
type fakeLircd struct {
	t      *testing.T
	ln     net.Listener
	handle func(conn net.Conn, cmd string)

	mu        sync.Mutex
	cmds      []string
	conns     []net.Conn
	accepted  int
	pipelined []string

	wg       sync.WaitGroup
	stopOnce sync.Once
}

// lircdOK is lircd's success reply to cmd.
func lircdOK(cmd string) string { return "BEGIN\n" + cmd + "\nSUCCESS\nEND\n" }

// lircdFail is lircd's error reply to cmd, with lircd's explanation.
func lircdFail(cmd, msg string) string {
	return "BEGIN\n" + cmd + "\nERROR\nDATA\n1\n" + msg + "\nEND\n"
}

// lircdSIGHUP is what lircd broadcasts after re-reading its configuration.
const lircdSIGHUP = "BEGIN\nSIGHUP\nEND\n"

// replyOK is the handler of a lircd that transmits everything.
func replyOK(conn net.Conn, cmd string) { io.WriteString(conn, lircdOK(cmd)) }

// startFakeLircd serves on a new listener of network ("unix" or "tcp") at
// address (a socket path, or "127.0.0.1:0").
func startFakeLircd(t *testing.T, network, address string, handle func(net.Conn, string)) *fakeLircd {
	t.Helper()
	ln, err := net.Listen(network, address)
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeLircd{t: t, ln: ln, handle: handle}
	f.wg.Add(1)
	go f.accept()
	t.Cleanup(f.stop)
	return f
}

// startFakeLircdUnix serves on a unix socket in a new temporary directory.
func startFakeLircdUnix(t *testing.T, handle func(net.Conn, string)) (*fakeLircd, string) {
	t.Helper()
	path := filepath.Join(shortTempDir(t), "lircd")
	return startFakeLircd(t, "unix", path, handle), path
}

// shortTempDir returns a temporary directory with a path short enough for
// a unix socket inside it (sun_path has about 100 bytes; t.TempDir embeds
// the test's name).
func shortTempDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "irlamp")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

func (f *fakeLircd) accept() {
	defer f.wg.Done()
	for {
		conn, err := f.ln.Accept()
		if err != nil {
			return
		}
		f.mu.Lock()
		f.conns = append(f.conns, conn)
		f.accepted++
		f.mu.Unlock()
		f.wg.Add(1)
		go f.serve(conn)
	}
}

func (f *fakeLircd) serve(conn net.Conn) {
	defer f.wg.Done()
	defer conn.Close()
	rd := bufio.NewReader(conn)
	for {
		conn.SetReadDeadline(time.Time{})
		line, err := rd.ReadString('\n')
		if err != nil {
			return
		}
		cmd := strings.TrimSuffix(line, "\n")
		f.mu.Lock()
		f.cmds = append(f.cmds, cmd)
		f.mu.Unlock()
		// A client must wait for the reply before its next command.
		conn.SetReadDeadline(time.Now().Add(3 * time.Millisecond))
		if _, err := rd.Peek(1); err == nil {
			f.mu.Lock()
			f.pipelined = append(f.pipelined, cmd)
			f.mu.Unlock()
		}
		conn.SetReadDeadline(time.Time{})
		f.handle(conn, cmd)
	}
}

// stop closes the listener (removing the socket) and every connection, as
// a dying lircd does.
func (f *fakeLircd) stop() {
	f.stopOnce.Do(func() {
		f.ln.Close()
		f.mu.Lock()
		for _, c := range f.conns {
			c.Close()
		}
		f.mu.Unlock()
		f.wg.Wait()
	})
}

func (f *fakeLircd) commands() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.cmds)
}

func (f *fakeLircd) connections() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.accepted
}

func (f *fakeLircd) checkNotPipelined() {
	f.t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.pipelined) > 0 {
		f.t.Errorf("client sent a command before the reply to %q", f.pipelined)
	}
}

// newTestLircd connects to a fake lircd at a unix socket path.
func newTestLircd(t *testing.T, path string, opts LircdOptions) *Lircd {
	t.Helper()
	l, err := NewLircd("unix", path, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func TestLircdSend(t *testing.T) {
	f, path := startFakeLircdUnix(t, replyOK)
	l := newTestLircd(t, path, LircdOptions{})
	ctx := context.Background()
	if err := l.Send(ctx, LED24Key(), "RED", 0); err != nil {
		t.Fatal(err)
	}
	if err := l.Send(ctx, LED24Key(), "ON", 2); err != nil {
		t.Fatal(err)
	}
	want := []string{"SEND_ONCE LED_24_KEY RED", "SEND_ONCE LED_24_KEY ON 2"}
	if got := f.commands(); !slices.Equal(got, want) {
		t.Errorf("lircd received %q, want %q", got, want)
	}
	if n := f.connections(); n != 1 {
		t.Errorf("%d connections, want 1", n)
	}
	f.checkNotPipelined()
}

// TestLircdSkipsBroadcasts checks that what lircd sends every client (the
// SIGHUP block, button presses) and replies to other commands, arriving
// between a command and its reply, are skipped.
func TestLircdSkipsBroadcasts(t *testing.T) {
	_, path := startFakeLircdUnix(t, func(conn net.Conn, cmd string) {
		io.WriteString(conn, lircdSIGHUP+
			"0000000000f7c03f 00 ON LED_24_KEY\n"+
			lircdOK("SEND_ONCE LED_24_KEY BLUE")+
			"BEGIN\nLIST\nSUCCESS\nDATA\n2\nLED_24_KEY\nEND\nEND\n"+
			lircdSIGHUP)
		time.Sleep(5 * time.Millisecond) // the reply in a later read
		io.WriteString(conn, lircdOK(cmd)+lircdSIGHUP)
	})
	l := newTestLircd(t, path, LircdOptions{})
	for range 3 {
		if err := l.Send(context.Background(), LED24Key(), "RED", 0); err != nil {
			t.Fatal(err)
		}
	}
}

func TestLircdErrorReply(t *testing.T) {
	f, path := startFakeLircdUnix(t, func(conn net.Conn, cmd string) {
		switch {
		case strings.HasSuffix(cmd, " FOO"):
			io.WriteString(conn, lircdFail(cmd, `unknown command: "FOO"`))
		case strings.HasPrefix(cmd, "SEND_ONCE NOREMOTE"):
			io.WriteString(conn, lircdFail(cmd, `unknown remote: "NOREMOTE"`))
		default:
			replyOK(conn, cmd)
		}
	})
	l := newTestLircd(t, path, LircdOptions{})
	ctx := context.Background()

	err := l.Send(ctx, LED24Key(), "FOO", 0)
	const want = `irlamp: lircd: SEND_ONCE LED_24_KEY FOO: unknown command: "FOO"`
	if err == nil || err.Error() != want {
		t.Fatalf("Send(FOO) = %v, want %s", err, want)
	}
	if !errors.Is(err, ErrLircdRejected) || !errors.Is(err, ErrUnknownKey) {
		t.Errorf("Send(FOO) error %v is not ErrLircdRejected and ErrUnknownKey", err)
	}
	var lerr *LircdError
	if !errors.As(err, &lerr) || lerr.Message != `unknown command: "FOO"` || lerr.Command != "SEND_ONCE LED_24_KEY FOO" {
		t.Errorf("Send(FOO) error %#v is not the LircdError expected", err)
	}

	// An unknown remote is rejected, but it is not an unknown key.
	l2 := newTestLircd(t, path, LircdOptions{Names: map[string]string{"LED_24_KEY": "NOREMOTE"}})
	err = l2.Send(ctx, LED24Key(), "RED", 0)
	if !errors.Is(err, ErrLircdRejected) || errors.Is(err, ErrUnknownKey) || !strings.Contains(err.Error(), `unknown remote: "NOREMOTE"`) {
		t.Errorf("Send to an unknown remote = %v", err)
	}

	// A rejection leaves the connection in step.
	if err := l.Send(ctx, LED24Key(), "RED", 0); err != nil {
		t.Fatal(err)
	}
	if n := f.connections(); n != 2 {
		t.Errorf("%d connections, want 2 (one per transmitter, kept after ERROR)", n)
	}
}

func TestLircdNames(t *testing.T) {
	f, path := startFakeLircdUnix(t, replyOK)
	l := newTestLircd(t, path, LircdOptions{Names: map[string]string{"LED_24_KEY": "led-strip"}})
	if err := l.Send(context.Background(), LED24Key(), "RED", 1); err != nil {
		t.Fatal(err)
	}
	if got, want := f.commands(), []string{"SEND_ONCE led-strip RED 1"}; !slices.Equal(got, want) {
		t.Errorf("lircd received %q, want %q", got, want)
	}
	if _, err := NewLircd("unix", path, LircdOptions{Names: map[string]string{"LED_24_KEY": "two words"}}); err == nil {
		t.Error("NewLircd accepted a remote name with a space")
	}
}

// TestLircdRefusesBadArguments checks that names that would break the line
// protocol are refused without sending anything.
func TestLircdRefusesBadArguments(t *testing.T) {
	f, path := startFakeLircdUnix(t, replyOK)
	l := newTestLircd(t, path, LircdOptions{})
	ctx := context.Background()
	for _, key := range []string{"", "RED\nSEND_ONCE LED_24_KEY OFF", "RED 5", "RED\x00"} {
		if err := l.Send(ctx, LED24Key(), key, 0); !errors.Is(err, ErrUnknownKey) {
			t.Errorf("Send(%q) = %v, want ErrUnknownKey", key, err)
		}
	}
	if err := l.Send(ctx, LED24Key(), "RED", -1); err == nil {
		t.Error("Send with -1 repeats succeeded")
	}
	if err := l.Send(ctx, nil, "RED", 0); err == nil {
		t.Error("Send with a nil remote succeeded")
	}
	if got := f.commands(); len(got) != 0 {
		t.Errorf("lircd received %q", got)
	}
}

func TestLircdTimeout(t *testing.T) {
	f, path := startFakeLircdUnix(t, func(conn net.Conn, cmd string) {
		if strings.HasSuffix(cmd, " RED") {
			// Reply too late: after the client gave up.
			time.AfterFunc(time.Second, func() { replyOK(conn, cmd) })
			return
		}
		replyOK(conn, cmd)
	})
	l := newTestLircd(t, path, LircdOptions{Timeout: 300 * time.Millisecond})
	start := time.Now()
	err := l.Send(context.Background(), LED24Key(), "RED", 0)
	if !errors.Is(err, os.ErrDeadlineExceeded) || !strings.Contains(err.Error(), "no reply within 300ms") {
		t.Errorf("Send = %v, want a timeout after 300ms", err)
	}
	if d := time.Since(start); d < 300*time.Millisecond || d > 3*time.Second {
		t.Errorf("Send took %s with a 300ms timeout", d)
	}
	// The next command goes on a new connection, so the late reply to the
	// first cannot be taken for its own.
	if err := l.Send(context.Background(), LED24Key(), "ON", 0); err != nil {
		t.Fatal(err)
	}
	if n := f.connections(); n != 2 {
		t.Errorf("%d connections, want 2", n)
	}
	if got := f.commands(); len(got) != 2 {
		t.Errorf("lircd received %q: a timed-out command must not be resent", got)
	}
}

func TestLircdTimeoutGrowsWithRepeats(t *testing.T) {
	r := LED24Key()
	p, err := r.Pulses("RED")
	if err != nil {
		t.Fatal(err)
	}
	var code time.Duration
	for _, v := range p {
		code += time.Duration(v) * time.Microsecond
	}
	if got, want := repeatTime(r, "RED"), max(code+r.Gap(), minRepeatTime); got != want {
		t.Errorf("repeatTime(RED) = %s, want %s", got, want)
	}
	if got := repeatTime(r, "NO_SUCH_KEY"); got != minRepeatTime {
		t.Errorf("repeatTime of a key lircd alone knows = %s, want %s", got, minRepeatTime)
	}

	// lircd replies only after the last repeat: 10 repeats of a slow
	// lircd (50 ms each) must not time out with a 100ms base.
	_, path := startFakeLircdUnix(t, func(conn net.Conn, cmd string) {
		time.Sleep(500 * time.Millisecond)
		replyOK(conn, cmd)
	})
	l := newTestLircd(t, path, LircdOptions{Timeout: 100 * time.Millisecond})
	if err := l.Send(context.Background(), r, "RED", 10); err != nil {
		t.Fatal(err)
	}
}

func TestLircdContext(t *testing.T) {
	f, path := startFakeLircdUnix(t, func(net.Conn, string) {}) // never replies
	l := newTestLircd(t, path, LircdOptions{Timeout: 10 * time.Second})

	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	start := time.Now()
	err := l.Send(ctx, LED24Key(), "RED", 0)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Send = %v, want context.Canceled", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Send took %s to notice the cancellation", d)
	}

	ctx, cancel = context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := l.Send(ctx, LED24Key(), "RED", 0); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Send = %v, want context.DeadlineExceeded", err)
	}

	if err := l.Send(ctx, LED24Key(), "RED", 0); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Send with an expired context = %v", err)
	}
	if got := f.commands(); len(got) != 2 {
		t.Errorf("lircd received %q, want 2 commands (none with an expired context)", got)
	}
}

func TestLircdPeerClosesMidReply(t *testing.T) {
	f, path := startFakeLircdUnix(t, func(conn net.Conn, cmd string) {
		if strings.HasSuffix(cmd, " RED") {
			io.WriteString(conn, "BEGIN\n"+cmd+"\n")
			conn.Close()
			return
		}
		replyOK(conn, cmd)
	})
	l := newTestLircd(t, path, LircdOptions{})
	err := l.Send(context.Background(), LED24Key(), "RED", 0)
	if err == nil || !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		t.Fatalf("Send = %v, want an EOF error", err)
	}
	if !strings.Contains(err.Error(), "may have been sent") {
		t.Errorf("error %q does not say the key may have been sent", err)
	}
	if got := f.commands(); len(got) != 1 {
		t.Errorf("lircd received %q: a command that may have been sent must not be resent", got)
	}
	if err := l.Send(context.Background(), LED24Key(), "ON", 0); err != nil {
		t.Fatal(err)
	}
	if n := f.connections(); n != 2 {
		t.Errorf("%d connections, want 2", n)
	}
}

func TestLircdGarbledReply(t *testing.T) {
	for name, reply := range map[string]string{
		"bad status":   "BEGIN\n%s\nMAYBE\nEND\n",
		"bad count":    "BEGIN\n%s\nERROR\nDATA\nmany\nEND\n",
		"huge count":   "BEGIN\n%s\nERROR\nDATA\n99999999\nEND\n",
		"no END":       "BEGIN\n%s\nSUCCESS\nBEGIN\n",
		"long line":    strings.Repeat("x", 2*maxLircdLine) + "\n",
		"empty status": "BEGIN\n%s\nEND\n",
	} {
		t.Run(name, func(t *testing.T) {
			f, path := startFakeLircdUnix(t, func(conn net.Conn, cmd string) {
				if strings.HasSuffix(cmd, " RED") {
					if strings.Contains(reply, "%s") {
						reply = fmt.Sprintf(reply, cmd)
					}
					io.WriteString(conn, reply)
					return
				}
				replyOK(conn, cmd)
			})
			l := newTestLircd(t, path, LircdOptions{Timeout: time.Second})
			if err := l.Send(context.Background(), LED24Key(), "RED", 0); err == nil {
				t.Fatal("Send succeeded")
			} else if errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatalf("Send = %v, want a protocol error, not a timeout", err)
			}
			// The garbled connection is dropped.
			if err := l.Send(context.Background(), LED24Key(), "ON", 0); err != nil {
				t.Fatal(err)
			}
			if n := f.connections(); n != 2 {
				t.Errorf("%d connections, want 2", n)
			}
		})
	}
}

// TestLircdReconnect restarts the fake lircd between two sends: the second
// must reach the new lircd exactly once.
func TestLircdReconnect(t *testing.T) {
	t.Run("unix", func(t *testing.T) {
		f1, path := startFakeLircdUnix(t, replyOK)
		l := newTestLircd(t, path, LircdOptions{})
		testReconnect(t, l, f1, func() *fakeLircd { return startFakeLircd(t, "unix", path, replyOK) })
	})
	t.Run("tcp", func(t *testing.T) {
		f1 := startFakeLircd(t, "tcp", "127.0.0.1:0", replyOK)
		addr := f1.ln.Addr().String()
		l, err := NewLircd("tcp", addr, LircdOptions{})
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		// Over TCP a command written after lircd closed the connection
		// vanishes, and the client cannot tell whether lircd got it: it
		// must have noticed the close before the next Send, which a real
		// restart leaves ample time for.
		restart := func() *fakeLircd {
			waitDisconnected(t, l)
			return startFakeLircd(t, "tcp", addr, replyOK)
		}
		testReconnect(t, l, f1, restart)
	})
}

// waitDisconnected waits until l has noticed that lircd closed its
// connection.
func waitDisconnected(t *testing.T, l *Lircd) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := l.current()
		if err != nil || c == nil || c.dead() {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the transmitter did not notice that lircd closed the connection")
		}
		time.Sleep(time.Millisecond)
	}
}

func testReconnect(t *testing.T, l *Lircd, f1 *fakeLircd, restart func() *fakeLircd) {
	t.Helper()
	ctx := context.Background()
	if err := l.Send(ctx, LED24Key(), "RED", 0); err != nil {
		t.Fatal(err)
	}
	f1.stop()
	f2 := restart()
	if err := l.Send(ctx, LED24Key(), "GREEN", 0); err != nil {
		t.Fatalf("Send after lircd restarted: %v", err)
	}
	if got, want := f1.commands(), []string{"SEND_ONCE LED_24_KEY RED"}; !slices.Equal(got, want) {
		t.Errorf("old lircd received %q, want %q", got, want)
	}
	if got, want := f2.commands(), []string{"SEND_ONCE LED_24_KEY GREEN"}; !slices.Equal(got, want) {
		t.Errorf("new lircd received %q, want %q", got, want)
	}

	// While lircd is down, Send fails and says why; it works again once
	// lircd is back.
	f2.stop()
	if err := l.Send(ctx, LED24Key(), "BLUE", 0); err == nil {
		t.Fatal("Send succeeded with lircd stopped")
	}
	f3 := restart()
	if err := l.Send(ctx, LED24Key(), "WHITE", 0); err != nil {
		t.Fatalf("Send after lircd came back: %v", err)
	}
	if got, want := f3.commands(), []string{"SEND_ONCE LED_24_KEY WHITE"}; !slices.Equal(got, want) {
		t.Errorf("restarted lircd received %q, want %q", got, want)
	}
}

func TestLircdNotRunning(t *testing.T) {
	dir := shortTempDir(t)
	missing := filepath.Join(dir, "missing")
	_, err := NewLircd("unix", missing, LircdOptions{})
	if err == nil || !strings.Contains(err.Error(), "is lircd running?") || !strings.Contains(err.Error(), missing) {
		t.Errorf("NewLircd(missing socket) = %v", err)
	}

	// A socket file left by a lircd that died.
	stale := filepath.Join(dir, "stale")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: stale, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close()
	if runtime.GOOS != "windows" {
		_, err = NewLircd("unix", stale, LircdOptions{})
		if err == nil || !strings.Contains(err.Error(), "lircd is not running") {
			t.Errorf("NewLircd(stale socket) = %v", err)
		}
	}

	for _, c := range []struct{ network, address string }{
		{"udp", "127.0.0.1:8765"},
		{"tcp", "localhost"},
	} {
		if _, err := NewLircd(c.network, c.address, LircdOptions{}); err == nil {
			t.Errorf("NewLircd(%q, %q) succeeded", c.network, c.address)
		}
	}
	if _, err := NewLircd("unix", stale, LircdOptions{Timeout: -time.Second}); err == nil {
		t.Error("NewLircd accepted a negative timeout")
	}
}

func TestLircdConcurrentSends(t *testing.T) {
	f, path := startFakeLircdUnix(t, func(conn net.Conn, cmd string) {
		if strings.HasSuffix(cmd, " OFF") {
			// Another client's SIGHUP now and then.
			io.WriteString(conn, lircdSIGHUP)
		}
		replyOK(conn, cmd)
	})
	l := newTestLircd(t, path, LircdOptions{})
	keys := []string{"RED", "GREEN", "BLUE", "OFF"}
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 8 {
				if err := l.Send(context.Background(), LED24Key(), keys[(g+i)%len(keys)], i%2); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := len(f.commands()); n != 64 {
		t.Errorf("lircd received %d commands, want 64", n)
	}
	f.checkNotPipelined()
}

func TestLircdClose(t *testing.T) {
	_, path := startFakeLircdUnix(t, func(net.Conn, string) {}) // never replies
	l, err := NewLircd("unix", path, LircdOptions{Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error)
	go func() { done <- l.Send(context.Background(), LED24Key(), "RED", 0) }()
	time.Sleep(50 * time.Millisecond)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, ErrClosed) {
			t.Errorf("Send interrupted by Close = %v, want ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not interrupt Send")
	}
	if err := l.Send(context.Background(), LED24Key(), "RED", 0); !errors.Is(err, ErrClosed) {
		t.Errorf("Send after Close = %v, want ErrClosed", err)
	}
	if err := l.Close(); err != nil {
		t.Errorf("second Close = %v", err)
	}
}

func TestLircdOpenSpec(t *testing.T) {
	f, path := startFakeLircdUnix(t, replyOK)
	tx, err := Open("lircd:" + path + "?timeout=1s")
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Close()
	if err := tx.Send(context.Background(), LED24Key(), "ON", 0); err != nil {
		t.Fatal(err)
	}
	if got := f.commands(); len(got) != 1 {
		t.Errorf("lircd received %q", got)
	}

	ft := startFakeLircd(t, "tcp", "127.0.0.1:0", replyOK)
	tx, err = Open("lircd:tcp://" + ft.ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Close()
	if err := tx.Send(context.Background(), LED24Key(), "OFF", 0); err != nil {
		t.Fatal(err)
	}
}

func TestParseLircdSpec(t *testing.T) {
	for _, c := range []struct {
		arg, network, address string
		timeout               time.Duration
	}{
		{"", "unix", DefaultLircdSocket, 0},
		{"/run/lirc/lircd", "unix", "/run/lirc/lircd", 0},
		{"/run/lirc/lircd-tx?timeout=5s", "unix", "/run/lirc/lircd-tx", 5 * time.Second},
		{"?timeout=500ms", "unix", DefaultLircdSocket, 500 * time.Millisecond},
		{"tcp://192.168.1.20:8765", "tcp", "192.168.1.20:8765", 0},
		{"tcp://pi.local", "tcp", "pi.local:8765", 0},
		{"tcp://[::1]:9000?timeout=3s", "tcp", "[::1]:9000", 3 * time.Second},
	} {
		network, address, opts, err := parseLircdSpec(c.arg)
		if err != nil || network != c.network || address != c.address || opts.Timeout != c.timeout {
			t.Errorf("parseLircdSpec(%q) = %q, %q, %v, %v; want %q, %q, %v", c.arg, network, address, opts.Timeout, err, c.network, c.address, c.timeout)
		}
	}
	for _, arg := range []string{
		"?timeout=soon", "?timeout=-1s", "?speed=3", "tcp://", "tcp://:8765",
		"tcp://pi:99999", "tcp://pi:http", "tcp://pi/lircd", "tcp://user@pi",
	} {
		if _, _, _, err := parseLircdSpec(arg); err == nil {
			t.Errorf("parseLircdSpec(%q) succeeded", arg)
		} else if !strings.HasPrefix(err.Error(), "irlamp: lircd: ") {
			t.Errorf("parseLircdSpec(%q) error %q lacks the prefix", arg, err)
		}
	}
}

func TestDetectLircd(t *testing.T) {
	_, path := startFakeLircdUnix(t, replyOK)
	if arg, ok := detectLircd(path); !ok || arg != path {
		t.Errorf("detectLircd(socket) = %q, %v", arg, ok)
	}
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{file, filepath.Join(t.TempDir(), "missing")} {
		if _, ok := detectLircd(p); ok {
			t.Errorf("detectLircd(%s) found lircd", p)
		}
	}
}

// TestDriverOrder checks that "auto" tries the kernel device before lircd:
// it is the more direct path when both are present.
func TestDriverOrder(t *testing.T) {
	var names []string
	for _, d := range Drivers() {
		names = append(names, d.Name)
	}
	i := slices.Index(names, "lircd")
	if i < 0 {
		t.Fatalf("lircd not registered: %q", names)
	}
	if j := slices.Index(names, "lirc"); runtime.GOOS == "linux" && (j < 0 || j > i) {
		t.Errorf("drivers %q: lirc must come before lircd", names)
	}
}

// lircdTranscript is a session in the form of lircd 0.10's socket output:
// a command's reply with a SIGHUP broadcast and a button press first.
const lircdTranscript = "BEGIN\nSIGHUP\nEND\n" +
	"0000000000f720df 00 RED LED_24_KEY\n" +
	"BEGIN\nSEND_ONCE LED_24_KEY RED\nSUCCESS\nEND\n"

func TestReadLircdReply(t *testing.T) {
	const cmd = "SEND_ONCE LED_24_KEY RED"
	for _, c := range []struct {
		name, in string
		success  bool
		data     []string
		err      bool
	}{
		{"success", lircdOK(cmd), true, nil, false},
		{"error with data", lircdFail(cmd, `unknown command: "RED"`), false, []string{`unknown command: "RED"`}, false},
		{"broadcasts first", lircdTranscript, true, nil, false},
		{"other reply first", lircdFail("SEND_ONCE LED_24_KEY OFF", "x") + lircdOK(cmd), true, nil, false},
		{"crlf", strings.ReplaceAll(lircdOK(cmd), "\n", "\r\n"), true, nil, false},
		{"two data lines", "BEGIN\n" + cmd + "\nERROR\nDATA\n2\na\nb\nEND\n", false, []string{"a", "b"}, false},
		{"zero data lines", "BEGIN\n" + cmd + "\nSUCCESS\nDATA\n0\nEND\n", true, nil, false},
		{"empty block", "BEGIN\nEND\n" + lircdOK(cmd), true, nil, false},
		{"odd broadcast", "BEGIN\nWHATEVER\nSOMETHING\nELSE\nEND\n" + lircdOK(cmd), true, nil, false},
		{"eof", "BEGIN\n" + cmd + "\n", false, nil, true},
		{"nothing", "", false, nil, true},
		{"partial line", "BEGIN\n" + cmd, false, nil, true},
		{"bad status", "BEGIN\n" + cmd + "\nOK\nEND\n", false, nil, true},
		{"no status", "BEGIN\n" + cmd + "\nEND\n", false, nil, true},
		{"negative count", "BEGIN\n" + cmd + "\nERROR\nDATA\n-1\nEND\n", false, nil, true},
		{"missing END", "BEGIN\n" + cmd + "\nSUCCESS\nDATA\n1\nx\nBEGIN\n", false, nil, true},
		{"long line", strings.Repeat("B", maxLircdLine+1) + "\n" + lircdOK(cmd), false, nil, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			rd := bufio.NewReaderSize(strings.NewReader(c.in), maxLircdLine)
			reply, err := readLircdReply(rd, cmd)
			if c.err {
				if err == nil {
					t.Fatalf("readLircdReply = %+v, want an error", reply)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if reply.success != c.success || !slices.Equal(reply.data, c.data) {
				t.Errorf("readLircdReply = %+v, want success %v data %q", reply, c.success, c.data)
			}
		})
	}
}

func FuzzLircdReply(f *testing.F) {
	const cmd = "SEND_ONCE LED_24_KEY RED"
	for _, s := range []string{
		lircdOK(cmd),
		lircdFail(cmd, `unknown command: "RED"`),
		lircdTranscript,
		lircdSIGHUP + lircdOK(cmd),
		lircdOK("SEND_ONCE LED_24_KEY RED 2"),
		"BEGIN\nVERSION\nSUCCESS\nDATA\n1\n0.10.1\nEND\n" + lircdOK(cmd),
		"BEGIN\n" + cmd + "\nERROR\nDATA\n3\na\n",
		"BEGIN\n" + cmd + "\nSUCCESS\nDATA\n99999\nEND\n",
		"\x00\xff garbage\nBEGIN\nBEGIN\nEND\n",
		"BEGIN\r\n" + cmd + "\r\nSUCCESS\r\nEND\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		rd := bufio.NewReaderSize(strings.NewReader(string(in)), maxLircdLine)
		reply, err := readLircdReply(rd, cmd)
		if err != nil {
			return
		}
		if len(reply.data) > maxLircdData {
			t.Fatalf("%d data lines, limit %d", len(reply.data), maxLircdData)
		}
		// A reply was found, so the input holds our command's echo in a
		// block.
		if !strings.Contains(strings.ReplaceAll(string(in), "\r", ""), "BEGIN\n"+cmd+"\n") {
			t.Fatalf("reply %+v without the command's block in %q", reply, in)
		}
		for _, d := range reply.data {
			if strings.Contains(d, "\n") {
				t.Fatalf("data line %q holds a newline", d)
			}
		}
	})
}

// TestLircdTestdataConf checks that the lircd.conf the real lircd tests run
// with describes LED24Key: every key with the same NEC code.
func TestLircdTestdataConf(t *testing.T) {
	b, err := os.ReadFile(lircdConf)
	if err != nil {
		t.Fatal(err)
	}
	rs, err := ParseLircdConf(strings.NewReader(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 1 || rs[0].Name() != "LED_24_KEY" {
		t.Fatalf("%s holds %v, want the one remote LED_24_KEY", lircdConf, rs)
	}
	conf, builtin := rs[0], LED24Key()
	if got, want := conf.Keys(), builtin.Keys(); !slices.Equal(slices.Sorted(slices.Values(got)), slices.Sorted(slices.Values(want))) {
		t.Errorf("keys %q, want %q", got, want)
	}
	for _, k := range builtin.Keys() {
		got, ok1 := conf.NECX(k)
		want, ok2 := builtin.NECX(k)
		if !ok1 || !ok2 || got != want {
			t.Errorf("%s: NECX %#06x %v, want %#06x %v", k, got, ok1, want, ok2)
		}
	}
	if conf.Frequency() != builtin.Frequency() {
		t.Errorf("frequency %d, want %d", conf.Frequency(), builtin.Frequency())
	}
}
