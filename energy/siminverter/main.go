package siminverter

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/pikit/pikit/energy"
	"github.com/pikit/pikit/internal/devspec"
)

// simDevice is the Inverter the "sim" driver returns: a client reading a
// private simulator over Modbus TCP. Closing it stops the simulator.
type simDevice struct {
	energy.Inverter
	sim *Inverter
}

// Close closes the client and stops the simulator.
func (d *simDevice) Close() error {
	err := d.Inverter.Close()
	if serr := d.sim.Close(); err == nil {
		err = serr
	}
	return err
}

// Sim returns the simulator behind an Inverter opened with the "sim"
// driver, for tests that want to inject faults or compare with Current.
func Sim(inv energy.Inverter) (*Inverter, bool) {
	d, ok := inv.(*simDevice)
	if !ok {
		return nil, false
	}
	return d.sim, true
}

// Dial returns an energy.Inverter that reads the simulator over Modbus TCP
// as a real gateway would (SunSpec discovery, or the vendor profile). The
// Inverter's Close does not stop the simulator.
func (s *Inverter) Dial() (energy.Inverter, error) {
	rr, err := energy.NewModbus("tcp://"+s.Addr(), energy.ModbusOptions{})
	if err != nil {
		return nil, err
	}
	var inv energy.Inverter
	if s.profile == nil {
		inv, err = energy.NewSunSpec(rr, s.opts.Unit, energy.SunSpecOptions{})
	} else {
		inv, err = energy.NewProfileDevice(rr, s.opts.Unit, s.profile, energy.ProfileOptions{})
	}
	if err != nil {
		rr.Close()
		return nil, err
	}
	return inv, nil
}

// openSim opens "sim[?profile=NAME&peak=W&seed=N&unit=N&clear=true]".
func openSim(arg string) (energy.Inverter, error) {
	target, opts, err := devspec.ParseArg(arg, "profile", "peak", "seed", "unit", "clear")
	if err != nil {
		return nil, fmt.Errorf("energy: sim: %w", err)
	}
	if target != "" {
		return nil, fmt.Errorf("energy: sim: unexpected argument %q (form: sim[?profile=sunspec&peak=5000&seed=1])", target)
	}
	var o Options
	if v, ok := opts["profile"]; ok {
		o.Profile = v
	}
	if v, ok := opts["peak"]; ok {
		if o.PeakPower, err = strconv.ParseFloat(v, 64); err != nil || o.PeakPower <= 0 {
			return nil, fmt.Errorf("energy: sim: option peak=%q: want a positive power in W", v)
		}
	}
	if v, ok := opts["seed"]; ok {
		if o.Seed, err = strconv.ParseInt(v, 10, 64); err != nil {
			return nil, fmt.Errorf("energy: sim: option seed=%q: want an integer", v)
		}
	}
	if v, ok := opts["unit"]; ok {
		n, err := strconv.ParseUint(v, 10, 8)
		if err != nil || n > 247 {
			return nil, fmt.Errorf("energy: sim: option unit=%q: want 0-247", v)
		}
		o.Unit = uint8(n)
	}
	if v, ok := opts["clear"]; ok {
		if o.ClearSky, err = strconv.ParseBool(v); err != nil {
			return nil, fmt.Errorf("energy: sim: option clear=%q: want true or false", v)
		}
	}
	sim, err := New(o)
	if err != nil {
		return nil, fmt.Errorf("energy: sim: %w", err)
	}
	inv, err := sim.Dial()
	if err != nil {
		sim.Close()
		return nil, fmt.Errorf("energy: sim: %w", err)
	}
	return &simDevice{Inverter: inv, sim: sim}, nil
}

func init() {
	if err := energy.Register(energy.Driver{
		Name:  "sim",
		Usage: "sim[?profile=sunspec&peak=5000&seed=1&unit=N&clear=false]",
		Open:  openSim,
	}); err != nil {
		panic(err)
	}
}

// Main runs a simulator from command-line arguments until ctx ends, for a
// "sim-inverter" subcommand:
//
//	sim-inverter [-listen 127.0.0.1:5020] [-profile sunspec] [-peak 5000] [-seed 1]
//	             [-unit N] [-clear] [-delay 0s] [-drop 0] [-garbage 0] [-exception 0]
//
// It prints the address it serves on to stdout and errors to stderr, and
// returns the process exit code: 0 after ctx ends, 2 for bad arguments, 1
// when the simulator cannot start.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("sim-inverter", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		o     Options
		unit  uint
		rates Faults
	)
	fs.StringVar(&o.Listen, "listen", "127.0.0.1:5020", "TCP `address` to serve Modbus TCP on")
	fs.StringVar(&o.Profile, "profile", "sunspec", "register map: sunspec or one of "+strings.Join(energy.ProfileNames(), ", "))
	fs.Float64Var(&o.PeakPower, "peak", DefaultPeakPower, "peak DC `power` in W")
	fs.Int64Var(&o.Seed, "seed", 1, "weather and serial-number `seed`")
	fs.UintVar(&unit, "unit", 0, "Modbus unit `id` to answer (default: the profile's)")
	fs.BoolVar(&o.ClearSky, "clear", false, "no clouds")
	fs.DurationVar(&rates.Delay, "delay", 0, "`delay` before every response")
	fs.Float64Var(&rates.DropRate, "drop", 0, "fraction of requests whose connection is dropped")
	fs.Float64Var(&rates.GarbageRate, "garbage", 0, "fraction of requests answered with garbage bytes")
	fs.Float64Var(&rates.ExceptionRate, "exception", 0, "fraction of requests answered with a Modbus exception")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "sim-inverter: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	if unit > 247 {
		fmt.Fprintf(stderr, "sim-inverter: -unit %d: want 0-247\n", unit)
		return 2
	}
	o.Unit = uint8(unit)
	o.Faults = rates
	sim, err := New(o)
	if err != nil {
		fmt.Fprintln(stderr, "sim-inverter:", err)
		return 1
	}
	defer sim.Close()
	fmt.Fprintf(stdout, "sim-inverter: serving %s (unit %d, peak %g W, seed %d) on %s\n",
		sim.Profile(), sim.Unit(), o.PeakPower, o.Seed, sim.Addr())
	<-ctx.Done()
	return 0
}
