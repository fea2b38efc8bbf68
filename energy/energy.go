// Package energy reads solar inverters and energy meters over Modbus, the
// way a local gateway does: SunSpec devices by discovery, other brands by
// register profiles shipped as data, over Modbus TCP, RTU, RTU over TCP, or
// a Solarman V5 data-logger stick.
//
// Every device is an Inverter (meters have the same shape) that returns a
// Reading. Values a device does not report are explicitly missing (see
// Value), never zero.
//
// Devices are opened from a one-line spec with Open, the same way in every
// pikit package:
//
//	sunspec+tcp://192.168.1.20:502?unit=1
//	huawei+tcp://192.168.1.30:502?unit=1
//	sungrow+rtu:///dev/ttyUSB0?baud=9600&unit=1
//	solarman://192.168.1.40:8899?serial=1234567890&profile=deye
//	sim                                  (with energy/siminverter imported)
package energy

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"strconv"
	"time"

	"github.com/pikit/pikit/internal/devspec"
)

// Value is a measurement that may be missing: a device that does not
// report a quantity, or reports SunSpec's "not implemented", gives a Value
// with OK false. It marshals to JSON as a number or null.
type Value struct {
	V  float64
	OK bool
}

// Some returns a present Value.
func Some(v float64) Value { return Value{V: v, OK: true} }

// MarshalJSON writes the number, or null when missing (NaN and infinities,
// which JSON cannot carry, count as missing).
func (v Value) MarshalJSON() ([]byte, error) {
	if !v.OK || math.IsNaN(v.V) || math.IsInf(v.V, 0) {
		return []byte("null"), nil
	}
	return strconv.AppendFloat(nil, v.V, 'g', -1, 64), nil
}

// UnmarshalJSON reads a number or null.
func (v *Value) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*v = Value{}
		return nil
	}
	var f float64
	if err := json.Unmarshal(b, &f); err != nil {
		return err
	}
	*v = Some(f)
	return nil
}

// String formats the value, or "—" when missing.
func (v Value) String() string {
	if !v.OK {
		return "—"
	}
	return strconv.FormatFloat(v.V, 'f', -1, 64)
}

// Info identifies a device.
type Info struct {
	Manufacturer string `json:"manufacturer"`
	Model        string `json:"model"`
	Serial       string `json:"serial"`
	Version      string `json:"version,omitempty"`
	// Profile is how the device is read: "sunspec" or a vendor profile name.
	Profile string `json:"profile"`
	// Kind is "inverter" or "meter".
	Kind string `json:"kind"`
}

// Phase is one AC phase.
type Phase struct {
	Voltage Value `json:"voltage_v"` // line to neutral, V
	Current Value `json:"current_a"` // A
	Power   Value `json:"power_w"`   // W, same sign convention as Reading.ACPower
}

// DCInput is one PV string or MPPT input.
type DCInput struct {
	Voltage Value `json:"voltage_v"`
	Current Value `json:"current_a"`
	Power   Value `json:"power_w"`
}

// RegisterBlock is a run of registers as read from the device, kept so a
// gateway can forward the raw data ("raw harvest") alongside decoded values.
type RegisterBlock struct {
	Function uint8    `json:"function"` // 3 holding, 4 input
	Start    uint16   `json:"start"`    // PDU address (0-based, as on the wire)
	Values   []uint16 `json:"values"`
}

// Reading is what one read of a device returned.
//
// Sign convention: ACPower is positive when power flows out of the device
// (an inverter producing, a meter's site exporting to the grid) and
// negative when it flows in (a meter's site importing).
type Reading struct {
	Time   time.Time `json:"time"`
	Device Info      `json:"device"`

	ACPower     Value     `json:"ac_power_w"`
	DCPower     Value     `json:"dc_power_w"`
	DC          []DCInput `json:"dc,omitempty"`
	EnergyTotal Value     `json:"energy_total_wh"` // lifetime, Wh (float64: exceeds physic.Energy's range)
	Frequency   Value     `json:"frequency_hz"`
	Phases      []Phase   `json:"phases,omitempty"`
	Temperature Value     `json:"temperature_c"` // internal / heat sink, °C
	// State is the operating state in words ("mppt", "off", "fault", ...),
	// empty when unknown.
	State string `json:"state,omitempty"`

	Raw []RegisterBlock `json:"raw,omitempty"`
}

// Inverter is a device that can be read: an inverter or a meter.
//
// Implementations are safe for concurrent use; reads of one device are
// serialised on its connection.
type Inverter interface {
	// Read reads the device's current values.
	Read(ctx context.Context) (Reading, error)
	// Info returns the device's identity (read once and cached by most
	// implementations).
	Info(ctx context.Context) (Info, error)
	// Close closes the connection.
	Close() error
}

// RegisterReader reads Modbus registers: the seam between protocols
// (SunSpec, vendor profiles) and transports (Modbus TCP, RTU, RTU over TCP,
// Solarman V5). Implementations are safe for concurrent use.
type RegisterReader interface {
	// ReadRegisters reads count registers starting at PDU address addr of
	// unit with function code fc (3 holding, 4 input).
	ReadRegisters(ctx context.Context, unit uint8, fc uint8, addr, count uint16) ([]uint16, error)
	// Close closes the underlying connection.
	Close() error
}

var (
	// ErrClosed is returned after Close.
	ErrClosed = errors.New("energy: closed")
	// ErrNotSunSpec is wrapped when a device has no SunSpec marker at any
	// of the base addresses.
	ErrNotSunSpec = errors.New("energy: no SunSpec device found")
)

// Driver describes a way of opening an Inverter from a spec; see Register.
type Driver struct {
	// Name is the spec prefix before the colon, e.g. "sunspec+tcp".
	Name string
	// Usage shows the accepted form, for errors.
	Usage string
	// Open opens a device from everything after "Name:".
	Open func(arg string) (Inverter, error)
	// Detect, if set, tells Open("auto") whether a device is present. It
	// must not write to any device.
	Detect func() (arg string, ok bool)
}

var registry = devspec.New[Inverter]("energy", "sim")

// Register adds a driver so Open can select it by name. It is an error to
// register a name twice; registering must not access any device.
func Register(d Driver) error { return registry.Register(devspec.Driver[Inverter](d)) }

// Drivers returns the registered drivers in registration order.
func Drivers() []Driver {
	ds := registry.Drivers()
	out := make([]Driver, len(ds))
	for i, d := range ds {
		out[i] = Driver(d)
	}
	return out
}

// Open opens a device from a spec (see the package documentation).
func Open(spec string) (Inverter, error) { return registry.Open(spec) }

// Resolve returns the concrete spec Open would use, without opening anything.
func Resolve(spec string) (string, error) {
	s, _, err := registry.Resolve(spec)
	return s, err
}
