package sunspec

import (
	"context"
	"errors"
	"fmt"
)

// DefaultBases are the base addresses (PDU, 0-based) where discovery looks
// for the "SunS" marker, in order.
var DefaultBases = []uint16{40000, 50000, 0}

// DefaultMaxModels bounds the model chain Discover walks.
const DefaultMaxModels = 64

var (
	// ErrNoMarker is wrapped by Discover when no base address holds the
	// "SunS" marker.
	ErrNoMarker = errors.New("sunspec: no SunS marker")
	// ErrBadChain is wrapped by Discover when the model chain is corrupt:
	// a model running past the end of the address space, an invalid
	// model ID, or more models than allowed.
	ErrBadChain = errors.New("sunspec: bad model chain")
)

// ReadFunc reads count holding registers at PDU address addr.
type ReadFunc func(ctx context.Context, addr, count uint16) ([]uint16, error)

// Header locates one model in a device map.
type Header struct {
	ID     uint16
	Addr   uint16 // PDU address of the model's ID register
	Length uint16 // body length L
}

// BodyAddr returns the address of the first body register.
func (h Header) BodyAddr() uint16 { return h.Addr + 2 }

// Map is a discovered device map.
type Map struct {
	Base   uint16 // address of the "SunS" marker
	Models []Header
}

// Find returns the first model with one of the given IDs.
func (m *Map) Find(ids ...uint16) (Header, bool) {
	for _, h := range m.Models {
		for _, id := range ids {
			if h.ID == id {
				return h, true
			}
		}
	}
	return Header{}, false
}

// DiscoverOptions tunes Discover. The zero value uses the defaults.
type DiscoverOptions struct {
	// Bases are tried in order (default DefaultBases).
	Bases []uint16
	// MaxModels bounds the chain (default DefaultMaxModels); a device
	// that never ends its chain is reported, not followed forever.
	MaxModels int
	// Absent reports whether a read error means "no registers here" (a
	// Modbus illegal-address exception) rather than a failed connection.
	// Such errors make Discover try the next base, and end a chain that
	// lacks its end marker. Other errors abort discovery. Nil treats
	// every error as a failure.
	Absent func(error) bool
}

// Discover finds the "SunS" marker and walks the model chain, reading
// two registers per model (ID and length). A chain ends at model ID 0xFFFF,
// or, leniently, where the device answers with an "absent" error after at
// least one model. Errors name the offending address.
func Discover(ctx context.Context, read ReadFunc, opts DiscoverOptions) (Map, error) {
	bases := opts.Bases
	if len(bases) == 0 {
		bases = DefaultBases
	}
	maxModels := opts.MaxModels
	if maxModels <= 0 {
		maxModels = DefaultMaxModels
	}
	absent := func(err error) bool { return opts.Absent != nil && opts.Absent(err) }

	var tried []string
	for _, base := range bases {
		if int(base)+4 > 0x10000 {
			return Map{}, fmt.Errorf("sunspec: base address %d leaves no room for a model", base)
		}
		r, err := read(ctx, base, 2)
		if err != nil {
			if absent(err) {
				tried = append(tried, fmt.Sprintf("%d: %v", base, err))
				continue
			}
			return Map{}, fmt.Errorf("sunspec: read marker at %d: %w", base, err)
		}
		if len(r) != 2 {
			return Map{}, fmt.Errorf("sunspec: read marker at %d: got %d registers, want 2", base, len(r))
		}
		if r[0] != Marker[0] || r[1] != Marker[1] {
			tried = append(tried, fmt.Sprintf("%d: %04x %04x", base, r[0], r[1]))
			continue
		}
		return walk(ctx, read, base, maxModels, absent)
	}
	return Map{}, fmt.Errorf("%w (looked at %v)", ErrNoMarker, tried)
}

func walk(ctx context.Context, read ReadFunc, base uint16, maxModels int, absent func(error) bool) (Map, error) {
	m := Map{Base: base}
	addr := int(base) + 2
	for {
		if addr+2 > 0x10000 {
			return m, fmt.Errorf("%w: chain from %d runs past the end of the address space without an end marker", ErrBadChain, base)
		}
		if len(m.Models) >= maxModels {
			return m, fmt.Errorf("%w: more than %d models from %d (no end marker by %d)", ErrBadChain, maxModels, base, addr)
		}
		r, err := read(ctx, uint16(addr), 2)
		if err != nil {
			if len(m.Models) > 0 && absent(err) {
				return m, nil
			}
			return m, fmt.Errorf("sunspec: read model header at %d: %w", addr, err)
		}
		if len(r) != 2 {
			return m, fmt.Errorf("sunspec: read model header at %d: got %d registers, want 2", addr, len(r))
		}
		id, l := r[0], r[1]
		if id == EndID {
			return m, nil
		}
		if id == 0 {
			return m, fmt.Errorf("%w: invalid model ID 0 at %d", ErrBadChain, addr)
		}
		if addr+2+int(l) > 0x10000 {
			return m, fmt.Errorf("%w: model %d at %d has length %d, past the end of the address space", ErrBadChain, id, addr, l)
		}
		m.Models = append(m.Models, Header{ID: id, Addr: uint16(addr), Length: l})
		addr += 2 + int(l)
	}
}
