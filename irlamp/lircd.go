package irlamp

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/pikit/pikit/internal/devspec"
)

// This file is the lircd driver: a client of lircd's line protocol on its
// unix socket (or TCP listener). It is portable; only lircd itself is
// Linux-only.

const (
	// DefaultLircdSocket is where lircd listens unless configured otherwise
	// (output = ... in /etc/lirc/lirc_options.conf).
	DefaultLircdSocket = "/var/run/lirc/lircd"
	// DefaultLircdPort is lircd's TCP port when started with --listen.
	DefaultLircdPort = 8765

	// defaultLircdTimeout is the base time allowed for one command: lircd
	// answers a SEND_ONCE once it has transmitted it, within milliseconds
	// on an idle daemon.
	defaultLircdTimeout = 2 * time.Second
	// minRepeatTime is the least a repeat is assumed to add to a command;
	// an NEC code plus its gap takes about 108 ms.
	minRepeatTime = 120 * time.Millisecond
	// maxLircdLine bounds a line of lircd's output. lircd's own packets are
	// at most 256 bytes; anything longer is not lircd.
	maxLircdLine = 4096
	// maxLircdData bounds the DATA lines of one reply block. A SEND_ONCE
	// reply has at most one; LIST replies (never ours) have one a key.
	maxLircdData = 1024

	lircdUsage = "lircd[:/path/to/socket | :tcp://HOST[:PORT]][?timeout=DURATION]"
)

// ErrLircdRejected is wrapped by errors for commands lircd answered with
// ERROR, such as an unknown remote or key: the connection is fine and the
// command was not transmitted.
var ErrLircdRejected = errors.New("irlamp: lircd: command rejected")

// LircdError is the error for a command lircd answered with ERROR. It
// matches ErrLircdRejected with errors.Is, and also ErrUnknownKey when lircd
// did not know the key.
type LircdError struct {
	// Command is the command sent, e.g. "SEND_ONCE LED_24_KEY FOO".
	Command string
	// Message is lircd's explanation (the DATA of its reply), e.g.
	// `unknown command: "FOO"`.
	Message string
}

// Error returns "irlamp: lircd: <command>: <lircd's message>".
func (e *LircdError) Error() string {
	msg := e.Message
	if msg == "" {
		msg = "lircd replied ERROR without a reason"
	}
	return "irlamp: lircd: " + e.Command + ": " + msg
}

// Is reports whether target is ErrLircdRejected, or ErrUnknownKey for
// lircd's "unknown command" (lircd calls keys commands).
func (e *LircdError) Is(target error) bool {
	switch target {
	case ErrLircdRejected:
		return true
	case ErrUnknownKey:
		return strings.HasPrefix(e.Message, "unknown command")
	}
	return false
}

// LircdOptions configures a lircd transmitter. The zero value is the
// defaults.
type LircdOptions struct {
	// Timeout is the base time allowed for one command, from sending it to
	// lircd's reply (default 2s). Each repeat adds the key's duration plus
	// the remote's gap, at least 120 ms, because lircd replies only after
	// transmitting every repeat.
	Timeout time.Duration
	// Names maps a Remote's Name to the name the remote has in lircd's
	// configuration, for remotes lircd knows under another name. Remotes
	// not in the map are sent under their own name.
	Names map[string]string
}

// Lircd is a Transmitter that asks lircd to send keys (SEND_ONCE), so lircd
// owns the IR device and other lirc clients can share it. lircd must have a
// remote of the same name (see LircdOptions.Names) configured in
// /etc/lirc/lircd.conf.d/.
//
// Lircd is safe for concurrent use: commands are sent one at a time on one
// connection. When lircd restarts, the next Send reconnects.
//
// A command is never sent twice. A connection that lircd closed while the
// transmitter was idle (lircd restarted) is noticed before the next command
// and replaced, and a command whose write fails before any byte of it went
// out is sent once more on a new connection. But once a command has been
// written, lircd may or may not have transmitted it: if the connection then
// fails, Send returns an error saying so and leaves resending to the caller
// (a brightness step sent twice is two steps); the next Send reconnects.
type Lircd struct {
	network, address string
	timeout          time.Duration
	names            map[string]string

	// mu serialises commands.
	mu sync.Mutex

	// connMu guards conn and closed, apart from mu, so that Close can
	// interrupt a Send that is waiting for a reply.
	connMu sync.Mutex
	conn   *lircdConn
	closed bool
}

var _ Transmitter = (*Lircd)(nil)

// NewLircd connects to lircd at address: network "unix" with the socket's
// path (DefaultLircdSocket when empty), or "tcp" (or "tcp4", "tcp6") with
// "host:port" for a lircd started with --listen. It connects at once, so a
// lircd that is not running is reported here rather than at the first Send.
func NewLircd(network, address string, opts LircdOptions) (*Lircd, error) {
	switch network {
	case "unix":
		if address == "" {
			address = DefaultLircdSocket
		}
	case "tcp", "tcp4", "tcp6":
		if _, _, err := net.SplitHostPort(address); err != nil {
			return nil, fmt.Errorf("irlamp: lircd: bad TCP address %q: %w", address, err)
		}
	default:
		return nil, fmt.Errorf("irlamp: lircd: network %q is neither unix nor tcp", network)
	}
	if opts.Timeout < 0 {
		return nil, fmt.Errorf("irlamp: lircd: negative timeout %s", opts.Timeout)
	}
	if opts.Timeout == 0 {
		opts.Timeout = defaultLircdTimeout
	}
	l := &Lircd{network: network, address: address, timeout: opts.Timeout, names: map[string]string{}}
	for from, to := range opts.Names {
		if !lircdToken(to) {
			return nil, fmt.Errorf("irlamp: lircd: bad lircd remote name %q for %q: it must be a non-empty word without spaces", to, from)
		}
		l.names[from] = to
	}
	// Connecting is no command: a short command timeout is no reason to
	// give up on a busy system.
	ctx, cancel := context.WithTimeout(context.Background(), max(opts.Timeout, defaultLircdTimeout))
	defer cancel()
	if _, err := l.dial(ctx); err != nil {
		return nil, fmt.Errorf("irlamp: lircd: %w", err)
	}
	return l, nil
}

// Send asks lircd to transmit key of remote r, then repeats more times, and
// waits for lircd's reply, which comes once lircd has transmitted it all.
// An ERROR reply is returned as a *LircdError. If ctx ends first the
// connection is dropped (a late reply must not be taken for the next
// command's) and the key may or may not have been sent.
func (l *Lircd) Send(ctx context.Context, r *Remote, key string, repeats int) error {
	cmd, err := l.command(r, key, repeats)
	if err != nil {
		return err
	}
	timeout := l.timeout + time.Duration(repeats)*repeatTime(r, key)

	l.mu.Lock()
	defer l.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("irlamp: lircd: %s: %w", cmd, err)
	}
	deadline := time.Now().Add(timeout)
	ctxDeadline := false
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline, ctxDeadline = d, true
	}
	for attempt := 0; ; attempt++ {
		c, err := l.current()
		if err != nil {
			return err
		}
		if c != nil && c.dead() {
			// lircd closed the connection while we were idle (it
			// restarted): nothing was sent on it, so dial anew.
			l.drop(c)
			c = nil
		}
		reused := c != nil
		if !reused {
			dctx, cancel := context.WithDeadline(ctx, deadline)
			c, err = l.dial(dctx)
			cancel()
			if err != nil {
				return fmt.Errorf("irlamp: lircd: %s: %w", cmd, err)
			}
		}
		written, err := c.roundTrip(ctx, cmd, deadline)
		if err == nil {
			return nil
		}
		var lerr *LircdError
		if errors.As(err, &lerr) {
			return err // lircd answered: the connection is in step
		}
		// Anything else leaves the connection in an unknown state: a late
		// reply must not be taken for the next command's.
		l.drop(c)
		if _, cerr := l.current(); cerr != nil {
			return cerr
		}
		maybe := ""
		if written {
			maybe = " (the key may have been sent)"
		}
		switch {
		case ctx.Err() != nil:
			return fmt.Errorf("irlamp: lircd: %s%s: %w", cmd, maybe, ctx.Err())
		case errors.Is(err, os.ErrDeadlineExceeded) && ctxDeadline:
			return fmt.Errorf("irlamp: lircd: %s%s: %w", cmd, maybe, context.DeadlineExceeded)
		case errors.Is(err, os.ErrDeadlineExceeded):
			return fmt.Errorf("irlamp: lircd: %s: no reply within %s%s: %w", cmd, timeout, maybe, err)
		case !written && reused && attempt == 0:
			// The connection died just before the write (EPIPE) and no
			// byte of the command reached lircd: safe to send on a new one.
			continue
		case written:
			return fmt.Errorf("irlamp: lircd: %s: connection lost%s; the next Send reconnects: %w", cmd, maybe, err)
		}
		return fmt.Errorf("irlamp: lircd: %s: %w", cmd, err)
	}
}

// Close closes the connection. A Send in progress fails; later ones return
// ErrClosed.
func (l *Lircd) Close() error {
	l.connMu.Lock()
	defer l.connMu.Unlock()
	if l.closed {
		return nil
	}
	l.closed = true
	if l.conn == nil {
		return nil
	}
	err := l.conn.conn.Close()
	l.conn = nil
	if err != nil {
		return fmt.Errorf("irlamp: lircd: %w", err)
	}
	return nil
}

// command builds the SEND_ONCE line for a key, refusing names that would
// break the line protocol.
func (l *Lircd) command(r *Remote, key string, repeats int) (string, error) {
	if r == nil {
		return "", errors.New("irlamp: lircd: nil remote")
	}
	name := r.Name()
	if n, ok := l.names[name]; ok {
		name = n
	}
	if !lircdToken(name) {
		return "", fmt.Errorf("irlamp: lircd: remote name %q cannot be sent to lircd (it must be a non-empty word without spaces); map it with LircdOptions.Names", name)
	}
	if !lircdToken(key) {
		return "", fmt.Errorf("%w %q: lircd key names are single words", ErrUnknownKey, key)
	}
	if repeats < 0 {
		return "", fmt.Errorf("irlamp: lircd: negative repeat count %d", repeats)
	}
	cmd := "SEND_ONCE " + name + " " + key
	if repeats > 0 {
		cmd += " " + strconv.Itoa(repeats)
	}
	return cmd, nil
}

// repeatTime is how long one repeat of key takes, for the reply timeout.
// The key's own timing is used when r knows it; lircd may know keys r
// does not.
func repeatTime(r *Remote, key string) time.Duration {
	d := time.Duration(0)
	if p, err := r.Pulses(key); err == nil {
		for _, v := range p {
			d += time.Duration(v) * time.Microsecond
		}
		d += r.Gap()
	}
	return max(d, minRepeatTime)
}

// lircdToken reports whether s can be one word of a lircd command.
func lircdToken(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for _, c := range s {
		if c <= ' ' || c == 0x7f {
			return false
		}
	}
	return true
}

// current returns the open connection, nil if there is none, or ErrClosed.
func (l *Lircd) current() (*lircdConn, error) {
	l.connMu.Lock()
	defer l.connMu.Unlock()
	if l.closed {
		return nil, ErrClosed
	}
	return l.conn, nil
}

// dial opens a new connection. Its errors say what to do about the common
// failures.
func (l *Lircd) dial(ctx context.Context) (*lircdConn, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, l.network, l.address)
	if err != nil {
		return nil, dialHint(l.network, l.address, err)
	}
	l.connMu.Lock()
	defer l.connMu.Unlock()
	if l.closed {
		conn.Close()
		return nil, ErrClosed
	}
	l.conn = newLircdConn(conn)
	return l.conn, nil
}

// dialHint explains a failure to connect to lircd.
func dialHint(network, address string, err error) error {
	switch {
	case network == "unix" && errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("no lircd socket at %s (is lircd running? see systemctl status lircd; its socket is \"output\" in /etc/lirc/lirc_options.conf): %w", address, err)
	case network == "unix" && errors.Is(err, fs.ErrPermission):
		return fmt.Errorf("no permission to connect to %s: add the user to the socket's group (ls -l %s) or set \"permission = 666\" in /etc/lirc/lirc_options.conf: %w", address, address, err)
	case errors.Is(err, syscall.ECONNREFUSED):
		if network == "unix" {
			return fmt.Errorf("lircd is not running (stale socket %s; see systemctl status lircd): %w", address, err)
		}
		return fmt.Errorf("nothing listens at %s (start lircd with --listen, or \"listen = PORT\" in /etc/lirc/lirc_options.conf): %w", address, err)
	}
	return err
}

// drop closes c after a failure, so the next Send dials anew.
func (l *Lircd) drop(c *lircdConn) {
	c.conn.Close()
	l.connMu.Lock()
	defer l.connMu.Unlock()
	if l.conn == c {
		l.conn = nil
	}
}

// lircdConn is one connection to lircd. A goroutine reads it all the time,
// so that a connection closed by lircd is noticed before the next command
// is written (over TCP the write would succeed and the command vanish), and
// so that what lircd broadcasts to an idle client (button presses, SIGHUP)
// never fills the socket.
type lircdConn struct {
	conn    net.Conn
	pending atomic.Pointer[string] // the command awaiting its reply
	replies chan lircdReply        // the reply to pending
	done    chan struct{}          // closed when the reader stops
	err     error                  // why it stopped; set before done closes
}

func newLircdConn(conn net.Conn) *lircdConn {
	c := &lircdConn{conn: conn, replies: make(chan lircdReply, 1), done: make(chan struct{})}
	go c.read()
	return c
}

// read parses lircd's output until the connection fails, handing the reply
// to the pending command to roundTrip and dropping everything else.
func (c *lircdConn) read() {
	defer close(c.done)
	rd := bufio.NewReaderSize(c.conn, maxLircdLine)
	for {
		echo, reply, err := nextLircdReply(rd, c.isPending)
		if err != nil {
			c.err = err
			return
		}
		// One reply per command: clearing pending keeps a second block
		// with the same echo from being delivered.
		if p := c.pending.Load(); p != nil && *p == echo && c.pending.CompareAndSwap(p, nil) {
			select {
			case c.replies <- reply:
			default: // cannot happen: roundTrip takes each reply before the next command
			}
		}
	}
}

// isPending reports whether echo is the command awaiting its reply.
func (c *lircdConn) isPending(echo string) bool {
	p := c.pending.Load()
	return p != nil && *p == echo
}

// dead reports whether the connection has failed or been closed.
func (c *lircdConn) dead() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// roundTrip sends one command and waits for its reply. written reports
// whether any of the command may have reached lircd, which decides whether
// it may be retried.
func (c *lircdConn) roundTrip(ctx context.Context, cmd string, deadline time.Time) (written bool, err error) {
	c.pending.Store(&cmd)
	if err := c.conn.SetWriteDeadline(deadline); err != nil {
		return false, err
	}
	// Registered after the deadline is set, so a cancellation always wins.
	stop := context.AfterFunc(ctx, func() { c.conn.SetWriteDeadline(time.Unix(1, 0)) })
	n, err := io.WriteString(c.conn, cmd+"\n")
	stop()
	if err != nil {
		return n > 0, err
	}
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	select {
	case reply := <-c.replies:
		if !reply.success {
			return true, &LircdError{Command: cmd, Message: strings.Join(reply.data, "; ")}
		}
		return true, nil
	case <-c.done:
		return true, c.err
	case <-ctx.Done():
		return true, ctx.Err()
	case <-timer.C:
		return true, os.ErrDeadlineExceeded
	}
}

// lircdReply is lircd's answer to one command.
type lircdReply struct {
	success bool
	data    []string
}

// readLircdReply reads lircd's output until the reply block for cmd,
// skipping everything else (see nextLircdReply).
func readLircdReply(rd *bufio.Reader, cmd string) (lircdReply, error) {
	for {
		echo, reply, err := nextLircdReply(rd, func(echo string) bool { return echo == cmd })
		if err != nil {
			return lircdReply{}, err
		}
		if echo == cmd {
			return reply, nil
		}
	}
}

// nextLircdReply reads lircd's output up to the end of the next reply
// block, and returns the command it echoes and the reply. It skips what
// lircd sends to every client: button presses (lines outside BEGIN/END) and
// broadcast blocks, such as BEGIN SIGHUP END after lircd re-read its
// configuration, which can arrive between a command and its reply. ours
// tells the replies whose form must be right from those that are skipped
// when odd. Lines and data are bounded, so a garbled peer cannot make it
// allocate without limit.
func nextLircdReply(rd *bufio.Reader, ours func(echo string) bool) (string, lircdReply, error) {
	for {
		line, err := readLircdLine(rd)
		if err != nil {
			return "", lircdReply{}, err
		}
		if line != "BEGIN" {
			continue // a button press, or noise
		}
		echo, reply, isReply, err := readLircdBlock(rd, ours)
		if err != nil || isReply {
			return echo, reply, err
		}
	}
}

// readLircdBlock reads a block after its BEGIN line: the command (or
// broadcast event), then for replies SUCCESS or ERROR and optional DATA,
// then END. isReply is false for broadcasts and blocks of unknown form,
// which are skipped up to their END unless ours(echo).
func readLircdBlock(rd *bufio.Reader, ours func(echo string) bool) (echo string, reply lircdReply, isReply bool, err error) {
	echo, err = readLircdLine(rd)
	if err != nil {
		return "", reply, false, err
	}
	if echo == "END" {
		return "", reply, false, nil // an empty block
	}
	// Asked once the echo is in: the command may have been sent while
	// this reader waited for the block.
	mine := ours(echo)
	status, err := readLircdLine(rd)
	if err != nil {
		return "", reply, false, err
	}
	switch {
	case status == "END" && !mine:
		return echo, reply, false, nil // a broadcast: BEGIN SIGHUP END
	case status != "SUCCESS" && status != "ERROR":
		if mine {
			return "", reply, false, fmt.Errorf("bad reply from lircd to %q: %q where SUCCESS or ERROR belongs", echo, status)
		}
		return echo, reply, false, skipLircdBlock(rd)
	}
	reply.success = status == "SUCCESS"
	line, err := readLircdLine(rd)
	if err != nil {
		return "", reply, false, err
	}
	if line == "DATA" {
		s, err := readLircdLine(rd)
		if err != nil {
			return "", reply, false, err
		}
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 || n > maxLircdData {
			return "", reply, false, fmt.Errorf("bad reply from lircd to %q: data line count %q", echo, s)
		}
		for range n {
			d, err := readLircdLine(rd)
			if err != nil {
				return "", reply, false, err
			}
			if mine {
				reply.data = append(reply.data, d)
			}
		}
		if line, err = readLircdLine(rd); err != nil {
			return "", reply, false, err
		}
	}
	if line != "END" {
		return "", reply, false, fmt.Errorf("bad reply from lircd to %q: %q where END belongs", echo, line)
	}
	return echo, reply, true, nil
}

// skipLircdBlock skips a block of unknown form up to its END line.
func skipLircdBlock(rd *bufio.Reader) error {
	for range maxLircdData {
		line, err := readLircdLine(rd)
		if err != nil || line == "END" {
			return err
		}
	}
	return fmt.Errorf("bad reply from lircd: no END within %d lines", maxLircdData)
}

// readLircdLine reads one line without its line ending, refusing lines
// longer than the reader's buffer.
func readLircdLine(rd *bufio.Reader) (string, error) {
	b, err := rd.ReadSlice('\n')
	switch {
	case errors.Is(err, bufio.ErrBufferFull):
		return "", fmt.Errorf("bad reply from lircd: line longer than %d bytes", rd.Size())
	case errors.Is(err, io.EOF):
		if len(b) > 0 {
			err = io.ErrUnexpectedEOF
		}
		return "", fmt.Errorf("lircd closed the connection: %w", err)
	case err != nil:
		return "", err
	}
	return strings.TrimSuffix(string(b[:len(b)-1]), "\r"), nil
}

// openLircd opens a transmitter from a spec argument: a socket path, or
// tcp://HOST[:PORT], with options.
func openLircd(arg string) (Transmitter, error) {
	network, address, opts, err := parseLircdSpec(arg)
	if err != nil {
		return nil, err
	}
	return NewLircd(network, address, opts)
}

// parseLircdSpec parses a spec argument without connecting.
func parseLircdSpec(arg string) (network, address string, opts LircdOptions, err error) {
	target, o, err := devspec.ParseArg(arg, "timeout")
	if err != nil {
		return "", "", opts, fmt.Errorf("irlamp: lircd: %w; want %s", err, lircdUsage)
	}
	if v, ok := o["timeout"]; ok {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return "", "", opts, fmt.Errorf("irlamp: lircd: bad timeout %q: want a positive duration such as 2s", v)
		}
		opts.Timeout = d
	}
	if !strings.HasPrefix(target, "tcp://") {
		if target == "" {
			target = DefaultLircdSocket
		}
		return "unix", target, opts, nil
	}
	u, err := url.Parse(target)
	if err != nil || u.Hostname() == "" || (u.Path != "" && u.Path != "/") || u.User != nil || u.RawQuery != "" {
		return "", "", opts, fmt.Errorf("irlamp: lircd: bad address %q: want tcp://HOST[:PORT], e.g. tcp://127.0.0.1:%d", target, DefaultLircdPort)
	}
	port := u.Port()
	if port == "" {
		port = strconv.Itoa(DefaultLircdPort)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
		return "", "", opts, fmt.Errorf("irlamp: lircd: bad port %q in %q", port, target)
	}
	return "tcp", net.JoinHostPort(u.Hostname(), port), opts, nil
}

// detectLircd reports whether lircd's socket exists. It only stats: "auto"
// must not send anything.
func detectLircd(path string) (string, bool) {
	fi, err := os.Stat(path)
	if err != nil || fi.Mode()&fs.ModeSocket == 0 {
		return "", false
	}
	return path, true
}

func init() {
	registry.MustRegister(devspec.Driver[Transmitter]{
		Name:   "lircd",
		Usage:  lircdUsage,
		Open:   openLircd,
		Detect: func() (string, bool) { return detectLircd(DefaultLircdSocket) },
	})
}
