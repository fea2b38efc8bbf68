package irlamp

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"
)

func newTestSim(t *testing.T, opts SimOptions) *Sim {
	t.Helper()
	opts.Instant = true
	s, err := NewSim(opts)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func press(t *testing.T, s *Sim, keys ...string) {
	t.Helper()
	for _, k := range keys {
		if err := s.Send(context.Background(), LED24Key(), k, 0); err != nil {
			t.Fatal(err)
		}
	}
}

func TestSimLampModel(t *testing.T) {
	s := newTestSim(t, SimOptions{})
	if got := s.State(); got != (SimState{Color: "WHITE", Brightness: DefaultBrightnessLevels}) {
		t.Fatalf("initial state %+v", got)
	}
	steps := []struct {
		keys []string
		want SimState
	}{
		{[]string{"RED", "BRIGHT_DOWN", "7_JUMP"}, SimState{Color: "WHITE", Brightness: 10}}, // ignored while off
		{[]string{"ON"}, SimState{On: true, Color: "WHITE", Brightness: 10}},
		{[]string{"RED"}, SimState{On: true, Color: "RED", Brightness: 10}},
		{[]string{"BRIGHT_UP"}, SimState{On: true, Color: "RED", Brightness: 10}}, // clamped
		{[]string{"BRIGHT_DOWN", "BRIGHT_DOWN"}, SimState{On: true, Color: "RED", Brightness: 8}},
		{[]string{"7_FADE"}, SimState{On: true, Color: "RED", Brightness: 8, Effect: "7_FADE"}},
		{[]string{"OFF", "BLUE"}, SimState{Color: "RED", Brightness: 8, Effect: "7_FADE"}},
		{[]string{"ON"}, SimState{On: true, Color: "RED", Brightness: 8, Effect: "7_FADE"}}, // remembers
		{[]string{"LIGHT_BLUE"}, SimState{On: true, Color: "LIGHT_BLUE", Brightness: 8}},    // ends the effect
	}
	for _, st := range steps {
		press(t, s, st.keys...)
		if got := s.State(); got != st.want {
			t.Fatalf("after %v: %+v, want %+v", st.keys, got, st.want)
		}
	}
	for range 20 {
		press(t, s, "BRIGHT_DOWN")
	}
	if b := s.State().Brightness; b != 1 {
		t.Errorf("brightness floor %d", b)
	}
	for _, k := range Effects() {
		press(t, s, k)
		if e := s.State().Effect; e != k {
			t.Errorf("effect %q after %s", e, k)
		}
	}
	for _, k := range Colors() {
		press(t, s, k)
		if got := s.State(); got.Color != k || got.Effect != "" {
			t.Errorf("after %s: %+v", k, got)
		}
	}
	if s.Received() != len(s.History()) {
		t.Errorf("received %d of %d", s.Received(), len(s.History()))
	}
	for _, e := range s.History() {
		if e.Key != e.Sent || e.Address != 0xEF00 || e.Dropped || e.Err != nil {
			t.Fatalf("event %+v", e)
		}
	}
}

func TestSimEvents(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	s := newTestSim(t, SimOptions{Now: func() time.Time { return now }})
	if err := s.Send(context.Background(), LED24Key(), "RED", 2); err != nil {
		t.Fatal(err)
	}
	h := s.History()
	if len(h) != 3 {
		t.Fatalf("%d events for 3 copies", len(h))
	}
	e := h[0]
	// Every LED_24_KEY code occupies NEC's 108 ms frame period.
	if !e.Time.Equal(now) || e.Duration != 108*time.Millisecond || e.Command != 0x04 || e.Key != "RED" || e.String() != "RED: received RED" {
		t.Errorf("event %+v %q", e, e)
	}
	s.SwitchOff()
	if h := s.History(); !h[3].ByHand || h[3].String() != "switched off by hand" {
		t.Errorf("switch-off event %+v", h[3])
	}
}

// The lamp ignores codes of other remotes and signals that are no NEC
// frame, and obeys a recorded raw-code remote (a frame and a repeat frame).
func TestSimDecodesWhatArrives(t *testing.T) {
	s := newTestSim(t, SimOptions{})
	ctx := context.Background()
	tv := parseFile(t, "mixed.conf")
	if err := s.Send(ctx, tv[0], "POWER", 0); err != nil {
		t.Fatal(err)
	}
	if err := s.Send(ctx, tv[1], "POWER", 0); err != nil {
		t.Fatal(err)
	}
	if s.Received() != 0 || s.State().On {
		t.Fatalf("received %d, state %+v", s.Received(), s.State())
	}
	h := s.History()
	if h[0].Key != "" || h[0].Address != 0xFB04 || !strings.Contains(h[0].String(), "another remote's") {
		t.Errorf("other NEC remote: %+v", h[0])
	}
	if h[1].Err == nil || !strings.Contains(h[1].String(), "not decoded") {
		t.Errorf("non-NEC remote: %+v", h[1])
	}

	rec := parseFile(t, "recorded_LED_24_KEY.conf")[0]
	for _, k := range []string{"ON", "PURPLE", "BRIGHT_DOWN", "3_JUMP"} {
		if err := s.Send(ctx, rec, k, 0); err != nil {
			t.Fatal(err)
		}
	}
	if got, want := s.State(), (SimState{On: true, Color: "PURPLE", Brightness: 9, Effect: "3_JUMP"}); got != want {
		t.Errorf("after recorded remote: %+v, want %+v", got, want)
	}
	if s.Received() != 4 {
		t.Errorf("received %d, want 4 (repeat frames ignored)", s.Received())
	}
}

func TestSimDrops(t *testing.T) {
	run := func() (received int, dropped int) {
		s := newTestSim(t, SimOptions{DropRate: 0.3, Seed: 7})
		if err := s.Send(context.Background(), LED24Key(), "ON", 199); err != nil {
			t.Fatal(err)
		}
		for _, e := range s.History() {
			if e.Dropped {
				dropped++
				if e.Key != "" || e.String() != "ON: dropped" {
					t.Fatalf("dropped event %+v", e)
				}
			}
		}
		return s.Received(), dropped
	}
	r1, d1 := run()
	r2, d2 := run()
	if r1 != r2 || r1+d1 != 200 || d1 != d2 {
		t.Fatalf("received %d/%d, dropped %d/%d: not repeatable", r1, r2, d1, d2)
	}
	if d1 < 30 || d1 > 90 {
		t.Errorf("%d of 200 dropped at rate 0.3", d1)
	}

	s := newTestSim(t, SimOptions{DropRate: 1})
	press(t, s, "ON")
	if s.State().On || s.Received() != 0 {
		t.Error("a code got through at drop rate 1")
	}
	if err := s.SetDropRate(0); err != nil {
		t.Fatal(err)
	}
	press(t, s, "ON")
	if !s.State().On {
		t.Error("code lost at drop rate 0")
	}
	if err := s.SetDropRate(1.5); err == nil {
		t.Error("drop rate 1.5 accepted")
	}
}

func TestSimErrors(t *testing.T) {
	for _, o := range []SimOptions{{DropRate: -0.1}, {DropRate: 2}, {BrightnessLevels: -1}} {
		if _, err := NewSim(o); err == nil || !strings.HasPrefix(err.Error(), "irlamp: sim: ") {
			t.Errorf("NewSim(%+v): %v", o, err)
		}
	}
	s := newTestSim(t, SimOptions{})
	ctx := context.Background()
	if err := s.Send(ctx, LED24Key(), "NOPE", 0); !errors.Is(err, ErrUnknownKey) {
		t.Errorf("unknown key: %v", err)
	}
	if err := s.Send(ctx, nil, "ON", 0); err == nil {
		t.Error("nil remote accepted")
	}
	if err := s.Send(ctx, LED24Key(), "ON", -1); err == nil {
		t.Error("negative repeats accepted")
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if err := s.Send(cancelled, LED24Key(), "ON", 0); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Send(ctx, LED24Key(), "ON", 0); !errors.Is(err, ErrClosed) {
		t.Errorf("after Close: %v", err)
	}
	if len(s.History()) != 0 {
		t.Errorf("history %v", s.History())
	}
}

// A real-time sim takes 108 ms per LED_24_KEY code; a context ending
// meanwhile stops the wait.
func TestSimRealTime(t *testing.T) {
	s, err := NewSim(SimOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		for len(s.History()) == 0 {
			time.Sleep(time.Millisecond)
		}
		cancel()
	}()
	err = s.Send(ctx, LED24Key(), "ON", 9) // would take over a second
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Send = %v, want the context's error", err)
	}
	if n := len(s.History()); n < 1 || n == 10 {
		t.Errorf("%d of 10 copies sent before the cancel", n)
	}
}

func TestSimConcurrent(t *testing.T) {
	s := newTestSim(t, SimOptions{DropRate: 0.1, Seed: 1})
	var wg sync.WaitGroup
	for _, k := range []string{"ON", "RED", "GREEN", "BRIGHT_UP"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 20 {
				if err := s.Send(context.Background(), LED24Key(), k, 1); err != nil {
					t.Error(err)
				}
				_ = s.State()
				_ = s.Received()
			}
		}()
	}
	wg.Wait()
	if n := len(s.History()); n != 4*20*2 {
		t.Errorf("%d events", n)
	}
}

func TestOpenSim(t *testing.T) {
	tx, err := Open("sim?drop=0.5&seed=3&instant=true")
	if err != nil {
		t.Fatal(err)
	}
	s := tx.(*Sim)
	if err := s.Send(context.Background(), LED24Key(), "ON", 9); err != nil {
		t.Fatal(err)
	}
	if r := s.Received(); r == 0 || r == 10 {
		t.Errorf("received %d of 10 at drop 0.5", r)
	}
	for _, spec := range []string{"sim?drop=2", "sim?drop=x", "sim?seed=-1", "sim?instant=maybe", "sim?speed=1", "sim:foo"} {
		if _, err := Open(spec); err == nil || !strings.Contains(err.Error(), "irlamp: sim: ") {
			t.Errorf("Open(%q): %v", spec, err)
		}
	}
	if _, err := Open("sim"); err != nil {
		t.Error(err)
	}
}

func TestSimHistoryBounded(t *testing.T) {
	s := newTestSim(t, SimOptions{})
	if err := s.Send(context.Background(), LED24Key(), "ON", maxSimHistory+5); err != nil {
		t.Fatal(err)
	}
	h := s.History()
	if len(h) > maxSimHistory || len(h) < maxSimHistory*9/10 || s.Received() != maxSimHistory+6 {
		t.Errorf("%d events kept, %d received", len(h), s.Received())
	}
}
