package identity

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"sync"

	"github.com/pikit/pikit/internal/devspec"
	"github.com/pikit/pikit/internal/i2cbus"
	"periph.io/x/conn/v3/i2c"
	"periph.io/x/conn/v3/i2c/i2creg"
)

// defaultBus is the I²C bus of the Raspberry Pi header, where the original
// gateway's chip sits.
const defaultBus = "/dev/i2c-1"

// linuxI2C opens chips on the real buses.
var linuxI2C = &ateccOpener{
	resolve: resolveI2CBus,
	openBus: func(bus string) (i2c.BusCloser, error) { return i2creg.Open(bus) },
}

// The atecc608 driver registers only on Linux, where periph finds the I²C
// buses; the driver itself (atecc608.go) is portable.
func init() {
	registry.MustRegister(devspec.Driver[Identity]{
		Name:  "atecc608",
		Usage: "atecc608:/dev/i2c-N[@0xADDR] (default 0x60, then 0x35)",
		Open: func(arg string) (Identity, error) {
			a, err := linuxI2C.open(arg)
			if err != nil {
				return nil, err
			}
			return a, nil
		},
	})
	probeDefaultChip = func() (Identity, error) {
		if _, err := os.Stat(defaultBus); err != nil {
			return nil, errNoBus
		}
		a, err := linuxI2C.open(defaultBus)
		if err != nil {
			return nil, err
		}
		return a, nil
	}
}

// resolveI2CBus resolves a bus name; a missing bus also matches errNoBus,
// so OpenDefault falls back to the key file.
func resolveI2CBus(bus string) (string, error) {
	name, err := i2cbus.Resolve(bus)
	if errors.Is(err, i2cbus.ErrNoBus) {
		return "", fmt.Errorf("%w: %w", errNoBus, err)
	}
	if err != nil {
		return "", fmt.Errorf("identity: atecc608: %w", err)
	}
	return name, nil
}

// ateccOpener opens chips from spec arguments. Handles on one chip (same
// bus and address) share a transaction lock, so that two identities opened
// on the same chip never interleave their commands.
type ateccOpener struct {
	resolve func(bus string) (string, error)
	openBus func(bus string) (i2c.BusCloser, error)

	mu    sync.Mutex
	locks map[string]*sync.Mutex
}

func (o *ateccOpener) lock(bus string, addr uint16) *sync.Mutex {
	o.mu.Lock()
	defer o.mu.Unlock()
	key := fmt.Sprintf("%s@%#x", bus, addr)
	if o.locks == nil {
		o.locks = map[string]*sync.Mutex{}
	}
	m := o.locks[key]
	if m == nil {
		m = new(sync.Mutex)
		o.locks[key] = m
	}
	return m
}

// open opens the chip an "atecc608:" argument names; with no address, it
// tries 0x60 and then 0x35.
func (o *ateccOpener) open(arg string) (*ATECC608, error) {
	s, err := parseATECCSpec(arg)
	if err != nil {
		return nil, err
	}
	bus, err := o.resolve(s.bus)
	if err != nil {
		return nil, err
	}
	bc, err := o.openBus(bus)
	if err != nil {
		return nil, i2cBusError(bus, err)
	}
	var errs []error
	for _, addr := range s.addrs {
		a, err := newATECC(context.Background(), bc, addr, ATECCOptions{}, KeyTypeATECC608, o.lock(bus, addr), bc.Close)
		if err == nil {
			return a, nil
		}
		errs = append(errs, err)
		if !errors.Is(err, ErrNoChip) {
			break // a chip answered and failed: do not try another address
		}
	}
	bc.Close()
	return nil, errors.Join(errs...)
}

// i2cBusError explains a failure to open an I²C bus. periph's sysfs driver
// formats the OS error with %v, so the text is the only way to tell a
// permission problem.
func i2cBusError(bus string, err error) error {
	if errors.Is(err, fs.ErrPermission) || strings.Contains(err.Error(), "permission denied") {
		return fmt.Errorf("identity: atecc608: open %s: permission denied; %s: %w", bus, i2cPermHint, err)
	}
	return fmt.Errorf("identity: atecc608: open %s: %w", bus, err)
}
