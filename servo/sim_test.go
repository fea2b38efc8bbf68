package servo

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"periph.io/x/conn/v3/physic"
)

// fakeClock is a manually advanced clock for Sim.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{t: time.Date(2026, 11, 22, 8, 0, 0, 0, time.UTC)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func newTestSim(t *testing.T, clk *fakeClock) *Sim {
	t.Helper()
	s, err := NewSim(Config{}, SimOptions{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestSimSlew(t *testing.T) {
	clk := newFakeClock()
	s := newTestSim(t, clk)
	if a, holding := s.Angle(); a != 0 || holding {
		t.Fatalf("new sim Angle() = %s, %v", a, holding)
	}
	if err := s.SetAngle(120 * physic.Degree); err != nil {
		t.Fatal(err)
	}
	if got := s.Pulse(); got != 1800*time.Microsecond {
		t.Errorf("Pulse() = %s, want 1.8ms", got)
	}
	// 60° per 100 ms: after 50 ms the shaft is a quarter of the way.
	clk.Advance(50 * time.Millisecond)
	if got := s.Position(); got != 30*physic.Degree || s.Settled() {
		t.Errorf("after 50ms Position() = %s settled=%v, want 30° unsettled", got, s.Settled())
	}
	// Reverse mid-way: the shaft turns back from where it is.
	if err := s.SetAngle(0); err != nil {
		t.Fatal(err)
	}
	clk.Advance(40 * time.Millisecond)
	if got := s.Position(); got != 6*physic.Degree {
		t.Errorf("after reversing Position() = %s, want 6°", got)
	}
	clk.Advance(time.Second)
	if got := s.Position(); got != 0 || !s.Settled() {
		t.Errorf("Position() = %s settled=%v, want 0° settled", got, s.Settled())
	}
	if err := s.Release(); err != nil {
		t.Fatal(err)
	}
	if a, holding := s.Angle(); a != 0 || holding || s.Pulse() != 0 {
		t.Errorf("after Release Angle() = %s, %v, Pulse %s", a, holding, s.Pulse())
	}
}

func TestSimHistory(t *testing.T) {
	clk := newFakeClock()
	s := newTestSim(t, clk)
	t0 := clk.Now()
	s.SetAngle(90 * physic.Degree)
	clk.Advance(time.Second)
	s.Release()
	clk.Advance(time.Second)
	if err := s.SetAngle(200 * physic.Degree); !errors.Is(err, ErrOutOfRange) {
		t.Errorf("SetAngle(200°) = %v, want ErrOutOfRange", err)
	}
	s.Close()
	want := []SimEvent{
		{Time: t0, Kind: SimSetAngle, Pulse: 1500 * time.Microsecond, Angle: 90 * physic.Degree},
		{Time: t0.Add(time.Second), Kind: SimRelease, Angle: 90 * physic.Degree},
		{Time: t0.Add(2 * time.Second), Kind: SimRelease, Angle: 90 * physic.Degree},
		{Time: t0.Add(2 * time.Second), Kind: SimClose, Angle: 90 * physic.Degree},
	}
	if diff := cmp.Diff(want, s.History()); diff != "" {
		t.Errorf("History() (-want +got):\n%s", diff)
	}
	if !s.Closed() {
		t.Error("Closed() = false after Close")
	}
	for name, err := range map[string]error{"SetAngle": s.SetAngle(0), "Release": s.Release()} {
		if !errors.Is(err, ErrClosed) {
			t.Errorf("%s after Close = %v, want ErrClosed", name, err)
		}
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close = %v", err)
	}
	if got := want[0].String(); got != "set 90° (1.5ms)" {
		t.Errorf("SimEvent.String() = %q", got)
	}
}

func TestSimFault(t *testing.T) {
	clk := newFakeClock()
	s := newTestSim(t, clk)
	boom := errors.New("i2c: no ack")
	s.Fail(boom, 1)
	err := s.SetAngle(10 * physic.Degree)
	if !errors.Is(err, boom) || !strings.Contains(err.Error(), "servo: sim: set 10°") {
		t.Fatalf("SetAngle with fault = %v", err)
	}
	if _, holding := s.Angle(); holding || len(s.History()) != 0 {
		t.Errorf("failed SetAngle changed state: holding=%v history=%v", holding, s.History())
	}
	if err := s.SetAngle(10 * physic.Degree); err != nil {
		t.Fatalf("fault did not clear after one call: %v", err)
	}
	s.Fail(boom, -1)
	for i := 0; i < 3; i++ {
		if err := s.Release(); !errors.Is(err, boom) {
			t.Fatalf("Release #%d = %v, want fault", i, err)
		}
	}
	if s.Pulse() == 0 {
		t.Error("failed Release stopped the pulses")
	}
	s.Fail(nil, 0)
	if err := s.Release(); err != nil {
		t.Fatal(err)
	}
}

func TestSimOptions(t *testing.T) {
	if _, err := NewSim(Config{MinPulse: time.Hour}, SimOptions{}); err == nil {
		t.Error("NewSim accepted a bad config")
	}
	if _, err := NewSim(Config{}, SimOptions{SlewRate: -1}); err == nil {
		t.Error("NewSim accepted a negative slew rate")
	}
	bad := 270 * physic.Degree
	if _, err := NewSim(Config{}, SimOptions{Initial: &bad}); !errors.Is(err, ErrOutOfRange) {
		t.Errorf("NewSim(Initial 270°) = %v", err)
	}
	mid := 90 * physic.Degree
	s, err := NewSim(Config{}, SimOptions{Initial: &mid})
	if err != nil || s.Position() != mid {
		t.Errorf("NewSim(Initial 90°) position %v, %v", s.Position(), err)
	}
}

func TestOpenSim(t *testing.T) {
	d, err := Open("sim?slew=50ms&angles=-90..90&min=1ms&max=2ms")
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	s := d.(*Sim)
	if got := s.Config(); got.MinAngle != -90*physic.Degree || got.MaxPulse != 2*time.Millisecond || s.m.slew != 50*time.Millisecond {
		t.Errorf("Open(sim?...) config %+v slew %s", got, s.m.slew)
	}
	for spec, want := range map[string]string{
		"sim:x":            `unexpected argument "x"`,
		"sim?slew=0s":      "option slew",
		"sim?speed=1":      `unknown option "speed"`,
		"servo9000":        `unknown driver "servo9000"`,
		"sim?angles=10..0": "not below maximum angle",
		"sim?min=0.1ms":    "outside the safe",
		"sim?wide":         `option wide=""`,
		"sim?freq=2kHz":    "outside 1Hz to 1kHz",
	} {
		_, err := Open(spec)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Open(%q) = %v, want %q", spec, err, want)
		}
	}
}

func TestMove(t *testing.T) {
	s := newTestSim(t, newFakeClock())
	ctx := context.Background()
	// Not holding: position unknown, so Move jumps.
	if err := Move(ctx, s, 60*physic.Degree, 0); err != nil {
		t.Fatal(err)
	}
	if h := s.History(); len(h) != 1 || h[0].Angle != 60*physic.Degree {
		t.Fatalf("first Move history %v", h)
	}
	// A sweep of 30° at 300°/s takes 100 ms: several monotonic steps.
	if err := Move(ctx, s, 90*physic.Degree, 300*physic.Degree); err != nil {
		t.Fatal(err)
	}
	h := s.History()[1:]
	if len(h) < 2 {
		t.Fatalf("sweep made %d steps, want several: %v", len(h), h)
	}
	for i := 1; i < len(h); i++ {
		if h[i].Angle <= h[i-1].Angle {
			t.Errorf("sweep not monotonic at step %d: %v", i, h)
		}
	}
	if a, _ := s.Angle(); a != 90*physic.Degree {
		t.Errorf("after sweep Angle() = %s", a)
	}
	if err := Move(ctx, s, 90*physic.Degree, -physic.Degree); err == nil {
		t.Error("Move with negative speed succeeded")
	}
	if err := Move(ctx, s, 500*physic.Degree, 0); !errors.Is(err, ErrOutOfRange) {
		t.Errorf("Move out of range = %v", err)
	}
}

func TestMoveCancel(t *testing.T) {
	s := newTestSim(t, newFakeClock())
	s.SetAngle(0)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := Move(ctx, s, 180*physic.Degree, physic.Degree); !errors.Is(err, context.Canceled) {
		t.Fatalf("Move with cancelled ctx = %v", err)
	}
	// Cancel mid-sweep: 180° at 1°/s would take 3 minutes.
	ctx, cancel = context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- Move(ctx, s, 180*physic.Degree, physic.Degree) }()
	for len(s.History()) < 3 {
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled Move = %v", err)
	}
	a, holding := s.Angle()
	if !holding || a <= 0 || a >= 10*physic.Degree {
		t.Errorf("after cancel Angle() = %s holding=%v, want a small angle still held", a, holding)
	}
}

func TestDrivers(t *testing.T) {
	var names []string
	for _, d := range Drivers() {
		names = append(names, d.Name)
	}
	if !strings.Contains(strings.Join(names, ","), "sim") {
		t.Errorf("Drivers() = %v, want sim among them", names)
	}
	if err := Register(Driver{Name: "sim", Open: openSim}); err == nil {
		t.Error("registering sim twice succeeded")
	}
	if got, err := Resolve("sim?slew=1s"); err != nil || got != "sim?slew=1s" {
		t.Errorf("Resolve = %q, %v", got, err)
	}
}
