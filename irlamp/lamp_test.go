package irlamp

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

func newTestLamp(t *testing.T, tx Transmitter, opts LampOptions) *Lamp {
	t.Helper()
	l, err := NewLamp(tx, nil, opts)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// shows reports whether the sim shows what the lamp believes.
func shows(l *Lamp, s *Sim) bool {
	b, a := l.State(), s.State()
	return a.On == b.On && (b.Color == "" || a.Color == b.Color) && a.Effect == b.Effect &&
		(b.Brightness == 0 || a.Brightness == b.Brightness)
}

// sent returns the keys the sim received a copy of (or lost), in order.
func sent(s *Sim) []string {
	var keys []string
	for _, e := range s.History() {
		if !e.ByHand {
			keys = append(keys, e.Sent)
		}
	}
	return keys
}

// eventually polls cond until it holds or a generous deadline passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestLampCommands(t *testing.T) {
	ctx := context.Background()
	s := newTestSim(t, SimOptions{})
	l := newTestLamp(t, s, LampOptions{})

	// The lamp is off: SetColor switches it on first; 2 copies each.
	if err := l.SetColor(ctx, "red"); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(sent(s), " "); got != "ON ON RED RED" {
		t.Errorf("sent %s", got)
	}
	st := l.State()
	if !st.On || st.Color != "RED" || st.Brightness != 0 || st.LastKey != "RED" || st.LastSent.IsZero() || st.Err != nil {
		t.Errorf("state %+v", st)
	}

	n := len(s.History())
	if err := l.SetBrightness(ctx, 3); err != nil {
		t.Fatal(err)
	}
	// 11 steps down to the floor, 2 back up, one copy each.
	if got := sent(s)[n:]; len(got) != 13 || got[0] != "BRIGHT_DOWN" || got[10] != "BRIGHT_DOWN" || got[11] != "BRIGHT_UP" {
		t.Errorf("SetBrightness(3) sent %v", got)
	}
	checks := []struct {
		name string
		do   func() error
		want SimState
	}{
		{"SetBrightness(3)", func() error { return nil }, SimState{On: true, Color: "RED", Brightness: 3}},
		{"SetBrightness(8)", func() error { return l.SetBrightness(ctx, 8) }, SimState{On: true, Color: "RED", Brightness: 8}},
		{"Brighter", func() error { return l.Brighter(ctx) }, SimState{On: true, Color: "RED", Brightness: 9}},
		{"Dimmer", func() error { return l.Dimmer(ctx) }, SimState{On: true, Color: "RED", Brightness: 8}},
		{"SetBrightness(1)", func() error { return l.SetBrightness(ctx, 1) }, SimState{On: true, Color: "RED", Brightness: 1}},
		{"Dimmer at floor", func() error { return l.Dimmer(ctx) }, SimState{On: true, Color: "RED", Brightness: 1}},
		{"SetBrightness(10)", func() error { return l.SetBrightness(ctx, 10) }, SimState{On: true, Color: "RED", Brightness: 10}},
		{"SetEffect", func() error { return l.SetEffect(ctx, "all fade") }, SimState{On: true, Color: "RED", Brightness: 10, Effect: "ALL_FADE"}},
		{"SetColor", func() error { return l.SetColor(ctx, "Light-Blue") }, SimState{On: true, Color: "LIGHT_BLUE", Brightness: 10}},
		{"Off", func() error { return l.Off(ctx) }, SimState{Color: "LIGHT_BLUE", Brightness: 10}},
		{"On", func() error { return l.On(ctx) }, SimState{On: true, Color: "LIGHT_BLUE", Brightness: 10}},
	}
	for _, c := range checks {
		if err := c.do(); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if got := s.State(); got != c.want {
			t.Fatalf("%s: sim shows %+v, want %+v", c.name, got, c.want)
		}
		if !shows(l, s) {
			t.Fatalf("%s: lamp believes %+v, sim shows %+v", c.name, l.State(), s.State())
		}
	}

	n = len(s.History())
	if err := l.SetColor(ctx, "mauve"); err == nil || !strings.Contains(err.Error(), `unknown color "mauve" (known: RED, GREEN, BLUE, WHITE,`) {
		t.Errorf("unknown colour: %v", err)
	}
	if err := l.SetEffect(ctx, "disco"); err == nil || !strings.Contains(err.Error(), "known: 7_JUMP, ALL_FADE, 7_FADE, 3_JUMP") {
		t.Errorf("unknown effect: %v", err)
	}
	for _, b := range []int{0, 11, -1} {
		if err := l.SetBrightness(ctx, b); err == nil {
			t.Errorf("SetBrightness(%d) accepted", b)
		}
	}
	if len(s.History()) != n {
		t.Error("a refused command sent codes")
	}
}

func TestLampRepeats(t *testing.T) {
	for _, tt := range []struct{ repeats, copies int }{{-1, 1}, {0, 2}, {3, 4}} {
		s := newTestSim(t, SimOptions{})
		l := newTestLamp(t, s, LampOptions{Repeats: tt.repeats})
		if err := l.On(context.Background()); err != nil {
			t.Fatal(err)
		}
		if n := len(s.History()); n != tt.copies {
			t.Errorf("Repeats %d: %d copies, want %d", tt.repeats, n, tt.copies)
		}
	}
}

func TestNewLamp(t *testing.T) {
	s := newTestSim(t, SimOptions{})
	if _, err := NewLamp(nil, nil, LampOptions{}); err == nil {
		t.Error("nil transmitter accepted")
	}
	tv := parseFile(t, "mixed.conf")[0]
	if _, err := NewLamp(s, tv, LampOptions{}); err == nil || !strings.Contains(err.Error(), `remote "TV_NEC" lacks keys BRIGHT_UP, BRIGHT_DOWN, OFF, ON, RED,`) {
		t.Errorf("remote without the keys: %v", err)
	}
	for _, o := range []LampOptions{{BrightnessLevels: -1}, {BrightnessLevels: 101}, {Repeats: 11}} {
		if _, err := NewLamp(s, nil, o); err == nil || !strings.HasPrefix(err.Error(), "irlamp: lamp: ") {
			t.Errorf("%+v: %v", o, err)
		}
	}
	// A lircd.conf remote with the same keys drives the lamp alike.
	for _, name := range []string{"lircd_LED_24_KEY.conf", "recorded_LED_24_KEY.conf"} {
		r := parseFile(t, name)[0]
		s := newTestSim(t, SimOptions{})
		l, err := NewLamp(s, r, LampOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if err := l.SetColor(context.Background(), "purple"); err != nil {
			t.Fatal(err)
		}
		if got := s.State(); !got.On || got.Color != "PURPLE" {
			t.Errorf("%s: sim shows %+v", name, got)
		}
	}
}

func TestLampRefresh(t *testing.T) {
	ctx := context.Background()
	s := newTestSim(t, SimOptions{DropRate: 0.3, Seed: 5})
	l := newTestLamp(t, s, LampOptions{RefreshEvery: -1})
	if err := l.Refresh(ctx); err != nil || len(s.History()) != 0 {
		t.Fatalf("Refresh before any command: %v, sent %v", err, sent(s))
	}
	for _, f := range []func() error{
		func() error { return l.SetColor(ctx, "green") },
		func() error { return l.SetBrightness(ctx, 4) },
		func() error { return l.SetEffect(ctx, "7_jump") },
	} {
		if err := f(); err != nil {
			t.Fatal(err)
		}
	}
	refreshes := 0
	for !shows(l, s) {
		if refreshes == 50 {
			t.Fatalf("not converged after %d refreshes: lamp %+v, sim %+v", refreshes, l.State(), s.State())
		}
		if err := l.Refresh(ctx); err != nil {
			t.Fatal(err)
		}
		refreshes++
	}
	if refreshes == 0 {
		t.Fatal("no code was lost: the test does not exercise Refresh; change the seed")
	}
	t.Logf("converged after %d refreshes", refreshes)

	// A refresh of a lamp believed off sends OFF, undoing a hand on the
	// switch the other way.
	if err := s.SetDropRate(0); err != nil {
		t.Fatal(err)
	}
	if err := l.Off(ctx); err != nil {
		t.Fatal(err)
	}
	press(t, s, "ON")
	if err := l.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if s.State().On {
		t.Error("refresh left the lamp on")
	}
}

func TestLampRunCorrects(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	s := newTestSim(t, SimOptions{Seed: 11})
	l := newTestLamp(t, s, LampOptions{RefreshEvery: time.Millisecond})
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx) }()

	if err := l.SetColor(ctx, "cyan"); err != nil {
		t.Fatal(err)
	}
	if err := l.SetBrightness(ctx, 7); err != nil {
		t.Fatal(err)
	}
	s.SwitchOff()
	// Refreshes run back to back and step the brightness, so the sim only
	// shows the believed state between them: poll.
	eventually(t, "the refresh to switch the lamp back on", func() bool { return s.State().On && shows(l, s) })

	// Codes get lost now; the refreshes still bring the lamp to what it
	// should show.
	if err := s.SetDropRate(0.3); err != nil {
		t.Fatal(err)
	}
	if err := l.SetEffect(ctx, "3_jump"); err != nil {
		t.Fatal(err)
	}
	press(t, s, "RED") // someone else's remote
	eventually(t, "the lamp to show the believed state", func() bool { return shows(l, s) })

	if err := l.Run(ctx); err == nil || !strings.Contains(err.Error(), "already running") {
		t.Errorf("second Run: %v", err)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("Run = %v", err)
	}
}

// flaky fails its first n sends, then passes them on.
type flaky struct {
	Transmitter
	mu sync.Mutex
	n  int
}

var errFlaky = errors.New("irlamp: test: transmitter unplugged")

func (f *flaky) Send(ctx context.Context, r *Remote, key string, repeats int) error {
	f.mu.Lock()
	fail := f.n > 0
	if fail {
		f.n--
	}
	f.mu.Unlock()
	if fail {
		return errFlaky
	}
	return f.Transmitter.Send(ctx, r, key, repeats)
}

// syncBuffer is a bytes.Buffer safe for a logger and a test to share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

func TestLampRetriesAfterError(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s := newTestSim(t, SimOptions{})
	tx := &flaky{Transmitter: s, n: 2}
	var logs syncBuffer
	l := newTestLamp(t, tx, LampOptions{
		RefreshEvery:    -1, // only the retry can send
		RetryAfterError: time.Millisecond,
		Logger:          slog.New(slog.NewTextHandler(&logs, nil)),
	})
	if err := l.On(ctx); !errors.Is(err, errFlaky) {
		t.Fatalf("On = %v", err)
	}
	if st := l.State(); !errors.Is(st.Err, errFlaky) || st.LastKey != "ON" || !st.On {
		t.Fatalf("state after failure %+v", st)
	}
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx) }()
	// Run's first retry fails too (the second failure), the next succeeds.
	eventually(t, "a retry to succeed", func() bool { return l.State().Err == nil })
	if !s.State().On {
		t.Error("retry did not switch the lamp on")
	}
	cancel()
	<-done
	if !strings.Contains(logs.String(), "level=WARN msg=\"irlamp: refresh failed\"") || !strings.Contains(logs.String(), "transmitter unplugged") {
		t.Errorf("log:\n%s", logs.String())
	}
}

// A failed command while Run waits for a distant refresh makes it retry
// soon.
func TestLampCommandFailureWakesRun(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s := newTestSim(t, SimOptions{})
	tx := &flaky{Transmitter: s}
	l := newTestLamp(t, tx, LampOptions{RefreshEvery: time.Hour, RetryAfterError: time.Millisecond})
	go func() { _ = l.Run(ctx) }()
	if err := l.On(ctx); err != nil {
		t.Fatal(err)
	}
	tx.mu.Lock()
	tx.n = 1
	tx.mu.Unlock()
	if err := l.SetColor(ctx, "pink"); !errors.Is(err, errFlaky) {
		t.Fatalf("SetColor = %v", err)
	}
	eventually(t, "the retry to show pink", func() bool { return s.State().Color == "PINK" && l.State().Err == nil })
}

func TestLampConcurrent(t *testing.T) {
	ctx := context.Background()
	runCtx, stopRun := context.WithCancel(ctx)
	s := newTestSim(t, SimOptions{DropRate: 0.2, Seed: 3, BrightnessLevels: 4})
	l := newTestLamp(t, s, LampOptions{RefreshEvery: time.Millisecond, BrightnessLevels: 4})
	runDone := make(chan struct{})
	go func() { _ = l.Run(runCtx); close(runDone) }()
	var wg sync.WaitGroup
	for i, c := range []string{"RED", "GREEN", "BLUE"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 10 {
				if err := l.SetColor(ctx, c); err != nil {
					t.Error(err)
				}
				if err := l.SetBrightness(ctx, i+1); err != nil {
					t.Error(err)
				}
				_ = l.State()
			}
		}()
	}
	wg.Wait()
	// A refresh steps the brightness through the floor, so while Run keeps
	// refreshing, the lamp shows the believed state only between refreshes.
	// Stop it and check after each synchronous refresh instead.
	stopRun()
	<-runDone
	for i := 0; !shows(l, s); i++ {
		if i == 100 {
			t.Fatalf("lamp %+v never settled to %+v", s.State(), l.State())
		}
		if err := l.Refresh(ctx); err != nil {
			t.Fatal(err)
		}
	}
}
