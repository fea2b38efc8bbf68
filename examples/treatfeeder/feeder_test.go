package main

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pikit/pikit/servo"
	"periph.io/x/conn/v3/physic"
)

type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

type feederEnv struct {
	f     *feeder
	sim   *servo.Sim
	clock *testClock
	dir   string
	log   *eventLog
}

func testFeederConfig(clk *testClock) feederConfig {
	return feederConfig{OpenAngle: 90 * physic.Degree, ClosedAngle: 0, OpenTime: 5 * time.Millisecond,
		Speed: 100000 * physic.Degree, DailyLimit: 3, MinInterval: time.Minute,
		Location: time.UTC, Now: clk.Now, RetryEvery: 10 * time.Millisecond}
}

// newFeederEnv starts a feeder on a sim servo with its log in dir (a new
// temp dir if empty), as a restart would.
func newFeederEnv(t *testing.T, dir string, clk *testClock, mod func(*feederConfig)) *feederEnv {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	if clk == nil {
		clk = &testClock{t: time.Date(2026, 11, 22, 9, 0, 0, 0, time.UTC)}
	}
	sim, err := servo.NewSim(servo.Config{}, servo.SimOptions{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	l, events, _, err := openEventLog(filepath.Join(dir, "events.log"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := testFeederConfig(clk)
	if mod != nil {
		mod(&cfg)
	}
	f, err := newFeeder(cfg, sim, l, events)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return &feederEnv{f: f, sim: sim, clock: clk, dir: dir, log: l}
}

// cycles returns the open/close cycles the servo model performed: pairs of
// commanded open and closed angles, checking they never overlap.
func cycles(t *testing.T, sim *servo.Sim, open physic.Angle) int {
	t.Helper()
	n, isOpen := 0, false
	for _, e := range sim.History() {
		if e.Kind != servo.SimSetAngle {
			continue
		}
		switch {
		case e.Angle == 0 && isOpen:
			isOpen = false
		case e.Angle == open && !isOpen:
			isOpen = true
			n++
		case e.Angle == open && isOpen:
			t.Fatalf("hopper opened twice without closing: %v", sim.History())
		}
	}
	if isOpen {
		t.Fatalf("hopper left open: %v", sim.History())
	}
	return n
}

func TestDispenseCycle(t *testing.T) {
	env := newFeederEnv(t, "", nil, nil)
	if st := env.f.Status(); st.Hopper != "closed" || !st.Allowed || *st.ServoAngleDeg != 0 {
		t.Fatalf("start status %+v", st)
	}
	d, err := env.f.Dispense(context.Background(), "token")
	if err != nil {
		t.Fatal(err)
	}
	if d.N != 1 || d.ClosedAt == nil || d.Who != "token" {
		t.Errorf("dispense = %+v", d)
	}
	if n := cycles(t, env.sim, 90*physic.Degree); n != 1 {
		t.Errorf("servo cycles = %d, want 1", n)
	}
	st := env.f.Status()
	if st.TreatsToday != 1 || st.Hopper != "closed" || st.Allowed || st.NextAllowedAt == nil ||
		!st.NextAllowedAt.Equal(env.clock.Now().Add(time.Minute)) || len(st.Recent) != 1 {
		t.Errorf("status after one treat %+v", st)
	}
}

func TestLimits(t *testing.T) {
	env := newFeederEnv(t, "", nil, nil)
	ctx := context.Background()
	var le *limitError
	for i := 0; i < 3; i++ {
		if _, err := env.f.Dispense(ctx, "token"); err != nil {
			t.Fatalf("treat %d: %v", i+1, err)
		}
		if i < 2 { // after the third, the daily limit takes precedence
			if _, err := env.f.Dispense(ctx, "token"); !errors.As(err, &le) || le.Reason != reasonInterval || le.RetryAfter != time.Minute {
				t.Fatalf("second treat within a minute: %v", err)
			}
		}
		env.clock.Advance(time.Minute)
	}
	_, err := env.f.Dispense(ctx, "token")
	if !errors.As(err, &le) || le.Reason != reasonDailyLimit {
		t.Fatalf("fourth treat: %v", err)
	}
	// 09:03 -> midnight is 14h57m away.
	if want := 14*time.Hour + 57*time.Minute; le.RetryAfter != want {
		t.Errorf("retry after %s, want %s", le.RetryAfter, want)
	}
	c := env.f.Counters()
	if c.Dispenses != 3 || c.Rejections[reasonInterval] != 2 || c.Rejections[reasonDailyLimit] != 1 {
		t.Errorf("counters %+v", c)
	}
	// A new local day resets the count.
	env.clock.Advance(15 * time.Hour)
	if _, err := env.f.Dispense(ctx, "token"); err != nil {
		t.Fatalf("treat on the next day: %v", err)
	}
	if n := cycles(t, env.sim, 90*physic.Degree); n != 4 {
		t.Errorf("cycles = %d, want 4", n)
	}
}

func TestLimitsSurviveRestart(t *testing.T) {
	env := newFeederEnv(t, "", nil, nil)
	for i := 0; i < 3; i++ {
		if _, err := env.f.Dispense(context.Background(), "token"); err != nil {
			t.Fatal(err)
		}
		env.clock.Advance(2 * time.Minute)
	}
	if err := env.f.Shutdown(); err != nil {
		t.Fatal(err)
	}
	env.log.Close()

	again := newFeederEnv(t, env.dir, env.clock, nil)
	st := again.f.Status()
	if st.TreatsToday != 3 || st.Allowed || len(st.Recent) != 3 || st.Recent[0].N != 3 || st.Recent[0].ClosedAt == nil {
		t.Fatalf("status after restart %+v", st)
	}
	var le *limitError
	if _, err := again.f.Dispense(context.Background(), "token"); !errors.As(err, &le) || le.Reason != reasonDailyLimit {
		t.Errorf("dispense after restart = %v, want daily limit", err)
	}
}

func TestCrashedOpenIsClosedAtStart(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "events.log")
	// An open without close, then half a line: the process died mid-dispense.
	content := `{"type":"open","time":"2026-11-22T08:59:00Z","dispense":7,"who":"token"}` + "\n" + `{"type":"clo`
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	env := newFeederEnv(t, dir, nil, nil)
	if a, holding := env.sim.Angle(); !holding || a != 0 {
		t.Errorf("servo not driven closed at start: %s %v", a, holding)
	}
	st := env.f.Status()
	if st.TreatsToday != 1 || st.Hopper != "closed" {
		t.Errorf("status %+v", st)
	}
	d, err := env.f.Dispense(context.Background(), "token")
	if err != nil || d.N != 8 {
		t.Fatalf("next dispense = %+v, %v", d, err)
	}
	env.log.Close()
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) != 4 || !strings.Contains(lines[1], `"startup_close"`) || !strings.Contains(lines[1], "dispense 7 had no close") {
		t.Errorf("log after recovery:\n%s", b)
	}
	for _, l := range lines {
		if strings.HasPrefix(l, `{"type":"clo`) && !strings.HasSuffix(l, "}") {
			t.Errorf("partial line kept: %q", l)
		}
	}
}

func TestServoErrorsStillClose(t *testing.T) {
	env := newFeederEnv(t, "", nil, nil)
	boom := errors.New("i2c: no ack")
	// Opening fails: the hopper is closed again and the error reported.
	env.sim.Fail(boom, 1)
	if _, err := env.f.Dispense(context.Background(), "token"); !errors.Is(err, boom) {
		t.Fatalf("dispense with failing open = %v", err)
	}
	if a, _ := env.sim.Angle(); a != 0 || env.f.Status().Hopper != "closed" {
		t.Errorf("hopper not closed after failed open")
	}
	// Closing fails twice, then works: retried, no fault.
	env.clock.Advance(time.Hour)
	env.f.cfg.OpenTime = 0
	failAfterOpen(env, boom, 2)
	if _, err := env.f.Dispense(context.Background(), "token"); err != nil {
		t.Fatalf("dispense with two close failures = %v", err)
	}
	if a, _ := env.sim.Angle(); a != 0 {
		t.Errorf("not closed after retries")
	}
}

// failAfterOpen makes the servo fail n times once it has reached the open
// angle, i.e. during the close.
func failAfterOpen(env *feederEnv, err error, n int) {
	go func() {
		for {
			if a, _ := env.sim.Angle(); a == env.f.cfg.OpenAngle {
				env.sim.Fail(err, n)
				return
			}
			time.Sleep(100 * time.Microsecond)
		}
	}()
}

func TestCloseFaultBlocksUntilRecovered(t *testing.T) {
	env := newFeederEnv(t, "", nil, func(c *feederConfig) { c.OpenTime = 50 * time.Millisecond })
	boom := errors.New("servo unplugged")
	failAfterOpen(env, boom, -1)
	if _, err := env.f.Dispense(context.Background(), "token"); !errors.Is(err, boom) {
		t.Fatalf("dispense with dead servo = %v", err)
	}
	st := env.f.Status()
	if st.Hopper != "open" || st.Fault == "" || st.Allowed {
		t.Fatalf("status after failed close %+v", st)
	}
	env.clock.Advance(time.Hour)
	var fe *faultError
	if _, err := env.f.Dispense(context.Background(), "token"); !errors.As(err, &fe) {
		t.Fatalf("dispense while faulted = %v", err)
	}
	// The servo comes back: the background retry closes the hopper.
	env.sim.Fail(nil, 0)
	deadline := time.Now().Add(5 * time.Second)
	for env.f.Status().Hopper != "closed" {
		if time.Now().After(deadline) {
			t.Fatal("hopper never closed by the background retry")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if _, err := env.f.Dispense(context.Background(), "token"); err != nil {
		t.Fatalf("dispense after recovery = %v", err)
	}
	if c := env.f.Counters(); c.Rejections[reasonFault] != 1 || c.ServoErrors < 3 {
		t.Errorf("counters %+v", c)
	}
}

func TestCancelledRequestStillCloses(t *testing.T) {
	env := newFeederEnv(t, "", nil, func(c *feederConfig) { c.OpenTime = time.Hour })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { _, err := env.f.Dispense(ctx, "token"); done <- err }()
	for env.f.Status().Hopper != "open" {
		time.Sleep(time.Millisecond)
	}
	if _, err := env.f.Dispense(context.Background(), "token"); !errors.Is(err, errBusy) {
		t.Errorf("concurrent dispense = %v, want busy", err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("cancelled dispense = %v, want nil (the treat was given, then closed)", err)
	}
	if a, _ := env.sim.Angle(); a != 0 || env.f.Status().Hopper != "closed" {
		t.Error("hopper not closed after cancel")
	}
}

func TestShutdownWaitsForClose(t *testing.T) {
	env := newFeederEnv(t, "", nil, func(c *feederConfig) { c.OpenTime = 30 * time.Millisecond })
	done := make(chan struct{})
	go func() { env.f.Dispense(context.Background(), "token"); close(done) }()
	for env.f.Status().Hopper != "open" {
		time.Sleep(time.Millisecond)
	}
	if err := env.f.Shutdown(); err != nil {
		t.Fatal(err)
	}
	<-done
	if _, holding := env.sim.Angle(); holding {
		t.Error("servo still holding after shutdown")
	}
	if n := cycles(t, env.sim, 90*physic.Degree); n != 1 {
		t.Errorf("cycles = %d", n)
	}
	if _, err := env.f.Dispense(context.Background(), "token"); !errors.Is(err, errStopping) {
		t.Errorf("dispense after shutdown = %v", err)
	}
}

func TestConcurrentDispenses(t *testing.T) {
	env := newFeederEnv(t, "", nil, func(c *feederConfig) { c.MinInterval = 0; c.DailyLimit = 5; c.OpenTime = time.Millisecond })
	var ok, busy, limited atomic.Int64
	var wg sync.WaitGroup
	for i := 0; i < 200; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := env.f.Dispense(context.Background(), "token")
			var le *limitError
			switch {
			case err == nil:
				ok.Add(1)
			case errors.Is(err, errBusy):
				busy.Add(1)
			case errors.As(err, &le):
				limited.Add(1)
			default:
				t.Errorf("unexpected error %v", err)
			}
		}()
	}
	wg.Wait()
	n := cycles(t, env.sim, 90*physic.Degree)
	if int64(n) != ok.Load() || n > 5 || n == 0 || ok.Load()+busy.Load()+limited.Load() != 200 {
		t.Errorf("cycles %d, ok %d, busy %d, limited %d", n, ok.Load(), busy.Load(), limited.Load())
	}
}
