package servo

import (
	"errors"
	"math"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/gpio/gpiotest"
	"periph.io/x/conn/v3/physic"
)

// fakePin is periph's gpiotest.Pin (which records level, duty and
// frequency in L, D and F) plus counters of the calls that reach it and an
// injectable error, to show that refused commands never touch the pin.
type fakePin struct {
	*gpiotest.Pin
	calls int // PWM, Out and Halt calls
	halts int
	err   error // returned by every call when set
}

func newFakePin() *fakePin { return &fakePin{Pin: &gpiotest.Pin{N: "GPIO18", Num: 18}} }

func (p *fakePin) Halt() error {
	p.calls++
	p.halts++
	if p.err != nil {
		return p.err
	}
	return p.Pin.Halt()
}

func (p *fakePin) Out(l gpio.Level) error {
	p.calls++
	if p.err != nil {
		return p.err
	}
	return p.Pin.Out(l)
}

func (p *fakePin) PWM(d gpio.Duty, f physic.Frequency) error {
	p.calls++
	if p.err != nil {
		return p.err
	}
	return p.Pin.PWM(d, f)
}

var _ gpio.PinOut = (*fakePin)(nil)

func TestGPIO(t *testing.T) {
	p := newFakePin()
	s, err := NewGPIO(p, Config{})
	if err != nil {
		t.Fatal(err)
	}
	if p.calls != 0 {
		t.Fatal("NewGPIO touched the pin")
	}
	if s.Pin() != p {
		t.Error("Pin() is not the pin given")
	}
	if err := s.SetAngle(90 * physic.Degree); err != nil {
		t.Fatal(err)
	}
	// 1.5 ms of 20 ms is 0.075 × 2²⁴ = 1258291.2.
	if p.D != 1258291 || p.F != 50*physic.Hertz {
		t.Fatalf("90°: duty %d at %s, want 1258291 at 50Hz", p.D, p.F)
	}
	if err := s.SetAngle(0); err != nil {
		t.Fatal(err)
	}
	if p.D != 503316 { // 0.6/20 × 2²⁴ = 503316.48
		t.Fatalf("0°: duty %d, want 503316", p.D)
	}

	calls := p.calls
	if err := s.SetAngle(200 * physic.Degree); !errors.Is(err, ErrOutOfRange) {
		t.Fatalf("200°: %v, want ErrOutOfRange", err)
	}
	if p.calls != calls || p.D != 503316 {
		t.Fatal("out-of-range angle changed the pin")
	}

	p.L = gpio.High
	if err := s.Release(); err != nil {
		t.Fatal(err)
	}
	if p.L != gpio.Low {
		t.Fatal("Release did not drive the pin low")
	}
	if _, holding := s.Angle(); holding {
		t.Error("holding after Release")
	}

	p.L = gpio.High
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if p.L != gpio.Low || p.halts != 1 {
		t.Fatalf("Close: level %s, %d halts; want Low, 1", p.L, p.halts)
	}
	if err := s.SetAngle(90 * physic.Degree); !errors.Is(err, ErrClosed) {
		t.Fatalf("SetAngle after Close: %v", err)
	}
	if err := s.Release(); !errors.Is(err, ErrClosed) {
		t.Fatalf("Release after Close: %v", err)
	}
	if err := s.Close(); err != nil || p.halts != 1 {
		t.Fatalf("second Close: %v, %d halts", err, p.halts)
	}
}

func TestGPIOConfig(t *testing.T) {
	p := newFakePin()
	s, err := NewGPIO(p, Config{Frequency: 333 * physic.Hertz, Reverse: true, MinPulse: 500 * time.Microsecond, MaxPulse: 2500 * time.Microsecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SetAngle(0); err != nil {
		t.Fatal(err)
	}
	// Reversed: 0° is 2.5 ms, of a 3.003003 ms period.
	want := gpio.Duty(math.Round(2.5e-3 / (333 * physic.Hertz).Period().Seconds() * float64(gpio.DutyMax)))
	if p.D != want || p.F != 333*physic.Hertz {
		t.Fatalf("duty %d at %s, want %d at 333Hz", p.D, p.F, want)
	}

	// A pin error is wrapped with the driver's name.
	p.err = errors.New("bcm283x-dma not initialized; try again as root?")
	err = s.SetAngle(90 * physic.Degree)
	if !errors.Is(err, p.err) || !strings.HasPrefix(err.Error(), "servo: gpio: ") {
		t.Fatalf("error %v", err)
	}
	if _, err := NewGPIO(nil, Config{}); err == nil {
		t.Error("nil pin accepted")
	}
	if _, err := NewGPIO(p, Config{MaxPulse: 30 * time.Millisecond}); err == nil {
		t.Error("bad config accepted")
	}
}

// TestGPIODuty checks the integer duty arithmetic against a float64
// reference. It is plain Go so that GOARCH=386 runs it with 32-bit ints.
func TestGPIODuty(t *testing.T) {
	t.Logf("GOARCH=%s", runtime.GOARCH)
	for _, f := range []physic.Frequency{physic.Hertz, 50 * physic.Hertz, 60 * physic.Hertz, 333 * physic.Hertz, 1000 * physic.Hertz} {
		period := f.Period()
		for _, p := range []time.Duration{1, 500 * time.Microsecond, 1234567, 1500 * time.Microsecond, 2500 * time.Microsecond, 999 * time.Millisecond} {
			if p >= period {
				continue
			}
			exact := float64(p) * float64(gpio.DutyMax) / float64(period)
			if frac := exact - math.Floor(exact); math.Abs(frac-0.5) < 1e-6 {
				continue
			}
			if got, want := gpioDuty(p, period), gpio.Duty(math.Round(exact)); got != want {
				t.Errorf("gpioDuty(%s, %s) = %d, want %d", p, period, got, want)
			}
		}
	}
	for _, tc := range []struct {
		p, period time.Duration
		want      gpio.Duty
	}{
		{1500 * time.Microsecond, 20 * time.Millisecond, 1258291},
		{0, 20 * time.Millisecond, 0},
		{-1, 20 * time.Millisecond, 0},
		{20 * time.Millisecond, 20 * time.Millisecond, gpio.DutyMax},
		{time.Millisecond, 0, 0},
	} {
		if got := gpioDuty(tc.p, tc.period); got != tc.want {
			t.Errorf("gpioDuty(%s, %s) = %d, want %d", tc.p, tc.period, got, tc.want)
		}
	}
}

func TestParseGPIOSpec(t *testing.T) {
	def := Config{}.WithDefaults()
	for _, tc := range []struct {
		arg  string
		pin  string
		want Config
	}{
		{"GPIO18", "GPIO18", def},
		{"18", "18", def},
		{"P1_12?min=0.5ms&max=2.5ms", "P1_12", Config{MinPulse: 500 * time.Microsecond, MaxPulse: 2500 * time.Microsecond}.WithDefaults()},
		{"GPIO13?reverse=true&freq=100Hz", "GPIO13", Config{Reverse: true, Frequency: 100 * physic.Hertz}.WithDefaults()},
	} {
		name, cfg, err := parseGPIOSpec(tc.arg)
		if err != nil {
			t.Errorf("%q: %v", tc.arg, err)
			continue
		}
		if name != tc.pin {
			t.Errorf("%q: pin %q, want %q", tc.arg, name, tc.pin)
		}
		if d := cmp.Diff(tc.want, cfg); d != "" {
			t.Errorf("%q: (-want +got)\n%s", tc.arg, d)
		}
	}
	for _, tc := range []struct{ arg, want string }{
		{"", "no pin given"},
		{"?min=1ms", "no pin given"},
		{"GPIO 18", "bad pin name"},
		{"GPIO18/1", "bad pin name"},
		{"GPIO18?foo=1", `unknown option "foo"`},
		{"GPIO18?freq=0.5Hz", "frequency"},
		{"GPIO18?max=25ms", "maximum pulse"},
	} {
		_, _, err := parseGPIOSpec(tc.arg)
		if err == nil {
			t.Errorf("%q: no error", tc.arg)
			continue
		}
		if !strings.HasPrefix(err.Error(), "servo: ") || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %q, want one containing %q", tc.arg, err, tc.want)
		}
	}
}

func TestGPIORegistered(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the gpio spec driver registers on Linux only")
	}
	var found bool
	for _, d := range Drivers() {
		found = found || d.Name == "gpio"
	}
	if !found {
		t.Fatal("gpio not registered")
	}
	// Parsing comes before any hardware access, so this is safe anywhere.
	if _, err := Open("gpio:GPIO18?bogus=1"); err == nil || !strings.Contains(err.Error(), "servo: gpio: ") {
		t.Fatalf("Open: %v", err)
	}
}
