package servo

import (
	"fmt"

	"github.com/pikit/pikit/internal/devspec"
	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/gpio/gpioreg"
	"periph.io/x/host/v3"
	"periph.io/x/host/v3/gpioioctl"
)

// The gpio driver registers only on Linux, where periph's host drivers
// work; the driver itself (gpio.go) is portable. It has no Detect: periph
// PWM needs root, so "auto" prefers the sysfs driver.
func init() {
	registry.MustRegister(devspec.Driver[Device]{
		Name:  "gpio",
		Usage: "gpio:GPIOn[?options]",
		Open:  openGPIO,
	})
}

// gpioRootHint ends errors caused by missing access to /dev/mem.
const gpioRootHint = "periph's PWM needs /dev/mem: run as root, or use the sysfs driver (e.g. sysfs:pwmchip0/0 with dtoverlay=pwm), which needs no root"

func openGPIO(arg string) (Device, error) {
	name, cfg, err := parseGPIOSpec(arg)
	if err != nil {
		return nil, err
	}
	state, err := host.Init()
	if err != nil {
		return nil, fmt.Errorf("servo: gpio: initialise periph: %w", err)
	}
	// Without /dev/mem the bcm283x DMA driver fails to load and every PWM
	// call would fail at the first SetAngle; say so now, with the fix.
	for _, f := range state.Failed {
		if n := f.D.String(); n == "bcm283x-dma" || n == "bcm283x-gpio" {
			return nil, fmt.Errorf("servo: gpio: %s did not load; %s: %w", n, gpioRootHint, f.Err)
		}
	}
	p := gpioreg.ByName(name)
	if p == nil {
		hint := ""
		if len(gpioreg.All()) == 0 {
			hint = "; periph found no GPIO pins at all (is this a Raspberry Pi?)"
		}
		return nil, fmt.Errorf("servo: gpio: no pin %q; name a pin by its GPIO number (GPIO18 or 18) or its header position (P1_12)%s", name, hint)
	}
	under := gpio.PinOut(p)
	if r, ok := p.(gpio.RealPin); ok {
		under = r.Real()
	}
	// periph's character-device pins (all it has on a Raspberry Pi 5,
	// whose GPIOs are on the RP1 chip) cannot generate PWM.
	if _, ok := under.(*gpioioctl.GPIOLine); ok {
		return nil, fmt.Errorf("servo: gpio: periph cannot generate PWM on %s on this board; use the sysfs driver (e.g. sysfs:pwmchip0/0 with dtoverlay=pwm)", p)
	}
	d, err := NewGPIO(p, cfg)
	if err != nil {
		return nil, err
	}
	return d, nil
}
