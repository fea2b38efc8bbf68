package audio

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
	"unicode"
)

const (
	defaultDevice      = "default"
	defaultStopTimeout = 200 * time.Millisecond
	// stderrTail is how much of aplay's stderr an error quotes: the end
	// holds the reason, and a runaway program must not grow memory.
	stderrTail = 4 << 10
)

// ALSAOptions configures NewALSA. The zero value is ready to use.
type ALSAOptions struct {
	// Aplay is the aplay program: a path, or a name looked up on PATH.
	// Empty means "aplay".
	Aplay string
	// Env holds extra "KEY=value" entries for aplay's environment, added
	// to (and overriding) the process's own; tests use it to point
	// ALSA_CONFIG_PATH at a private configuration.
	Env []string
	// StopTimeout is how long a stopped Play waits for aplay to exit after
	// SIGTERM before killing it. Zero means 200 ms, ample for aplay to
	// abort the PCM and exit.
	StopTimeout time.Duration
}

// ALSA plays clips on an ALSA device by running aplay once per clip and
// feeding it the clip as WAV on its standard input. Running a program keeps
// this package free of cgo; starting aplay costs a few milliseconds, which
// is negligible for sound effects. ALSA is safe for concurrent use and
// follows the Player rules.
type ALSA struct {
	device      string
	aplay       string
	env         []string
	stopTimeout time.Duration
	g           *gate

	started func(pid int) // test hook, called after aplay starts
}

var _ Player = (*ALSA)(nil)

// NewALSA returns a player for the ALSA device ("default" when empty), such
// as "hw:1,0" or "plughw:CARD=Device" (aplay -L lists them). aplay is looked
// up now, so a missing alsa-utils package is reported here rather than at
// the first Play. The device itself is opened by each Play, so a device that
// does not exist shows up as an error from Play quoting aplay.
func NewALSA(device string, opts ALSAOptions) (*ALSA, error) {
	device = strings.TrimSpace(device)
	if device == "" {
		device = defaultDevice
	}
	if strings.ContainsFunc(device, unicode.IsControl) {
		return nil, fmt.Errorf("audio: alsa: invalid device name %q", device)
	}
	prog := opts.Aplay
	if prog == "" {
		prog = "aplay"
	}
	path, err := lookPath(prog)
	if err != nil {
		return nil, fmt.Errorf("audio: alsa: aplay not found (install Debian package alsa-utils): %w", err)
	}
	if opts.StopTimeout < 0 {
		return nil, fmt.Errorf("audio: alsa: negative stop timeout %s", opts.StopTimeout)
	}
	stop := opts.StopTimeout
	if stop == 0 {
		stop = defaultStopTimeout
	}
	return &ALSA{
		device:      device,
		aplay:       path,
		env:         append([]string(nil), opts.Env...),
		stopTimeout: stop,
		g:           newGate(),
	}, nil
}

// Device returns the ALSA device name clips are played on.
func (a *ALSA) Device() string { return a.device }

// Play plays c on the device; see Player. A failure of aplay is returned as
// "audio: alsa: aplay: exit status N: " followed by the end of what aplay
// wrote on stderr, which names the problem (unknown device, busy device,
// unsupported format).
func (a *ALSA) Play(ctx context.Context, c *Clip) error {
	if !c.valid() {
		return errNoClip
	}
	if err := a.g.acquire(); err != nil {
		return err
	}
	defer a.g.release()
	if err := ctx.Err(); err != nil {
		return err
	}
	if c.Frames() == 0 {
		return nil
	}
	return a.run(ctx, c)
}

// run runs aplay for c. It returns only once aplay has been reaped and the
// goroutine feeding it has finished, whatever happens, so that no zombie
// process or goroutine outlives a Play.
func (a *ALSA) run(ctx context.Context, c *Clip) error {
	cmd := exec.Command(a.aplay, "-q", "-D", a.device, "-t", "wav", "-")
	cmd.Env = append(os.Environ(), a.env...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return fmt.Errorf("audio: alsa: %w", err)
	}
	stderr := &tailWriter{max: stderrTail}
	cmd.Stderr = stderr
	// Should aplay leave a child holding its stderr, Wait gives up on the
	// pipe after this rather than hanging.
	cmd.WaitDelay = time.Second
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("audio: alsa: starting aplay: %w", err)
	}
	if a.started != nil {
		a.started(cmd.Process.Pid)
	}
	fed := make(chan struct{})
	go func() {
		defer close(fed)
		// Errors are ignored: writing fails only when aplay stops
		// reading, that is when it exits, and its exit status and stderr
		// say why. aplay may even exit successfully before the pad byte.
		_ = c.WriteWAV(stdin)
		// EOF after the data tells aplay the clip is complete.
		_ = stdin.Close()
	}()
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()

	var stopped, werr error
	select {
	case werr = <-exited:
	case <-ctx.Done():
		stopped = ctx.Err()
	case <-a.g.closing:
		stopped = ErrClosed
	}
	if stopped != nil {
		a.stop(cmd.Process, exited)
	}
	// Once aplay is gone its end of the pipe is closed and Wait has closed
	// ours, so the feeder cannot stay blocked.
	<-fed
	if stopped != nil {
		return stopped
	}
	if werr != nil {
		if msg := stderr.String(); msg != "" {
			return fmt.Errorf("audio: alsa: aplay: %w: %s", werr, msg)
		}
		return fmt.Errorf("audio: alsa: aplay: %w", werr)
	}
	return nil
}

// stop ends aplay and reaps it. SIGTERM first: aplay catches it and aborts
// the PCM, dropping what is buffered in the sound card, so the sound stops
// at once; SIGKILL follows if it has not exited in time.
func (a *ALSA) stop(p *os.Process, exited <-chan error) {
	if err := p.Signal(syscall.SIGTERM); err != nil {
		_ = p.Kill()
	}
	t := time.NewTimer(a.stopTimeout)
	defer t.Stop()
	select {
	case <-exited:
	case <-t.C:
		_ = p.Kill()
		<-exited
	}
}

// Close stops the clip being played, if any, and waits until aplay has
// exited. Close is idempotent and returns nil.
func (a *ALSA) Close() error {
	a.g.close()
	return nil
}

// tailWriter keeps the last max bytes written to it.
type tailWriter struct {
	max     int
	buf     []byte
	dropped bool
}

func (w *tailWriter) Write(p []byte) (int, error) {
	n := len(p)
	if len(p) >= w.max {
		w.dropped = w.dropped || len(w.buf) > 0 || len(p) > w.max
		w.buf = append(w.buf[:0], p[len(p)-w.max:]...)
		return n, nil
	}
	w.buf = append(w.buf, p...)
	if over := len(w.buf) - w.max; over > 0 {
		w.dropped = true
		w.buf = append(w.buf[:0], w.buf[over:]...)
	}
	return n, nil
}

// String returns the kept text on one line, lines joined by "; ", so that
// it reads well at the end of an error.
func (w *tailWriter) String() string {
	text := string(w.buf)
	if w.dropped {
		// The first line was cut; the lines after it read better alone.
		if _, rest, ok := strings.Cut(text, "\n"); ok {
			text = rest
		}
	}
	var lines []string
	for _, l := range strings.Split(text, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	s := strings.Join(lines, "; ")
	if w.dropped && s != "" {
		s = "..." + s
	}
	return s
}
