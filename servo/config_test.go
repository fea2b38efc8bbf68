package servo

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"periph.io/x/conn/v3/physic"
)

func TestConfigDefaults(t *testing.T) {
	got := Config{}.WithDefaults()
	want := Config{MinPulse: 600 * time.Microsecond, MaxPulse: 2400 * time.Microsecond,
		MaxAngle: 180 * physic.Degree, Frequency: 50 * physic.Hertz}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("defaults (-want +got):\n%s", diff)
	}
	if err := (Config{}).Validate(); err != nil {
		t.Errorf("zero Config invalid: %v", err)
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		want string // substring of the error; "" = valid
	}{
		{"sg90 full travel", Config{MinPulse: 500 * time.Microsecond, MaxPulse: 2500 * time.Microsecond}, ""},
		{"symmetric range", Config{MinAngle: -90 * physic.Degree, MaxAngle: 90 * physic.Degree}, ""},
		{"negative only range", Config{MinAngle: -90 * physic.Degree}, ""},
		{"digital 333Hz", Config{Frequency: 333 * physic.Hertz, MaxPulse: 2500 * time.Microsecond}, ""},
		{"min not below max", Config{MinPulse: 2 * time.Millisecond, MaxPulse: 2 * time.Millisecond}, "not below maximum pulse"},
		{"max beyond period", Config{Frequency: 500 * physic.Hertz, AllowWidePulses: true, MaxPulse: 2500 * time.Microsecond}, "does not fit in the 2ms period"},
		{"too short", Config{MinPulse: 400 * time.Microsecond}, "outside the safe 500µs to 2.5ms"},
		{"too long", Config{MaxPulse: 2600 * time.Microsecond}, "wide=true"},
		{"wide allowed", Config{MinPulse: 400 * time.Microsecond, MaxPulse: 2600 * time.Microsecond, AllowWidePulses: true}, ""},
		{"negative pulse", Config{MinPulse: -time.Millisecond, AllowWidePulses: true}, "not positive"},
		{"angles reversed", Config{MinAngle: 90 * physic.Degree, MaxAngle: 10 * physic.Degree}, "not below maximum angle"},
		{"range too wide", Config{MinAngle: -720 * physic.Degree, MaxAngle: 720 * physic.Degree}, "wider than 720°"},
		{"frequency too high", Config{Frequency: 2 * physic.KiloHertz}, "outside 1Hz to 1kHz"},
		{"frequency negative", Config{Frequency: -physic.Hertz}, "outside 1Hz to 1kHz"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if tc.want == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "servo: ") {
				t.Fatalf("Validate() = %v, want error containing %q", err, tc.want)
			}
		})
	}
}

func TestPulse(t *testing.T) {
	cfg := Config{}.WithDefaults()
	rev := Config{Reverse: true}.WithDefaults()
	sym := Config{MinAngle: -90 * physic.Degree, MaxAngle: 90 * physic.Degree, MinPulse: time.Millisecond, MaxPulse: 2 * time.Millisecond}.WithDefaults()
	for _, tc := range []struct {
		cfg  Config
		a    physic.Angle
		want time.Duration
	}{
		{cfg, 0, 600 * time.Microsecond},
		{cfg, 90 * physic.Degree, 1500 * time.Microsecond},
		{cfg, 180 * physic.Degree, 2400 * time.Microsecond},
		{cfg, 45 * physic.Degree, 1050 * time.Microsecond},
		{rev, 0, 2400 * time.Microsecond},
		{rev, 180 * physic.Degree, 600 * time.Microsecond},
		{rev, 45 * physic.Degree, 1950 * time.Microsecond},
		{sym, -90 * physic.Degree, time.Millisecond},
		{sym, 0, 1500 * time.Microsecond},
		{sym, 90 * physic.Degree, 2 * time.Millisecond},
	} {
		got, err := tc.cfg.Pulse(tc.a)
		if err != nil || got != tc.want {
			t.Errorf("%+v.Pulse(%s) = %s, %v; want %s", tc.cfg, tc.a, got, err, tc.want)
		}
		if back := tc.cfg.AngleOf(got); (back-tc.a) > physic.Degree/1000 || (tc.a-back) > physic.Degree/1000 {
			t.Errorf("AngleOf(Pulse(%s)) = %s", tc.a, back)
		}
	}
	for _, a := range []physic.Angle{-physic.Degree, 181 * physic.Degree} {
		if _, err := cfg.Pulse(a); !errors.Is(err, ErrOutOfRange) {
			t.Errorf("Pulse(%s) = %v, want ErrOutOfRange", a, err)
		}
	}
}

func TestParseAngle(t *testing.T) {
	for in, want := range map[string]physic.Angle{
		"90": 90 * physic.Degree, "-12.5": -218166163, // 12.5 × 17453293 nrad, rounded " 0 ": 0, "45°": 45 * physic.Degree, "1rad": physic.Radian,
	} {
		got, err := ParseAngle(in)
		if err != nil || got != want {
			t.Errorf("ParseAngle(%q) = %s, %v; want %s", in, got, err, want)
		}
	}
	for _, in := range []string{"", "abc", "NaN", "1e300", "90 degrees"} {
		if _, err := ParseAngle(in); err == nil {
			t.Errorf("ParseAngle(%q) succeeded", in)
		}
	}
}

func TestApplyOptions(t *testing.T) {
	got, err := applyOptions(Config{}, map[string]string{
		"min": "1ms", "max": "2ms", "angles": "-45..45", "freq": "60Hz", "reverse": "true", "wide": "false"})
	if err != nil {
		t.Fatal(err)
	}
	want := Config{MinPulse: time.Millisecond, MaxPulse: 2 * time.Millisecond, MinAngle: -45 * physic.Degree,
		MaxAngle: 45 * physic.Degree, Frequency: 60 * physic.Hertz, Reverse: true}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("applyOptions (-want +got):\n%s", diff)
	}
	for opt, want := range map[string]string{
		"min=abc":      `option min="abc"`,
		"angles=0-180": "want LO..HI",
		"angles=0..0":  "empty range",
		"freq=fast":    `option freq="fast"`,
		"reverse=yes":  `option reverse="yes"`,
		"max=3ms":      "outside the safe",
	} {
		k, v, _ := strings.Cut(opt, "=")
		if _, err := applyOptions(Config{}, map[string]string{k: v}); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("applyOptions(%s) = %v, want %q", opt, err, want)
		}
	}
}

// FuzzSimSpec feeds arbitrary specs through Open's "sim" path: no panic,
// and any servo it accepts has a valid calibration.
func FuzzSimSpec(f *testing.F) {
	for _, s := range []string{"", "?slew=50ms", "?min=1ms&max=2ms", "?angles=-90..90&reverse=1", "?freq=333Hz&max=2.5ms",
		"?wide=true&min=100us", "?angles=..", "?slew=-1s", "x", "?min=1ms&min=2ms", "?freq=1e30Hz", "?angles=1e300..2"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, arg string) {
		d, err := openSim(arg)
		if err != nil {
			return
		}
		if err := d.(*Sim).Config().Validate(); err != nil {
			t.Fatalf("openSim(%q) accepted an invalid config: %v", arg, err)
		}
		d.Close()
	})
}
