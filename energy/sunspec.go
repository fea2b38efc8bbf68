package energy

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/pikit/pikit/energy/sunspec"
)

// SunSpecOptions tunes a SunSpecDevice. The zero value is ready to use.
type SunSpecOptions struct {
	// Bases are the addresses searched for the "SunS" marker, in order
	// (default sunspec.DefaultBases: 40000, 50000, 0).
	Bases []uint16
	// MaxModels bounds the model chain (default sunspec.DefaultMaxModels).
	MaxModels int
}

// inverterModels are the SunSpec inverter models Read uses, in order of
// preference, with their phase counts.
var inverterModels = []uint16{103, 113, 102, 112, 101, 111}

var phasesOf = map[uint16]int{101: 1, 102: 2, 103: 3, 111: 1, 112: 2, 113: 3}

// SunSpecDevice is a SunSpec inverter: the device map is discovered (the
// "SunS" marker, then the model chain), Info comes from the common model
// (1), and Read decodes an inverter model (101–103 or 111–113) and, when
// present, the MPPT model 160.
//
// Discovery happens on first use and is repeated after the device answers
// a model read with an illegal-address exception or with a different model
// header, which is what a firmware update that moves models looks like.
// Methods are safe for concurrent use; reads go through the
// RegisterReader, which serialises them on its connection.
type SunSpecDevice struct {
	rr   RegisterReader
	unit uint8
	opts SunSpecOptions

	lock chan struct{} // guards the fields below; a channel so waiting honours ctx
	dmap *sunspec.Map  // nil until discovered
	info Info
}

// NewSunSpec returns a SunSpec device read through rr from unit. It does no
// I/O: discovery happens on the first Read or Info, and is retried on later
// calls if it fails, so a device that is offline (an inverter asleep at
// night) can be opened. Close closes rr.
func NewSunSpec(rr RegisterReader, unit uint8, opts SunSpecOptions) (*SunSpecDevice, error) {
	if rr == nil {
		return nil, errors.New("energy: sunspec: nil RegisterReader")
	}
	if opts.MaxModels < 0 {
		return nil, fmt.Errorf("energy: sunspec: negative MaxModels %d", opts.MaxModels)
	}
	for _, b := range opts.Bases {
		if int(b)+4 > 0x10000 {
			return nil, fmt.Errorf("energy: sunspec: base address %d leaves no room for a model", b)
		}
	}
	return &SunSpecDevice{rr: rr, unit: unit, opts: opts, lock: make(chan struct{}, 1)}, nil
}

// OpenSunSpec is NewSunSpec followed by discovery, so that a device that is
// not SunSpec (ErrNotSunSpec) or not reachable is reported at once. On
// error, rr is left open.
func OpenSunSpec(ctx context.Context, rr RegisterReader, unit uint8, opts SunSpecOptions) (*SunSpecDevice, error) {
	d, err := NewSunSpec(rr, unit, opts)
	if err != nil {
		return nil, err
	}
	if _, _, err := d.state(ctx); err != nil {
		return nil, err
	}
	return d, nil
}

// Map returns the discovered device map (discovering it if needed).
func (d *SunSpecDevice) Map(ctx context.Context) (sunspec.Map, error) {
	m, _, err := d.state(ctx)
	if err != nil {
		return sunspec.Map{}, err
	}
	return m, nil
}

// Info returns the identity from the common model, read once at discovery.
func (d *SunSpecDevice) Info(ctx context.Context) (Info, error) {
	_, info, err := d.state(ctx)
	return info, err
}

// Close closes the RegisterReader.
func (d *SunSpecDevice) Close() error { return d.rr.Close() }

func (d *SunSpecDevice) acquire(ctx context.Context) error {
	select {
	case d.lock <- struct{}{}:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("energy: sunspec unit %d: %w", d.unit, ctx.Err())
	}
}

// state returns the device map and identity, discovering them if needed.
func (d *SunSpecDevice) state(ctx context.Context) (sunspec.Map, Info, error) {
	if err := d.acquire(ctx); err != nil {
		return sunspec.Map{}, Info{}, err
	}
	defer func() { <-d.lock }()
	if d.dmap != nil {
		return *d.dmap, d.info, nil
	}
	m, err := sunspec.Discover(ctx, d.read, sunspec.DiscoverOptions{
		Bases: d.opts.Bases, MaxModels: d.opts.MaxModels, Absent: absent,
	})
	if err != nil {
		if errors.Is(err, sunspec.ErrNoMarker) {
			return sunspec.Map{}, Info{}, fmt.Errorf("%w at unit %d: %s", ErrNotSunSpec, d.unit, strings.TrimPrefix(err.Error(), "sunspec: "))
		}
		return sunspec.Map{}, Info{}, fmt.Errorf("energy: sunspec unit %d: %w", d.unit, err)
	}
	info := Info{Profile: "sunspec", Kind: "inverter"}
	if h, ok := m.Find(1); ok {
		regs, _, err := d.readModel(ctx, h)
		if err != nil {
			return sunspec.Map{}, Info{}, err
		}
		c, _ := sunspec.Decode(1, regs[2:])
		info.Manufacturer, info.Model, info.Serial, info.Version = c.Str("Mn"), c.Str("Md"), c.Str("SN"), c.Str("Vr")
	}
	d.dmap, d.info = &m, info
	return m, info, nil
}

// forget drops the device map so the next call rediscovers it.
func (d *SunSpecDevice) forget(m sunspec.Map) {
	d.lock <- struct{}{}
	if d.dmap != nil && d.dmap.Base == m.Base {
		d.dmap = nil
	}
	<-d.lock
}

// errModelMoved is wrapped when a model's header no longer matches the
// discovered map.
var errModelMoved = errors.New("device map changed")

// absent reports whether a read error means "no registers there".
func absent(err error) bool {
	return IsException(err, ExceptionIllegalFunction, ExceptionIllegalDataAddress, ExceptionIllegalDataValue)
}

func (d *SunSpecDevice) read(ctx context.Context, addr, count uint16) ([]uint16, error) {
	return d.rr.ReadRegisters(ctx, d.unit, 3, addr, count)
}

// readModel reads a model with its header, in requests of at most
// MaxRegisters, and checks that the header is still the one discovered.
func (d *SunSpecDevice) readModel(ctx context.Context, h sunspec.Header) ([]uint16, []RegisterBlock, error) {
	total := int(h.Length) + 2
	regs := make([]uint16, 0, total)
	var blocks []RegisterBlock
	for off := 0; off < total; off += MaxRegisters {
		n := min(total-off, MaxRegisters)
		addr := uint16(int(h.Addr) + off)
		r, err := d.read(ctx, addr, uint16(n))
		if err != nil {
			return nil, nil, fmt.Errorf("energy: sunspec unit %d: read model %d at %d: %w", d.unit, h.ID, h.Addr, err)
		}
		if len(r) != n {
			return nil, nil, fmt.Errorf("energy: sunspec unit %d: read model %d at %d: got %d registers, want %d", d.unit, h.ID, addr, len(r), n)
		}
		regs = append(regs, r...)
		blocks = append(blocks, RegisterBlock{Function: 3, Start: addr, Values: r})
	}
	if regs[0] != h.ID || regs[1] != h.Length {
		return nil, nil, fmt.Errorf("energy: sunspec unit %d: %w: model at %d reads as %d (length %d), discovered as %d (length %d)",
			d.unit, errModelMoved, h.Addr, regs[0], regs[1], h.ID, h.Length)
	}
	return regs, blocks, nil
}

// Read reads the inverter model (and the MPPT model 160 when present).
func (d *SunSpecDevice) Read(ctx context.Context) (Reading, error) {
	m, info, err := d.state(ctx)
	if err != nil {
		return Reading{}, err
	}
	h, ok := m.Find(inverterModels...)
	if !ok {
		ids := make([]string, len(m.Models))
		for i, mh := range m.Models {
			ids[i] = fmt.Sprint(mh.ID)
		}
		return Reading{}, fmt.Errorf("energy: sunspec unit %d: no inverter model (101-103, 111-113) among models [%s]", d.unit, strings.Join(ids, " "))
	}
	regs, raw, err := d.readModel(ctx, h)
	if err != nil {
		if IsException(err, ExceptionIllegalDataAddress) || errors.Is(err, errModelMoved) {
			d.forget(m)
		}
		return Reading{}, err
	}
	inv, _ := sunspec.Decode(h.ID, regs[2:])
	var mp *sunspec.Model
	if hm, ok := m.Find(160); ok {
		mregs, mraw, err := d.readModel(ctx, hm)
		if err != nil {
			if IsException(err, ExceptionIllegalDataAddress) || errors.Is(err, errModelMoved) {
				d.forget(m)
			}
			return Reading{}, err
		}
		dec, _ := sunspec.Decode(160, mregs[2:])
		mp = &dec
		raw = append(raw, mraw...)
	}
	r := readingFromModels(&inv, mp)
	r.Time = time.Now()
	r.Device = info
	r.Raw = raw
	return r, nil
}

// val converts a decoded point to a Value.
func val(m *sunspec.Model, name string) Value {
	if v, ok := m.Num(name); ok {
		return Some(v)
	}
	return Value{}
}

func gval(g map[string]sunspec.Value, name string) Value {
	if v := g[name]; v.OK {
		return Some(v.Num)
	}
	return Value{}
}

// readingFromModels maps an inverter model and an optional MPPT model to a
// Reading (without Time, Device and Raw).
func readingFromModels(inv, mp *sunspec.Model) Reading {
	r := Reading{
		ACPower:     val(inv, "W"),
		DCPower:     val(inv, "DCW"),
		EnergyTotal: val(inv, "WH"),
		Frequency:   val(inv, "Hz"),
		Temperature: val(inv, "TmpCab"),
		State:       strings.ToLower(inv.Str("St")),
	}
	if !r.Temperature.OK {
		r.Temperature = val(inv, "TmpSnk")
	}
	for i, ph := range []string{"A", "B", "C"}[:phasesOf[inv.ID]] {
		p := Phase{Voltage: val(inv, "PhVph"+ph), Current: val(inv, "Aph"+ph)}
		if i == 0 && phasesOf[inv.ID] == 1 {
			// One phase carries all the power.
			p.Power = r.ACPower
		}
		r.Phases = append(r.Phases, p)
	}
	if mp != nil && len(mp.Groups) > 0 {
		sum, all := 0.0, true
		for _, g := range mp.Groups {
			in := DCInput{Voltage: gval(g, "DCV"), Current: gval(g, "DCA"), Power: gval(g, "DCW")}
			r.DC = append(r.DC, in)
			sum += in.Power.V
			all = all && in.Power.OK
		}
		if !r.DCPower.OK && all {
			r.DCPower = Some(sum)
		}
	}
	return r
}
