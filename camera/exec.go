package camera

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/pikit/pikit/internal/devspec"
)

// DefaultGrace is how long Exec.Close lets the command exit after SIGTERM
// before killing it.
const DefaultGrace = 2 * time.Second

// stderrTail is how much of a command's stderr is kept for error messages:
// enough for the lines that say why it failed.
const stderrTail = 4 << 10

// ExecOptions configures an Exec source. The zero value is ready to use.
type ExecOptions struct {
	// MaxFrame bounds the size of one frame (default DefaultMaxFrame);
	// larger frames are dropped, see Splitter.
	MaxFrame int
	// Grace is how long Close waits for the command to exit after SIGTERM
	// before sending SIGKILL (default DefaultGrace).
	Grace time.Duration
}

// Exec is a Source that runs a command and reads JPEG frames from its
// standard output: concatenated JPEGs or MJPEG, as written by
// "rpicam-vid --codec mjpeg -o -" or "ffmpeg ... -f mjpeg -". The command
// runs directly, without a shell.
//
// The command's standard error is kept (the last 4 KiB) and quoted in the
// error ReadFrame returns when the command exits. A command that exits
// with status 0 ends the source with io.EOF.
type Exec struct {
	name   string // the command as the user typed it, for errors
	cmd    *exec.Cmd
	out    *os.File // read end of the command's stdout
	split  *Splitter
	stderr *tailWriter
	grace  time.Duration
	seq    uint64

	exited  chan struct{} // closed once the command is reaped
	waitErr error         // Wait's result, set before exited is closed

	closeOnce sync.Once
	closed    chan struct{}
}

// NewExec starts the command argv (argv[0] is looked up on PATH) and
// returns a Source reading its output. The command runs until it exits or
// Close stops it.
func NewExec(argv []string, opts ExecOptions) (*Exec, error) {
	if len(argv) == 0 || argv[0] == "" {
		return nil, errors.New("camera: exec: no command")
	}
	if opts.MaxFrame < 0 {
		return nil, fmt.Errorf("camera: exec: negative MaxFrame %d", opts.MaxFrame)
	}
	if opts.Grace < 0 {
		return nil, fmt.Errorf("camera: exec: negative Grace %s", opts.Grace)
	}
	if opts.Grace == 0 {
		opts.Grace = DefaultGrace
	}
	name := filepath.Base(argv[0])
	path, err := exec.LookPath(argv[0])
	if err != nil {
		return nil, fmt.Errorf("camera: exec: %w", execError(err))
	}
	// A pipe of our own rather than cmd.StdoutPipe: Wait closes that one
	// as soon as the process exits, losing frames still in the pipe, and
	// we want to reap the process without waiting for the reader.
	r, w, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("camera: exec: %w", err)
	}
	e := &Exec{
		name:   name,
		out:    r,
		split:  NewSplitter(r, opts.MaxFrame),
		stderr: &tailWriter{max: stderrTail},
		grace:  opts.Grace,
		exited: make(chan struct{}),
		closed: make(chan struct{}),
	}
	e.cmd = &exec.Cmd{
		Path:   path,
		Args:   argv,
		Stdout: w,
		Stderr: e.stderr,
		// A grandchild that inherited stderr must not keep Wait (and so
		// Close) from returning.
		WaitDelay: time.Second,
	}
	err = e.cmd.Start()
	w.Close() // the child has its copy; ours would hide the end of output
	if err != nil {
		r.Close()
		return nil, fmt.Errorf("camera: exec: %w", execError(err))
	}
	// Reap as soon as the command exits, whoever is reading: no zombie
	// even if nobody calls ReadFrame or Close again.
	go func() {
		e.waitErr = e.cmd.Wait()
		close(e.exited)
	}()
	return e, nil
}

// execError drops os/exec's "exec: " prefix, which would stutter after
// ours.
func execError(err error) error {
	var ee *exec.Error
	if errors.As(err, &ee) {
		return fmt.Errorf("%q: %w", ee.Name, ee.Err)
	}
	return err
}

// ReadFrame returns the next frame the command writes. When the command
// has exited, it returns io.EOF for exit status 0 and otherwise an error
// with the exit status and the end of its standard error.
func (e *Exec) ReadFrame(ctx context.Context) (Frame, error) {
	select {
	case <-e.closed:
		return Frame{}, ErrClosed
	default:
	}
	if err := ctx.Err(); err != nil {
		return Frame{}, err
	}
	// A read deadline in the past wakes a read blocked on the pipe. A
	// frame being read when ctx ends is dropped.
	woke := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		_ = e.out.SetReadDeadline(time.Unix(1, 0))
		close(woke)
	})
	data, err := e.split.Next()
	if !stop() {
		<-woke
		_ = e.out.SetReadDeadline(time.Time{})
	}
	if err == nil {
		e.seq++
		return Frame{Data: data, Seq: e.seq, Time: time.Now()}, nil
	}
	select {
	case <-e.closed:
		return Frame{}, ErrClosed
	default:
	}
	if ctx.Err() != nil {
		return Frame{}, ctx.Err()
	}
	if errors.Is(err, ErrNotJPEG) {
		return Frame{}, &annotated{err: err, msg: fmt.Sprintf(
			"camera: exec: %s writes no JPEG frames (%d bytes without a JPEG start); is it writing MJPEG (e.g. rpicam-vid --codec mjpeg, ffmpeg -f mjpeg)?",
			e.name, e.split.max)}
	}
	// The output ended (or broke): normally because the command exited.
	select {
	case <-e.exited:
	case <-e.closed:
		return Frame{}, ErrClosed
	case <-ctx.Done():
		return Frame{}, ctx.Err()
	}
	if e.waitErr == nil {
		return Frame{}, io.EOF
	}
	if tail := strings.TrimSpace(e.stderr.String()); tail != "" {
		return Frame{}, fmt.Errorf("camera: exec: %s exited: %w: %s", e.name, e.waitErr, tail)
	}
	return Frame{}, fmt.Errorf("camera: exec: %s exited: %w", e.name, e.waitErr)
}

// Stderr returns the end (up to 4 KiB) of what the command has written to
// its standard error so far.
func (e *Exec) Stderr() string { return e.stderr.String() }

// Close stops the command: SIGTERM, then SIGKILL if it has not exited
// after the grace period. It returns once the command is reaped, and makes
// a concurrent ReadFrame return ErrClosed. Closing twice is harmless.
func (e *Exec) Close() error {
	e.closeOnce.Do(func() {
		close(e.closed)
		// Closing our end wakes a blocked ReadFrame, and a command that
		// ignores SIGTERM gets EPIPE on its next write.
		e.out.Close()
		select {
		case <-e.exited:
			return
		default:
		}
		if err := e.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			// Windows has no SIGTERM; the process may also just have
			// exited.
			_ = e.cmd.Process.Kill()
		}
		t := time.NewTimer(e.grace)
		defer t.Stop()
		select {
		case <-e.exited:
			return
		case <-t.C:
		}
		_ = e.cmd.Process.Kill()
		<-e.exited
	})
	return nil
}

// annotated is an error with its own message that still matches err with
// errors.Is, for sentinels whose text would stutter after ours.
type annotated struct {
	msg string
	err error
}

func (a *annotated) Error() string { return a.msg }
func (a *annotated) Unwrap() error { return a.err }

// tailWriter keeps the last max bytes written to it.
type tailWriter struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (w *tailWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := len(p)
	if len(p) >= w.max {
		w.buf = append(w.buf[:0], p[len(p)-w.max:]...)
		return n, nil
	}
	if over := len(w.buf) + len(p) - w.max; over > 0 {
		w.buf = append(w.buf[:0], w.buf[over:]...)
	}
	w.buf = append(w.buf, p...)
	return n, nil
}

func (w *tailWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return string(w.buf)
}

const execUsage = "exec:COMMAND ARGS..."

func openExec(arg string) (Source, error) {
	argv, err := SplitWords(arg)
	if err != nil {
		return nil, fmt.Errorf("camera: exec: %w", err)
	}
	if len(argv) == 0 {
		return nil, fmt.Errorf("camera: exec: no command (form: %s)", execUsage)
	}
	return NewExec(argv, ExecOptions{})
}

func execDriver(detect func() (string, bool)) devspec.Driver[Source] {
	return devspec.Driver[Source]{Name: "exec", Usage: execUsage, Open: openExec, Detect: detect}
}

func init() {
	// On Linux, exec_linux.go registers the driver with detection of the
	// Raspberry Pi camera programs.
	if runtime.GOOS != "linux" {
		registry.MustRegister(execDriver(nil))
	}
}

// SplitWords splits a command line into words the way a POSIX shell does
// for a simple command, without running one: words are separated by
// blanks; 'single quotes' keep everything literally; "double quotes" keep
// everything but a backslash before $ ` " \ or a newline; outside quotes
// a backslash keeps the next character literally. Nothing is expanded.
//
// Shell syntax that would need a shell — unquoted | & ; < > ( ) ` or $ —
// is an error that says to use sh -c, rather than being passed on as an
// argument the user did not mean. So are an unterminated quote and a
// trailing backslash.
func SplitWords(s string) ([]string, error) {
	var (
		words  []string
		word   strings.Builder
		inWord bool
	)
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch c {
		case ' ', '\t', '\n', '\r':
			if inWord {
				words = append(words, word.String())
				word.Reset()
				inWord = false
			}
		case '\\':
			i++
			if i == len(s) {
				return nil, errors.New("trailing backslash")
			}
			inWord = true
			if s[i] != '\n' { // backslash-newline continues the line
				word.WriteByte(s[i])
			}
		case '\'':
			j := strings.IndexByte(s[i+1:], '\'')
			if j < 0 {
				return nil, fmt.Errorf("unterminated single quote at offset %d", i)
			}
			inWord = true
			word.WriteString(s[i+1 : i+1+j])
			i += 1 + j
		case '"':
			inWord = true
			start := i
			for i++; ; i++ {
				if i == len(s) {
					return nil, fmt.Errorf("unterminated double quote at offset %d", start)
				}
				if s[i] == '"' {
					break
				}
				if s[i] == '\\' && i+1 < len(s) && strings.IndexByte("$`\"\\\n", s[i+1]) >= 0 {
					i++
					if s[i] != '\n' {
						word.WriteByte(s[i])
					}
					continue
				}
				word.WriteByte(s[i])
			}
		case '|', '&', ';', '<', '>', '(', ')', '`', '$':
			return nil, fmt.Errorf("unquoted %q at offset %d: pipes, redirections and expansions need a shell (exec:sh -c '...'); quote it to pass it as an argument", c, i)
		default:
			inWord = true
			word.WriteByte(c)
		}
	}
	if inWord {
		words = append(words, word.String())
	}
	return words, nil
}
