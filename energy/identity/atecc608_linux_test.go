package identity

import (
	"bytes"
	"crypto"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"sync"
	"testing"

	"periph.io/x/conn/v3/i2c"
)

// closerBus adds Close to a SimBus and counts it.
type closerBus struct {
	*SimBus
	mu     sync.Mutex
	closed int
}

func (c *closerBus) Close() error {
	c.mu.Lock()
	c.closed++
	c.mu.Unlock()
	return nil
}

func (c *closerBus) closes() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

func testOpener(bus *closerBus, openErr error) *ateccOpener {
	return &ateccOpener{
		resolve: func(b string) (string, error) { return b, nil },
		openBus: func(string) (i2c.BusCloser, error) {
			if openErr != nil {
				return nil, openErr
			}
			return bus, nil
		},
	}
}

func TestATECCOpener(t *testing.T) {
	t.Parallel()

	t.Run("fallback address", func(t *testing.T) {
		t.Parallel()
		bus := &closerBus{SimBus: NewSimBus(testKey(t), testSerial)}
		bus.SetAddr(ATECCFallbackAddr)
		a, err := testOpener(bus, nil).open("/dev/i2c-1")
		if err != nil {
			t.Fatal(err)
		}
		if a.Addr() != 0x35 || a.KeyType() != "atecc608" {
			t.Errorf("Addr() = %#x, KeyType() = %q", a.Addr(), a.KeyType())
		}
		if _, err := a.Sign(nil, digestOf("x"), crypto.SHA256); err != nil {
			t.Fatal(err)
		}
		if err := a.Close(); err != nil || bus.closes() != 1 {
			t.Errorf("Close: %v, bus closed %d times", err, bus.closes())
		}
		a.Close()
		if bus.closes() != 1 {
			t.Error("second Close closed the bus again")
		}
	})

	t.Run("no chip", func(t *testing.T) {
		t.Parallel()
		bus := &closerBus{SimBus: NewSimBus(testKey(t), testSerial)}
		bus.SetAddr(0x50)
		_, err := testOpener(bus, nil).open("/dev/i2c-1")
		if !errors.Is(err, ErrNoChip) || !strings.Contains(err.Error(), "at 0x60") || !strings.Contains(err.Error(), "at 0x35") {
			t.Errorf("error %v", err)
		}
		if bus.closes() != 1 {
			t.Errorf("bus closed %d times", bus.closes())
		}
	})

	t.Run("explicit address", func(t *testing.T) {
		t.Parallel()
		bus := &closerBus{SimBus: NewSimBus(testKey(t), testSerial)}
		bus.SetAddr(ATECCFallbackAddr)
		if _, err := testOpener(bus, nil).open("/dev/i2c-1@0x60"); !errors.Is(err, ErrNoChip) || strings.Contains(err.Error(), "0x35") {
			t.Errorf("error %v", err)
		}
	})

	t.Run("failing chip", func(t *testing.T) {
		t.Parallel()
		// A chip at 0x60 that answers and fails is an error; 0x35 is not
		// tried.
		bus := &closerBus{SimBus: NewSimBus(testKey(t), testSerial)}
		bus.FailCommand(opGenKey, StatusExecution)
		_, err := testOpener(bus, nil).open("/dev/i2c-1")
		if !errors.Is(err, &StatusError{Op: "genkey", Code: StatusExecution}) || errors.Is(err, ErrNoChip) {
			t.Errorf("error %v", err)
		}
		if got := bus.Commands(); !bytes.Equal(got, []byte{opInfo, opRead, opGenKey}) {
			t.Errorf("commands % x", got)
		}
	})

	t.Run("permission", func(t *testing.T) {
		t.Parallel()
		_, err := testOpener(nil, fmt.Errorf("sysfs-i2c: %v", fs.ErrPermission)).open("/dev/i2c-1")
		if err == nil || !strings.Contains(err.Error(), "adduser $USER i2c") {
			t.Errorf("error %v", err)
		}
	})

	t.Run("shared lock", func(t *testing.T) {
		t.Parallel()
		o := testOpener(nil, nil)
		a, b, c := o.lock("/dev/i2c-1", 0x60), o.lock("/dev/i2c-1", 0x60), o.lock("/dev/i2c-1", 0x35)
		if a != b || a == c {
			t.Error("locks are not per chip")
		}
	})
}
