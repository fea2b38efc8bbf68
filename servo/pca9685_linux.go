package servo

import (
	"fmt"

	"github.com/pikit/pikit/internal/devspec"
	"github.com/pikit/pikit/internal/i2cbus"
	"periph.io/x/conn/v3/i2c"
	"periph.io/x/conn/v3/i2c/i2creg"
	"periph.io/x/devices/v3/pca9685"
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

// resolveI2CBus resolves a bus name with the package's error prefix.
func resolveI2CBus(bus string) (string, error) {
	name, err := i2cbus.Resolve(bus)
	if err != nil {
		return "", fmt.Errorf("servo: pca9685: %w", err)
	}
	return name, nil
}
