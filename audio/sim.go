package audio

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/pikit/pikit/internal/devspec"
)

// Clock tells time for a Sim. Tests substitute one to play clips in
// simulated time.
type Clock interface {
	// Now returns the current time.
	Now() time.Time
	// After returns a channel that receives the time once d has passed.
	After(d time.Duration) <-chan time.Time
}

type realClock struct{}

func (realClock) Now() time.Time                         { return time.Now() }
func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// InstantClock is a Clock on which time passes only when waited for: After(d)
// advances Now by d and fires at once. A Sim on it plays any clip instantly
// while Plays still shows the start and end times a real player would have,
// which makes tests fast and their output deterministic. It is safe for
// concurrent use.
type InstantClock struct {
	mu  sync.Mutex
	now time.Time
}

// NewInstantClock returns an InstantClock reading start.
func NewInstantClock(start time.Time) *InstantClock { return &InstantClock{now: start} }

// Now returns the simulated time.
func (c *InstantClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// After advances the simulated time by d (if positive) and returns a channel
// that already holds the new time.
func (c *InstantClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	if d > 0 {
		c.now = c.now.Add(d)
	}
	ch := make(chan time.Time, 1)
	ch <- c.now
	return ch
}

// SimOptions configures NewSim. The zero value gives a silent player that
// takes as long as a real one.
type SimOptions struct {
	// Clock tells time; nil means the real clock.
	Clock Clock
	// Record, if set, is a WAV file that each Play replaces with the audio
	// it played: the whole clip, or the part played before a cancellation
	// (by the clock). The file is replaced atomically, so a reader never
	// sees half of it. A failure to write it is returned by Play.
	Record string
	// OnPlay, if set, is called as each clip starts, with End still zero,
	// from the goroutine calling Play. It must not call Play.
	OnPlay func(Play)
}

// Play is one clip played by a Sim.
type Play struct {
	Clip *Clip
	// Start and End are the clock's times when the clip started and
	// stopped; End is zero while it plays.
	Start, End time.Time
	// Cancelled reports that the clip was stopped before its end, by its
	// context or by Close.
	Cancelled bool
}

// Sim is a simulated player: it produces no sound, takes as long as the clip
// lasts on its clock, and records every play. It follows the Player rules
// and is safe for concurrent use.
type Sim struct {
	clock  Clock
	record string
	onPlay func(Play)
	g      *gate

	mu      sync.Mutex
	plays   []Play
	changed chan struct{} // closed and replaced whenever plays changes
}

var _ Player = (*Sim)(nil)

// NewSim returns a simulated player.
func NewSim(opts SimOptions) *Sim {
	c := opts.Clock
	if c == nil {
		c = realClock{}
	}
	return &Sim{clock: c, record: opts.Record, onPlay: opts.OnPlay, g: newGate(), changed: make(chan struct{})}
}

func openSim(arg string) (Player, error) {
	target, opts, err := devspec.ParseArg(arg, "record")
	if err != nil {
		return nil, fmt.Errorf("audio: sim: %w", err)
	}
	if target != "" {
		return nil, fmt.Errorf("audio: sim: unexpected argument %q (accepted: sim, sim?record=FILE)", target)
	}
	rec, ok := opts["record"]
	if ok && rec == "" {
		return nil, errors.New("audio: sim: empty record file name")
	}
	return NewSim(SimOptions{Record: rec}), nil
}

// Play waits for the clip's duration on the clock; see Player.
func (s *Sim) Play(ctx context.Context, c *Clip) error {
	if !c.valid() {
		return errNoClip
	}
	if err := s.g.acquire(); err != nil {
		return err
	}
	defer s.g.release()
	if err := ctx.Err(); err != nil {
		return err
	}
	start := s.clock.Now()
	s.mu.Lock()
	i := len(s.plays)
	s.plays = append(s.plays, Play{Clip: c, Start: start})
	s.notifyLocked()
	s.mu.Unlock()
	if s.onPlay != nil {
		s.onPlay(Play{Clip: c, Start: start})
	}

	var stopped error
	select {
	case <-s.clock.After(c.Duration()):
	case <-ctx.Done():
		stopped = ctx.Err()
	case <-s.g.closing:
		stopped = ErrClosed
	}
	end := s.clock.Now()
	s.mu.Lock()
	s.plays[i].End = end
	s.plays[i].Cancelled = stopped != nil
	s.notifyLocked()
	s.mu.Unlock()

	if s.record != "" {
		played := c
		if stopped != nil {
			played = c.head(end.Sub(start))
		}
		if err := writeFileAtomic(s.record, played); err != nil {
			return errors.Join(stopped, fmt.Errorf("audio: sim: record: %w", err))
		}
	}
	return stopped
}

func (s *Sim) notifyLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// Plays returns every play so far, oldest first, including the one in
// progress.
func (s *Sim) Plays() []Play {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Play(nil), s.plays...)
}

// Playing reports whether a Play call is in progress, that is whether
// another Play would return ErrBusy.
func (s *Sim) Playing() bool { return s.g.isBusy() }

// WaitPlays waits until at least n clips have started playing and returns
// Plays, or returns ctx.Err(). Tests use it to see a sound that code under
// test plays from another goroutine.
func (s *Sim) WaitPlays(ctx context.Context, n int) ([]Play, error) {
	for {
		s.mu.Lock()
		if len(s.plays) >= n {
			out := append([]Play(nil), s.plays...)
			s.mu.Unlock()
			return out, nil
		}
		ch := s.changed
		s.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// Close stops the clip being played, if any, and waits for its Play to
// return. Close is idempotent and returns nil.
func (s *Sim) Close() error {
	s.g.close()
	return nil
}

// head returns the part of c that plays in d (all of it if d is longer,
// none if d is not positive), sharing c's data.
func (c *Clip) head(d time.Duration) *Clip {
	frames := c.Frames()
	if d <= 0 {
		frames = 0
	} else if d < c.Duration() {
		frames = int(int64(d) * int64(c.rate) / int64(time.Second))
	}
	h := *c
	h.data = c.data[:frames*c.BlockAlign()]
	return &h
}

// writeFileAtomic writes c as WAV to a temporary file next to path and
// renames it over path.
func writeFileAtomic(path string, c *Clip) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return err
	}
	err = c.WriteWAV(f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
	}
	return err
}
