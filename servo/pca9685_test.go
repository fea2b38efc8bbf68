package servo

import (
	"errors"
	"fmt"
	"math"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"periph.io/x/conn/v3/i2c"
	"periph.io/x/conn/v3/i2c/i2ctest"
	"periph.io/x/conn/v3/physic"
	"periph.io/x/devices/v3/pca9685"
)

// pcaInitOps are the transfers pca9685.NewI2C makes (periph v3.7.4): all
// outputs off, MODE2 totem-pole, MODE1 all-call, read MODE1 and wake with
// auto-increment, then SetPwmFreq(50Hz) with prescale 122. The chip is made
// to answer MODE1 reads with 0x01 and then 0x21, what a real one returns.
func pcaInitOps(addr uint16) []i2ctest.IO {
	return []i2ctest.IO{
		{Addr: addr, W: []byte{0xFA, 0, 0, 0, 0}},
		{Addr: addr, W: []byte{0x01, 0x04}},
		{Addr: addr, W: []byte{0x00, 0x01}},
		{Addr: addr, W: []byte{0x00}, R: []byte{0x01}},
		{Addr: addr, W: []byte{0x00, 0x21}},
		// SetPwmFreq(50Hz): sleep, prescale, restore, restart.
		{Addr: addr, W: []byte{0x00}, R: []byte{0x21}},
		{Addr: addr, W: []byte{0x00, 0x31}},
		{Addr: addr, W: []byte{0xFE, 0x7A}},
		{Addr: addr, W: []byte{0x00, 0x21}},
		{Addr: addr, W: []byte{0x00, 0xA1}},
	}
}

// pcaPulseOp is the write of an on=0/off=counts pulse on channel ch.
func pcaPulseOp(addr uint16, ch int, counts uint16) i2ctest.IO {
	return i2ctest.IO{Addr: addr, W: []byte{0x06 + 4*byte(ch), 0, 0, byte(counts), byte(counts >> 8)}}
}

// pcaOffOp is SetFullOff on channel ch: the full-off bit of LEDn_OFF_H.
func pcaOffOp(addr uint16, ch int) i2ctest.IO {
	return i2ctest.IO{Addr: addr, W: []byte{0x06 + 4*byte(ch) + 3, 0x10}}
}

// newTestBoard returns a board initialised on a playback bus. Every
// NewI2C sleeps about 200 ms, so tests share boards where they can.
func newTestBoard(t *testing.T, addr uint16) (*i2ctest.Playback, *pca9685.Dev) {
	t.Helper()
	pb := &i2ctest.Playback{Ops: pcaInitOps(addr), DontPanic: true}
	dev, err := pca9685.NewI2C(pb, addr)
	if err != nil {
		t.Fatal(err)
	}
	return pb, dev
}

// expectOps runs f and checks that it made exactly ops on pb.
func expectOps(t *testing.T, pb *i2ctest.Playback, f func() error, wantErr error, ops ...i2ctest.IO) {
	t.Helper()
	pb.Lock()
	pb.Ops = append(pb.Ops, ops...)
	pb.Unlock()
	err := f()
	if wantErr == nil && err != nil {
		t.Fatalf("unexpected error: %v", err)
	}
	if wantErr != nil && !errors.Is(err, wantErr) {
		t.Fatalf("error %v, want %v", err, wantErr)
	}
	pb.Lock()
	defer pb.Unlock()
	if pb.Count != len(pb.Ops) {
		t.Fatalf("made %d of %d expected I²C transfers", pb.Count, len(pb.Ops))
	}
}

func TestPCA9685(t *testing.T) {
	t.Parallel()
	pb, dev := newTestBoard(t, 0x40)

	s, err := NewPCA9685(dev, 3, Config{})
	if err != nil {
		t.Fatal(err)
	}
	if s.Channel() != 3 {
		t.Errorf("Channel() = %d", s.Channel())
	}
	// 1.5 ms × 25 MHz / 123 = 304.9 counts.
	expectOps(t, pb, func() error { return s.SetAngle(90 * physic.Degree) }, nil, pcaPulseOp(0x40, 3, 305))
	if got := pb.Ops[len(pb.Ops)-1].W; !cmp.Equal(got, []byte{0x12, 0x00, 0x00, 0x31, 0x01}) {
		t.Errorf("90° wrote % x", got)
	}
	// 0.6 ms → 121.95, 2.4 ms → 487.8.
	expectOps(t, pb, func() error { return s.SetAngle(0) }, nil, pcaPulseOp(0x40, 3, 122))
	expectOps(t, pb, func() error { return s.SetAngle(180 * physic.Degree) }, nil, pcaPulseOp(0x40, 3, 488))
	expectOps(t, pb, func() error { return s.SetAngle(181 * physic.Degree) }, ErrOutOfRange)
	expectOps(t, pb, func() error { return s.SetAngle(-physic.Degree) }, ErrOutOfRange)
	if a, holding := s.Angle(); a != 180*physic.Degree || !holding {
		t.Errorf("Angle() = %s, %t; want 180°, true", a, holding)
	}
	expectOps(t, pb, s.Release, nil, pcaOffOp(0x40, 3))
	if _, holding := s.Angle(); holding {
		t.Error("holding after Release")
	}
	// A pulse after Release overwrites LEDn_OFF_H, clearing full-off.
	expectOps(t, pb, func() error { return s.SetAngle(90 * physic.Degree) }, nil, pcaPulseOp(0x40, 3, 305))

	rev, err := NewPCA9685(dev, 0, Config{Reverse: true})
	if err != nil {
		t.Fatal(err)
	}
	expectOps(t, pb, func() error { return rev.SetAngle(0) }, nil, pcaPulseOp(0x40, 0, 488))
	expectOps(t, pb, func() error { return rev.SetAngle(180 * physic.Degree) }, nil, pcaPulseOp(0x40, 0, 122))

	// A chip whose oscillator runs fast: 1.5 ms × 27 MHz / 123 = 329.3.
	fast, err := PCA9685Options{Oscillator: 27 * physic.MegaHertz}.New(dev, 15, Config{})
	if err != nil {
		t.Fatal(err)
	}
	expectOps(t, pb, func() error { return fast.SetAngle(90 * physic.Degree) }, nil, pcaPulseOp(0x40, 15, 329))
	if got := pb.Ops[len(pb.Ops)-1].W; !cmp.Equal(got, []byte{0x42, 0x00, 0x00, 0x49, 0x01}) {
		t.Errorf("channel 15 wrote % x", got)
	}

	// Refusals make no I²C transfer.
	expectOps(t, pb, func() error {
		_, err := NewPCA9685(dev, 3, Config{})
		if err == nil || !strings.Contains(err.Error(), "channel 3 is already in use") {
			return fmt.Errorf("second servo on channel 3: %v", err)
		}
		_, err = NewPCA9685(dev, 1, Config{Frequency: 60 * physic.Hertz})
		if err == nil || !strings.Contains(err.Error(), "share a frequency") {
			return fmt.Errorf("servo at another frequency: %v", err)
		}
		return nil
	}, nil)

	// Close turns the channel fully off, then everything says ErrClosed.
	expectOps(t, pb, s.Close, nil, pcaOffOp(0x40, 3))
	expectOps(t, pb, func() error { return s.SetAngle(90 * physic.Degree) }, ErrClosed)
	expectOps(t, pb, s.Release, ErrClosed)
	expectOps(t, pb, s.Close, nil)
	// Its channel is free again.
	again, err := NewPCA9685(dev, 3, Config{})
	if err != nil {
		t.Fatal(err)
	}
	expectOps(t, pb, again.Close, nil, pcaOffOp(0x40, 3))
	expectOps(t, pb, rev.Close, nil, pcaOffOp(0x40, 0))
	expectOps(t, pb, fast.Close, nil, pcaOffOp(0x40, 15))

	// With every servo closed the board may change frequency: 100 Hz is
	// prescale (6103515625µHz + 50Hz) / 100Hz = 61, period 62 × 4096 / 25 MHz.
	var s100 *PCA9685
	expectOps(t, pb, func() (err error) {
		s100, err = NewPCA9685(dev, 0, Config{Frequency: 100 * physic.Hertz})
		return err
	}, nil,
		i2ctest.IO{Addr: 0x40, W: []byte{0x00}, R: []byte{0x21}},
		i2ctest.IO{Addr: 0x40, W: []byte{0x00, 0x31}},
		i2ctest.IO{Addr: 0x40, W: []byte{0xFE, 0x3D}},
		i2ctest.IO{Addr: 0x40, W: []byte{0x00, 0x21}},
		i2ctest.IO{Addr: 0x40, W: []byte{0x00, 0xA1}},
	)
	// 1.5 ms × 25 MHz / 62 = 604.8.
	expectOps(t, pb, func() error { return s100.SetAngle(90 * physic.Degree) }, nil, pcaPulseOp(0x40, 0, 605))
	expectOps(t, pb, s100.Close, nil, pcaOffOp(0x40, 0))

	if err := pb.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestPCA9685Errors(t *testing.T) {
	t.Parallel()
	pb, dev := newTestBoard(t, 0x40)
	for _, tc := range []struct {
		name    string
		opts    PCA9685Options
		dev     *pca9685.Dev
		channel int
		cfg     Config
		want    string
	}{
		{"negative channel", PCA9685Options{}, dev, -1, Config{}, "servo: pca9685: channel -1 outside 0 to 15"},
		{"channel 16", PCA9685Options{}, dev, 16, Config{}, "servo: pca9685: channel 16 outside 0 to 15"},
		{"nil dev", PCA9685Options{}, nil, 0, Config{}, "servo: pca9685: nil"},
		{"bad config", PCA9685Options{}, dev, 0, Config{MinPulse: 3 * time.Millisecond}, "minimum pulse"},
		{"slow oscillator", PCA9685Options{Oscillator: 25 * physic.KiloHertz}, dev, 0, Config{}, "oscillator 25kHz outside"},
		{"fast oscillator", PCA9685Options{Oscillator: 60 * physic.MegaHertz}, dev, 0, Config{}, "oscillator 60MHz outside"},
		// Below ~24 Hz periph's prescale no longer fits the register.
		{"frequency too low", PCA9685Options{}, dev, 0, Config{Frequency: 20 * physic.Hertz}, "needs prescale 305"},
		// At 400 Hz the prescale is 15: with a 27 MHz clock the period
		// is 16 × 4096 / 27 MHz = 2.427 ms, shorter than the 2.45 ms pulse.
		{"pulse longer than chip period", PCA9685Options{Oscillator: 27 * physic.MegaHertz}, dev, 0,
			Config{MinPulse: time.Millisecond, MaxPulse: 2450 * time.Microsecond, Frequency: 400 * physic.Hertz}, "does not fit in the chip's PWM period"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, err := tc.opts.New(tc.dev, tc.channel, tc.cfg)
			if err == nil {
				d.Close()
				t.Fatal("no error")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not contain %q", err, tc.want)
			}
		})
	}
	// None of them touched the bus.
	if err := pb.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestPCA9685Prescale(t *testing.T) {
	// Values periph's SetPwmFreq writes; 50 Hz is also checked byte for
	// byte in pcaInitOps, 100 Hz in TestPCA9685.
	for f, want := range map[physic.Frequency]int64{
		24 * physic.Hertz:   254,
		50 * physic.Hertz:   122,
		60 * physic.Hertz:   102,
		100 * physic.Hertz:  61,
		333 * physic.Hertz:  18,
		1000 * physic.Hertz: 6,
	} {
		if got := pcaPrescale(f); got != want {
			t.Errorf("pcaPrescale(%s) = %d, want %d", f, got, want)
		}
	}
}

// TestPCA9685Counts checks the integer pulse arithmetic against a float64
// reference. It is plain Go so that GOARCH=386 runs it with 32-bit ints.
func TestPCA9685Counts(t *testing.T) {
	t.Logf("GOARCH=%s", runtime.GOARCH)
	oscs := []physic.Frequency{
		23 * physic.MegaHertz, 25 * physic.MegaHertz, 25_300 * physic.KiloHertz,
		27 * physic.MegaHertz, 50 * physic.MegaHertz, 24_999_999_500_000, // 24999999.5 Hz rounds up
	}
	freqs := []physic.Frequency{24 * physic.Hertz, 50 * physic.Hertz, 60 * physic.Hertz, 100 * physic.Hertz, 333 * physic.Hertz, 1000 * physic.Hertz}
	pulses := []time.Duration{
		0, 1, 500 * time.Microsecond, 600 * time.Microsecond, time.Millisecond, 1234567,
		1500 * time.Microsecond, 2400 * time.Microsecond, 2500 * time.Microsecond, 19 * time.Millisecond, 40 * time.Millisecond,
	}
	n := 0
	for _, osc := range oscs {
		oscHz := pcaOscillatorHz(osc)
		if want := int64(math.Round(float64(osc) / float64(physic.Hertz))); oscHz != want {
			t.Fatalf("pcaOscillatorHz(%s) = %d, want %d", osc, oscHz, want)
		}
		for _, f := range freqs {
			p := pcaPrescale(f)
			for _, pulse := range pulses {
				exact := pulse.Seconds() * float64(oscHz) / float64(p+1)
				if frac := exact - math.Floor(exact); math.Abs(frac-0.5) < 1e-6 {
					continue // a tie float64 may round either way
				}
				want := int64(math.Min(math.Round(exact), pcaMaxCount))
				if got := pcaCounts(pulse, oscHz, p); got != want {
					t.Errorf("pcaCounts(%s, %d Hz, prescale %d) = %d, want %d (%.4f)", pulse, oscHz, p, got, want, exact)
				}
				n++
			}
		}
	}
	// Hand-computed values the byte-level tests rely on.
	for _, tc := range []struct {
		pulse    time.Duration
		osc      int64
		prescale int64
		want     int64
	}{
		{1500 * time.Microsecond, 25_000_000, 122, 305},
		{600 * time.Microsecond, 25_000_000, 122, 122},
		{2400 * time.Microsecond, 25_000_000, 122, 488},
		{1500 * time.Microsecond, 27_000_000, 122, 329},
		{1500 * time.Microsecond, 25_000_000, 61, 605},
		// Products near the limits: a 9 s pulse with a 50 MHz clock is
		// 4.5e17 before dividing, far beyond 32 bits.
		{9 * time.Second, 50_000_000, 255, pcaMaxCount},
		{time.Hour, 50_000_000, 255, pcaMaxCount},
		{-time.Millisecond, 25_000_000, 122, 0},
	} {
		if got := pcaCounts(tc.pulse, tc.osc, tc.prescale); got != tc.want {
			t.Errorf("pcaCounts(%s, %d, %d) = %d, want %d", tc.pulse, tc.osc, tc.prescale, got, tc.want)
		}
	}
	if n < 300 {
		t.Errorf("only %d comparisons", n)
	}
}

func TestParsePCA9685Spec(t *testing.T) {
	def := Config{}.WithDefaults()
	for _, tc := range []struct {
		arg  string
		want pcaSpec
	}{
		{"/dev/i2c-1@0x40/3", pcaSpec{bus: "/dev/i2c-1", addr: 0x40, channel: 3, cfg: def}},
		{"/dev/i2c-1/3", pcaSpec{bus: "/dev/i2c-1", addr: 0x40, channel: 3, cfg: def}},
		{"1@0x41/15", pcaSpec{bus: "1", addr: 0x41, channel: 15, cfg: def}},
		{"I2C1@0X7F/0", pcaSpec{bus: "I2C1", addr: 0x7f, channel: 0, cfg: def}},
		{"/dev/i2c-1@0x40/07", pcaSpec{bus: "/dev/i2c-1", addr: 0x40, channel: 7, cfg: def}},
		{"/dev/i2c-1@0x40/3?osc=25.3MHz&freq=60Hz&reverse=true", pcaSpec{
			bus: "/dev/i2c-1", addr: 0x40, channel: 3,
			cfg:  Config{Reverse: true, Frequency: 60 * physic.Hertz}.WithDefaults(),
			opts: PCA9685Options{Oscillator: 25_300 * physic.KiloHertz},
		}},
		{"/dev/i2c-1/3?min=0.5ms&max=2.5ms&angles=-90..90", pcaSpec{
			bus: "/dev/i2c-1", addr: 0x40, channel: 3,
			cfg: Config{MinPulse: 500 * time.Microsecond, MaxPulse: 2500 * time.Microsecond, MinAngle: -90 * physic.Degree, MaxAngle: 90 * physic.Degree}.WithDefaults(),
		}},
	} {
		got, err := parsePCA9685Spec(tc.arg)
		if err != nil {
			t.Errorf("%q: %v", tc.arg, err)
			continue
		}
		if d := cmp.Diff(tc.want, got, cmp.AllowUnexported(pcaSpec{})); d != "" {
			t.Errorf("%q: (-want +got)\n%s", tc.arg, d)
		}
	}

	for _, tc := range []struct{ arg, want string }{
		{"", "no /CHANNEL"},
		{"3", "no /CHANNEL"},
		{"/dev/i2c-1@0x40", "channel \"i2c-1@0x40\""},
		{"/dev/i2c-1@0x40/", "channel \"\""},
		{"/dev/i2c-1@0x40/16", "channel 16 outside 0 to 15"},
		{"/dev/i2c-1@0x40/-1", "channel \"-1\""},
		{"/dev/i2c-1@0x40/+3", "channel \"+3\""},
		{"/dev/i2c-1@0x40/100", "channel \"100\""},
		{"/dev/i2c-1@40/3", "0x prefix"},
		{"/dev/i2c-1@0x/3", "not a PCA9685 address"},
		{"/dev/i2c-1@0x3f/3", "not a PCA9685 address"},
		{"/dev/i2c-1@0x80/3", "not a PCA9685 address"},
		{"/dev/i2c-1@0x+40/3", "not a PCA9685 address"},
		{"/dev/i2c-1@/3", "0x prefix"},
		{"@0x40/3", "names no I²C bus"},
		{"/3", "names no I²C bus"},
		{"x@y@0x40/3", "bad I²C bus name"},
		{"/dev/i2c 1/3", "bad I²C bus name"},
		{"/dev/i2c-1/3?osc=1kHz", "oscillator 1kHz outside"},
		{"/dev/i2c-1/3?osc=fast", "option osc"},
		{"/dev/i2c-1/3?bogus=1", "unknown option \"bogus\" (accepted: min, max, angles, freq, reverse, wide, osc)"},
		{"/dev/i2c-1/3?freq=5kHz", "frequency"},
		{"/dev/i2c-1/3?osc=25MHz&osc=26MHz", "given 2 times"},
	} {
		_, err := parsePCA9685Spec(tc.arg)
		if err == nil {
			t.Errorf("%q: no error", tc.arg)
			continue
		}
		if !strings.HasPrefix(err.Error(), "servo: ") || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %q, want one containing %q", tc.arg, err, tc.want)
		}
	}
}

func FuzzPCA9685Spec(f *testing.F) {
	for _, s := range []string{
		"/dev/i2c-1@0x40/3", "/dev/i2c-1/3", "1@0x41/15", "I2C1@0X7F/0",
		"/dev/i2c-1@0x40/3?osc=25.3MHz&freq=60Hz&reverse=true",
		"/dev/i2c-1/3?min=0.5ms&max=2.5ms&angles=-90..90&wide=false",
		"", "3", "/", "@/", "/dev/i2c-1@0x40/16", "/dev/i2c-1@40/3", "x@y@0x40/3",
		"/dev/i2c-1/3?osc=1kHz", "/dev/i2c-1/3?bogus", "/dev/i2c-1/3?%zz", "/dev/i2c-1@0x40/3?freq=-50Hz",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, arg string) {
		s, err := parsePCA9685Spec(arg)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "servo: ") {
				t.Fatalf("%q: error without prefix: %v", arg, err)
			}
			return
		}
		if s.bus == "" || s.addr < 0x40 || s.addr > 0x7f || s.channel < 0 || s.channel > 15 {
			t.Fatalf("%q: parsed to %+v", arg, s)
		}
		if err := s.cfg.Validate(); err != nil {
			t.Fatalf("%q: invalid config accepted: %v", arg, err)
		}
		if s.opts.Oscillator != 0 {
			if err := checkPCAOscillator(s.opts.Oscillator); err != nil {
				t.Fatalf("%q: %v", arg, err)
			}
		}
		// The canonical form of the target parses back to the same board
		// and channel.
		canon := fmt.Sprintf("%s@%#x/%d", s.bus, s.addr, s.channel)
		s2, err := parsePCA9685Spec(canon)
		if err != nil {
			t.Fatalf("%q: canonical %q: %v", arg, canon, err)
		}
		if s2.bus != s.bus || s2.addr != s.addr || s2.channel != s.channel {
			t.Fatalf("%q: canonical %q parsed to %+v", arg, canon, s2)
		}
	})
}

// countingBus is a playback bus that counts Close calls.
type countingBus struct {
	*i2ctest.Playback
	closes int
}

func (b *countingBus) Close() error {
	b.closes++
	return b.Playback.Close()
}

func TestPCA9685SharedBoard(t *testing.T) {
	t.Parallel()
	const addr = 0x41
	bus := &countingBus{Playback: &i2ctest.Playback{Ops: pcaInitOps(addr), DontPanic: true}}
	opens, inits := 0, 0
	boards := &pcaBoards{
		resolve: func(name string) (string, error) {
			switch name {
			case "1", "I2C1", "/dev/i2c-1":
				return "/dev/i2c-1", nil
			}
			return "", fmt.Errorf("servo: pca9685: no I²C bus %q", name)
		},
		openBus: func(string) (i2c.BusCloser, error) { opens++; return bus, nil },
		newDev: func(b i2c.Bus, a uint16) (*pca9685.Dev, error) {
			inits++
			return pca9685.NewI2C(b, a)
		},
	}
	a, err := boards.open("/dev/i2c-1@0x41/0")
	if err != nil {
		t.Fatal(err)
	}
	// Another channel of the same board, named through an alias, reuses
	// it: initialising again would turn channel 0 off.
	b, err := boards.open("1@0x41/5?reverse=true")
	if err != nil {
		t.Fatal(err)
	}
	if opens != 1 || inits != 1 {
		t.Fatalf("bus opened %d times, board initialised %d times; want 1 and 1", opens, inits)
	}
	if _, err := boards.open("I2C1@0x41/5"); err == nil || !strings.Contains(err.Error(), "already in use") {
		t.Fatalf("same channel twice: %v", err)
	}
	if _, err := boards.open("2@0x41/1"); err == nil || !strings.Contains(err.Error(), "no I²C bus") {
		t.Fatalf("unknown bus: %v", err)
	}
	if got := boards.boards[pcaBoardKey{"/dev/i2c-1", addr}].refs; got != 2 {
		t.Fatalf("refs = %d after a refused open, want 2", got)
	}
	expectOps(t, bus.Playback, func() error { return a.SetAngle(90 * physic.Degree) }, nil, pcaPulseOp(addr, 0, 305))
	expectOps(t, bus.Playback, func() error { return b.SetAngle(0) }, nil, pcaPulseOp(addr, 5, 488))
	expectOps(t, bus.Playback, a.Close, nil, pcaOffOp(addr, 0))
	if bus.closes != 0 {
		t.Fatal("bus closed while channel 5 is open")
	}
	// Closing the last channel closes the bus, which checks that every
	// expected transfer happened.
	expectOps(t, bus.Playback, b.Close, nil, pcaOffOp(addr, 5))
	if bus.closes != 1 {
		t.Fatalf("bus closed %d times, want 1", bus.closes)
	}
	if len(boards.boards) != 0 {
		t.Fatalf("boards left: %v", boards.boards)
	}
}

func TestPCA9685OpenErrors(t *testing.T) {
	t.Parallel()
	boards := &pcaBoards{
		resolve: func(name string) (string, error) { return name, nil },
		openBus: func(name string) (i2c.BusCloser, error) {
			// What periph's sysfs driver returns for a user outside group i2c.
			return nil, errors.New("sysfs-i2c: are you member of group 'plugdev'? open /dev/i2c-1: permission denied")
		},
		newDev: func(i2c.Bus, uint16) (*pca9685.Dev, error) { panic("no bus") },
	}
	_, err := boards.open("/dev/i2c-1/0")
	if err == nil || !strings.Contains(err.Error(), "group i2c") || !strings.Contains(err.Error(), "dtparam=i2c_arm=on") {
		t.Fatalf("permission error: %v", err)
	}

	// A board that does not answer: the bus is closed again and nothing
	// is kept.
	bus := &countingBus{Playback: &i2ctest.Playback{DontPanic: true}}
	boards.openBus = func(string) (i2c.BusCloser, error) { return bus, nil }
	boards.newDev = func(b i2c.Bus, a uint16) (*pca9685.Dev, error) { return pca9685.NewI2C(b, a) }
	_, err = boards.open("/dev/i2c-1@0x42/0")
	if err == nil || !strings.Contains(err.Error(), "no PCA9685 answering at 0x42 on /dev/i2c-1") {
		t.Fatalf("missing board: %v", err)
	}
	if bus.closes != 1 || len(boards.boards) != 0 {
		t.Fatalf("after a failed init: %d closes, %d boards", bus.closes, len(boards.boards))
	}

	// A bad spec is refused before any bus is looked up.
	boards.resolve = func(string) (string, error) { panic("resolved") }
	if _, err := boards.open("/dev/i2c-1@0x40/16"); err == nil {
		t.Fatal("channel 16 accepted")
	}
}

func TestPCA9685Registered(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the pca9685 spec driver registers on Linux only")
	}
	var found bool
	for _, d := range Drivers() {
		if d.Name == "pca9685" {
			found = true
			if d.Detect != nil {
				t.Error("pca9685 has a Detect: probing I²C addresses is not safe")
			}
		}
	}
	if !found {
		t.Fatal("pca9685 not registered")
	}
	// Parsing comes before any hardware access, so this is safe anywhere.
	if _, err := Open("pca9685:/dev/i2c-1@0x40/16"); err == nil || !strings.Contains(err.Error(), "servo: pca9685: channel 16") {
		t.Fatalf("Open: %v", err)
	}
}
