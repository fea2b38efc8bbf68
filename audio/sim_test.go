package audio

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

var t0 = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

// manualClock's time moves only with Advance, so a test can hold a clip
// "playing" as long as it likes.
type manualClock struct {
	mu         sync.Mutex
	now        time.Time
	waiters    []manualWaiter
	registered int // After calls ever made
}

type manualWaiter struct {
	at time.Time
	ch chan time.Time
}

func (c *manualClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *manualClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := make(chan time.Time, 1)
	c.registered++
	c.waiters = append(c.waiters, manualWaiter{c.now.Add(d), ch})
	c.fireLocked()
	return ch
}

// registrations counts After calls; nil-safe so callers need not check
// which clock a Sim uses.
func (c *manualClock) registrations() int {
	if c == nil {
		return 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.registered
}

func (c *manualClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	c.fireLocked()
}

func (c *manualClock) fireLocked() {
	kept := c.waiters[:0]
	for _, w := range c.waiters {
		if !w.at.After(c.now) {
			w.ch <- c.now
		} else {
			kept = append(kept, w)
		}
	}
	c.waiters = kept
}

func mustTone(t testing.TB, d time.Duration) *Clip {
	t.Helper()
	c, err := Tone(440, d, 8000, 0.5)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestSimInstantClock(t *testing.T) {
	s := NewSim(SimOptions{Clock: NewInstantClock(t0)})
	defer s.Close()
	clip := mustTone(t, 2*time.Second)
	start := time.Now()
	for range 3 {
		if err := s.Play(context.Background(), clip); err != nil {
			t.Fatal(err)
		}
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("three 2 s plays in simulated time took %s", d)
	}
	want := []Play{
		{Clip: clip, Start: t0, End: t0.Add(2 * time.Second)},
		{Clip: clip, Start: t0.Add(2 * time.Second), End: t0.Add(4 * time.Second)},
		{Clip: clip, Start: t0.Add(4 * time.Second), End: t0.Add(6 * time.Second)},
	}
	if got := s.Plays(); !equalPlays(got, want) {
		t.Errorf("Plays = %+v, want %+v", got, want)
	}
	if s.Playing() {
		t.Error("Playing after Play returned")
	}
}

func equalPlays(a, b []Play) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Clip != b[i].Clip || !a[i].Start.Equal(b[i].Start) || !a[i].End.Equal(b[i].End) || a[i].Cancelled != b[i].Cancelled {
			return false
		}
	}
	return true
}

func TestSimRealClock(t *testing.T) {
	s := NewSim(SimOptions{})
	defer s.Close()
	start := time.Now()
	if err := s.Play(context.Background(), mustTone(t, 50*time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 50*time.Millisecond {
		t.Errorf("a 50 ms clip played in %s", d)
	}
	p := s.Plays()[0]
	if p.End.Sub(p.Start) < 50*time.Millisecond {
		t.Errorf("play recorded from %s to %s", p.Start, p.End)
	}
}

// startPlay plays clip on s in a goroutine and waits until it has started;
// the returned channel yields Play's result.
func startPlay(t *testing.T, ctx context.Context, s *Sim, clip *Clip, n int) <-chan error {
	t.Helper()
	mc, _ := s.clock.(*manualClock)
	before := mc.registrations()
	done := make(chan error, 1)
	go func() { done <- s.Play(ctx, clip) }()
	wctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := s.WaitPlays(wctx, n); err != nil {
		t.Fatalf("play %d did not start: %v", n, err)
	}
	// A play is listed before it asks the clock for its end; advancing a
	// manual clock in between would leave that wait in the future forever.
	for mc != nil && mc.registrations() == before {
		if wctx.Err() != nil {
			t.Fatalf("play %d never waited on the clock", n)
		}
		time.Sleep(time.Millisecond)
	}
	return done
}

func TestSimBusyAndCancel(t *testing.T) {
	clock := &manualClock{now: t0}
	var started []Play
	var mu sync.Mutex
	s := NewSim(SimOptions{Clock: clock, OnPlay: func(p Play) {
		mu.Lock()
		defer mu.Unlock()
		started = append(started, p)
	}})
	defer s.Close()
	clip := mustTone(t, 2*time.Second)
	ctx, cancel := context.WithCancel(context.Background())
	done := startPlay(t, ctx, s, clip, 1)
	if !s.Playing() {
		t.Error("not Playing during a play")
	}
	if err := s.Play(context.Background(), clip); !errors.Is(err, ErrBusy) {
		t.Errorf("second Play: %v, want ErrBusy", err)
	}
	clock.Advance(700 * time.Millisecond)
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled Play: %v, want context.Canceled", err)
	}
	want := []Play{{Clip: clip, Start: t0, End: t0.Add(700 * time.Millisecond), Cancelled: true}}
	if got := s.Plays(); !equalPlays(got, want) {
		t.Errorf("Plays = %+v, want %+v", got, want)
	}
	mu.Lock()
	if !equalPlays(started, []Play{{Clip: clip, Start: t0}}) {
		t.Errorf("OnPlay saw %+v", started)
	}
	mu.Unlock()

	// The player is free again, and finishes a clip when its time comes.
	done = startPlay(t, context.Background(), s, clip, 2)
	clock.Advance(2 * time.Second)
	if err := <-done; err != nil {
		t.Errorf("second clip: %v", err)
	}
	if p := s.Plays()[1]; p.Cancelled || !p.End.Equal(t0.Add(2700*time.Millisecond)) {
		t.Errorf("second play %+v", p)
	}
}

func TestSimCancelledBeforeStart(t *testing.T) {
	s := NewSim(SimOptions{Clock: NewInstantClock(t0)})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.Play(ctx, mustTone(t, time.Second)); !errors.Is(err, context.Canceled) {
		t.Errorf("Play: %v, want context.Canceled", err)
	}
	if n := len(s.Plays()); n != 0 {
		t.Errorf("%d plays recorded for a cancelled context", n)
	}
	if err := s.Play(context.Background(), nil); !errors.Is(err, errNoClip) {
		t.Errorf("Play(nil): %v", err)
	}
	if err := s.Play(context.Background(), &Clip{}); !errors.Is(err, errNoClip) {
		t.Errorf("Play(zero Clip): %v", err)
	}
}

func TestSimClose(t *testing.T) {
	s := NewSim(SimOptions{Clock: &manualClock{now: t0}})
	done := startPlay(t, context.Background(), s, mustTone(t, time.Second), 1)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// Close waited for the Play in flight: by the time it returns, the play
	// has finished its bookkeeping and the player is free. (The goroutine's
	// send on done comes after Play returns, so it is not ordered before
	// Close's return and is received blocking below.)
	if p := s.Plays()[0]; !p.Cancelled || p.End.IsZero() || s.Playing() {
		t.Fatalf("Close returned before the Play in flight finished: %+v, playing=%v", p, s.Playing())
	}
	if err := <-done; !errors.Is(err, ErrClosed) {
		t.Errorf("Play stopped by Close: %v, want ErrClosed", err)
	}
	if err := s.Play(context.Background(), mustTone(t, time.Second)); !errors.Is(err, ErrClosed) {
		t.Errorf("Play after Close: %v, want ErrClosed", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestSimWaitPlaysTimeout(t *testing.T) {
	s := NewSim(SimOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := s.WaitPlays(ctx, 1); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("WaitPlays: %v", err)
	}
}

func TestSimRecord(t *testing.T) {
	rec := filepath.Join(t.TempDir(), "played.wav")
	clock := &manualClock{now: t0}
	s := NewSim(SimOptions{Clock: clock, Record: rec})
	defer s.Close()

	first := mustTone(t, time.Second)
	done := startPlay(t, context.Background(), s, first, 1)
	clock.Advance(time.Second)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	got, err := LoadWAV(rec)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Data(), first.Data()) || got.SampleRate() != 8000 {
		t.Error("recording differs from the clip played")
	}

	// A cancelled clip is recorded up to where it stopped, replacing the
	// previous recording.
	second, err := Tone(1000, 2*time.Second, 16000, 0.2)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done = startPlay(t, ctx, s, second, 2)
	clock.Advance(250 * time.Millisecond)
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
	got, err = LoadWAV(rec)
	if err != nil {
		t.Fatal(err)
	}
	if got.SampleRate() != 16000 || got.Frames() != 4000 || !bytes.Equal(got.Data(), second.Data()[:8000]) {
		t.Errorf("recording of cancelled clip: %d Hz, %d frames; want the first 4000 frames at 16000 Hz", got.SampleRate(), got.Frames())
	}
	if matches, _ := filepath.Glob(filepath.Join(filepath.Dir(rec), ".*.tmp")); len(matches) != 0 {
		t.Errorf("temporary files left: %v", matches)
	}
}

func TestSimRecordError(t *testing.T) {
	s := NewSim(SimOptions{Clock: NewInstantClock(t0), Record: filepath.Join(t.TempDir(), "missing-dir", "x.wav")})
	err := s.Play(context.Background(), mustTone(t, 10*time.Millisecond))
	if err == nil || !strings.HasPrefix(err.Error(), "audio: sim: record: ") || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Play recording into a missing directory: %v", err)
	}
}

func TestClipHead(t *testing.T) {
	c := mustTone(t, time.Second)
	for _, tc := range []struct {
		d      time.Duration
		frames int
	}{{-time.Second, 0}, {0, 0}, {time.Millisecond, 8}, {time.Second, 8000}, {time.Hour, 8000}} {
		if h := c.head(tc.d); h.Frames() != tc.frames {
			t.Errorf("head(%s) has %d frames, want %d", tc.d, h.Frames(), tc.frames)
		}
	}
}

// Many goroutines racing for one player: each Play either plays or gets
// ErrBusy, and every play that happened is recorded once.
func TestSimConcurrent(t *testing.T) {
	s := NewSim(SimOptions{Clock: NewInstantClock(t0)})
	defer s.Close()
	clip := mustTone(t, 10*time.Millisecond)
	var wg sync.WaitGroup
	var mu sync.Mutex
	played := 0
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 50 {
				err := s.Play(context.Background(), clip)
				switch {
				case err == nil:
					mu.Lock()
					played++
					mu.Unlock()
				case !errors.Is(err, ErrBusy):
					t.Errorf("Play: %v", err)
				}
				_ = s.Playing()
				_ = s.Plays()
			}
		}()
	}
	wg.Wait()
	if n := len(s.Plays()); n != played || n == 0 {
		t.Errorf("%d plays recorded, %d Play calls succeeded", n, played)
	}
}
