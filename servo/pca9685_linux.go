package servo

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/pikit/pikit/internal/devspec"
	"periph.io/x/conn/v3/i2c"
	"periph.io/x/conn/v3/i2c/i2creg"
	"periph.io/x/devices/v3/pca9685"
	"periph.io/x/host/v3"
)

// i2cBoards holds the boards opened from "pca9685:" specs in this process.
var i2cBoards = &pcaBoards{
	resolve: resolveI2CBus,
	openBus: func(bus string) (i2c.BusCloser, error) { return i2creg.Open(bus) },
	newDev:  pca9685.NewI2C,
}

// The pca9685 driver registers only on Linux, where periph finds the I²C
// buses; the driver itself (pca9685.go) is portable. It has no Detect:
// probing an I²C address for "auto" would write to whatever device
// answers there.
func init() {
	registry.MustRegister(devspec.Driver[Device]{
		Name:  "pca9685",
		Usage: "pca9685:/dev/i2c-N[@0xADDR]/CHANNEL[?options]",
		Open: func(arg string) (Device, error) {
			d, err := i2cBoards.open(arg)
			if err != nil {
				// Not d: a nil *PCA9685 in a Device is not a nil Device.
				return nil, err
			}
			return d, nil
		},
	})
}

// resolveI2CBus initialises periph and returns the canonical name of bus
// ("/dev/i2c-1" for "1", "I2C1" or "/dev/i2c-1").
func resolveI2CBus(bus string) (string, error) {
	if _, err := host.Init(); err != nil {
		return "", fmt.Errorf("servo: pca9685: initialise periph: %w", err)
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
	return "", fmt.Errorf(`servo: pca9685: no I²C bus %q (found: %s); enable I²C with "dtparam=i2c_arm=on" in /boot/firmware/config.txt (or raspi-config) and reboot`, bus, found)
}
