package servo

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"periph.io/x/conn/v3/physic"
)

// fakeChip builds root/pwmchip0 with npwm channels and empty export and
// unexport files, and returns root.
func fakeChip(t *testing.T, npwm int) string {
	t.Helper()
	root := t.TempDir()
	chip := filepath.Join(root, "pwmchip0")
	mustMkdir(t, chip)
	mustWrite(t, filepath.Join(chip, "npwm"), strconv.Itoa(npwm)+"\n")
	mustWrite(t, filepath.Join(chip, "export"), "")
	mustWrite(t, filepath.Join(chip, "unexport"), "")
	return root
}

// fakeChannel creates pwmchip0/pwmM the way the kernel does on export, with
// the given initial attribute values. It builds the directory aside and
// renames it into place, so a driver polling for it never sees it half made.
func fakeChannel(t *testing.T, root string, ch int, attrs map[string]string) {
	t.Helper()
	chip := filepath.Join(root, "pwmchip0")
	tmp, err := os.MkdirTemp(chip, ".staging")
	if err != nil {
		t.Error(err)
		return
	}
	base := map[string]string{"period": "0", "duty_cycle": "0", "enable": "0", "polarity": "normal"}
	for k, v := range attrs {
		base[k] = v
	}
	for k, v := range base {
		if err := os.WriteFile(filepath.Join(tmp, k), []byte(v+"\n"), 0o644); err != nil {
			t.Error(err)
		}
	}
	if err := os.Rename(tmp, filepath.Join(chip, "pwm"+strconv.Itoa(ch))); err != nil {
		t.Error(err)
	}
}

// fakeExporter plays the kernel and udev: it watches pwmchip0/export and
// creates the channel written there. If udevDelay is positive, the channel's
// enable file starts read-only and becomes writable after that delay, as
// when udev fixes the group a moment after the kernel creates the files.
// It stops at the end of the test.
func fakeExporter(t *testing.T, root string, udevDelay time.Duration) {
	t.Helper()
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	t.Cleanup(func() {
		close(done)
		wg.Wait()
	})
	go func() {
		defer wg.Done()
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		exported := map[string]bool{}
		for {
			select {
			case <-done:
				return
			case <-tick.C:
			}
			b, err := os.ReadFile(filepath.Join(root, "pwmchip0", "export"))
			s := strings.TrimSpace(string(b))
			if err != nil || s == "" || exported[s] {
				continue
			}
			exported[s] = true
			ch, err := strconv.Atoi(s)
			if err != nil {
				t.Errorf("export got %q", s)
				continue
			}
			fakeChannel(t, root, ch, nil)
			if udevDelay <= 0 {
				continue
			}
			enable := filepath.Join(root, "pwmchip0", "pwm"+s, "enable")
			if err := os.Chmod(enable, 0o444); err != nil {
				t.Error(err)
			}
			select {
			case <-done:
				return
			case <-time.After(udevDelay):
			}
			if err := os.Chmod(enable, 0o644); err != nil {
				t.Error(err)
			}
		}
	}()
}

func mustMkdir(t *testing.T, dir string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
}

func mustWrite(t *testing.T, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

// readOnly makes path read-only for the rest of the test. Root ignores
// permissions, so the test is skipped there.
func readOnly(t *testing.T, path string) {
	t.Helper()
	if os.Geteuid() == 0 {
		t.Skip("root ignores file permissions")
	}
	if err := os.Chmod(path, 0o444); err != nil {
		t.Fatal(err)
	}
	// Windows cannot remove read-only files; restore before TempDir's
	// cleanup, which runs after this one.
	t.Cleanup(func() { os.Chmod(path, 0o644) })
}

// attrs returns the trimmed contents of the channel's attribute files and of
// the chip's export and unexport files.
func attrs(t *testing.T, root string, ch int) map[string]string {
	t.Helper()
	chip := filepath.Join(root, "pwmchip0")
	m := map[string]string{}
	read := func(key, path string) {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		m[key] = strings.TrimSpace(string(b))
	}
	read("export", filepath.Join(chip, "export"))
	read("unexport", filepath.Join(chip, "unexport"))
	for _, a := range []string{"period", "duty_cycle", "enable", "polarity"} {
		read(a, filepath.Join(chip, "pwm"+strconv.Itoa(ch), a))
	}
	return m
}

func checkAttrs(t *testing.T, step, root string, ch int, want map[string]string) {
	t.Helper()
	if diff := cmp.Diff(want, attrs(t, root, ch)); diff != "" {
		t.Errorf("after %s, files (-want +got):\n%s", step, diff)
	}
}

// TestSysfsLifecycle drives a pre-exported channel that a previous user left
// enabled, inversed and at another period, through open, moves, release and
// close.
func TestSysfsLifecycle(t *testing.T) {
	root := fakeChip(t, 2)
	fakeChannel(t, root, 0, map[string]string{"enable": "1", "polarity": "inversed", "period": "10000000", "duty_cycle": "1000000"})
	s, err := SysfsOptions{Root: root}.New(0, 0, Config{})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"export": "", "unexport": "", "period": "20000000", "duty_cycle": "1000000", "enable": "0", "polarity": "normal"}
	checkAttrs(t, "open", root, 0, want)
	if _, holding := s.Angle(); holding {
		t.Error("holding after open")
	}

	if err := s.SetAngle(90 * physic.Degree); err != nil {
		t.Fatal(err)
	}
	want["duty_cycle"], want["enable"] = "1500000", "1"
	checkAttrs(t, "SetAngle(90°)", root, 0, want)

	if err := s.SetAngle(0); err != nil {
		t.Fatal(err)
	}
	want["duty_cycle"] = "600000"
	checkAttrs(t, "SetAngle(0°)", root, 0, want)

	if err := s.SetAngle(181 * physic.Degree); !errors.Is(err, ErrOutOfRange) {
		t.Errorf("SetAngle(181°) = %v, want ErrOutOfRange", err)
	}
	checkAttrs(t, "SetAngle(181°)", root, 0, want)
	if a, holding := s.Angle(); a != 0 || !holding {
		t.Errorf("Angle() = %s, %t; want 0°, true", a, holding)
	}

	if err := s.Release(); err != nil {
		t.Fatal(err)
	}
	want["duty_cycle"], want["enable"] = "0", "0"
	checkAttrs(t, "Release", root, 0, want)

	// A move after Release enables again.
	if err := s.SetAngle(180 * physic.Degree); err != nil {
		t.Fatal(err)
	}
	want["duty_cycle"], want["enable"] = "2400000", "1"
	checkAttrs(t, "SetAngle(180°)", root, 0, want)

	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// Close releases, and leaves a channel it did not export exported.
	want["duty_cycle"], want["enable"] = "0", "0"
	checkAttrs(t, "Close", root, 0, want)

	if err := s.SetAngle(90 * physic.Degree); !errors.Is(err, ErrClosed) {
		t.Errorf("SetAngle after Close = %v, want ErrClosed", err)
	}
	if err := s.Release(); !errors.Is(err, ErrClosed) {
		t.Errorf("Release after Close = %v, want ErrClosed", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close = %v, want nil", err)
	}
	checkAttrs(t, "calls after Close", root, 0, want)
}

func TestSysfsExport(t *testing.T) {
	for _, tc := range []struct {
		name      string
		channel   int
		udevDelay time.Duration
	}{
		{"channel0", 0, 0},
		{"channel1", 1, 0},
		{"udev-delay", 0, 50 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := fakeChip(t, 2)
			fakeExporter(t, root, tc.udevDelay)
			start := time.Now()
			s, err := SysfsOptions{Root: root}.New(0, tc.channel, Config{})
			if err != nil {
				t.Fatal(err)
			}
			if tc.udevDelay > 0 && os.Geteuid() != 0 && time.Since(start) < tc.udevDelay {
				t.Errorf("New returned after %s, before udev made enable writable", time.Since(start))
			}
			ch := strconv.Itoa(tc.channel)
			want := map[string]string{"export": ch, "unexport": "", "period": "20000000", "duty_cycle": "0", "enable": "0", "polarity": "normal"}
			checkAttrs(t, "open", root, tc.channel, want)
			if err := s.SetAngle(45 * physic.Degree); err != nil {
				t.Fatal(err)
			}
			want["duty_cycle"], want["enable"] = "1050000", "1"
			checkAttrs(t, "SetAngle(45°)", root, tc.channel, want)
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			want["duty_cycle"], want["enable"], want["unexport"] = "0", "0", ch
			checkAttrs(t, "Close", root, tc.channel, want)
		})
	}
}

func TestSysfsOpenErrors(t *testing.T) {
	t.Run("missing-chip", func(t *testing.T) {
		root := t.TempDir()
		_, err := SysfsOptions{Root: root}.New(0, 0, Config{})
		if err == nil || !strings.Contains(err.Error(), "dtoverlay=pwm") || !strings.Contains(err.Error(), filepath.Join(root, "pwmchip0")) {
			t.Errorf("err = %v, want the chip path and a dtoverlay hint", err)
		}
		if !strings.HasPrefix(err.Error(), "servo: sysfs: ") || !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("err = %v, want servo: sysfs: prefix wrapping fs.ErrNotExist", err)
		}
	})
	t.Run("channel-beyond-npwm", func(t *testing.T) {
		root := fakeChip(t, 2)
		_, err := SysfsOptions{Root: root}.New(0, 2, Config{})
		if err == nil || !strings.Contains(err.Error(), "2 channels (npwm), so no channel 2") {
			t.Errorf("err = %v, want an npwm error", err)
		}
		checkExportUntouched(t, root)
	})
	t.Run("negative", func(t *testing.T) {
		root := fakeChip(t, 2)
		for _, c := range [][2]int{{-1, 0}, {0, -1}} {
			if _, err := (SysfsOptions{Root: root}).New(c[0], c[1], Config{}); err == nil || !strings.Contains(err.Error(), "negative") {
				t.Errorf("New(%d, %d) = %v, want a negative-index error", c[0], c[1], err)
			}
		}
	})
	t.Run("bad-config", func(t *testing.T) {
		root := fakeChip(t, 2)
		_, err := SysfsOptions{Root: root}.New(0, 0, Config{MinPulse: 2 * time.Millisecond, MaxPulse: time.Millisecond})
		if err == nil || !strings.Contains(err.Error(), "not below maximum pulse") {
			t.Errorf("err = %v, want a config error", err)
		}
		checkExportUntouched(t, root)
	})
	t.Run("export-timeout", func(t *testing.T) {
		root := fakeChip(t, 2)
		start := time.Now()
		_, err := SysfsOptions{Root: root, ExportTimeout: 30 * time.Millisecond}.New(0, 1, Config{})
		if err == nil || !strings.Contains(err.Error(), "did not appear within 30ms") || !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("err = %v, want an export timeout", err)
		}
		if d := time.Since(start); d > time.Second {
			t.Errorf("timeout took %s", d)
		}
		// The failed open undoes its export.
		chip := filepath.Join(root, "pwmchip0")
		for f, want := range map[string]string{"export": "1", "unexport": "1"} {
			if b, _ := os.ReadFile(filepath.Join(chip, f)); string(b) != want {
				t.Errorf("%s = %q, want %q", f, b, want)
			}
		}
	})
	t.Run("export-busy", func(t *testing.T) {
		root := fakeChip(t, 2)
		o := SysfsOptions{Root: root, writeFile: func(path, v string) error {
			if filepath.Base(path) == "export" {
				return &fs.PathError{Op: "write", Path: path, Err: syscall.EBUSY}
			}
			return writeSysfs(path, v)
		}}
		_, err := o.New(0, 0, Config{})
		if err == nil || !strings.Contains(err.Error(), "in use by another driver") || !errors.Is(err, syscall.EBUSY) {
			t.Errorf("err = %v, want an in-use error", err)
		}
		checkExportUntouched(t, root)
	})
	t.Run("missing-attribute", func(t *testing.T) {
		root := fakeChip(t, 2)
		fakeChannel(t, root, 0, nil)
		if err := os.Remove(filepath.Join(root, "pwmchip0", "pwm0", "period")); err != nil {
			t.Fatal(err)
		}
		_, err := SysfsOptions{Root: root}.New(0, 0, Config{})
		if !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("err = %v, want fs.ErrNotExist", err)
		}
		if _, err := os.Stat(filepath.Join(root, "pwmchip0", "pwm0", "period")); err == nil {
			t.Error("the driver created a missing attribute file")
		}
	})
}

func checkExportUntouched(t *testing.T, root string) {
	t.Helper()
	for _, f := range []string{"export", "unexport"} {
		if b, _ := os.ReadFile(filepath.Join(root, "pwmchip0", f)); len(b) != 0 {
			t.Errorf("%s = %q, want it untouched", f, b)
		}
	}
}

// TestSysfsPeriodRetry checks the recovery from a duty cycle longer than the
// new period, which the kernel refuses with EINVAL.
func TestSysfsPeriodRetry(t *testing.T) {
	root := fakeChip(t, 2)
	fakeChannel(t, root, 0, map[string]string{"period": "40000000", "duty_cycle": "30000000"})
	var writes []string
	o := SysfsOptions{Root: root, writeFile: func(path, v string) error {
		writes = append(writes, filepath.Base(path)+"="+v)
		if filepath.Base(path) == "period" {
			b, err := os.ReadFile(filepath.Join(filepath.Dir(path), "duty_cycle"))
			if err != nil {
				return err
			}
			duty, _ := strconv.Atoi(strings.TrimSpace(string(b)))
			if period, _ := strconv.Atoi(v); period < duty {
				return &fs.PathError{Op: "write", Path: path, Err: syscall.EINVAL}
			}
		}
		return writeSysfs(path, v)
	}}
	s, err := o.New(0, 0, Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if diff := cmp.Diff([]string{"period=20000000", "duty_cycle=0", "period=20000000"}, writes); diff != "" {
		t.Errorf("writes (-want +got):\n%s", diff)
	}
	checkAttrs(t, "open", root, 0, map[string]string{"export": "", "unexport": "", "period": "20000000", "duty_cycle": "0", "enable": "0", "polarity": "normal"})
}

// TestSysfsNoPolarity covers controllers without a polarity attribute.
func TestSysfsNoPolarity(t *testing.T) {
	root := fakeChip(t, 1)
	fakeChannel(t, root, 0, nil)
	pol := filepath.Join(root, "pwmchip0", "pwm0", "polarity")
	if err := os.Remove(pol); err != nil {
		t.Fatal(err)
	}
	s, err := SysfsOptions{Root: root}.New(0, 0, Config{Frequency: 100 * physic.Hertz})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if b, _ := os.ReadFile(filepath.Join(root, "pwmchip0", "pwm0", "period")); string(b) != "10000000" {
		t.Errorf("period = %q, want 10000000", b)
	}
	if _, err := os.Stat(pol); err == nil {
		t.Error("polarity was created")
	}
}

func TestSysfsPermission(t *testing.T) {
	t.Run("open", func(t *testing.T) {
		root := fakeChip(t, 2)
		fakeChannel(t, root, 0, nil)
		period := filepath.Join(root, "pwmchip0", "pwm0", "period")
		readOnly(t, period)
		_, err := SysfsOptions{Root: root}.New(0, 0, Config{})
		if err == nil || !strings.Contains(err.Error(), period) || !strings.Contains(err.Error(), "group gpio") || !errors.Is(err, fs.ErrPermission) {
			t.Errorf("err = %v, want a permission error naming %s and group gpio", err, period)
		}
	})
	t.Run("SetAngle", func(t *testing.T) {
		root := fakeChip(t, 2)
		fakeChannel(t, root, 0, nil)
		duty := filepath.Join(root, "pwmchip0", "pwm0", "duty_cycle")
		readOnly(t, duty)
		s, err := SysfsOptions{Root: root}.New(0, 0, Config{})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		err = s.SetAngle(90 * physic.Degree)
		if err == nil || !strings.HasPrefix(err.Error(), "servo: sysfs: ") || !strings.Contains(err.Error(), duty) || !strings.Contains(err.Error(), "group gpio") || !errors.Is(err, fs.ErrPermission) {
			t.Errorf("err = %v, want a permission error naming %s and group gpio", err, duty)
		}
		if _, holding := s.Angle(); holding {
			t.Error("holding after a failed SetAngle")
		}
	})
	t.Run("export-udev-never", func(t *testing.T) {
		root := fakeChip(t, 2)
		if os.Geteuid() == 0 {
			t.Skip("root ignores file permissions")
		}
		fakeExporter(t, root, time.Hour)
		_, err := SysfsOptions{Root: root, ExportTimeout: 50 * time.Millisecond}.New(0, 0, Config{})
		if err == nil || !strings.Contains(err.Error(), "not writable 50ms after export") || !strings.Contains(err.Error(), "group gpio") {
			t.Errorf("err = %v, want a permission timeout", err)
		}
		// Windows cannot remove read-only files.
		os.Chmod(filepath.Join(root, "pwmchip0", "pwm0", "enable"), 0o644)
	})
}

func TestParseSysfsSpec(t *testing.T) {
	def := Config{}.WithDefaults()
	for _, tc := range []struct {
		arg           string
		chip, channel int
		cfg           Config
		err           string // substring; empty means success
	}{
		{arg: "pwmchip0/1", chip: 0, channel: 1, cfg: def},
		{arg: "0/1", chip: 0, channel: 1, cfg: def},
		{arg: "pwmchip2/0", chip: 2, channel: 0, cfg: def},
		{arg: "0/1?min=1ms&max=2ms", chip: 0, channel: 1, cfg: Config{MinPulse: time.Millisecond, MaxPulse: 2 * time.Millisecond}.WithDefaults()},
		{arg: "pwmchip0/0?angles=-90..90&reverse=true", cfg: Config{MinAngle: -90 * physic.Degree, MaxAngle: 90 * physic.Degree, Reverse: true}.WithDefaults()},
		{arg: "pwmchip0", err: "want sysfs:pwmchipN/M[?options]"},
		{arg: "", err: "want sysfs:pwmchipN/M[?options]"},
		{arg: "x/1", err: "want sysfs:pwmchipN/M[?options]"},
		{arg: "0/x", err: "want sysfs:pwmchipN/M[?options]"},
		{arg: "0/1/2", err: "want sysfs:pwmchipN/M[?options]"},
		{arg: "-1/0", err: "want sysfs:pwmchipN/M[?options]"},
		{arg: "+1/0", err: "want sysfs:pwmchipN/M[?options]"},
		{arg: "0/ 1", err: "want sysfs:pwmchipN/M[?options]"},
		{arg: "pwmchip/0", err: "want sysfs:pwmchipN/M[?options]"},
		{arg: "0/1?bogus=1", err: `unknown option "bogus"`},
		{arg: "0/1?min=1x", err: `option min="1x"`},
		{arg: "0/1?min=0.1ms", err: "outside the safe"},
	} {
		chip, channel, cfg, err := parseSysfsSpec(tc.arg)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("parseSysfsSpec(%q) = %v, want error containing %q", tc.arg, err, tc.err)
			}
			if !strings.HasPrefix(err.Error(), "servo: ") {
				t.Errorf("parseSysfsSpec(%q) = %v, want servo: prefix", tc.arg, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("parseSysfsSpec(%q): %v", tc.arg, err)
			continue
		}
		if chip != tc.chip || channel != tc.channel {
			t.Errorf("parseSysfsSpec(%q) = chip %d channel %d, want %d %d", tc.arg, chip, channel, tc.chip, tc.channel)
		}
		if diff := cmp.Diff(tc.cfg, cfg); diff != "" {
			t.Errorf("parseSysfsSpec(%q) config (-want +got):\n%s", tc.arg, diff)
		}
	}
}

func TestOpenSysfsSpec(t *testing.T) {
	root := fakeChip(t, 2)
	fakeChannel(t, root, 1, nil)
	d, err := SysfsOptions{Root: root}.open("pwmchip0/1?min=1ms&max=2ms")
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if err := d.SetAngle(90 * physic.Degree); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(root, "pwmchip0", "pwm1", "duty_cycle")); string(b) != "1500000" {
		t.Errorf("duty_cycle = %q, want 1500000", b)
	}
	if err := d.SetAngle(0); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(root, "pwmchip0", "pwm1", "duty_cycle")); string(b) != "1000000" {
		t.Errorf("duty_cycle = %q, want 1000000", b)
	}
	if _, err := (SysfsOptions{Root: root}).open("pwmchip0"); err == nil {
		t.Error("open(pwmchip0) succeeded")
	}
}

func TestDetectSysfs(t *testing.T) {
	root := t.TempDir()
	if arg, ok := detectSysfs(root); ok {
		t.Errorf("detectSysfs(empty) = %q, true", arg)
	}
	root = fakeChip(t, 2)
	if arg, ok := detectSysfs(root); !ok || arg != "pwmchip0/0" {
		t.Errorf("detectSysfs = %q, %t; want pwmchip0/0, true", arg, ok)
	}
	checkExportUntouched(t, root)
}

func FuzzSysfsSpec(f *testing.F) {
	for _, s := range []string{
		"pwmchip0/0", "0/1", "pwmchip1/1?min=1ms&max=2ms", "0/0?angles=-90..90&freq=60Hz&reverse=1&wide=false",
		"", "pwmchip0", "x/1", "0/1?bogus=1", "0/1?min=1ms&min=2ms", "/", "pwmchip/", "0/1?%zz", "999999999/999999999",
		"-0/0", "0/1?angles=..", "pwmchippwmchip0/0",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, arg string) {
		chip, channel, cfg, err := parseSysfsSpec(arg)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "servo: ") {
				t.Errorf("parseSysfsSpec(%q) error %q lacks the servo: prefix", arg, err)
			}
			return
		}
		if chip < 0 || channel < 0 {
			t.Errorf("parseSysfsSpec(%q) = chip %d channel %d", arg, chip, channel)
		}
		if err := cfg.Validate(); err != nil {
			t.Errorf("parseSysfsSpec(%q) accepted an invalid config: %v", arg, err)
		}
	})
}
