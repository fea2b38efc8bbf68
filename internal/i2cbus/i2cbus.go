// Package i2cbus resolves the I²C bus names users give in specs ("1",
// "I2C1", "/dev/i2c-1") to periph's canonical name, with the error a Pi
// user needs when I²C is not enabled. The servo (PCA9685) and energy
// identity (ATECC608) drivers share it.
package i2cbus

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"periph.io/x/conn/v3/i2c/i2creg"
	"periph.io/x/host/v3"
)

// ErrNoBus is wrapped when no I²C bus of the given name exists.
var ErrNoBus = errors.New("no I²C bus")

// Resolve initialises periph's host drivers and returns the canonical name
// of bus. Callers prefix the error with their package and driver.
func Resolve(bus string) (string, error) {
	if _, err := host.Init(); err != nil {
		return "", fmt.Errorf("initialise periph: %w", err)
	}
	refs := i2creg.All()
	names := make([]string, 0, len(refs))
	for _, r := range refs {
		if r.Name == bus || slices.Contains(r.Aliases, bus) || (r.Number >= 0 && strconv.Itoa(r.Number) == bus) {
			return r.Name, nil
		}
		names = append(names, r.Name)
	}
	// periph registers only the /dev/i2c-N nodes that exist, so a missing
	// bus is nearly always I²C not being enabled.
	found := "none"
	if len(names) > 0 {
		found = strings.Join(names, ", ")
	}
	return "", fmt.Errorf(`%w %q (found: %s); enable I²C with "dtparam=i2c_arm=on" in /boot/firmware/config.txt (or raspi-config) and reboot`, ErrNoBus, bus, found)
}
