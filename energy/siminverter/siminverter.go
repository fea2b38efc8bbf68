// Package siminverter is a simulated solar inverter behind a real Modbus TCP
// server, for developing and testing gateways without a roof full of
// panels. It serves either a SunSpec device (models 1, 103 and 160) or the
// registers of any vendor profile of package energy, with values from a
// plausible day: production follows a sine from sunrise to sunset, dimmed by
// passing clouds that are a deterministic function of the seed, and the
// lifetime energy counter integrates the power over the time the simulator
// has seen, so it only grows. The clock is injectable, so a test can run a
// whole day in milliseconds.
//
// Faults can be injected to test a client's error handling: response
// delays, Modbus exception responses, dropped connections and garbage
// bytes. They are applied by a small Modbus TCP proxy in front of the
// server (see Faults), because a Modbus server library answers every
// request well-formed by design.
//
// Importing the package registers the energy driver "sim", which starts a
// simulator on 127.0.0.1 and returns an energy.Inverter reading it over real
// Modbus TCP:
//
//	inv, err := energy.Open("sim?profile=huawei&peak=5000&seed=1")
//
// Main is the entry point of a command-line simulator.
package siminverter

import (
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"math"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/pikit/pikit/energy"
	"github.com/pikit/pikit/energy/sunspec"
	"github.com/simonvetter/modbus"
)

// Defaults for Options.
const (
	DefaultListen    = "127.0.0.1:0"
	DefaultPeakPower = 5000.0
	// SunSpecBase is where the SunSpec map starts (PDU address).
	SunSpecBase = 40000
)

// Options configures a simulator. The zero value serves a 5 kW SunSpec
// inverter on a free port of 127.0.0.1.
type Options struct {
	// Listen is the TCP address to serve on (default DefaultListen).
	// Listening on other interfaces exposes the simulator to the network;
	// that is the caller's choice.
	Listen string
	// Profile is "sunspec" (default) or the name of a vendor profile of
	// package energy ("huawei", "sma", ...).
	Profile string
	// Unit is the Modbus unit ID answered (default: 1 for SunSpec, the
	// profile's default unit otherwise); requests to other units get
	// exception 0x0B (gateway target failed to respond), as behind a
	// gateway.
	Unit uint8
	// PeakPower is the DC power at clear-sky noon in midsummer, W (default
	// DefaultPeakPower).
	PeakPower float64
	// Seed selects the weather and the serial number; the same seed and
	// clock give the same values.
	Seed int64
	// ClearSky disables clouds, for a smooth curve.
	ClearSky bool
	// Now is the clock (default time.Now). The local time of its values
	// (their Location) decides day and night.
	Now func() time.Time
	// Faults are injected from the start; see SetFaults.
	Faults Faults
	// Logger, if set, receives proxy and server errors at debug level.
	Logger *slog.Logger
}

// Faults makes the simulator misbehave, request by request. Each rate is
// the probability (0 to 1) that a request gets that fault; the draws come
// from a generator seeded with Options.Seed, so a sequence of requests
// sees the same faults on every run. At most one fault applies to a
// request, checked in the order drop, garbage, exception.
type Faults struct {
	// Delay is added before every response (also to faulty ones).
	Delay time.Duration
	// DropRate closes the client's connection instead of answering.
	DropRate float64
	// GarbageRate answers with random bytes that are not a Modbus frame.
	GarbageRate float64
	// ExceptionRate answers with a Modbus exception response, code
	// ExceptionCode (default 0x06, server device busy).
	ExceptionRate float64
	ExceptionCode uint8
}

func (f Faults) validate() error {
	if f.Delay < 0 {
		return fmt.Errorf("siminverter: negative delay %s", f.Delay)
	}
	for _, r := range []struct {
		name string
		v    float64
	}{{"drop", f.DropRate}, {"garbage", f.GarbageRate}, {"exception", f.ExceptionRate}} {
		if !(r.v >= 0 && r.v <= 1) {
			return fmt.Errorf("siminverter: %s rate %v is not between 0 and 1", r.name, r.v)
		}
	}
	return nil
}

// Inverter is a running simulator. Its methods are safe for concurrent
// use.
type Inverter struct {
	opts    Options
	profile *energy.Profile // nil for SunSpec
	serial  string
	log     *slog.Logger

	server *modbus.ModbusServer
	proxy  *proxy

	mu     sync.Mutex
	model  model
	faults Faults
	rng    *rand.Rand
	closed bool
}

// New starts a simulator. Close stops it.
func New(opts Options) (*Inverter, error) {
	if opts.Listen == "" {
		opts.Listen = DefaultListen
	}
	if opts.Profile == "" {
		opts.Profile = "sunspec"
	}
	if opts.PeakPower == 0 {
		opts.PeakPower = DefaultPeakPower
	}
	if !(opts.PeakPower > 0 && opts.PeakPower <= 1e9) {
		return nil, fmt.Errorf("siminverter: peak power %v W is not positive and finite", opts.PeakPower)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Unit > 247 {
		return nil, fmt.Errorf("siminverter: unit %d is not a Modbus unit id (0-247)", opts.Unit)
	}
	if err := opts.Faults.validate(); err != nil {
		return nil, err
	}
	s := &Inverter{opts: opts, faults: opts.Faults, log: opts.Logger}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	phases, inputs := 3, 2
	if opts.Profile != "sunspec" {
		p, err := energy.LookupProfile(opts.Profile)
		if err != nil {
			return nil, fmt.Errorf("siminverter: %w", err)
		}
		s.profile = p
		phases, inputs = max(1, len(p.Fields.Phases)), max(1, len(p.Fields.DC))
		if opts.Unit == 0 {
			s.opts.Unit = p.Unit
		}
	} else if opts.Unit == 0 {
		s.opts.Unit = 1
	}
	seed := uint64(opts.Seed)
	s.model = model{peak: opts.PeakPower, seed: seed, clear: opts.ClearSky, phases: phases, inputs: inputs}
	s.rng = rand.New(rand.NewPCG(seed, 0x5151))
	s.serial = fmt.Sprintf("%010d", splitmix64(seed)%1e10)

	// The Modbus server listens on a private loopback port; clients talk
	// to the proxy, which forwards requests or injects faults.
	srv, backAddr, err := startServer(&handler{s})
	if err != nil {
		return nil, err
	}
	s.server = srv
	ln, err := net.Listen("tcp", opts.Listen)
	if err != nil {
		srv.Stop()
		return nil, fmt.Errorf("siminverter: %w", err)
	}
	s.proxy = newProxy(ln, backAddr, s)
	go s.proxy.serve()
	return s, nil
}

// startServer starts the Modbus server on a free loopback port. The library
// takes a URL, not a listener, so a free port is found first; another
// process may take it in between, hence the retries.
func startServer(h modbus.RequestHandler) (*modbus.ModbusServer, string, error) {
	var lastErr error
	for range 5 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, "", fmt.Errorf("siminverter: %w", err)
		}
		addr := l.Addr().String()
		l.Close()
		srv, err := modbus.NewServer(&modbus.ServerConfiguration{
			URL:        "tcp://" + addr,
			Timeout:    10 * time.Minute,
			MaxClients: 256,
			Logger:     log.New(io.Discard, "", 0),
		}, h)
		if err != nil {
			return nil, "", fmt.Errorf("siminverter: %w", err)
		}
		if lastErr = srv.Start(); lastErr == nil {
			return srv, addr, nil
		}
	}
	return nil, "", fmt.Errorf("siminverter: modbus server: %w", lastErr)
}

// Addr returns the address clients connect to, e.g. "127.0.0.1:40123".
func (s *Inverter) Addr() string { return s.proxy.ln.Addr().String() }

// Unit returns the Modbus unit ID the simulator answers.
func (s *Inverter) Unit() uint8 { return s.opts.Unit }

// Profile returns the served profile name ("sunspec" or a vendor profile).
func (s *Inverter) Profile() string { return s.opts.Profile }

// SetFaults replaces the injected faults; they apply from the next request.
func (s *Inverter) SetFaults(f Faults) error {
	if err := f.validate(); err != nil {
		return err
	}
	s.mu.Lock()
	s.faults = f
	s.mu.Unlock()
	return nil
}

// Close stops the simulator and closes every client connection. Later
// calls return an error.
func (s *Inverter) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return errors.New("siminverter: already closed")
	}
	s.closed = true
	s.mu.Unlock()
	s.proxy.close()
	return s.server.Stop()
}

// Current returns what the simulator serves now: the simulated values,
// reduced to what the served protocol carries (a vendor profile may lack
// the temperature or per-phase powers; SunSpec model 103 has no per-phase
// power). A client decoding the registers gets these values up to the
// registers' resolution. Current advances the energy counter to the clock.
func (s *Inverter) Current() energy.Reading {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.currentLocked()
}

func (s *Inverter) currentLocked() energy.Reading {
	now := s.opts.Now()
	s.model.advance(now)
	r := s.simulate(now)
	if s.profile != nil {
		return s.profile.Restrict(r)
	}
	return sunspecView(r)
}

// simulate returns every simulated value at t.
func (s *Inverter) simulate(t time.Time) energy.Reading {
	m := &s.model
	dc := m.dcPower(t)
	ac := dc * efficiency
	hoursF := float64(t.UnixNano()) / 3.6e12
	r := energy.Reading{
		Time:        t,
		Device:      energy.Info{Manufacturer: "Pikit", Model: "SIM-" + fmt.Sprint(int(m.peak)), Serial: s.serial, Version: "1.0", Kind: "inverter", Profile: s.opts.Profile},
		ACPower:     energy.Some(ac),
		DCPower:     energy.Some(dc),
		EnergyTotal: energy.Some(m.energy),
		Frequency:   energy.Some(50 + 0.03*math.Sin(2*math.Pi*hoursF*60/17)),
		Temperature: energy.Some(15 + 5*math.Sin(2*math.Pi*(hours(t)-9)/24) + 25*dc/m.peak),
		State:       "sleeping",
	}
	if dc > 0 {
		r.State = "mppt"
	}
	for i := range m.phases {
		v := 230 + 2*math.Sin(2*math.Pi*hoursF/3+float64(i))
		p := ac / float64(m.phases)
		r.Phases = append(r.Phases, energy.Phase{Voltage: energy.Some(v), Current: energy.Some(p / v), Power: energy.Some(p)})
	}
	for i := range m.inputs {
		// Inputs share the power unevenly, as strings of different
		// lengths do; their shares add up to 1.
		share := 1 / float64(m.inputs)
		if m.inputs > 1 {
			share *= 1 + 0.2*(float64(i)-float64(m.inputs-1)/2)/float64(m.inputs-1)
		}
		p, v, a := dc*share, 0.0, 0.0
		if p > 0 {
			v = 360 + 40*math.Sin(2*math.Pi*hoursF/5+float64(i))
			a = p / v
		}
		r.DC = append(r.DC, energy.DCInput{Voltage: energy.Some(v), Current: energy.Some(a), Power: energy.Some(p)})
	}
	return r
}

// sunspecView is what a SunSpec client decodes from the simulator's
// models 1, 103 and 160.
func sunspecView(r energy.Reading) energy.Reading {
	r.Device.Profile = "sunspec"
	r.Device.Kind = "inverter"
	for i := range r.Phases {
		r.Phases[i].Power = energy.Value{}
	}
	r.Raw = nil
	return r
}

// ---------------------------------------------------------------------------
// Register image

// regionErr is the exception for registers the device does not define.
var regionErr = modbus.ErrIllegalDataAddress

// read serves a read request from the current image.
func (s *Inverter) read(unit, fc uint8, addr, count uint16) ([]uint16, error) {
	if unit != s.opts.Unit {
		return nil, modbus.ErrGWTargetFailedToRespond
	}
	s.mu.Lock()
	r := s.currentLocked()
	s.mu.Unlock()
	if s.profile == nil {
		return s.readSunSpec(r, fc, addr, count)
	}
	m, err := s.profile.Encode(r)
	if err != nil {
		s.log.Debug("siminverter: encode", "err", err)
		return nil, modbus.ErrServerDeviceFailure
	}
	if !s.defined(fc, addr, count) {
		return nil, regionErr
	}
	return m.Read(fc, addr, count), nil
}

// defined reports whether the whole run lies in registers the profile
// reads or harvests; real devices refuse reads of undefined registers.
func (s *Inverter) defined(fc uint8, addr, count uint16) bool {
	p := s.profile
	var runs []energy.Block
	runs = append(runs, p.ReadPlan()...)
	runs = append(runs, p.Blocks...)
	runs = append(runs, p.InfoPlan()...)
	end := int(addr) + int(count)
	// Walk the covered addresses; runs may overlap or abut.
	for a := int(addr); a < end; {
		next := a
		for _, b := range runs {
			if b.Function == fc && a >= int(b.Start) && a < int(b.Start)+int(b.Count) {
				next = max(next, int(b.Start)+int(b.Count))
			}
		}
		if next == a {
			return false
		}
		a = next
	}
	return true
}

// sunspecImage encodes r as a SunSpec map: common model 1, three-phase
// inverter 103 and MPPT extension 160.
func (s *Inverter) sunspecImage(r energy.Reading) ([]uint16, error) {
	common, err := sunspec.Encode(1, sunspec.Points{Str: map[string]string{
		"Mn": r.Device.Manufacturer, "Md": r.Device.Model, "SN": r.Device.Serial, "Vr": r.Device.Version}})
	if err != nil {
		return nil, err
	}
	num := map[string]float64{
		"W": r.ACPower.V, "Hz": r.Frequency.V, "WH": r.EnergyTotal.V, "DCW": r.DCPower.V, "TmpCab": r.Temperature.V,
	}
	total := 0.0
	for i, ph := range r.Phases {
		l := string(rune('A' + i))
		num["PhVph"+l] = ph.Voltage.V
		num["Aph"+l] = ph.Current.V
		total += ph.Current.V
	}
	num["A"] = total
	inv, err := sunspec.Encode(103, sunspec.Points{Num: num, Str: map[string]string{"St": strings.ToUpper(r.State)}})
	if err != nil {
		return nil, err
	}
	var groups []sunspec.Points
	for i, in := range r.DC {
		groups = append(groups, sunspec.Points{
			Num: map[string]float64{"ID": float64(i + 1), "DCV": in.Voltage.V, "DCA": in.Current.V, "DCW": in.Power.V},
			Str: map[string]string{"IDStr": fmt.Sprintf("PV%d", i+1)},
		})
	}
	mppt, err := sunspec.Encode(160, sunspec.Points{Groups: groups})
	if err != nil {
		return nil, err
	}
	return sunspec.BuildImage(SunSpecBase, []sunspec.ModelImage{{ID: 1, Regs: common}, {ID: 103, Regs: inv}, {ID: 160, Regs: mppt}}), nil
}

func (s *Inverter) readSunSpec(r energy.Reading, fc uint8, addr, count uint16) ([]uint16, error) {
	if fc != 3 {
		return nil, modbus.ErrIllegalFunction
	}
	img, err := s.sunspecImage(r)
	if err != nil {
		s.log.Debug("siminverter: sunspec encode", "err", err)
		return nil, modbus.ErrServerDeviceFailure
	}
	if int(addr) < SunSpecBase || int(addr)+int(count) > SunSpecBase+len(img) {
		return nil, regionErr
	}
	off := int(addr) - SunSpecBase
	return append([]uint16(nil), img[off:off+int(count)]...), nil
}

// handler adapts the simulator to the Modbus server library.
type handler struct{ s *Inverter }

func (h *handler) HandleCoils(*modbus.CoilsRequest) ([]bool, error) {
	return nil, modbus.ErrIllegalFunction
}

func (h *handler) HandleDiscreteInputs(*modbus.DiscreteInputsRequest) ([]bool, error) {
	return nil, modbus.ErrIllegalFunction
}

func (h *handler) HandleHoldingRegisters(req *modbus.HoldingRegistersRequest) ([]uint16, error) {
	if req.IsWrite {
		// A simulated inverter takes no commands.
		return nil, modbus.ErrIllegalFunction
	}
	return h.s.read(req.UnitId, 3, req.Addr, req.Quantity)
}

func (h *handler) HandleInputRegisters(req *modbus.InputRegistersRequest) ([]uint16, error) {
	return h.s.read(req.UnitId, 4, req.Addr, req.Quantity)
}
