package irlamp

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// Features of a gpio-ir-tx device: send pulses, set carrier and duty cycle.
const gpioIRTXFeatures = lircCanSendPulse | lircCanSetSendCarrier | lircCanSetSendDutyCycle

// fakeLircDev is a lirc device that records what the driver does to it.
type fakeLircDev struct {
	feat        uint32
	featErr     error
	scancodeErr error // from setSendMode(lircModeScancode): EINVAL before Linux 4.16
	pulseErr    error // from setSendMode(lircModePulse)
	writeErr    error
	onWrite     func(n int) // called after each write, with the count so far
	writeTime   time.Duration

	mu      sync.Mutex
	log     []string
	writes  [][]byte
	closed  int
	busy    atomic.Int32
	overlap atomic.Bool
}

func (d *fakeLircDev) record(s string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.log = append(d.log, s)
}

func (d *fakeLircDev) features() (uint32, error) {
	d.record("features")
	return d.feat, d.featErr
}

func (d *fakeLircDev) setSendMode(mode uint32) error {
	d.record(fmt.Sprintf("mode %d", mode))
	switch mode {
	case lircModeScancode:
		return d.scancodeErr
	case lircModePulse:
		return d.pulseErr
	}
	return syscall.EINVAL
}

func (d *fakeLircDev) setCarrier(hz uint32) error {
	d.record(fmt.Sprintf("carrier %d", hz))
	return nil
}

func (d *fakeLircDev) setDutyCycle(percent uint32) error {
	d.record(fmt.Sprintf("duty %d", percent))
	return nil
}

func (d *fakeLircDev) write(b []byte) error {
	if d.busy.Add(1) > 1 {
		d.overlap.Store(true)
	}
	defer d.busy.Add(-1)
	time.Sleep(d.writeTime)
	d.record(fmt.Sprintf("write %d", len(b)))
	if d.writeErr != nil {
		return d.writeErr
	}
	d.mu.Lock()
	d.writes = append(d.writes, slices.Clone(b))
	n := len(d.writes)
	d.mu.Unlock()
	if d.onWrite != nil {
		d.onWrite(n)
	}
	return nil
}

func (d *fakeLircDev) close() error {
	d.record("close")
	d.mu.Lock()
	defer d.mu.Unlock()
	d.closed++
	return nil
}

func (d *fakeLircDev) getLog() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.log)
}

func (d *fakeLircDev) getWrites() [][]byte {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.writes)
}

// newFakeLirc opens a Lirc on dev.
func newFakeLirc(t *testing.T, dev *fakeLircDev, opts LircOptions) *Lirc {
	t.Helper()
	opts.open = func(string) (lircDev, error) { return dev, nil }
	l, err := NewLirc("/dev/lirc0", opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// pulseBytes is what a pulse-mode write of p must be: unsigned ints in the
// machine's byte order.
func pulseBytes(p []uint32) []byte {
	var b []byte
	for _, v := range p {
		b = binary.NativeEndian.AppendUint32(b, v)
	}
	return b
}

func TestLircPulseMode(t *testing.T) {
	// A kernel before 4.16: scancode mode refused, as ir-ctl finds it.
	dev := &fakeLircDev{feat: gpioIRTXFeatures, scancodeErr: syscall.EINVAL}
	l := newFakeLirc(t, dev, LircOptions{})
	r := LED24Key()
	if err := l.Send(context.Background(), r, "RED", 0); err != nil {
		t.Fatal(err)
	}
	want, err := r.Pulses("RED")
	if err != nil {
		t.Fatal(err)
	}
	w := dev.getWrites()
	if len(w) != 1 || !bytes.Equal(w[0], pulseBytes(want)) {
		t.Fatalf("wrote %v, want the %d pulses of RED", w, len(want))
	}
	// Read back as the kernel does, the write is RED: 0xEF00, command 4.
	got := make([]uint32, len(w[0])/4)
	for i := range got {
		got[i] = binary.NativeEndian.Uint32(w[0][4*i:])
	}
	if addr, cmd, err := DecodeNEC(got); err != nil || addr != 0xEF00 || cmd != 0x04 {
		t.Errorf("written pulses decode as %#04x %#02x, %v", addr, cmd, err)
	}
	wantLog := []string{"features", "mode 8", "mode 2", "carrier 38000", fmt.Sprintf("write %d", 4*len(want))}
	if got := dev.getLog(); !slices.Equal(got, wantLog) {
		t.Errorf("device calls %q, want %q", got, wantLog)
	}
}

func TestLircScancodeMode(t *testing.T) {
	dev := &fakeLircDev{feat: gpioIRTXFeatures}
	l := newFakeLirc(t, dev, LircOptions{})
	ctx := context.Background()
	for _, key := range []string{"RED", "ON"} {
		if err := l.Send(ctx, LED24Key(), key, 0); err != nil {
			t.Fatal(err)
		}
	}
	// struct lirc_scancode: timestamp, flags, rc_proto, keycode, scancode.
	want := func(scancode uint64) []byte {
		b := make([]byte, 24)
		binary.NativeEndian.PutUint16(b[10:], 10) // RC_PROTO_NECX
		binary.NativeEndian.PutUint64(b[16:], scancode)
		return b
	}
	w := dev.getWrites()
	if len(w) != 2 || !bytes.Equal(w[0], want(0x00ef04)) || !bytes.Equal(w[1], want(0x00ef03)) {
		t.Errorf("wrote %x, want scancodes 0x00ef04 and 0x00ef03", w)
	}
	// The carrier is the kernel's business in scancode mode, and the mode
	// is set once.
	wantLog := []string{"features", "mode 8", "mode 2", "mode 8", "write 24", "write 24"}
	if got := dev.getLog(); !slices.Equal(got, wantLog) {
		t.Errorf("device calls %q, want %q", got, wantLog)
	}

	// A key without a scancode goes as pulses, at its remote's carrier.
	raw := rawTestRemote(t)
	if err := l.Send(ctx, raw, "K", 0); err != nil {
		t.Fatal(err)
	}
	p, _ := raw.Pulses("K")
	if w := dev.getWrites(); !bytes.Equal(w[2], pulseBytes(p)) {
		t.Errorf("wrote %x for a raw key, want its pulses %v", w[2], p)
	}
	wantLog = append(wantLog, "mode 2", "carrier 36000", "write 12")
	if got := dev.getLog(); !slices.Equal(got, wantLog) {
		t.Errorf("device calls %q, want %q", got, wantLog)
	}
}

// rawTestRemote is a remote whose key has no NECX scancode.
func rawTestRemote(t *testing.T) *Remote {
	t.Helper()
	rs, err := ParseLircdConf(strings.NewReader(`
begin remote
  name  RAW_TEST
  flags RAW_CODES
  frequency 36000
  gap 30000
  begin raw_codes
    name K
      900 450 900
  end raw_codes
end remote
`))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := rs[0].NECX("K"); ok {
		t.Fatal("raw key has an NECX scancode")
	}
	return rs[0]
}

func TestLircPulsesOption(t *testing.T) {
	dev := &fakeLircDev{feat: gpioIRTXFeatures}
	l := newFakeLirc(t, dev, LircOptions{Pulses: true})
	if err := l.Send(context.Background(), LED24Key(), "RED", 0); err != nil {
		t.Fatal(err)
	}
	if slices.Contains(dev.getLog(), "mode 8") {
		t.Errorf("scancode mode used with Pulses set: %q", dev.getLog())
	}
	p, _ := LED24Key().Pulses("RED")
	if w := dev.getWrites(); len(w) != 1 || !bytes.Equal(w[0], pulseBytes(p)) {
		t.Errorf("wrote %x, want RED's pulses", w)
	}
}

func TestLircRepeats(t *testing.T) {
	for _, scancode := range []bool{false, true} {
		dev := &fakeLircDev{feat: gpioIRTXFeatures}
		if !scancode {
			dev.scancodeErr = syscall.EINVAL
		}
		l := newFakeLirc(t, dev, LircOptions{})
		r := LED24Key()
		start := time.Now()
		if err := l.Send(context.Background(), r, "GREEN", 2); err != nil {
			t.Fatal(err)
		}
		// The device returns at once here; the gaps remain.
		if d := time.Since(start); d < 2*r.Gap() {
			t.Errorf("3 codes took %s, less than two gaps (%s)", d, 2*r.Gap())
		}
		w := dev.getWrites()
		if len(w) != 3 || !bytes.Equal(w[0], w[1]) || !bytes.Equal(w[1], w[2]) {
			t.Errorf("scancode %v: wrote %d codes, want 3 identical", scancode, len(w))
		}
	}
}

func TestLircContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dev := &fakeLircDev{feat: gpioIRTXFeatures, onWrite: func(n int) {
		if n == 1 {
			cancel()
		}
	}}
	l := newFakeLirc(t, dev, LircOptions{})
	err := l.Send(ctx, LED24Key(), "BLUE", 5)
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "after 1 of 6") {
		t.Errorf("Send = %v, want context.Canceled after the first code", err)
	}
	if n := len(dev.getWrites()); n != 1 {
		t.Errorf("%d codes written, want 1", n)
	}
	if err := l.Send(ctx, LED24Key(), "BLUE", 0); !errors.Is(err, context.Canceled) {
		t.Errorf("Send with a cancelled context = %v", err)
	}
	if n := len(dev.getWrites()); n != 1 {
		t.Errorf("%d codes written, want 1", n)
	}
}

func TestLircDutyCycle(t *testing.T) {
	dev := &fakeLircDev{feat: gpioIRTXFeatures, scancodeErr: syscall.EINVAL}
	l := newFakeLirc(t, dev, LircOptions{DutyCycle: 33})
	if err := l.Send(context.Background(), LED24Key(), "RED", 0); err != nil {
		t.Fatal(err)
	}
	want := []string{"features", "mode 8", "mode 2", "duty 33", "carrier 38000", "duty 33", "write 268"}
	if got := dev.getLog(); !slices.Equal(got, want) {
		t.Errorf("device calls %q, want %q", got, want)
	}
}

func TestLircOpenErrors(t *testing.T) {
	pathErr := func(errno syscall.Errno) error {
		return &fs.PathError{Op: "open", Path: "/dev/lirc0", Err: errno}
	}
	for _, c := range []struct {
		name    string
		openErr error
		dev     *fakeLircDev
		opts    LircOptions
		want    []string
		is      error
	}{
		{"missing", pathErr(syscall.ENOENT), nil, LircOptions{}, []string{"/dev/lirc0 not found", "dtoverlay=gpio-ir-tx,gpio_pin=18"}, fs.ErrNotExist},
		{"permission", pathErr(syscall.EACCES), nil, LircOptions{}, []string{"/dev/lirc0", "group video"}, fs.ErrPermission},
		{"not lirc", nil, &fakeLircDev{featErr: syscall.ENOTTY}, LircOptions{}, []string{"/dev/lirc0", "not a lirc device"}, syscall.ENOTTY},
		{"receiver", nil, &fakeLircDev{feat: 0x00040000}, LircOptions{}, []string{"has no IR transmitter", "receiver", "dtoverlay=gpio-ir-tx,gpio_pin=18"}, nil},
		{"nothing", nil, &fakeLircDev{}, LircOptions{}, []string{"has no IR transmitter"}, nil},
		{"pulse mode", nil, &fakeLircDev{feat: gpioIRTXFeatures, pulseErr: syscall.EIO}, LircOptions{}, []string{"LIRC_SET_SEND_MODE pulse"}, syscall.EIO},
		{"scancode mode", nil, &fakeLircDev{feat: gpioIRTXFeatures, scancodeErr: syscall.EIO}, LircOptions{}, []string{"LIRC_SET_SEND_MODE scancode"}, syscall.EIO},
		{"no duty", nil, &fakeLircDev{feat: lircCanSendPulse | lircCanSetSendCarrier}, LircOptions{DutyCycle: 25}, []string{"cannot set the duty cycle"}, nil},
		{"bad duty", nil, nil, LircOptions{DutyCycle: 100}, []string{"duty cycle 100%"}, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			opened := false
			c.opts.open = func(string) (lircDev, error) {
				opened = true
				if c.openErr != nil {
					return nil, c.openErr
				}
				if c.dev == nil {
					t.Fatal("device opened")
				}
				return c.dev, nil
			}
			_, err := NewLirc("", c.opts)
			if err == nil {
				t.Fatal("NewLirc succeeded")
			}
			if !strings.HasPrefix(err.Error(), "irlamp: lirc: ") {
				t.Errorf("error %q lacks the prefix", err)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if c.is != nil && !errors.Is(err, c.is) {
				t.Errorf("error %q does not wrap %v", err, c.is)
			}
			if c.dev != nil && c.dev.closed != 1 {
				t.Errorf("device closed %d times after a failed open, want 1", c.dev.closed)
			}
			if c.name == "bad duty" && opened {
				t.Error("device opened despite a bad option")
			}
		})
	}
}

func TestLircSendErrors(t *testing.T) {
	dev := &fakeLircDev{feat: gpioIRTXFeatures, scancodeErr: syscall.EINVAL}
	l := newFakeLirc(t, dev, LircOptions{})
	ctx := context.Background()

	if err := l.Send(ctx, LED24Key(), "NO_SUCH_KEY", 0); !errors.Is(err, ErrUnknownKey) {
		t.Errorf("Send(unknown key) = %v, want ErrUnknownKey", err)
	}
	if err := l.Send(ctx, nil, "RED", 0); err == nil {
		t.Error("Send with a nil remote succeeded")
	}
	if err := l.Send(ctx, LED24Key(), "RED", -1); err == nil {
		t.Error("Send with -1 repeats succeeded")
	}
	if n := len(dev.getWrites()); n != 0 {
		t.Errorf("%d writes for refused sends", n)
	}

	dev.writeErr = syscall.EINVAL
	err := l.Send(ctx, LED24Key(), "RED", 0)
	if !errors.Is(err, syscall.EINVAL) || !strings.Contains(err.Error(), "refused the 67-value signal") {
		t.Errorf("Send with a refusing kernel = %v", err)
	}

	sdev := &fakeLircDev{feat: gpioIRTXFeatures, writeErr: syscall.EINVAL}
	sl := newFakeLirc(t, sdev, LircOptions{})
	if err := sl.Send(ctx, LED24Key(), "RED", 0); !errors.Is(err, syscall.EINVAL) || !strings.Contains(err.Error(), "?mode=pulse") {
		t.Errorf("Send of a refused scancode = %v", err)
	}
	if err := sl.Send(ctx, LED24Key(), "NO_SUCH_KEY", 0); !errors.Is(err, ErrUnknownKey) {
		t.Errorf("Send(unknown key) in scancode mode = %v, want ErrUnknownKey", err)
	}
}

func TestLircClose(t *testing.T) {
	dev := &fakeLircDev{feat: gpioIRTXFeatures}
	l := newFakeLirc(t, dev, LircOptions{})
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Errorf("second Close = %v", err)
	}
	if dev.closed != 1 {
		t.Errorf("device closed %d times, want 1", dev.closed)
	}
	if err := l.Send(context.Background(), LED24Key(), "RED", 0); !errors.Is(err, ErrClosed) {
		t.Errorf("Send after Close = %v, want ErrClosed", err)
	}
}

func TestLircConcurrentSends(t *testing.T) {
	dev := &fakeLircDev{feat: gpioIRTXFeatures, writeTime: time.Millisecond}
	l := newFakeLirc(t, dev, LircOptions{})
	raw := rawTestRemote(t)
	var wg sync.WaitGroup
	for g := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 5 {
				r, key := LED24Key(), "RED"
				if (g+i)%2 == 0 {
					r, key = raw, "K"
				}
				if err := l.Send(context.Background(), r, key, 0); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	if dev.overlap.Load() {
		t.Error("two writes overlapped")
	}
	if n := len(dev.getWrites()); n != 30 {
		t.Errorf("%d writes, want 30", n)
	}
	// Each write was in the mode its bytes need.
	mode := uint32(0)
	for _, e := range dev.getLog() {
		switch {
		case e == "mode 2":
			mode = lircModePulse
		case e == "mode 8":
			mode = lircModeScancode
		case e == "write 24" && mode != lircModeScancode, e == "write 12" && mode != lircModePulse:
			t.Fatalf("%s in mode %d: %q", e, mode, dev.getLog())
		}
	}
}

func TestEncodeLircPulses(t *testing.T) {
	b, err := encodeLircPulses([]uint32{9000, 4500, 560})
	if err != nil || !bytes.Equal(b, pulseBytes([]uint32{9000, 4500, 560})) {
		t.Errorf("encodeLircPulses = %x, %v", b, err)
	}
	long := make([]uint32, maxLircPulses+2)
	for i := range long {
		long[i] = 100
	}
	for name, p := range map[string][]uint32{
		"empty":    nil,
		"even":     {9000, 4500},
		"zero":     {9000, 0, 560},
		"too many": long,
		"too long": {300000, 1000, 300000},
	} {
		if _, err := encodeLircPulses(p); err == nil {
			t.Errorf("encodeLircPulses(%s) succeeded", name)
		}
	}
	if _, err := encodeLircPulses(long[:maxLircPulses]); err != nil {
		t.Errorf("encodeLircPulses(%d values) = %v", maxLircPulses, err)
	}
}

func TestEncodeLircScancode(t *testing.T) {
	b := encodeLircScancode(rcProtoNECX, 0x00ef03)
	if len(b) != 24 {
		t.Fatalf("%d bytes, want sizeof(struct lirc_scancode) = 24", len(b))
	}
	// On a little-endian machine, such as every Raspberry Pi:
	want := []byte{
		0, 0, 0, 0, 0, 0, 0, 0, // timestamp
		0, 0, // flags
		10, 0, // rc_proto = RC_PROTO_NECX
		0, 0, 0, 0, // keycode
		0x03, 0xef, 0x00, 0, 0, 0, 0, 0, // scancode
	}
	if binary.NativeEndian.Uint16([]byte{1, 0}) == 1 && !bytes.Equal(b, want) {
		t.Errorf("encodeLircScancode = % x, want % x", b, want)
	}
}

func TestParseLircSpec(t *testing.T) {
	for _, c := range []struct {
		arg, path string
		pulses    bool
		duty      int
	}{
		{"", DefaultLircDevice, false, 0},
		{"/dev/lirc1", "/dev/lirc1", false, 0},
		{"/dev/lirc-tx?mode=pulse", "/dev/lirc-tx", true, 0},
		{"?duty=33", DefaultLircDevice, false, 33},
		{"/dev/lirc0?mode=auto&duty=50%25", "/dev/lirc0", false, 50},
	} {
		path, opts, err := parseLircSpec(c.arg)
		if err != nil || path != c.path || opts.Pulses != c.pulses || opts.DutyCycle != c.duty {
			t.Errorf("parseLircSpec(%q) = %q, %+v, %v", c.arg, path, opts, err)
		}
	}
	for _, arg := range []string{"?mode=scancode", "?duty=0", "?duty=100", "?duty=-5", "?duty=x", "?carrier=38000", "?duty=1&duty=2"} {
		if _, _, err := parseLircSpec(arg); err == nil {
			t.Errorf("parseLircSpec(%q) succeeded", arg)
		} else if !strings.HasPrefix(err.Error(), "irlamp: lirc: ") {
			t.Errorf("parseLircSpec(%q) error %q lacks the prefix", arg, err)
		}
	}
}

func TestLircOpenSpec(t *testing.T) {
	dev := &fakeLircDev{feat: gpioIRTXFeatures}
	var opened string
	o := LircOptions{open: func(path string) (lircDev, error) {
		opened = path
		return dev, nil
	}}
	tx, err := o.openSpec("/dev/lirc1?mode=pulse&duty=40")
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Close()
	if opened != "/dev/lirc1" {
		t.Errorf("opened %q, want /dev/lirc1", opened)
	}
	if err := tx.Send(context.Background(), LED24Key(), "RED", 0); err != nil {
		t.Fatal(err)
	}
	want := []string{"features", "mode 2", "duty 40", "carrier 38000", "duty 40", "write 268"}
	if got := dev.getLog(); !slices.Equal(got, want) {
		t.Errorf("device calls %q, want %q", got, want)
	}
}

func TestDetectLirc(t *testing.T) {
	probe := func(m map[string]any) func(string) (uint32, error) {
		return func(p string) (uint32, error) {
			switch v := m[p].(type) {
			case uint32:
				return v, nil
			case error:
				return 0, v
			}
			return 0, &fs.PathError{Op: "stat", Path: p, Err: syscall.ENOENT}
		}
	}
	paths := []string{"/dev/lirc0", "/dev/lirc1", "/dev/lirc2"}
	for _, c := range []struct {
		name string
		devs map[string]any
		want string
	}{
		{"none", map[string]any{}, ""},
		{"tx at 0", map[string]any{"/dev/lirc0": uint32(gpioIRTXFeatures)}, "/dev/lirc0"},
		{"receiver first", map[string]any{"/dev/lirc0": uint32(0x00040000), "/dev/lirc1": uint32(lircCanSendPulse)}, "/dev/lirc1"},
		{"receiver only", map[string]any{"/dev/lirc0": uint32(0x00040000)}, ""},
		{"not lirc", map[string]any{"/dev/lirc0": syscall.ENOTTY}, ""},
		{"denied", map[string]any{"/dev/lirc1": &fs.PathError{Op: "open", Path: "/dev/lirc1", Err: syscall.EACCES}}, "/dev/lirc1"},
		{"tx beats denied", map[string]any{"/dev/lirc0": fs.ErrPermission, "/dev/lirc2": uint32(lircCanSendPulse)}, "/dev/lirc2"},
	} {
		got, ok := detectLirc(paths, probe(c.devs), func() bool { return false })
		if got != c.want || ok != (c.want != "") {
			t.Errorf("%s: detectLirc = %q, %v; want %q", c.name, got, ok, c.want)
		}
	}
	// With lircd running, a device the user may not open is lircd's.
	denied := map[string]any{"/dev/lirc0": fs.ErrPermission}
	if got, ok := detectLirc(paths, probe(denied), func() bool { return true }); ok {
		t.Errorf("detectLirc chose %q, which the user may not open, over lircd", got)
	}
	tx := map[string]any{"/dev/lirc0": uint32(lircCanSendPulse)}
	if got, ok := detectLirc(paths, probe(tx), func() bool { return true }); !ok || got != "/dev/lirc0" {
		t.Errorf("detectLirc with lircd running = %q, %v; want /dev/lirc0 (the direct path)", got, ok)
	}
}

// TestLircRealFiles opens files that are not lirc devices through the real
// system calls (Linux only).
func TestLircRealFiles(t *testing.T) {
	if openLircDevice == nil {
		t.Skip("no /dev/lirc support on this OS")
	}
	file := filepath.Join(t.TempDir(), "lirc0")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ path, want string }{
		{file, "not a character device"},
		{"/dev/null", "not a lirc device"},
		{filepath.Join(t.TempDir(), "lirc9"), "dtoverlay=gpio-ir-tx,gpio_pin=18"},
	} {
		if _, err := os.Stat(c.path); c.path == "/dev/null" && err != nil {
			continue
		}
		_, err := NewLirc(c.path, LircOptions{})
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), c.path) {
			t.Errorf("NewLirc(%s) = %v, want an error naming it and saying %q", c.path, err, c.want)
		}
	}
}

func TestLircWithoutDevices(t *testing.T) {
	saved := openLircDevice
	openLircDevice = nil
	defer func() { openLircDevice = saved }()
	if _, err := NewLirc("", LircOptions{}); err == nil || !strings.Contains(err.Error(), "only on Linux") {
		t.Errorf("NewLirc without /dev/lirc support = %v", err)
	}
}
