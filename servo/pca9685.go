package servo

import (
	"errors"
	"fmt"
	"io/fs"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pikit/pikit/internal/devspec"
	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/i2c"
	"periph.io/x/conn/v3/physic"
	"periph.io/x/devices/v3/pca9685"
)

// This file is the portable part of the PCA9685 driver: the servo type, the
// pulse arithmetic, the spec grammar and the sharing of one board between
// channels. It only talks to an i2c.Bus, so its tests run anywhere against
// periph's i2ctest.Playback. pca9685_linux.go registers the "pca9685" spec
// driver with the real I²C buses.

const (
	// DefaultOscillator is the PCA9685's nominal internal clock.
	DefaultOscillator = 25 * physic.MegaHertz

	// pcaMinOscillator and pcaMaxOscillator bound PCA9685Options.Oscillator:
	// the datasheet allows an external clock of up to 50 MHz, and anything
	// far below the internal 25 MHz is a unit mistake (kHz for MHz).
	pcaMinOscillator = 1 * physic.MegaHertz
	pcaMaxOscillator = 50 * physic.MegaHertz

	// pcaChannels is the number of outputs of one board.
	pcaChannels = 16
	// pcaMaxCount is the largest value of the chip's 12-bit counter.
	pcaMaxCount = 4095
	// pcaMinPrescale and pcaMaxPrescale are the values the PRE_SCALE
	// register holds; the chip clamps writes below 3 to 3.
	pcaMinPrescale = 3
	pcaMaxPrescale = 255

	// pcaDefaultAddr is the address with all address pins low.
	pcaDefaultAddr uint16 = 0x40

	// pcaUsage is the accepted spec form, quoted in argument errors.
	pcaUsage = "pca9685:BUS[@0xADDR]/CHANNEL[?options], e.g. pca9685:/dev/i2c-1@0x40/3"
	// pcaPermHint ends permission errors on /dev/i2c-N.
	pcaPermHint = `add the user to group i2c (sudo adduser $USER i2c, then log in again) and enable I²C with "dtparam=i2c_arm=on" in /boot/firmware/config.txt`
)

// PCA9685Options configures a PCA9685 servo beyond what NewPCA9685 offers.
// The zero value is the defaults.
type PCA9685Options struct {
	// Oscillator is the frequency of the chip's clock (default 25 MHz).
	// Real chips' internal oscillators run anywhere from about 23 to
	// 27 MHz, which makes every pulse up to 8% off; measure the PWM period
	// of one output with a scope or logic analyser and set the value it
	// implies for accurate pulses: oscillator = 4096 × (prescale+1) /
	// period, where periph sets prescale 122 at 50 Hz (so a measured
	// 20.15 ms period means exactly 25 MHz).
	Oscillator physic.Frequency
}

// PCA9685 is a servo on one channel of a PCA9685 16-channel PWM board (the
// Adafruit 16-channel servo HAT/bonnet and its many clones), driven over I²C.
//
// All channels of a board share one PWM frequency: a servo whose
// Config.Frequency differs from that of a servo already open on the same
// board is refused, since changing it would alter the pulses of the others.
type PCA9685 struct {
	*servo
	channel int
}

var _ Device = (*PCA9685)(nil)

// NewPCA9685 drives channel (0 to 15) of dev with the default options. Pass
// the same dev for every servo on a board; see PCA9685Options.New.
func NewPCA9685(dev *pca9685.Dev, channel int, cfg Config) (*PCA9685, error) {
	return PCA9685Options{}.New(dev, channel, cfg)
}

// New drives channel (0 to 15) of dev, a board opened with
// pca9685.NewI2C(bus, addr). Several servos share one board by passing the
// same dev; a channel can be used by one open servo at a time.
//
// New sets the board's PWM frequency to cfg.Frequency, for all channels: all
// servos on a board share a frequency. The frequency must be between about
// 24 Hz and 1 kHz, the range of the chip's prescaler. New sends nothing on
// channel: it keeps its current output (off after pca9685.NewI2C) until the
// first SetAngle.
//
// Close stops the channel's pulses but leaves dev and its bus open: they
// belong to the caller.
func (o PCA9685Options) New(dev *pca9685.Dev, channel int, cfg Config) (*PCA9685, error) {
	return o.open(dev, channel, cfg, nil)
}

// open is New with a hook run when the servo closes, which the spec driver
// uses to drop its reference to a shared bus.
func (o PCA9685Options) open(dev *pca9685.Dev, channel int, cfg Config, onClose func() error) (*PCA9685, error) {
	cfg, err := checkConfig(cfg)
	if err != nil {
		return nil, err
	}
	if dev == nil {
		return nil, errors.New("servo: pca9685: nil *pca9685.Dev")
	}
	if err := checkPCAChannel(channel); err != nil {
		return nil, err
	}
	if o.Oscillator == 0 {
		o.Oscillator = DefaultOscillator
	}
	if err := checkPCAOscillator(o.Oscillator); err != nil {
		return nil, err
	}
	prescale := pcaPrescale(cfg.Frequency)
	if prescale < pcaMinPrescale || prescale > pcaMaxPrescale {
		return nil, fmt.Errorf("servo: pca9685: frequency %s needs prescale %d, outside the chip's %d to %d (use 24Hz to 1kHz)",
			cfg.Frequency, prescale, pcaMinPrescale, pcaMaxPrescale)
	}
	osc := pcaOscillatorHz(o.Oscillator)
	// Validate accepts any pulse shorter than cfg's period, but the chip's
	// period comes from periph's prescale and the real oscillator, and can
	// be shorter; a pulse that does not fit would be clamped to a
	// near-constant high.
	if c := pcaRawCounts(cfg.MaxPulse, osc, prescale); c > pcaMaxCount {
		return nil, fmt.Errorf("servo: pca9685: maximum pulse %s does not fit in the chip's PWM period (%d counts of 4096 at %s with oscillator %s)",
			cfg.MaxPulse, c, cfg.Frequency, o.Oscillator)
	}
	if err := pcaClaim(dev, channel, cfg.Frequency); err != nil {
		return nil, err
	}
	out := &pcaOutput{dev: dev, channel: channel, osc: osc, prescale: prescale, onClose: onClose}
	return &PCA9685{servo: newServo("pca9685", cfg, out), channel: channel}, nil
}

// Channel returns the board output this servo is on.
func (p *PCA9685) Channel() int { return p.channel }

// pcaOutput implements output on one channel of a board.
type pcaOutput struct {
	dev      *pca9685.Dev
	channel  int
	osc      int64 // oscillator in whole Hz
	prescale int64 // as periph wrote it to PRE_SCALE
	onClose  func() error
}

func (o *pcaOutput) pulse(p time.Duration) error {
	// The pulse starts at count 0 on every channel. Staggering the starts
	// would spread the current draw, but servos only care about widths.
	return o.dev.SetPwm(o.channel, 0, gpio.Duty(pcaCounts(p, o.osc, o.prescale)))
}

func (o *pcaOutput) stop() error { return o.dev.SetFullOff(o.channel) }

func (o *pcaOutput) close() error {
	pcaRelease(o.dev, o.channel)
	if o.onClose != nil {
		return o.onClose()
	}
	return nil
}

// pcaPrescale returns the PRE_SCALE value periph's Dev.SetPwmFreq writes
// for f. It assumes a 25 MHz clock whatever the real one, and rounds
// 25MHz/4096/f instead of the datasheet's round(25MHz/4096/f) - 1, so its
// period is one prescale step longer than asked (20.15 ms instead of
// 20 ms at 50 Hz). That is harmless for servos as long as the widths are
// computed from the period the chip really runs, which is what pcaCounts
// does. This must stay the exact integer formula of periph's SetPwmFreq.
func pcaPrescale(f physic.Frequency) int64 {
	return int64((25*physic.MegaHertz/4096 + f/2) / f)
}

// pcaOscillatorHz converts f to whole hertz, so that pcaCounts' products
// stay far below the int64 limit (a µHz value times a pulse in ns would
// not).
func pcaOscillatorHz(f physic.Frequency) int64 {
	return int64((f + physic.Hertz/2) / physic.Hertz)
}

// pcaCounts returns the number of counts (of 4096 per period) for a pulse
// of width p, rounded, and clamped to 0..4095.
//
// One count lasts (prescale+1)/osc seconds, so counts = p × osc / (prescale+1).
// Everything is int64: with p below 10 s and osc at most 50 MHz the numerator
// stays below 5e17. periph's own ServoGroup multiplies ints, which overflows
// on 32-bit ARM (every Pi Zero/1 and 32-bit Raspberry Pi OS).
func pcaCounts(p time.Duration, oscHz, prescale int64) int64 {
	// New refuses configs whose pulses exceed the period; clamping keeps a
	// stray value within the register.
	return min(pcaRawCounts(p, oscHz, prescale), pcaMaxCount)
}

// pcaRawCounts is pcaCounts without the upper clamp, so that New can tell
// a pulse that does not fit in the period.
func pcaRawCounts(p time.Duration, oscHz, prescale int64) int64 {
	if p <= 0 {
		return 0
	}
	p = min(p, 10*time.Second)
	den := (prescale + 1) * int64(time.Second)
	return (int64(p)*oscHz + den/2) / den
}

func checkPCAChannel(channel int) error {
	if channel < 0 || channel >= pcaChannels {
		return fmt.Errorf("servo: pca9685: channel %d outside 0 to %d", channel, pcaChannels-1)
	}
	return nil
}

func checkPCAOscillator(f physic.Frequency) error {
	if f < pcaMinOscillator || f > pcaMaxOscillator {
		return fmt.Errorf("servo: pca9685: oscillator %s outside %s to %s", f, pcaMinOscillator, pcaMaxOscillator)
	}
	return nil
}

// pcaBoardUse records which channels of a board have open servos and at
// which frequency, so that a second servo cannot change the frequency (and
// so the pulse widths) of the first, nor two servos fight over one channel.
type pcaBoardUse struct {
	freq     physic.Frequency
	channels uint16 // bit n set: channel n is open
}

var pcaUse = struct {
	sync.Mutex
	boards map[*pca9685.Dev]*pcaBoardUse
}{boards: map[*pca9685.Dev]*pcaBoardUse{}}

// pcaClaim marks channel of dev open and sets the board's frequency.
func pcaClaim(dev *pca9685.Dev, channel int, f physic.Frequency) error {
	pcaUse.Lock()
	defer pcaUse.Unlock()
	u := pcaUse.boards[dev]
	if u != nil {
		if u.channels&(1<<channel) != 0 {
			return fmt.Errorf("servo: pca9685: channel %d is already in use by another servo", channel)
		}
		if u.freq != f {
			return fmt.Errorf("servo: pca9685: frequency %s differs from the board's %s; all servos on one board share a frequency", f, u.freq)
		}
	}
	// With the frequency unchanged (the common case, including the 50 Hz
	// pca9685.NewI2C sets) periph skips the write, so this does not glitch
	// other channels.
	if err := dev.SetPwmFreq(f); err != nil {
		return fmt.Errorf("servo: pca9685: set frequency %s: %w", f, err)
	}
	if u == nil {
		u = &pcaBoardUse{freq: f}
		pcaUse.boards[dev] = u
	}
	u.channels |= 1 << channel
	return nil
}

// pcaRelease undoes pcaClaim.
func pcaRelease(dev *pca9685.Dev, channel int) {
	pcaUse.Lock()
	defer pcaUse.Unlock()
	if u := pcaUse.boards[dev]; u != nil {
		u.channels &^= 1 << channel
		if u.channels == 0 {
			delete(pcaUse.boards, dev)
		}
	}
}

// pcaSpec is a parsed "pca9685:" spec argument.
type pcaSpec struct {
	bus     string // as given: "/dev/i2c-1", "I2C1" or "1"
	addr    uint16
	channel int
	cfg     Config // defaults applied, validated
	opts    PCA9685Options
}

// parsePCA9685Spec parses BUS[@0xADDR]/CHANNEL[?options].
//
// BUS is anything periph's i2creg accepts: the device path "/dev/i2c-1",
// the name "I2C1" or the number "1". ADDR is the board's 7-bit address in
// hexadecimal with a 0x prefix (default 0x40; the chip's six address pins
// select 0x40 to 0x7F). The prefix is required because i2cdetect prints
// addresses in hex without one, and "40" read as decimal would be 0x28.
// CHANNEL is 0 to 15. The channel comes after the last '/', since the bus
// path itself contains slashes. Options are those of every driver plus
// osc, the oscillator frequency (e.g. osc=25.3MHz).
func parsePCA9685Spec(arg string) (pcaSpec, error) {
	target, opts, err := devspec.ParseArg(arg, append(configOptions[:len(configOptions):len(configOptions)], "osc")...)
	if err != nil {
		return pcaSpec{}, fmt.Errorf("servo: pca9685: %w; want %s", err, pcaUsage)
	}
	busAddr, ch, ok := cutLast(target, "/")
	if !ok {
		return pcaSpec{}, fmt.Errorf("servo: pca9685: %q has no /CHANNEL; want %s", target, pcaUsage)
	}
	s := pcaSpec{bus: busAddr, addr: pcaDefaultAddr}
	if b, a, ok := cutLast(busAddr, "@"); ok {
		s.bus = b
		if s.addr, err = parsePCAAddr(a); err != nil {
			return pcaSpec{}, err
		}
	}
	if s.bus == "" {
		return pcaSpec{}, fmt.Errorf("servo: pca9685: %q names no I²C bus; want %s", target, pcaUsage)
	}
	if strings.ContainsFunc(s.bus, func(r rune) bool { return r <= ' ' || r == 0x7f || r == '@' }) {
		return pcaSpec{}, fmt.Errorf("servo: pca9685: bad I²C bus name %q; want e.g. /dev/i2c-1, I2C1 or 1", s.bus)
	}
	if s.channel, err = parsePCAChannel(ch); err != nil {
		return pcaSpec{}, err
	}
	if v, ok := opts["osc"]; ok {
		if err := s.opts.Oscillator.Set(v); err != nil {
			return pcaSpec{}, fmt.Errorf("servo: pca9685: option osc=%q: %w", v, err)
		}
		if err := checkPCAOscillator(s.opts.Oscillator); err != nil {
			return pcaSpec{}, err
		}
	}
	if s.cfg, err = applyOptions(Config{}, opts); err != nil {
		return pcaSpec{}, err
	}
	return s, nil
}

func parsePCAAddr(s string) (uint16, error) {
	h, ok := strings.CutPrefix(strings.ToLower(s), "0x")
	if !ok {
		return 0, fmt.Errorf("servo: pca9685: address %q must be hexadecimal with a 0x prefix, e.g. 0x40", s)
	}
	v, err := strconv.ParseUint(h, 16, 16)
	if err != nil || v < 0x40 || v > 0x7f {
		return 0, fmt.Errorf("servo: pca9685: address %q is not a PCA9685 address (0x40 to 0x7f)", s)
	}
	return uint16(v), nil
}

func parsePCAChannel(s string) (int, error) {
	// Digits only: Atoi would also take "+3" and "-0".
	if s == "" || len(s) > 2 || strings.Trim(s, "0123456789") != "" {
		return 0, fmt.Errorf("servo: pca9685: channel %q is not a number from 0 to %d; want %s", s, pcaChannels-1, pcaUsage)
	}
	c, _ := strconv.Atoi(s)
	return c, checkPCAChannel(c)
}

// cutLast is strings.Cut at the last occurrence of sep.
func cutLast(s, sep string) (before, after string, found bool) {
	if i := strings.LastIndex(s, sep); i >= 0 {
		return s[:i], s[i+len(sep):], true
	}
	return s, "", false
}

// pcaBoardKey identifies one board: a bus (canonical name) and an address.
type pcaBoardKey struct {
	bus  string
	addr uint16
}

// pcaBoard is a board shared by the servos opened from specs.
type pcaBoard struct {
	bus  i2c.BusCloser
	dev  *pca9685.Dev
	refs int
}

// pcaBoards shares one *pca9685.Dev per bus and address between the servos
// opened from specs. Sharing is required, not an optimisation:
// pca9685.NewI2C turns every output off, so initialising the board again for
// a second channel would stop the servos already running on it.
type pcaBoards struct {
	// resolve returns the canonical name of a bus, so that "1", "I2C1" and
	// "/dev/i2c-1" share a board. It may initialise the host.
	resolve func(bus string) (string, error)
	// openBus opens a bus by canonical name.
	openBus func(bus string) (i2c.BusCloser, error)
	// newDev initialises a board; pca9685.NewI2C outside tests.
	newDev func(bus i2c.Bus, addr uint16) (*pca9685.Dev, error)

	mu     sync.Mutex
	boards map[pcaBoardKey]*pcaBoard
}

// open opens the servo a "pca9685:" spec argument names.
func (b *pcaBoards) open(arg string) (*PCA9685, error) {
	s, err := parsePCA9685Spec(arg)
	if err != nil {
		return nil, err
	}
	bus, err := b.resolve(s.bus)
	if err != nil {
		return nil, err
	}
	key := pcaBoardKey{bus, s.addr}

	// The lock is held through the board's initialisation (about 200 ms
	// of sleeps in periph) so that two concurrent opens cannot both
	// initialise it.
	b.mu.Lock()
	defer b.mu.Unlock()
	bd := b.boards[key]
	if bd == nil {
		bc, err := b.openBus(bus)
		if err != nil {
			return nil, pcaBusError(bus, err)
		}
		dev, err := b.newDev(bc, s.addr)
		if err != nil {
			bc.Close()
			return nil, fmt.Errorf("servo: pca9685: no PCA9685 answering at %#x on %s (check the wiring, and the address with i2cdetect): %w", s.addr, bus, err)
		}
		bd = &pcaBoard{bus: bc, dev: dev}
		if b.boards == nil {
			b.boards = map[pcaBoardKey]*pcaBoard{}
		}
		b.boards[key] = bd
	}
	bd.refs++
	d, err := s.opts.open(bd.dev, s.channel, s.cfg, func() error { return b.release(key) })
	if err != nil {
		b.unref(key)
		return nil, err
	}
	return d, nil
}

// release drops a servo's reference to its board.
func (b *pcaBoards) release(key pcaBoardKey) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.unref(key)
}

// unref drops a reference and closes the bus with the last one. b.mu must
// be held.
func (b *pcaBoards) unref(key pcaBoardKey) error {
	bd := b.boards[key]
	if bd == nil {
		return nil
	}
	if bd.refs--; bd.refs > 0 {
		return nil
	}
	delete(b.boards, key)
	if err := bd.bus.Close(); err != nil {
		return fmt.Errorf("servo: pca9685: close bus %s: %w", key.bus, err)
	}
	return nil
}

// pcaBusError explains a failure to open an I²C bus. periph's sysfs driver
// formats the OS error with %v, so the text is the only way to tell a
// permission problem.
func pcaBusError(bus string, err error) error {
	if errors.Is(err, fs.ErrPermission) || strings.Contains(err.Error(), "permission denied") {
		return fmt.Errorf("servo: pca9685: open %s: permission denied; %s: %w", bus, pcaPermHint, err)
	}
	return fmt.Errorf("servo: pca9685: open %s: %w", bus, err)
}
