// Package irlamp drives infrared-controlled lamps, such as the common RGB
// LED bulbs and strips sold with a 24-key remote, from a Raspberry Pi.
//
// A Transmitter sends the key presses of a Remote: through lircd's socket,
// through the kernel's /dev/lircN device directly (pure Go, no lircd), or to
// a simulated lamp that decodes the pulses it receives. A Lamp sits on top
// and keeps track of what the lamp is believed to show, re-sending it now and
// then because IR has no feedback: a lamp can miss a code or be switched off
// by hand.
//
// Transmitters are opened from a one-line spec with Open, the same way in
// every pikit package:
//
//	lircd:/var/run/lirc/lircd       lircd's unix socket
//	lircd:tcp://127.0.0.1:8765      lircd's TCP listener
//	lirc:/dev/lirc0                 the kernel device (gpio-ir-tx overlay)
//	sim                             a simulated 24-key lamp
//	auto                            /dev/lirc0 or lircd if present, else sim
package irlamp

import (
	"context"
	"errors"

	"github.com/pikit/pikit/internal/devspec"
)

// Transmitter sends IR key presses.
//
// Implementations in this package are safe for concurrent use; sends are
// serialised, as the IR LED can only carry one signal at a time.
type Transmitter interface {
	// Send transmits key of remote r, repeats extra times after the first
	// (0 sends it once). Each repeat is the full code, not an NEC repeat
	// frame: cheap lamps ignore repeat frames. It blocks until the signal
	// has been sent or ctx is done.
	Send(ctx context.Context, r *Remote, key string, repeats int) error
	// Close releases the device or connection.
	Close() error
}

var (
	// ErrUnknownKey is wrapped when a remote has no key of the given name.
	ErrUnknownKey = errors.New("irlamp: unknown key")
	// ErrClosed is returned after Close.
	ErrClosed = errors.New("irlamp: closed")
)

// Driver describes a way of opening a Transmitter from a spec; see Register.
type Driver struct {
	// Name is the spec prefix before the colon, e.g. "lircd".
	Name string
	// Usage shows the accepted form, for errors.
	Usage string
	// Open opens a transmitter from everything after "Name:".
	Open func(arg string) (Transmitter, error)
	// Detect, if set, tells Open("auto") whether this driver's device is
	// present and which argument to use. It must not transmit anything.
	Detect func() (arg string, ok bool)
}

var registry = devspec.New[Transmitter]("irlamp", "sim")

// Register adds a driver so Open can select it by name. It is an error to
// register a name twice; registering must not access hardware.
func Register(d Driver) error { return registry.Register(devspec.Driver[Transmitter](d)) }

// Drivers returns the registered drivers in the order "auto" tries them.
func Drivers() []Driver {
	ds := registry.Drivers()
	out := make([]Driver, len(ds))
	for i, d := range ds {
		out[i] = Driver(d)
	}
	return out
}

// Open opens a Transmitter from a spec (see the package documentation).
// "auto" opens the first driver whose device is detected, and otherwise the
// simulated lamp, saying so on stderr.
func Open(spec string) (Transmitter, error) { return registry.Open(spec) }

// Resolve returns the concrete spec Open would use, without opening anything.
func Resolve(spec string) (string, error) {
	s, _, err := registry.Resolve(spec)
	return s, err
}
