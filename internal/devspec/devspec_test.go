package devspec

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

type dev struct{ name, arg string }

func newReg(t *testing.T, present bool) (*Registry[dev], *bytes.Buffer) {
	t.Helper()
	r := New[dev]("thing", "sim")
	var notice bytes.Buffer
	r.SetNotice(&notice)
	open := func(name string) func(string) (dev, error) {
		return func(arg string) (dev, error) {
			if arg == "fail" {
				return dev{}, errors.New("thing: cannot open")
			}
			return dev{name, arg}, nil
		}
	}
	r.MustRegister(Driver[dev]{Name: "real", Usage: "real:PATH", Open: open("real"),
		Detect: func() (string, bool) { return "/dev/thing0", present }})
	r.MustRegister(Driver[dev]{Name: "sim", Open: open("sim")})
	return r, &notice
}

func TestOpen(t *testing.T) {
	r, notice := newReg(t, false)
	for _, tc := range []struct {
		spec string
		want dev
	}{
		{"real:/dev/x", dev{"real", "/dev/x"}},
		{"  sim  ", dev{"sim", ""}},
		{"sim:a:b", dev{"sim", "a:b"}},
		{"sim?x=1", dev{"sim", "?x=1"}},
	} {
		got, err := r.Open(tc.spec)
		if err != nil {
			t.Fatalf("Open(%q): %v", tc.spec, err)
		}
		if got != tc.want {
			t.Errorf("Open(%q) = %+v, want %+v", tc.spec, got, tc.want)
		}
	}
	if notice.Len() != 0 {
		t.Errorf("explicit specs printed a notice: %q", notice)
	}
}

func TestAuto(t *testing.T) {
	r, notice := newReg(t, true)
	got, err := r.Open("auto")
	if err != nil || got != (dev{"real", "/dev/thing0"}) {
		t.Fatalf("Open(auto) with hardware = %+v, %v", got, err)
	}
	if notice.Len() != 0 {
		t.Errorf("notice with hardware present: %q", notice)
	}

	r, notice = newReg(t, false)
	got, err = r.Open("auto")
	if err != nil || got != (dev{"sim", ""}) {
		t.Fatalf("Open(auto) without hardware = %+v, %v", got, err)
	}
	if want := "thing: no hardware detected, using the simulated \"sim\" driver\n"; notice.String() != want {
		t.Errorf("notice = %q, want %q", notice, want)
	}
	if res, fell, err := r.Resolve("auto"); res != "sim" || !fell || err != nil {
		t.Errorf("Resolve(auto) = %q, %v, %v", res, fell, err)
	}
}

func TestErrors(t *testing.T) {
	r, _ := newReg(t, false)
	for _, tc := range []struct{ spec, want string }{
		{"", "thing: empty spec; accepted forms: auto, real:PATH, sim"},
		{"nope:x", `thing: unknown driver "nope"; accepted forms: auto, real:PATH, sim`},
		{"Real:x", `thing: invalid driver name "Real"`},
		{"auto:x", `thing: "auto" takes no argument`},
		{"real:fail", `thing: cannot open (spec "real:fail")`},
	} {
		_, err := r.Open(tc.spec)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Open(%q) error = %v, want it to contain %q", tc.spec, err, tc.want)
		}
	}
	if _, err := r.Open("nope"); !errors.Is(err, ErrUnknownDriver) {
		t.Errorf("Open(nope) = %v, want ErrUnknownDriver", err)
	}
}

func TestRegisterRejects(t *testing.T) {
	r, _ := newReg(t, false)
	open := func(string) (dev, error) { return dev{}, nil }
	for _, d := range []Driver[dev]{
		{Name: "sim", Open: open},
		{Name: "auto", Open: open},
		{Name: "Bad Name", Open: open},
		{Name: "noopen"},
	} {
		if err := r.Register(d); err == nil {
			t.Errorf("Register(%q) succeeded", d.Name)
		}
	}
	var names []string
	for _, d := range r.Drivers() {
		names = append(names, d.Name)
	}
	if diff := cmp.Diff([]string{"real", "sim"}, names); diff != "" {
		t.Errorf("Drivers() (-want +got):\n%s", diff)
	}
}

func TestAutoWithoutFallback(t *testing.T) {
	r := New[dev]("thing", "sim")
	if _, err := r.Open("auto"); err == nil || !strings.Contains(err.Error(), "fallback") {
		t.Errorf("Open(auto) with nothing registered = %v", err)
	}
}

func TestParseArg(t *testing.T) {
	target, opts, err := ParseArg("pwmchip0/1?min=500us&max=2.4ms", "min", "max", "freq")
	if err != nil {
		t.Fatal(err)
	}
	if target != "pwmchip0/1" || !cmp.Equal(opts, map[string]string{"min": "500us", "max": "2.4ms"}) {
		t.Errorf("ParseArg = %q, %v", target, opts)
	}
	for _, tc := range []struct {
		arg     string
		allowed []string
		want    string
	}{
		{"x?bogus=1", []string{"min", "max"}, `unknown option "bogus" (accepted: min, max)`},
		{"x?bogus=1", nil, "takes no options"},
		{"x?min=1&min=2", []string{"min"}, `option "min" given 2 times`},
		{"x?min=%zz", []string{"min"}, "bad options"},
	} {
		if _, _, err := ParseArg(tc.arg, tc.allowed...); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseArg(%q) = %v, want %q", tc.arg, err, tc.want)
		}
	}
}

// FuzzSpec checks that no spec string panics the parser and that what
// Split accepts round-trips.
func FuzzSpec(f *testing.F) {
	for _, s := range []string{"auto", "sim", "sysfs:pwmchip0/0", "pca9685:/dev/i2c-1@0x40/3?min=1ms",
		"exec:rpicam-vid -t 0 --codec mjpeg -o -", "sunspec+tcp://127.0.0.1:502?unit=1", "", ":", "a?b=%zz", "\x00:x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, spec string) {
		name, arg, err := Split(spec)
		if err == nil {
			if !validName(name) {
				t.Fatalf("Split(%q) accepted invalid name %q", spec, name)
			}
			sep := ":"
			if strings.HasPrefix(arg, "?") {
				sep = ""
			}
			n2, a2, err := Split(name + sep + arg)
			if err != nil || n2 != name || (a2 != arg && strings.TrimSpace(arg) == arg) {
				t.Fatalf("round trip of %q: %q %q %v", spec, n2, a2, err)
			}
		}
		_, opts, err := ParseArg(spec, "min", "max")
		if err == nil {
			for k := range opts {
				if k != "min" && k != "max" {
					t.Fatalf("ParseArg(%q) let through key %q", spec, k)
				}
			}
		}
	})
}
