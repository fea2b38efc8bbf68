package main

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"

	"github.com/pikit/pikit/energy"
	"github.com/pikit/pikit/energy/siminverter"
	"github.com/pikit/pikit/internal/devspec"
)

// rawDriver is a transport driver registered only to get a RegisterReader
// that shares the harvester's connection: energy opens specs naming the
// same host:port or serial device on one connection with requests
// serialised, which matters on an RS-485 bus, where a second owner of the
// port would garble both.
const rawDriver = "gwraw"

// rawDevice exposes the RegisterReader; it cannot Read.
type rawDevice struct{ rr energy.RegisterReader }

func (d *rawDevice) Read(context.Context) (energy.Reading, error) {
	return energy.Reading{}, errors.New("raw device")
}
func (d *rawDevice) Info(context.Context) (energy.Info, error) {
	return energy.Info{}, errors.New("raw device")
}
func (d *rawDevice) Close() error { return d.rr.Close() }

func init() {
	err := energy.RegisterTransportDrivers(rawDriver, func(rr energy.RegisterReader, unit uint8, _ url.Values) (energy.Inverter, error) {
		// The profile's own options (the rest of the query) are
		// irrelevant to raw reads.
		return &rawDevice{rr: rr}, nil
	}, "")
	if err != nil {
		panic(err)
	}
}

// modbusResult is GET /api/modbus.
type modbusResult struct {
	Device   string   `json:"device"`
	Unit     uint8    `json:"unit"`
	Function uint8    `json:"function"`
	Address  uint16   `json:"address"`
	Count    uint16   `json:"count"`
	Values   []uint16 `json:"values"`
	Hex      []string `json:"hex"`
}

// rawReader returns a RegisterReader for a device's connection and the
// unit the device answers on.
func rawReader(spec string, inv energy.Inverter) (energy.RegisterReader, uint8, error) {
	if sim, ok := siminverter.Sim(inv); ok {
		m, err := energy.NewModbus("tcp://"+sim.Addr(), energy.ModbusOptions{})
		return m, sim.Unit(), err
	}
	resolved, err := energy.Resolve(spec)
	if err != nil {
		return nil, 0, err
	}
	name, arg, err := devspec.Split(resolved)
	if err != nil {
		return nil, 0, err
	}
	if name == "sim" {
		return nil, 0, fieldErr("device", "the simulated device is not running yet; try again after its first read")
	}
	if name == "solarman" {
		return solarmanReader(arg)
	}
	profile, scheme, ok := strings.Cut(name, "+")
	if !ok || (scheme != "tcp" && scheme != "rtu" && scheme != "rtuovertcp") {
		return nil, 0, fieldErr("device", "raw reads need a Modbus device (PROFILE+tcp, +rtu, +rtuovertcp, solarman or sim), not %q", name)
	}
	ts, err := energy.ParseTransportSpec(scheme, arg)
	if err != nil {
		return nil, 0, err
	}
	unit := ts.Unit
	if !ts.UnitSet && profile != "sunspec" {
		if p, err := energy.LookupProfile(profile); err == nil && p.Unit != 0 {
			unit = p.Unit
		}
	}
	inv2, err := energy.Open(rawDriver + "+" + scheme + ":" + arg)
	if err != nil {
		return nil, 0, err
	}
	return inv2.(*rawDevice).rr, unit, nil
}

// solarmanReader opens a second connection to a Solarman logger.
func solarmanReader(arg string) (energy.RegisterReader, uint8, error) {
	target, opts, err := devspec.ParseArg(arg, "serial", "profile", "unit", "timeout")
	if err != nil {
		return nil, 0, err
	}
	serial, err := strconv.ParseUint(opts["serial"], 10, 32)
	if err != nil {
		return nil, 0, fmt.Errorf("solarman serial: %w", err)
	}
	name := opts["profile"]
	if name == "" {
		name = "deye"
	}
	unit := uint8(1)
	if p, err := energy.LookupProfile(name); err == nil {
		unit = p.Unit
	}
	if v := opts["unit"]; v != "" {
		n, err := strconv.ParseUint(v, 10, 8)
		if err != nil {
			return nil, 0, fmt.Errorf("solarman unit: %w", err)
		}
		unit = uint8(n)
	}
	sm, err := energy.NewSolarman(strings.TrimPrefix(target, "//"), uint32(serial), energy.SolarmanOptions{})
	return sm, unit, err
}

// modbusRead reads registers of a configured device for diagnostics.
// unit < 0 means the device's own unit.
func (g *gateway) modbusRead(ctx context.Context, dev string, unit int, fc uint8, addr, count uint16) (modbusResult, error) {
	h := g.harvester(dev)
	if h == nil {
		return modbusResult{}, fmt.Errorf("%w: %q", errNotFound, dev)
	}
	rr, u, err := rawReader(h.cfg.Spec, h.inverter())
	if err != nil {
		return modbusResult{}, err
	}
	defer rr.Close()
	if unit >= 0 {
		u = uint8(unit)
	}
	vals, err := rr.ReadRegisters(ctx, u, fc, addr, count)
	if err != nil {
		return modbusResult{}, err
	}
	res := modbusResult{Device: dev, Unit: u, Function: fc, Address: addr, Count: count, Values: vals, Hex: make([]string, len(vals))}
	for i, v := range vals {
		res.Hex[i] = fmt.Sprintf("0x%04x", v)
	}
	return res, nil
}
