package servo

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/pikit/pikit/internal/devspec"
)

// This file is the portable part of the kernel-PWM driver: it only reads and
// writes files under a root directory, so it builds everywhere and its tests
// run against a fake tree. sysfs_linux.go registers it as the "sysfs" driver.

const (
	// defaultSysfsRoot is where the kernel publishes PWM chips.
	defaultSysfsRoot = "/sys/class/pwm"
	// defaultExportTimeout bounds the wait for udev after an export. On a
	// Pi the files appear within milliseconds but get their group (and so
	// become writable for non-root users) a little later.
	defaultExportTimeout = 2 * time.Second
	// exportPoll is how often the export wait looks for the channel files.
	exportPoll = 10 * time.Millisecond
	// sysfsUsage is the accepted spec form, quoted in argument errors.
	sysfsUsage = "sysfs:pwmchipN/M[?options]"
	// permHint ends permission errors: it is nearly always a user who is
	// not in the right group.
	permHint = "add the user to group gpio (Raspberry Pi OS's udev rules give that group the PWM files) or run as root"
)

// SysfsOptions configures a kernel-PWM servo beyond what NewSysfs offers.
// The zero value is the defaults.
type SysfsOptions struct {
	// Root is the PWM class directory (default "/sys/class/pwm"). Tests
	// point it at a fake tree.
	Root string
	// ExportTimeout is how long to wait after exporting a channel for udev
	// to create its pwmM files and give them group permissions
	// (default 2s).
	ExportTimeout time.Duration

	// writeFile replaces writeSysfs in tests, to inject the errors the
	// kernel returns (EINVAL, EBUSY) that a plain file never does.
	writeFile func(path, value string) error
}

// Sysfs is a servo on a kernel PWM channel, driven through
// /sys/class/pwm/pwmchipN/pwmM. It works on any Raspberry Pi with the pwm or
// pwm-2chan overlay enabled and needs no root when the user is in group gpio.
type Sysfs struct {
	*servo
}

var _ Device = (*Sysfs)(nil)

// NewSysfs opens channel of PWM chip chip (pwmchipN/pwmM) with the default
// options. The servo starts released: opening never moves it.
func NewSysfs(chip, channel int, cfg Config) (*Sysfs, error) {
	return SysfsOptions{}.New(chip, channel, cfg)
}

// New opens channel of PWM chip chip, exporting the channel if needed (Close
// then unexports it again). The servo starts released: opening disables the
// output and sets the period without sending a pulse.
func (o SysfsOptions) New(chip, channel int, cfg Config) (*Sysfs, error) {
	cfg, err := checkConfig(cfg)
	if err != nil {
		return nil, err
	}
	if chip < 0 || channel < 0 {
		return nil, fmt.Errorf("servo: sysfs: negative chip %d or channel %d", chip, channel)
	}
	if o.Root == "" {
		o.Root = defaultSysfsRoot
	}
	if o.ExportTimeout <= 0 {
		o.ExportTimeout = defaultExportTimeout
	}
	p := &sysfsPWM{
		chipDir:   filepath.Join(o.Root, "pwmchip"+strconv.Itoa(chip)),
		channel:   channel,
		writeFile: o.writeFile,
	}
	if p.writeFile == nil {
		p.writeFile = writeSysfs
	}
	p.dir = filepath.Join(p.chipDir, "pwm"+strconv.Itoa(channel))
	if err := p.open(cfg, o.ExportTimeout); err != nil {
		if p.exported {
			// Leave the chip as we found it; the open error matters more
			// than a failed unexport.
			_ = p.close()
		}
		return nil, fmt.Errorf("servo: sysfs: %w", err)
	}
	return &Sysfs{servo: newServo("sysfs", cfg, p)}, nil
}

// sysfsPWM is the output of a Sysfs servo: one pwmM directory.
// Its methods are serialised by servo.
type sysfsPWM struct {
	chipDir   string // Root/pwmchipN
	dir       string // Root/pwmchipN/pwmM
	channel   int
	writeFile func(path, value string) error

	exported bool // we exported the channel, so close unexports it
	enabled  bool // last value written to enable
}

// open checks the chip, exports the channel if needed and puts it in a known
// released state with the config's period.
func (p *sysfsPWM) open(cfg Config, timeout time.Duration) error {
	if _, err := os.Stat(p.chipDir); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("%s not found: enable PWM with \"dtoverlay=pwm\" (GPIO18) or \"dtoverlay=pwm-2chan\" (GPIO18 and GPIO19) in /boot/firmware/config.txt and reboot: %w", p.chipDir, err)
		}
		return err
	}
	s, err := readSysfs(filepath.Join(p.chipDir, "npwm"))
	if err != nil {
		return err
	}
	npwm, err := strconv.Atoi(s)
	if err != nil {
		return fmt.Errorf("%s: bad npwm %q: %w", p.chipDir, s, err)
	}
	if p.channel >= npwm {
		return fmt.Errorf("%s has %d channels (npwm), so no channel %d", p.chipDir, npwm, p.channel)
	}
	if err := p.export(timeout); err != nil {
		return err
	}

	// Disable first: Open must not move the servo, and polarity can only
	// be changed while disabled.
	en, err := readSysfs(p.file("enable"))
	if err != nil {
		return err
	}
	if en != "0" {
		if err := p.write("enable", "0"); err != nil {
			return err
		}
	}
	period := strconv.FormatInt(int64(cfg.Frequency.Period()), 10)
	if err := p.write("period", period); err != nil {
		if !errors.Is(err, syscall.EINVAL) {
			return err
		}
		// The kernel refuses a period shorter than the current duty cycle
		// (left by a previous user at another frequency): clear it and
		// retry.
		if err := p.write("duty_cycle", "0"); err != nil {
			return err
		}
		if err := p.write("period", period); err != nil {
			return err
		}
	}
	// Some controllers have no polarity file; an inversed one would turn
	// every pulse into its complement, which no servo survives for long.
	pol, err := readSysfs(p.file("polarity"))
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return err
	case pol != "normal":
		if err := p.write("polarity", "normal"); err != nil {
			return err
		}
	}
	return nil
}

// export exports the channel unless it already is, and waits for udev to make
// its files writable.
func (p *sysfsPWM) export(timeout time.Duration) error {
	if _, err := os.Stat(p.dir); err == nil {
		return nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	ch := strconv.Itoa(p.channel)
	if err := p.writeFile(filepath.Join(p.chipDir, "export"), ch); err != nil {
		if !errors.Is(err, syscall.EBUSY) {
			return err
		}
		// EBUSY also means someone exported it since our Stat; then it is
		// theirs to unexport and we can use it like any pre-exported one.
		if _, serr := os.Stat(p.dir); serr != nil {
			return fmt.Errorf("channel %d of %s is in use by another driver (a kernel driver such as pwm-fan, or another program): %w", p.channel, p.chipDir, err)
		}
	} else {
		p.exported = true
	}
	// The kernel creates the files at once, but udev changes their group a
	// moment later; until then only root can write them.
	enable := p.file("enable")
	deadline := time.Now().Add(timeout)
	for {
		f, err := os.OpenFile(enable, os.O_WRONLY, 0)
		if err == nil {
			return f.Close()
		}
		if time.Now().After(deadline) {
			if errors.Is(err, fs.ErrPermission) {
				return fmt.Errorf("%w (still not writable %s after export): %s", err, timeout, permHint)
			}
			return fmt.Errorf("%s did not appear within %s of exporting channel %d: %w", enable, timeout, p.channel, err)
		}
		time.Sleep(exportPoll)
	}
}

func (p *sysfsPWM) file(name string) string { return filepath.Join(p.dir, name) }

func (p *sysfsPWM) write(name, value string) error {
	return p.writeFile(p.file(name), value)
}

func (p *sysfsPWM) pulse(d time.Duration) error {
	if err := p.write("duty_cycle", strconv.FormatInt(int64(d), 10)); err != nil {
		return err
	}
	if !p.enabled {
		if err := p.write("enable", "1"); err != nil {
			return err
		}
		p.enabled = true
	}
	return nil
}

// stop zeroes the duty cycle before disabling, because some controllers hold
// the last output level when disabled, which would leave the line high.
func (p *sysfsPWM) stop() error {
	err := p.write("duty_cycle", "0")
	// Disable even if zeroing failed: a disabled channel stops pulsing on
	// most controllers.
	if eerr := p.write("enable", "0"); eerr != nil {
		if err == nil {
			err = eerr
		}
	} else {
		p.enabled = false
	}
	return err
}

// close unexports the channel if we exported it, so a channel that was
// exported by someone else (e.g. a boot script) stays as they left it.
func (p *sysfsPWM) close() error {
	if !p.exported {
		return nil
	}
	if err := p.writeFile(filepath.Join(p.chipDir, "unexport"), strconv.Itoa(p.channel)); err != nil {
		return err
	}
	p.exported = false
	return nil
}

// writeSysfs writes value to an existing sysfs attribute. It never creates
// the file: a missing attribute means a wrong path or an unsupported chip,
// and creating a regular file there would hide that.
func writeSysfs(path, value string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		if errors.Is(err, fs.ErrPermission) {
			return fmt.Errorf("%w: %s", err, permHint)
		}
		return err
	}
	// sysfs takes the whole value in one write and reports a rejected value
	// (EINVAL, EBUSY) from that write.
	_, err = f.WriteString(value)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("writing %s: %w", value, err)
	}
	return nil
}

// readSysfs returns the trimmed contents of a sysfs attribute.
func readSysfs(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, fs.ErrPermission) {
			return "", fmt.Errorf("%w: %s", err, permHint)
		}
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}

// detectSysfs reports whether PWM chip 0 exists under root. It only stats,
// so "auto" never changes the hardware's state.
func detectSysfs(root string) (string, bool) {
	if fi, err := os.Stat(filepath.Join(root, "pwmchip0")); err == nil && fi.IsDir() {
		return "pwmchip0/0", true
	}
	return "", false
}

// openSysfs opens a servo from a spec argument such as "pwmchip0/0?min=1ms".
func openSysfs(arg string) (Device, error) {
	return SysfsOptions{}.open(arg)
}

// open is openSysfs with options, so tests can open against a fake tree.
func (o SysfsOptions) open(arg string) (Device, error) {
	chip, channel, cfg, err := parseSysfsSpec(arg)
	if err != nil {
		return nil, err
	}
	return o.New(chip, channel, cfg)
}

// parseSysfsSpec parses "pwmchipN/M" or "N/M" with calibration options,
// without touching the filesystem (so it can be fuzzed).
func parseSysfsSpec(arg string) (chip, channel int, cfg Config, err error) {
	target, opts, err := devspec.ParseArg(arg, configOptions...)
	if err != nil {
		return 0, 0, Config{}, fmt.Errorf("servo: sysfs: %w; want %s", err, sysfsUsage)
	}
	c, m, ok := strings.Cut(strings.TrimPrefix(target, "pwmchip"), "/")
	if ok {
		chip, ok = parseIndex(c)
	}
	if ok {
		channel, ok = parseIndex(m)
	}
	if !ok {
		return 0, 0, Config{}, fmt.Errorf("servo: sysfs: bad argument %q: want %s, e.g. sysfs:pwmchip0/0", target, sysfsUsage)
	}
	// applyOptions errors already say "servo: option ..."; adding
	// "sysfs:" would only repeat the spec that devspec appends.
	if cfg, err = applyOptions(Config{}, opts); err != nil {
		return 0, 0, Config{}, err
	}
	return chip, channel, cfg, nil
}

// parseIndex parses a non-negative decimal index. Unlike strconv.Atoi it
// rejects signs and spaces, which would make a typo open the wrong channel.
func parseIndex(s string) (int, bool) {
	if s == "" || len(s) > 9 {
		return 0, false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0, false
		}
	}
	n, err := strconv.Atoi(s)
	return n, err == nil
}
