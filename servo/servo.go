// Package servo drives hobby servos (SG90, MG996R and the like) from a
// Raspberry Pi: kernel PWM through sysfs, PCA9685 16-channel boards over I²C,
// any periph gpio.PinOut that can generate PWM, and a simulated servo for tests
// and laptops.
//
// Every driver implements Device. A Config maps angles to pulse widths and is
// validated before any pulse is sent, so a bad calibration cannot drive a
// servo into its end stops. Devices are opened either with a driver's
// constructor (NewSysfs, NewPCA9685, NewGPIO, NewSim) or from a one-line spec
// with Open:
//
//	sim                              simulated servo
//	sysfs:pwmchip0/0                 kernel PWM chip 0, channel 0
//	pca9685:/dev/i2c-1@0x40/3        PCA9685 at 0x40 on I²C bus 1, channel 3
//	gpio:GPIO18                      periph PWM on a Pi header pin
//	auto                             sysfs when a PWM chip exists, else sim
//
// Any spec takes calibration options after a '?':
// min, max (pulse widths, e.g. 600us, 2.4ms), angles (e.g. 0..180 or -90..90),
// freq (e.g. 50Hz), reverse (true/false), wide (true allows pulses outside
// 0.5–2.5 ms). Example: "sysfs:pwmchip0/0?min=0.5ms&max=2.5ms".
package servo

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/pikit/pikit/internal/devspec"
	"periph.io/x/conn/v3/physic"
)

// Device is a servo.
//
// Drivers in this package are safe for concurrent use; the last SetAngle
// wins. Once closed, every method returns ErrClosed (Close itself returns
// nil).
type Device interface {
	// SetAngle commands the servo to an angle and keeps pulsing until the
	// next command, Release or Close. It returns as soon as the pulse width
	// is set; the shaft takes some time to get there. An angle outside the
	// configured range is refused with ErrOutOfRange and moves nothing.
	SetAngle(a physic.Angle) error
	// Angle returns the last commanded angle and whether the servo is
	// holding it (false before the first SetAngle and after Release).
	Angle() (a physic.Angle, holding bool)
	// Release stops the pulses: the servo goes limp and stops drawing
	// holding current.
	Release() error
	// Close releases the servo and frees the hardware.
	Close() error
}

var (
	// ErrOutOfRange is returned for an angle outside the configured range.
	ErrOutOfRange = errors.New("servo: angle out of range")
	// ErrClosed is returned by a device that has been closed.
	ErrClosed = errors.New("servo: device closed")
)

// Driver describes a way of opening a servo from a spec; see Register.
type Driver struct {
	// Name is the spec prefix before the colon, e.g. "sysfs".
	Name string
	// Usage shows the accepted form, e.g. "sysfs:pwmchipN/M", for errors.
	Usage string
	// Open opens a servo from everything after "Name:".
	Open func(arg string) (Device, error)
	// Detect, if set, tells Open("auto") whether this driver's hardware is
	// present and which argument to use. It must not touch the hardware's
	// state.
	Detect func() (arg string, ok bool)
}

var registry = devspec.New[Device]("servo", "sim")

// Register adds a driver so Open can select it by name. Drivers register in
// init functions; registering must not access hardware. It is an error to
// register a name twice.
func Register(d Driver) error { return registry.Register(devspec.Driver[Device](d)) }

// Drivers returns the registered drivers in the order "auto" tries them.
func Drivers() []Driver {
	ds := registry.Drivers()
	out := make([]Driver, len(ds))
	for i, d := range ds {
		out[i] = Driver(d)
	}
	return out
}

// Open opens a servo from a spec such as "sysfs:pwmchip0/0" or "sim" (see the
// package documentation). "auto" opens the first driver whose hardware is
// detected and falls back to the simulated servo, saying so on stderr.
func Open(spec string) (Device, error) { return registry.Open(spec) }

// Resolve returns the concrete spec Open would use for spec, without opening
// anything; useful to show which driver "auto" picked.
func Resolve(spec string) (string, error) {
	s, _, err := registry.Resolve(spec)
	return s, err
}

// DefaultSpeed is the speed Move uses when given zero: about what an SG90
// manages unloaded (60° in 0.1 s), so Move with it is as fast as SetAngle.
const DefaultSpeed = 600 * physic.Degree

// moveStep is how often Move updates the pulse width: once per PWM period at
// 50 Hz; updating faster than the servo samples its input gains nothing.
const moveStep = 20 * time.Millisecond

// Move sweeps d from its current angle to target at speed (angle per second;
// zero means DefaultSpeed), updating the pulse every 20 ms, and returns when
// the target has been commanded. If d is not holding an angle, its position
// is unknown and Move commands the target at once. If ctx is cancelled, Move
// stops where it is (the servo keeps holding that angle) and returns the
// context's error.
func Move(ctx context.Context, d Device, target, speed physic.Angle) error {
	if speed < 0 {
		return fmt.Errorf("servo: negative speed %s", speed)
	}
	if speed == 0 {
		speed = DefaultSpeed
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	from, holding := d.Angle()
	if !holding || from == target {
		return d.SetAngle(target)
	}
	dist := target - from
	if dist < 0 {
		dist = -dist
	}
	// Steps are computed from elapsed time rather than counted, so a late
	// tick (a busy Pi Zero) does not slow the sweep down.
	total := time.Duration(float64(dist) / float64(speed) * float64(time.Second))
	start := time.Now()
	tick := time.NewTicker(moveStep)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
		elapsed := time.Since(start)
		if elapsed >= total {
			return d.SetAngle(target)
		}
		frac := float64(elapsed) / float64(total)
		if err := d.SetAngle(from + physic.Angle(frac*float64(target-from))); err != nil {
			return err
		}
	}
}
