package siminverter

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pikit/pikit/energy"
)

// fakeClock is a settable clock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

var midsummer = time.Date(2025, 6, 21, 0, 0, 0, 0, time.UTC)

func newSim(t *testing.T, o Options) *Inverter {
	t.Helper()
	s, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestCurve(t *testing.T) {
	for _, clear := range []bool{true, false} {
		clock := &fakeClock{t: midsummer}
		s := newSim(t, Options{Profile: "huawei", PeakPower: 6000, Seed: 7, ClearSky: clear, Now: clock.Now})
		var (
			lastE     = -1.0
			best      float64
			bestAt    time.Time
			startE    float64
			nightMax  float64
			dayEnergy float64
		)
		for m := 0; m <= 24*60; m += 5 {
			now := midsummer.Add(time.Duration(m) * time.Minute)
			clock.Set(now)
			r := s.Current()
			p := r.ACPower.V
			if !r.ACPower.OK || !r.EnergyTotal.OK {
				t.Fatalf("%s: missing values %+v", now, r)
			}
			if p < 0 || p > 6000 {
				t.Fatalf("%s: power %v outside 0..peak", now, p)
			}
			if h := now.Hour(); h < 3 || h >= 21 {
				nightMax = math.Max(nightMax, p)
				if r.State != "sleeping" && r.State != "standby" {
					t.Errorf("%s: state %q at night", now, r.State)
				}
			}
			if p > best {
				best, bestAt = p, now
			}
			if r.EnergyTotal.V < lastE {
				t.Fatalf("%s: energy went down %v -> %v", now, lastE, r.EnergyTotal.V)
			}
			if lastE < 0 {
				startE = r.EnergyTotal.V
			}
			lastE = r.EnergyTotal.V
			dayEnergy = lastE - startE
		}
		if nightMax != 0 {
			t.Errorf("clear=%v: %v W at night", clear, nightMax)
		}
		// A 16 h midsummer day of a half sine: 6000 W × 0.965 × 16 h × 2/π.
		clearDay := 6000 * efficiency * 16 * 2 / math.Pi
		if clear {
			if d := bestAt.Sub(midsummer.Add(12 * time.Hour)); d < -30*time.Minute || d > 30*time.Minute {
				t.Errorf("clear sky peaks at %s", bestAt.Format("15:04"))
			}
			if math.Abs(dayEnergy-clearDay) > 0.01*clearDay {
				t.Errorf("clear day produced %.0f Wh, want about %.0f", dayEnergy, clearDay)
			}
		} else if dayEnergy < 0.3*clearDay || dayEnergy > clearDay {
			t.Errorf("cloudy day produced %.0f Wh (clear %.0f)", dayEnergy, clearDay)
		}
		t.Logf("clear=%v: peak %.0f W at %s, day %.1f kWh", clear, best, bestAt.Format("15:04"), dayEnergy/1000)
	}
	// Winter days are shorter and weaker.
	clock := &fakeClock{t: time.Date(2025, 12, 21, 7, 30, 0, 0, time.UTC)}
	s := newSim(t, Options{ClearSky: true, Now: clock.Now})
	if p := s.Current().ACPower.V; p != 0 {
		t.Errorf("7:30 in midwinter: %v W", p)
	}
	clock.Set(time.Date(2025, 12, 21, 12, 0, 0, 0, time.UTC))
	if p := s.Current().ACPower.V; p < 0.5*DefaultPeakPower || p > 0.7*DefaultPeakPower {
		t.Errorf("midwinter noon: %v W", p)
	}
}

func TestDeterministic(t *testing.T) {
	at := midsummer.Add(10*time.Hour + 17*time.Minute)
	now := func() time.Time { return at }
	a := newSim(t, Options{Seed: 3, Now: now}).Current()
	b := newSim(t, Options{Seed: 3, Now: now}).Current()
	c := newSim(t, Options{Seed: 4, Now: now}).Current()
	if a.ACPower != b.ACPower || a.Device.Serial != b.Device.Serial {
		t.Errorf("same seed differs: %v %v", a.ACPower, b.ACPower)
	}
	if a.ACPower == c.ACPower && a.Device.Serial == c.Device.Serial {
		t.Errorf("seeds 3 and 4 give the same plant")
	}
	// The clock going back does not undo energy.
	clock := &fakeClock{t: midsummer.Add(11 * time.Hour)}
	s := newSim(t, Options{Now: clock.Now})
	e0 := s.Current().EnergyTotal.V
	clock.Set(midsummer.Add(13 * time.Hour))
	e1 := s.Current().EnergyTotal.V
	clock.Set(midsummer.Add(12 * time.Hour))
	e2 := s.Current().EnergyTotal.V
	if !(e1 > e0 && e2 == e1) {
		t.Errorf("energy %v, %v, %v", e0, e1, e2)
	}
}

// tolerance compares a decoded reading with Current within register
// resolution (the coarsest the profiles use: 10 W steps summed over three
// phases, 1 kWh counters, 0.1 V/A/Hz/°C) and reports differences.
func diff(got, want energy.Reading) string {
	var out []string
	cmp := func(what string, g, w energy.Value, tol float64) {
		if g.OK != w.OK || (w.OK && math.Abs(g.V-w.V) > math.Max(tol, 1e-6*math.Abs(w.V))) {
			out = append(out, fmt.Sprintf("%s: got %v want %v", what, g, w))
		}
	}
	cmp("ac", got.ACPower, want.ACPower, 20)
	cmp("dc", got.DCPower, want.DCPower, 20)
	cmp("energy", got.EnergyTotal, want.EnergyTotal, 1000)
	cmp("frequency", got.Frequency, want.Frequency, 0.1)
	cmp("temperature", got.Temperature, want.Temperature, 1)
	if len(got.Phases) != len(want.Phases) || len(got.DC) != len(want.DC) {
		out = append(out, fmt.Sprintf("%d phases and %d inputs, want %d and %d", len(got.Phases), len(got.DC), len(want.Phases), len(want.DC)))
	} else {
		for i := range want.Phases {
			cmp(fmt.Sprintf("phase %d V", i+1), got.Phases[i].Voltage, want.Phases[i].Voltage, 0.1)
			cmp(fmt.Sprintf("phase %d A", i+1), got.Phases[i].Current, want.Phases[i].Current, 0.1)
			cmp(fmt.Sprintf("phase %d W", i+1), got.Phases[i].Power, want.Phases[i].Power, 10)
		}
		for i := range want.DC {
			cmp(fmt.Sprintf("dc %d V", i+1), got.DC[i].Voltage, want.DC[i].Voltage, 0.1)
			cmp(fmt.Sprintf("dc %d A", i+1), got.DC[i].Current, want.DC[i].Current, 0.1)
			cmp(fmt.Sprintf("dc %d W", i+1), got.DC[i].Power, want.DC[i].Power, 10)
		}
	}
	if got.State != want.State {
		out = append(out, fmt.Sprintf("state %q, want %q", got.State, want.State))
	}
	gd, wd := got.Device, want.Device
	if gd.Serial != wd.Serial || gd.Model != wd.Model || gd.Manufacturer != wd.Manufacturer || gd.Profile != wd.Profile || gd.Kind != wd.Kind {
		out = append(out, fmt.Sprintf("device %+v, want %+v", gd, wd))
	}
	return strings.Join(out, "; ")
}

// TestRoundTrip serves every profile and SunSpec, reads it back over Modbus
// TCP with the gateway's own clients, and compares with Current.
func TestRoundTrip(t *testing.T) {
	names := append([]string{"sunspec"}, energy.ProfileNames()...)
	for _, name := range names {
		for _, at := range []time.Duration{12*time.Hour + 7*time.Minute, 23 * time.Hour} {
			t.Run(fmt.Sprintf("%s@%s", name, at), func(t *testing.T) {
				now := midsummer.Add(at)
				s := newSim(t, Options{Profile: name, Seed: 5, Now: func() time.Time { return now }})
				inv, err := s.Dial()
				if err != nil {
					t.Fatal(err)
				}
				defer inv.Close()
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				got, err := inv.Read(ctx)
				if err != nil {
					t.Fatal(err)
				}
				want := s.Current()
				if d := diff(got, want); d != "" {
					t.Error(d)
				}
				if at < 20*time.Hour && (!got.ACPower.OK || got.ACPower.V < 100) {
					t.Errorf("noon AC power %v", got.ACPower)
				}
				if len(got.Raw) == 0 {
					t.Error("no raw blocks")
				}
			})
		}
	}
}

func TestFaults(t *testing.T) {
	clock := &fakeClock{t: midsummer.Add(12 * time.Hour)}
	s := newSim(t, Options{Profile: "huawei", Seed: 1, Now: clock.Now})
	rr, err := energy.NewModbus("tcp://"+s.Addr(), energy.ModbusOptions{Timeout: 3 * time.Second, MinBackoff: time.Millisecond, MaxBackoff: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer rr.Close()
	ctx := context.Background()
	read := func() error {
		_, err := rr.ReadRegisters(ctx, 1, 3, 32080, 2)
		return err
	}
	// Retry past the client's reconnect backoff.
	readOK := func() error {
		var err error
		for range 20 {
			if err = read(); err == nil {
				return nil
			}
			time.Sleep(5 * time.Millisecond)
		}
		return err
	}
	if err := readOK(); err != nil {
		t.Fatal(err)
	}

	s.SetFaults(Faults{ExceptionRate: 1, ExceptionCode: energy.ExceptionServerDeviceBusy})
	if err := read(); !energy.IsException(err, energy.ExceptionServerDeviceBusy) {
		t.Errorf("exception fault: %v", err)
	}
	s.SetFaults(Faults{GarbageRate: 1})
	if err := read(); err == nil || energy.IsException(err) {
		t.Errorf("garbage fault: %v", err)
	}
	s.SetFaults(Faults{DropRate: 1})
	if err := read(); err == nil || energy.IsException(err) {
		t.Errorf("drop fault: %v", err)
	}
	s.SetFaults(Faults{})
	if err := readOK(); err != nil {
		t.Errorf("after faults: %v", err)
	}
	s.SetFaults(Faults{Delay: 120 * time.Millisecond})
	start := time.Now()
	if err := read(); err != nil || time.Since(start) < 120*time.Millisecond {
		t.Errorf("delay fault: %v after %v", err, time.Since(start))
	}
	// A generous client timeout keeps a loaded machine from failing the
	// delay above; the caller's deadline shows a slow device timing out.
	s.SetFaults(Faults{Delay: time.Second})
	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	_, err = rr.ReadRegisters(short, 1, 3, 32080, 2)
	cancel()
	if err == nil {
		t.Error("delay beyond the caller's deadline did not time out")
	}
	s.SetFaults(Faults{})
	if err := readOK(); err != nil {
		t.Errorf("after delay: %v", err)
	}
	// Half the requests fail, deterministically for a seed.
	s.SetFaults(Faults{ExceptionRate: 0.5})
	fails := 0
	for range 40 {
		if read() != nil {
			fails++
		}
	}
	if fails < 8 || fails > 32 {
		t.Errorf("exception rate 0.5: %d of 40 failed", fails)
	}
	if err := s.SetFaults(Faults{DropRate: 2}); err == nil {
		t.Error("rate 2 accepted")
	}

	// Wrong unit, undefined registers and writes are refused like a device.
	s.SetFaults(Faults{})
	_ = readOK()
	if _, err := rr.ReadRegisters(ctx, 9, 3, 32080, 2); !energy.IsException(err, energy.ExceptionGatewayTargetNoResponse) {
		t.Errorf("wrong unit: %v", err)
	}
	if _, err := rr.ReadRegisters(ctx, 1, 3, 100, 2); !energy.IsException(err, energy.ExceptionIllegalDataAddress) {
		t.Errorf("undefined registers: %v", err)
	}
}

func TestSimDriver(t *testing.T) {
	inv, err := energy.Open("sim?profile=sungrow&peak=8000&seed=2&clear=true")
	if err != nil {
		t.Fatal(err)
	}
	r, err := inv.Read(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if r.Device.Profile != "sungrow" || !r.EnergyTotal.OK {
		t.Errorf("reading %+v", r)
	}
	sim, ok := Sim(inv)
	if !ok {
		t.Fatal("Sim failed")
	}
	addr := sim.Addr()
	if err := inv.Close(); err != nil {
		t.Fatal(err)
	}
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Errorf("simulator still listening after Close")
	}
	def, err := energy.Open("sim")
	if err != nil {
		t.Fatal(err)
	}
	defer def.Close()
	if r, err := def.Read(context.Background()); err != nil || r.Device.Profile != "sunspec" {
		t.Errorf("default sim: %+v, %v", r.Device, err)
	}
	for _, bad := range []string{"sim?profile=nope", "sim?peak=-1", "sim?seed=x", "sim?colour=red", "sim:foo", "sim?unit=300"} {
		if inv, err := energy.Open(bad); err == nil {
			inv.Close()
			t.Errorf("Open(%q) accepted", bad)
		}
	}
}

func TestNewValidation(t *testing.T) {
	for _, o := range []Options{
		{PeakPower: -1}, {PeakPower: math.NaN()}, {Profile: "nope"}, {Unit: 250},
		{Faults: Faults{Delay: -1}}, {Faults: Faults{GarbageRate: math.NaN()}}, {Listen: "nowhere:xx"},
	} {
		if s, err := New(o); err == nil {
			s.Close()
			t.Errorf("New(%+v) accepted", o)
		}
	}
	s, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Error(err)
	}
	if err := s.Close(); err == nil {
		t.Error("second Close succeeded")
	}
}

func TestMain_(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var out, errb syncBuffer
	done := make(chan int)
	go func() {
		done <- Main(ctx, []string{"-listen", "127.0.0.1:0", "-profile", "sma", "-seed", "3"}, &out, &errb)
	}()
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(out.String(), "serving sma") && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if !strings.Contains(out.String(), "serving sma (unit 3") {
		t.Errorf("stdout %q, stderr %q", out.String(), errb.String())
	}
	cancel()
	if code := <-done; code != 0 {
		t.Errorf("exit code %d", code)
	}
	if code := Main(context.Background(), []string{"-bogus"}, &out, &errb); code != 2 {
		t.Errorf("bad flag: exit code %d", code)
	}
	if code := Main(context.Background(), []string{"-profile", "nope", "-listen", "127.0.0.1:0"}, &out, &errb); code != 1 {
		t.Errorf("bad profile: exit code %d", code)
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// A profile's usual unit ID applies when the spec names none: SMA inverters
// answer on unit 3, so "sma+tcp://HOST" must not ask unit 1.
func TestProfileDefaultUnit(t *testing.T) {
	sim, err := New(Options{Profile: "sma", Unit: 3, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	ctx := context.Background()
	for spec, wantErr := range map[string]bool{
		"sma+tcp://" + sim.Addr():             false,
		"sma+tcp://" + sim.Addr() + "?unit=3": false,
		"sma+tcp://" + sim.Addr() + "?unit=1": true,
	} {
		inv, err := energy.Open(spec)
		if err != nil {
			t.Fatalf("Open(%q): %v", spec, err)
		}
		_, err = inv.Read(ctx)
		inv.Close()
		if (err != nil) != wantErr {
			t.Errorf("Read via %q: err = %v, want error: %v", spec, err, wantErr)
		}
	}
}

// Scan recognises vendor devices that do not speak SunSpec by their
// profile's serial-number registers.
func TestScanIdentifiesProfiles(t *testing.T) {
	for _, profile := range []string{"huawei", "sungrow", "sma"} {
		t.Run(profile, func(t *testing.T) {
			sim, err := New(Options{Profile: profile, Seed: 7})
			if err != nil {
				t.Fatal(err)
			}
			defer sim.Close()
			host, portStr, _ := net.SplitHostPort(sim.Addr())
			var port int
			fmt.Sscan(portStr, &port)
			found, err := energy.Scan(context.Background(), []string{host},
				energy.ScanOptions{Ports: []int{port}, Units: []uint8{sim.Unit()}, Timeout: 2 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			want := sim.Current().Device.Serial
			if len(found) != 1 || !found[0].Identified || found[0].Info.Profile != profile || found[0].Info.Serial != want {
				t.Fatalf("Scan found %+v, want profile %s serial %q", found, profile, want)
			}
			if !strings.HasPrefix(found[0].Spec, profile+"+tcp://") {
				t.Errorf("spec %q", found[0].Spec)
			}
		})
	}
}
