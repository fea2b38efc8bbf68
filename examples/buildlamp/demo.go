package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/pikit/pikit/irlamp"
	"github.com/pikit/pikit/octopus/octopustest"
)

// demoClock runs faster than real time, from 12:00:00 today, so that the
// demo's timeline of a few minutes plays in seconds with readable times.
// It stands still until start, so that the program's start-up (checking
// the server, opening the lamp) does not eat into the timeline.
type demoClock struct {
	base  time.Time
	speed float64

	mu      sync.Mutex
	started time.Time // zero until start
}

func newDemoClock(speed float64) *demoClock {
	n := time.Now()
	return &demoClock{base: time.Date(n.Year(), n.Month(), n.Day(), 12, 0, 0, 0, time.Local), speed: speed}
}

// start sets the clock going.
func (c *demoClock) start() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.started.IsZero() {
		c.started = time.Now()
	}
}

func (c *demoClock) now() time.Time {
	c.mu.Lock()
	started := c.started
	c.mu.Unlock()
	if started.IsZero() {
		return c.base
	}
	return c.base.Add(time.Duration(float64(time.Since(started)) * c.speed))
}

// demoLength is how long the demo's timeline takes on the demo clock, from
// its first phase (applied at once) to its last, plus a moment to see it.
func demoLength() time.Duration {
	tl := octopustest.DemoTimeline("Website", "Production")
	var d time.Duration
	for _, p := range tl.Phases[1:] {
		d += p.After
	}
	return d + 5*time.Second
}

// demoTimer fires once the demo clock reaches end.
func demoTimer(ctx context.Context, now func() time.Time, end time.Time) <-chan time.Time {
	ch := make(chan time.Time, 1)
	go func() {
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if n := now(); !n.Before(end) {
					ch <- n
					return
				}
			}
		}
	}()
	return ch
}

// colourTest shows each state's colour in turn, worst first, printing
// them, and switches the lamp off at the end.
func colourTest(ctx context.Context, o *options, h hooks, resolved, asked string, log *slog.Logger, stdout io.Writer) (int, error) {
	tx, err := h.openLamp(resolved)
	if err != nil {
		return 1, fmt.Errorf("-lamp %s: %w", resolved, err)
	}
	defer tx.Close()
	lamp, err := irlamp.NewLamp(tx, irlamp.LED24Key(), irlamp.LampOptions{RefreshEvery: -1, Logger: log})
	if err != nil {
		return 1, err
	}
	fmt.Fprintf(stdout, "colour test on %s, %s per colour:\n", describeLamp(asked, resolved), h.colourTestHold)
	ctrl := &controller{lamp: lamp, log: log}
	for _, st := range states {
		c := o.colours[st]
		fmt.Fprintf(stdout, "%-13s %-20s → %s\n", st.Key(), st.String(), c)
		if err := ctrl.show(ctx, c); err != nil {
			if ctx.Err() != nil {
				break
			}
			return 1, fmt.Errorf("lamp: %w", err)
		}
		t := time.NewTimer(h.colourTestHold)
		select {
		case <-ctx.Done():
			t.Stop()
		case <-t.C:
		}
		if ctx.Err() != nil {
			break
		}
	}
	octx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := lamp.Off(octx); err != nil {
		return 1, fmt.Errorf("lamp: %w", err)
	}
	fmt.Fprintln(stdout, "done → off")
	return 0, nil
}
