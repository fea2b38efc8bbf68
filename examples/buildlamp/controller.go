package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/pikit/pikit/irlamp"
)

// lampDriver is what the controller needs of an irlamp.Lamp.
type lampDriver interface {
	SetColor(ctx context.Context, color string) error
	Off(ctx context.Context) error
	State() irlamp.State
}

// controller holds every target's state, works out the lamp's colour and
// sends it when it changes. Sources call set; one goroutine (run) drives
// the lamp, so codes never interleave and bursts of updates coalesce.
type controller struct {
	lamp    lampDriver
	colours colours
	quiet   quietHours
	now     func() time.Time // the clock of quiet hours and the printed log
	out     io.Writer        // the printed log of lamp changes
	log     *slog.Logger
	kick    chan struct{}

	mu      sync.Mutex
	targets []target
	view    view
	sent    string // the colour last commanded, "" before the first
	outMu   sync.Mutex
}

// view is the aggregate the lamp shows.
type view struct {
	Ready     bool   // every target has been read (or failed for good)
	State     state  // the worst target's state
	Cause     int    // that target's index, -1 for none
	Colour    string // the colour for State, or off in quiet hours
	Quiet     bool
	UpdatedAt time.Time // when a target last changed
}

func newController(lamp lampDriver, cs colours, q quietHours, names []target, now func() time.Time, out io.Writer, log *slog.Logger) *controller {
	ts := make([]target, len(names))
	copy(ts, names)
	return &controller{lamp: lamp, colours: cs, quiet: q, now: now, out: out, log: log,
		kick: make(chan struct{}, 1), targets: ts, view: view{Cause: -1}}
}

// set records target i's state and wakes the loop.
func (c *controller) set(i int, t target) {
	c.mu.Lock()
	if i < 0 || i >= len(c.targets) {
		c.mu.Unlock()
		return
	}
	c.targets[i] = t
	c.view.UpdatedAt = time.Now() // real time, like the targets' own times
	c.mu.Unlock()
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// snapshot returns the targets and the current view, for /status.
func (c *controller) snapshot() ([]target, view, string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]target(nil), c.targets...), c.view, c.sent
}

// run drives the lamp until ctx is done. Quiet hours are checked every
// quietCheck (and on every update).
func (c *controller) run(ctx context.Context, quietCheck time.Duration) {
	var tick <-chan time.Time
	if c.quiet.set {
		t := time.NewTicker(quietCheck)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.kick:
		case <-tick:
		}
		c.apply(ctx)
	}
}

// compute works out the view from the targets; the caller holds mu.
func (c *controller) computeLocked(now time.Time) view {
	v := c.view
	v.Ready = len(c.targets) > 0
	for _, t := range c.targets {
		if !t.Known {
			v.Ready = false
		}
	}
	v.State, v.Cause = aggregate(c.targets)
	v.Quiet = c.quiet.contains(now)
	v.Colour = c.colours[v.State]
	if v.Quiet {
		v.Colour = colourOff
	}
	return v
}

// apply sends the lamp its colour if that changed, and prints the change.
func (c *controller) apply(ctx context.Context) {
	now := c.now()
	c.mu.Lock()
	v := c.computeLocked(now)
	c.view = v
	prev := c.sent
	var cause target
	if v.Cause >= 0 {
		cause = c.targets[v.Cause]
	}
	c.mu.Unlock()
	if !v.Ready || v.Colour == prev {
		return
	}
	// Recorded even if the send fails or is cut short by shutdown: the
	// Lamp keeps what it should show and retries, and shutdown must know
	// that codes may have gone out.
	err := c.show(ctx, v.Colour)
	c.mu.Lock()
	c.sent = v.Colour
	c.mu.Unlock()
	what := v.State.String() + " " + cause.describe()
	if v.Quiet {
		what = "quiet hours " + c.quiet.String() + " (" + what + ")"
	}
	c.printf("%s %s → %s\n", now.Format("15:04:05"), what, v.Colour)
	if err != nil && ctx.Err() == nil {
		c.log.Warn("lamp: send failed; retrying", "colour", v.Colour, "err", err)
	}
}

// show makes the lamp show a colour, or switches it off.
func (c *controller) show(ctx context.Context, colour string) error {
	if colour == colourOff {
		return c.lamp.Off(ctx)
	}
	return c.lamp.SetColor(ctx, colour)
}

func (c *controller) printf(format string, args ...any) {
	c.outMu.Lock()
	defer c.outMu.Unlock()
	fmt.Fprintf(c.out, format, args...)
}

// shutdown switches the lamp off, if it was ever switched on: a lamp that
// nobody updates any more must not go on claiming a state, least of all
// green.
func (c *controller) shutdown(timeout time.Duration) error {
	c.mu.Lock()
	sent := c.sent
	c.mu.Unlock()
	if (sent == "" || sent == colourOff) && !c.lamp.State().On {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	err := c.lamp.Off(ctx)
	c.mu.Lock()
	c.sent = colourOff
	c.mu.Unlock()
	c.printf("%s stopped → off\n", c.now().Format("15:04:05"))
	return err
}
