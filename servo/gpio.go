package servo

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/pikit/pikit/internal/devspec"
	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/physic"
)

// This file is the portable part of the GPIO driver: it drives any periph
// gpio.PinOut, so its tests run anywhere against a fake pin.
// gpio_linux.go registers the "gpio" spec driver with the host's pins.

// gpioUsage is the accepted spec form, quoted in argument errors.
const gpioUsage = "gpio:PIN[?options], e.g. gpio:GPIO18 or gpio:18"

// GPIO is a servo on a GPIO pin whose periph driver can generate PWM.
//
// On a Raspberry Pi 1 to 4 with periph.io/x/host/v3 (host.Init), the bcm283x
// driver produces PWM on any pin: in hardware on GPIO13 and GPIO19 (the PWM1
// channel), and by DMA on every other pin, GPIO12 and GPIO18 included since
// periph keeps PWM0 to pace its DMA. DMA pulses have a 5 µs resolution
// (0.5° with the default Config). Either way it needs /dev/mem, so the
// program must run as root; the sysfs driver drives the hardware PWM pins
// without root.
type GPIO struct {
	*servo
	pin gpio.PinOut
}

var _ Device = (*GPIO)(nil)

// NewGPIO drives a servo on pin, e.g. gpioreg.ByName("GPIO18") after
// host.Init(). The servo starts released: NewGPIO does not touch the pin.
// Close halts the pin.
func NewGPIO(pin gpio.PinOut, cfg Config) (*GPIO, error) {
	cfg, err := checkConfig(cfg)
	if err != nil {
		return nil, err
	}
	if pin == nil {
		return nil, errors.New("servo: gpio: nil pin")
	}
	out := &gpioOutput{pin: pin, freq: cfg.Frequency}
	return &GPIO{servo: newServo("gpio", cfg, out), pin: pin}, nil
}

// Pin returns the pin the servo is on.
func (g *GPIO) Pin() gpio.PinOut { return g.pin }

// gpioOutput implements output on a periph pin.
type gpioOutput struct {
	pin  gpio.PinOut
	freq physic.Frequency
}

func (o *gpioOutput) pulse(p time.Duration) error {
	return o.pin.PWM(gpioDuty(p, o.freq.Period()), o.freq)
}

// stop drives the pin low rather than halting it, so that the servo sees
// no pulse instead of a floating input that noise could turn into one.
func (o *gpioOutput) stop() error { return o.pin.Out(gpio.Low) }

func (o *gpioOutput) close() error { return o.pin.Halt() }

// gpioDuty returns the duty cycle of a pulse p in a period, rounded. int64
// throughout: p × DutyMax reaches 1.7e16 for a 1 s pulse, which would
// overflow an int on 32-bit ARM.
func gpioDuty(p, period time.Duration) gpio.Duty {
	if p <= 0 || period <= 0 {
		return 0
	}
	if p >= period {
		return gpio.DutyMax
	}
	return gpio.Duty((int64(p)*int64(gpio.DutyMax) + int64(period)/2) / int64(period))
}

// parseGPIOSpec parses PIN[?options]. PIN is a name periph's gpioreg knows:
// "GPIO18", the number "18", or a header position such as "P1_12".
func parseGPIOSpec(arg string) (pin string, cfg Config, err error) {
	target, opts, err := devspec.ParseArg(arg, configOptions...)
	if err != nil {
		return "", Config{}, fmt.Errorf("servo: gpio: %w; want %s", err, gpioUsage)
	}
	if target == "" {
		return "", Config{}, fmt.Errorf("servo: gpio: no pin given; want %s", gpioUsage)
	}
	if strings.ContainsFunc(target, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-' || r == '.')
	}) {
		return "", Config{}, fmt.Errorf("servo: gpio: bad pin name %q; want %s", target, gpioUsage)
	}
	if cfg, err = applyOptions(Config{}, opts); err != nil {
		return "", Config{}, err
	}
	return target, cfg, nil
}
