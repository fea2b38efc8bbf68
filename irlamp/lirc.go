package irlamp

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"runtime"
	"sync"
	"syscall"
	"time"

	"github.com/pikit/pikit/internal/devspec"
)

// This file is the logic of the /dev/lirc driver: which send mode to use,
// how a key becomes the bytes written, and the repeat loop. It talks to the
// device through lircDev, which lirc_linux.go implements with ioctls, so
// that the logic is tested everywhere against a fake device.

const (
	// DefaultLircDevice is the first lirc device: the transmitter when
	// gpio-ir-tx is the only IR overlay.
	DefaultLircDevice = "/dev/lirc0"

	// Send modes and features from linux/lirc.h.
	lircModePulse           = 0x00000002 // LIRC_MODE_PULSE
	lircModeScancode        = 0x00000008 // LIRC_MODE_SCANCODE
	lircCanSendPulse        = 0x00000002 // LIRC_CAN_SEND_PULSE
	lircCanSetSendCarrier   = 0x00000100 // LIRC_CAN_SET_SEND_CARRIER
	lircCanSetSendDutyCycle = 0x00000200 // LIRC_CAN_SET_SEND_DUTY_CYCLE
	lircCanRecMask          = 0x003f0000 // LIRC_CAN_REC_MASK

	// rcProtoNECX is RC_PROTO_NECX of enum rc_proto (linux/lirc.h).
	rcProtoNECX = 10
	// lircScancodeSize is sizeof(struct lirc_scancode): u64 timestamp, u16
	// flags, u16 rc_proto, u32 keycode, u64 scancode, without padding on
	// every architecture.
	lircScancodeSize = 24

	// maxLircPulses is the most values the kernel takes in one pulse-mode
	// write (LIRCBUF_SIZE is 1024, and the count must be odd).
	maxLircPulses = 1023
	// maxLircDuration is the longest signal the kernel transmits in one
	// write (IR_MAX_DURATION).
	maxLircDuration = 500 * time.Millisecond

	lircUsage = "lirc[:/dev/lircN][?mode=pulse&duty=PERCENT]"

	// lircOverlayHint says how to get a transmitter on a Raspberry Pi.
	lircOverlayHint = "add \"dtoverlay=gpio-ir-tx,gpio_pin=18\" (the GPIO of the IR LED's driver transistor) to /boot/firmware/config.txt and reboot"
	// lircPermHint ends permission errors.
	lircPermHint = "add the user to group video (Raspberry Pi OS gives that group /dev/lirc*; check with ls -l) or run as root"
)

// LircOptions configures a /dev/lirc transmitter. The zero value is the
// defaults.
type LircOptions struct {
	// Pulses sends every key as the remote's pulses, in the remote's own
	// timing. By default a key with an NECX scancode (see Remote.NECX) is
	// handed to the kernel's NEC encoder instead, where the kernel has one
	// (Linux 4.16 and later); the signal is the same for LED24Key.
	Pulses bool
	// DutyCycle is the carrier's duty cycle in percent (1 to 99); 0 leaves
	// the driver's (gpio-ir-tx: 50). A lower duty cycle saves LED current
	// at some range. Setting it on a device that cannot is an error.
	DutyCycle int

	// open replaces openLircDevice in tests.
	open func(path string) (lircDev, error)
}

// lircDev is a lirc device as the driver needs it. Errors are the kernel's
// errno values (syscall.Errno), which the driver explains.
type lircDev interface {
	// features returns LIRC_GET_FEATURES.
	features() (uint32, error)
	// setSendMode sets LIRC_SET_SEND_MODE (per open file).
	setSendMode(mode uint32) error
	// setCarrier sets LIRC_SET_SEND_CARRIER in Hz (per device).
	setCarrier(hz uint32) error
	// setDutyCycle sets LIRC_SET_SEND_DUTY_CYCLE in percent (per device).
	setDutyCycle(percent uint32) error
	// write transmits one buffer; it returns once the signal is sent.
	write(b []byte) error
	// close closes the device.
	close() error
}

// openLircDevice opens a real device; lirc_linux.go sets it. It stays nil
// on systems without /dev/lirc.
var openLircDevice func(path string) (lircDev, error)

// Lirc is a Transmitter that drives a kernel IR transmitter directly through
// /dev/lircN, in pure Go: no lircd, no cgo. On a Raspberry Pi the device
// comes from the gpio-ir-tx overlay (dtoverlay=gpio-ir-tx,gpio_pin=18).
//
// Lirc is safe for concurrent use; sends are serialised. A transmission
// cannot be interrupted once written to the device (an NEC code takes
// 68 ms), so ctx is honoured between repeats.
type Lirc struct {
	path       string
	duty       uint32
	pulsesOnly bool

	mu       sync.Mutex // serialises sends and guards the fields below
	dev      lircDev    // nil after Close
	features uint32
	scancode bool   // the kernel accepted LIRC_MODE_SCANCODE at open
	mode     uint32 // the send mode set on dev
}

var _ Transmitter = (*Lirc)(nil)

// NewLirc opens a lirc device (DefaultLircDevice when path is empty) for
// sending. It fails early, with the fix, when the device is missing, not
// accessible, not a lirc device, or a receiver without a transmitter. It
// never transmits.
func NewLirc(path string, opts LircOptions) (*Lirc, error) {
	if path == "" {
		path = DefaultLircDevice
	}
	if opts.DutyCycle < 0 || opts.DutyCycle > 99 {
		return nil, fmt.Errorf("irlamp: lirc: duty cycle %d%% is not between 1 and 99", opts.DutyCycle)
	}
	open := opts.open
	if open == nil {
		open = openLircDevice
	}
	if open == nil {
		return nil, fmt.Errorf("irlamp: lirc: %s: /dev/lirc devices exist only on Linux, not %s; use lircd:tcp://HOST:PORT to send through a Pi's lircd", path, runtime.GOOS)
	}
	dev, err := open(path)
	if err != nil {
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return nil, fmt.Errorf("irlamp: lirc: %s not found: %s: %w", path, lircOverlayHint, err)
		case errors.Is(err, fs.ErrPermission):
			return nil, fmt.Errorf("irlamp: lirc: no permission to open %s: %s: %w", path, lircPermHint, err)
		}
		return nil, fmt.Errorf("irlamp: lirc: %w", err)
	}
	l := &Lirc{path: path, dev: dev, duty: uint32(opts.DutyCycle), pulsesOnly: opts.Pulses}
	if err := l.init(); err != nil {
		dev.close()
		return nil, fmt.Errorf("irlamp: lirc: %s: %w", path, err)
	}
	return l, nil
}

// init checks that the device can transmit and picks the send modes.
func (l *Lirc) init() error {
	f, err := l.dev.features()
	if err != nil {
		if errors.Is(err, syscall.ENOTTY) || errors.Is(err, syscall.EINVAL) {
			return fmt.Errorf("not a lirc device (for an IR transmitter, %s): LIRC_GET_FEATURES: %w", lircOverlayHint, err)
		}
		return fmt.Errorf("LIRC_GET_FEATURES: %w", err)
	}
	l.features = f
	if f&lircCanSendPulse == 0 {
		what := "a lirc device without an IR transmitter"
		if f&lircCanRecMask != 0 {
			what = "an IR receiver, not a transmitter (with both overlays the transmitter may be another /dev/lircN)"
		}
		return fmt.Errorf("has no IR transmitter: it is %s; %s", what, lircOverlayHint)
	}
	// The kernel never advertises scancode sending in the features: it
	// accepts LIRC_MODE_SCANCODE on every transmitter since Linux 4.16
	// and refuses it with EINVAL before.
	if !l.pulsesOnly {
		switch err := l.dev.setSendMode(lircModeScancode); {
		case err == nil:
			l.scancode = true
		case errors.Is(err, syscall.EINVAL) || errors.Is(err, syscall.ENOTTY):
		default:
			return fmt.Errorf("LIRC_SET_SEND_MODE scancode: %w", err)
		}
	}
	if err := l.dev.setSendMode(lircModePulse); err != nil {
		return fmt.Errorf("LIRC_SET_SEND_MODE pulse: %w", err)
	}
	l.mode = lircModePulse
	if l.duty != 0 {
		if f&lircCanSetSendDutyCycle == 0 {
			return errors.New("cannot set the duty cycle (no LIRC_CAN_SET_SEND_DUTY_CYCLE); leave it at the driver's")
		}
		if err := l.dev.setDutyCycle(l.duty); err != nil {
			return fmt.Errorf("LIRC_SET_SEND_DUTY_CYCLE %d: %w", l.duty, err)
		}
	}
	return nil
}

// Send transmits key of remote r, then repeats more times, each after the
// remote's gap. It returns once the last code has been sent. An NEC key is
// sent as its NECX scancode where the kernel can encode it (see
// LircOptions.Pulses), any other key as its pulses at the remote's carrier
// frequency.
func (l *Lirc) Send(ctx context.Context, r *Remote, key string, repeats int) error {
	if r == nil {
		return errors.New("irlamp: lirc: nil remote")
	}
	if repeats < 0 {
		return fmt.Errorf("irlamp: lirc: negative repeat count %d", repeats)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.dev == nil {
		return ErrClosed
	}
	buf, mode, err := l.frame(r, key)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("irlamp: lirc: %s %s: %w", r.Name(), key, err)
	}
	if err := l.prepare(r, mode); err != nil {
		return fmt.Errorf("irlamp: lirc: %s: %w", l.path, err)
	}
	var gap *time.Timer
	for i := 0; i <= repeats; i++ {
		if i > 0 {
			// The kernel returns once the signal is out; the gap lets
			// the receiver see separate codes.
			if gap == nil {
				gap = time.NewTimer(r.Gap())
				defer gap.Stop()
			} else {
				gap.Reset(r.Gap())
			}
			select {
			case <-gap.C:
			case <-ctx.Done():
				return fmt.Errorf("irlamp: lirc: %s %s: stopped after %d of %d codes: %w", r.Name(), key, i, repeats+1, ctx.Err())
			}
		}
		if err := l.dev.write(buf); err != nil {
			return fmt.Errorf("irlamp: lirc: %s: sending %s %s: %w", l.path, r.Name(), key, explainWrite(err, mode, len(buf)))
		}
	}
	return nil
}

// frame returns what to write for one transmission of key, and the send
// mode it needs.
func (l *Lirc) frame(r *Remote, key string) ([]byte, uint32, error) {
	if l.scancode && !l.pulsesOnly {
		if sc, ok := r.NECX(key); ok {
			return encodeLircScancode(rcProtoNECX, uint64(sc)), lircModeScancode, nil
		}
	}
	p, err := r.Pulses(key)
	if err != nil {
		return nil, 0, err
	}
	b, err := encodeLircPulses(p)
	if err != nil {
		return nil, 0, fmt.Errorf("irlamp: lirc: %s %s: %w", r.Name(), key, err)
	}
	return b, lircModePulse, nil
}

// prepare sets the send mode, carrier and duty cycle for the next writes.
// Carrier and duty cycle belong to the device, not to our open file, and
// the kernel sets the carrier itself for a scancode, so they are set again
// for every send rather than remembered.
func (l *Lirc) prepare(r *Remote, mode uint32) error {
	if mode != l.mode {
		if err := l.dev.setSendMode(mode); err != nil {
			return fmt.Errorf("LIRC_SET_SEND_MODE: %w", err)
		}
		l.mode = mode
	}
	if mode == lircModePulse && l.features&lircCanSetSendCarrier != 0 && r.Frequency() > 0 {
		if err := l.dev.setCarrier(uint32(r.Frequency())); err != nil {
			return fmt.Errorf("LIRC_SET_SEND_CARRIER %d Hz: %w", r.Frequency(), err)
		}
	}
	if l.duty != 0 {
		if err := l.dev.setDutyCycle(l.duty); err != nil {
			return fmt.Errorf("LIRC_SET_SEND_DUTY_CYCLE %d: %w", l.duty, err)
		}
	}
	return nil
}

// explainWrite adds what an errno from a write means for a lirc device.
func explainWrite(err error, mode uint32, n int) error {
	switch {
	case errors.Is(err, syscall.EINVAL) && mode == lircModeScancode:
		return fmt.Errorf("the kernel refused the NECX scancode (use LircOptions.Pulses or ?mode=pulse to send pulses): %w", err)
	case errors.Is(err, syscall.EINVAL):
		return fmt.Errorf("the kernel refused the %d-value signal: %w", n/4, err)
	case errors.Is(err, syscall.ENODEV):
		return fmt.Errorf("the device is gone (driver unloaded): %w", err)
	}
	return err
}

// Close closes the device. Later sends return ErrClosed.
func (l *Lirc) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.dev == nil {
		return nil
	}
	err := l.dev.close()
	l.dev = nil
	if err != nil {
		return fmt.Errorf("irlamp: lirc: %s: %w", l.path, err)
	}
	return nil
}

// encodeLircPulses encodes mark and space durations in µs for a pulse-mode
// write: native-endian u32s (unsigned int in the kernel). It refuses what
// the kernel would refuse with a bare EINVAL.
func encodeLircPulses(p []uint32) ([]byte, error) {
	if len(p)%2 == 0 {
		return nil, fmt.Errorf("%d durations: a signal must start and end with a mark (an odd count)", len(p))
	}
	if len(p) > maxLircPulses {
		return nil, fmt.Errorf("%d durations: the kernel takes at most %d", len(p), maxLircPulses)
	}
	b := make([]byte, 0, 4*len(p))
	total := time.Duration(0)
	for i, v := range p {
		if v == 0 {
			return nil, fmt.Errorf("duration %d is zero", i)
		}
		total += time.Duration(v) * time.Microsecond
		b = binary.NativeEndian.AppendUint32(b, v)
	}
	if total > maxLircDuration {
		return nil, fmt.Errorf("the signal lasts %s: the kernel sends at most %s at once", total, maxLircDuration)
	}
	return b, nil
}

// encodeLircScancode encodes a struct lirc_scancode for a scancode-mode
// write. timestamp, flags and keycode must be zero for sending.
func encodeLircScancode(proto uint16, scancode uint64) []byte {
	b := make([]byte, lircScancodeSize)
	binary.NativeEndian.PutUint16(b[10:], proto)
	binary.NativeEndian.PutUint64(b[16:], scancode)
	return b
}

// openLirc opens a transmitter from a spec argument such as
// "/dev/lirc1?mode=pulse".
func openLirc(arg string) (Transmitter, error) {
	return LircOptions{}.openSpec(arg)
}

// openSpec is openLirc with options, so tests can open against a fake device.
func (o LircOptions) openSpec(arg string) (Transmitter, error) {
	path, opts, err := parseLircSpec(arg)
	if err != nil {
		return nil, err
	}
	opts.open = o.open
	return NewLirc(path, opts)
}

// parseLircSpec parses a spec argument without touching the device.
func parseLircSpec(arg string) (string, LircOptions, error) {
	var opts LircOptions
	path, o, err := devspec.ParseArg(arg, "mode", "duty")
	if err != nil {
		return "", opts, fmt.Errorf("irlamp: lirc: %w; want %s", err, lircUsage)
	}
	switch o["mode"] {
	case "", "auto":
	case "pulse":
		opts.Pulses = true
	default:
		return "", opts, fmt.Errorf("irlamp: lirc: bad mode %q: want pulse or auto", o["mode"])
	}
	if v, ok := o["duty"]; ok {
		d, ok := parsePercent(v)
		if !ok {
			return "", opts, fmt.Errorf("irlamp: lirc: bad duty %q: want a percentage from 1 to 99", v)
		}
		opts.DutyCycle = d
	}
	if path == "" {
		path = DefaultLircDevice
	}
	return path, opts, nil
}

// parsePercent parses "1" to "99", optionally with a trailing "%".
func parsePercent(s string) (int, bool) {
	if n := len(s); n > 0 && s[n-1] == '%' {
		s = s[:n-1]
	}
	if s == "" || len(s) > 2 {
		return 0, false
	}
	n := 0
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, n >= 1 && n <= 99
}

// lircDetectCount is how many /dev/lircN "auto" looks at: with a receiver
// overlay as well, the transmitter need not be lirc0.
const lircDetectCount = 8

// detectLirc returns the first of paths whose features include sending, as
// reported by probe. A device that exists but cannot be opened for lack of
// permission counts too when lircd is not running (per lircdUp): "auto" then
// opens it and explains the permission problem rather than silently
// simulating, while a user who goes through lircd is left to it.
func detectLirc(paths []string, probe func(path string) (uint32, error), lircdUp func() bool) (string, bool) {
	denied := ""
	for _, p := range paths {
		f, err := probe(p)
		switch {
		case err == nil && f&lircCanSendPulse != 0:
			return p, true
		case errors.Is(err, fs.ErrPermission) && denied == "":
			denied = p
		}
	}
	if denied == "" || lircdUp() {
		return "", false
	}
	return denied, true
}
