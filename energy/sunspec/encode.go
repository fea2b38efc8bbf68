package sunspec

import (
	"fmt"
	"math"
	"sort"
)

// Points are the values Encode writes into one model.
type Points struct {
	// Num holds numeric points in their engineering units (1234.5 for
	// 1234.5 W): Encode divides by the scale factor. Enums, bitfields and
	// counts are given as their raw numbers, scale-factor points as their
	// exponent (-1 for tenths). A NaN encodes "not implemented".
	Num map[string]float64
	// Str holds string points, and enum points by symbol name ("MPPT").
	Str map[string]string
	// Groups are the repeating-group instances (model 160 modules), in
	// order; each uses Num and Str only. For model 160 the count N is set
	// to len(Groups) unless given in Num.
	Groups []Points
}

// ModelImage is one model of a device image: its ID and body.
type ModelImage struct {
	ID   uint16
	Regs []uint16 // body, without the ID and length header
}

// Marker is the "SunS" marker that starts a SunSpec register map.
var Marker = [2]uint16{0x5375, 0x6e53}

// EndID is the model ID that ends the model chain.
const EndID = 0xFFFF

// BuildImage returns the registers of a SunSpec device map: the "SunS"
// marker, each model's ID, length and body, and the end marker (0xFFFF, 0).
// Index i of the result is the register at PDU address base+i; the result
// is cut at the end of the address space. See the package documentation
// for a complete example.
func BuildImage(base uint16, models []ModelImage) []uint16 {
	n := 4
	for _, m := range models {
		n += 2 + len(m.Regs)
	}
	img := make([]uint16, 0, n)
	img = append(img, Marker[0], Marker[1])
	for _, m := range models {
		img = append(img, m.ID, uint16(min(len(m.Regs), math.MaxUint16)))
		img = append(img, m.Regs...)
	}
	img = append(img, EndID, 0)
	if room := 0x10000 - int(base); len(img) > room {
		img = img[:room]
	}
	return img
}

// Encode builds the body of a model from point values. Points not given
// are "not implemented". A scale factor not given is chosen as the smallest
// exponent (from -3, at most 10) that lets every point using it fit its
// type, so precision is kept; a scale factor that no given point uses is
// left "not implemented" unless given.
//
// Errors: an unknown model (ErrUnknownModel) or point name, a string where
// a number is expected or the reverse, an unknown enum symbol, a string
// longer than its point, or a value out of its type's range with the
// given scale factor.
func Encode(modelID uint16, p Points) ([]uint16, error) {
	d, ok := defs[modelID]
	if !ok {
		return nil, fmt.Errorf("%w %d", ErrUnknownModel, modelID)
	}
	if len(p.Groups) > 0 && d.Repeat == nil {
		return nil, fmt.Errorf("sunspec: model %d has no repeating group", modelID)
	}
	if len(p.Groups) > MaxGroups {
		return nil, fmt.Errorf("sunspec: model %d: %d groups, at most %d", modelID, len(p.Groups), MaxGroups)
	}
	n := int(d.Length)
	if d.Repeat != nil {
		n += len(p.Groups) * int(d.Repeat.Length)
	}
	if n > math.MaxUint16 {
		return nil, fmt.Errorf("sunspec: model %d: body of %d registers is too long", modelID, n)
	}
	regs := make([]uint16, n)

	if d.Repeat != nil && d.Point("N") != nil {
		if _, given := p.Num["N"]; !given {
			num := make(map[string]float64, len(p.Num)+1)
			for k, v := range p.Num {
				num[k] = v
			}
			num["N"] = float64(len(p.Groups))
			p.Num = num
		}
	}

	// Collect every given numeric value per scale factor, to check the
	// given exponents and choose the missing ones.
	users := map[string][]use{}
	if err := collect(modelID, d.Points, p, d, users, ""); err != nil {
		return nil, err
	}
	for gi, g := range p.Groups {
		if len(g.Groups) > 0 {
			return nil, fmt.Errorf("sunspec: model %d group %d: groups do not nest", modelID, gi)
		}
		if err := collect(modelID, d.Repeat.Points, g, d, users, fmt.Sprintf(" group %d", gi)); err != nil {
			return nil, err
		}
	}
	exps := map[string]int{}
	sfNames := make([]string, 0, len(users))
	for name := range users {
		sfNames = append(sfNames, name)
	}
	sort.Strings(sfNames)
	for _, name := range sfNames {
		if v, given := p.Num[name]; given && !math.IsNaN(v) {
			e := int(v)
			if float64(e) != v || e < -maxSF || e > maxSF {
				return nil, fmt.Errorf("sunspec: model %d: scale factor %s = %v, want an integer in -%d..%d", modelID, name, v, maxSF, maxSF)
			}
			exps[name] = e
			continue
		}
		e, ok := chooseSF(users[name])
		if !ok {
			return nil, fmt.Errorf("sunspec: model %d: no scale factor %s fits the values of %s", modelID, name, users[name][0].p.Name)
		}
		exps[name] = e
	}

	if err := encodeBlock(modelID, regs, -2, d.Points, p, exps, ""); err != nil {
		return nil, err
	}
	for gi, g := range p.Groups {
		off := int(d.Length) + gi*int(d.Repeat.Length)
		if err := encodeBlock(modelID, regs, off, d.Repeat.Points, g, exps, fmt.Sprintf(" group %d", gi)); err != nil {
			return nil, err
		}
	}
	return regs, nil
}

type use struct {
	p *Point
	v float64
}

// collect checks the names in p against pts and records the numeric values
// that use a scale factor.
func collect(modelID uint16, pts []Point, p Points, d *ModelDef, users map[string][]use, where string) error {
	byName := map[string]*Point{}
	for i := range pts {
		byName[pts[i].Name] = &pts[i]
	}
	for name, v := range p.Num {
		pt := byName[name]
		if pt == nil {
			return fmt.Errorf("sunspec: model %d%s has no point %q", modelID, where, name)
		}
		if pt.Type == String || pt.Type == Pad {
			return fmt.Errorf("sunspec: model %d%s: point %s is a %s, not a number", modelID, where, name, pt.Type)
		}
		if pt.SF != "" && !math.IsNaN(v) {
			users[pt.SF] = append(users[pt.SF], use{pt, v})
		}
	}
	for name := range p.Str {
		pt := byName[name]
		if pt == nil {
			return fmt.Errorf("sunspec: model %d%s has no point %q", modelID, where, name)
		}
		if pt.Type != String && pt.Type != Enum16 && pt.Type != Enum32 {
			return fmt.Errorf("sunspec: model %d%s: point %s is a %s, not a string or enum", modelID, where, name, pt.Type)
		}
		if _, dup := p.Num[name]; dup {
			return fmt.Errorf("sunspec: model %d%s: point %s given as both number and string", modelID, where, name)
		}
	}
	// A scale factor given without users still has to be written.
	for name := range p.Num {
		if pt := byName[name]; pt.Type == SunSSF {
			if _, ok := users[name]; !ok && d.Point(name) == pt {
				users[name] = nil
			}
		}
	}
	return nil
}

// chooseSF returns the smallest exponent from -3 up that lets all values fit.
func chooseSF(us []use) (int, bool) {
	for e := -3; e <= maxSF; e++ {
		ok := true
		for _, u := range us {
			if _, err := toRaw(u.p, u.v, e); err != nil {
				ok = false
				break
			}
		}
		if ok {
			return e, true
		}
	}
	return 0, false
}

// toRaw converts an engineering value to the register content of p with
// exponent e, refusing values that would overflow or read as "not
// implemented".
func toRaw(p *Point, v float64, e int) (uint32, error) {
	if p.SF != "" {
		if e < 0 {
			v *= pow10[-e]
		} else {
			v /= pow10[e]
		}
	}
	if p.Type != Float32 {
		v = math.Round(v)
	}
	bad := func() (uint32, error) {
		return 0, fmt.Errorf("value out of range for %s", p.Type)
	}
	switch p.Type {
	case Uint16, Enum16, Bitfield16, Count:
		if v < 0 || v > 0xFFFE || (p.Type == Count && v > 0xFFFF) {
			return bad()
		}
		return uint32(v), nil
	case Int16:
		if v < -0x7FFF || v > 0x7FFF {
			return bad()
		}
		return uint32(uint16(int16(v))), nil
	case SunSSF:
		if v < -maxSF || v > maxSF {
			return bad()
		}
		return uint32(uint16(int16(v))), nil
	case Uint32, Enum32, Bitfield32:
		if v < 0 || v > 0xFFFFFFFE {
			return bad()
		}
		return uint32(v), nil
	case Int32:
		if v < -0x7FFFFFFF || v > 0x7FFFFFFF {
			return bad()
		}
		return uint32(int32(v)), nil
	case Acc16:
		if v < 1 || v > 0xFFFF {
			return bad()
		}
		return uint32(v), nil
	case Acc32:
		// 0 would read as "not implemented".
		if v < 1 || v > 0xFFFFFFFF {
			return bad()
		}
		return uint32(v), nil
	case Float32:
		f := float32(v)
		if math.IsInf(float64(f), 0) {
			return bad()
		}
		return math.Float32bits(f), nil
	}
	return bad()
}

// notImpl is the "not implemented" register content of each type.
func notImpl(t Type) uint32 {
	switch t {
	case Int16, SunSSF, Pad:
		return 0x8000
	case Int32:
		return 0x80000000
	case Uint32, Enum32, Bitfield32:
		return 0xFFFFFFFF
	case Acc16, Acc32, Count, String:
		return 0
	case Float32:
		return 0x7FC00000
	}
	return 0xFFFF
}

func put(regs []uint16, off int, size uint16, raw uint32) {
	if size == 2 {
		regs[off] = uint16(raw >> 16)
		regs[off+1] = uint16(raw)
		return
	}
	regs[off] = uint16(raw)
}

// encodeBlock writes pts into regs at base+Offset.
func encodeBlock(modelID uint16, regs []uint16, base int, pts []Point, p Points, exps map[string]int, where string) error {
	for i := range pts {
		pt := &pts[i]
		off := base + int(pt.Offset)
		if pt.Type == String {
			s := p.Str[pt.Name]
			if len(s) > 2*int(pt.Size) {
				return fmt.Errorf("sunspec: model %d%s: %s %q is longer than %d characters", modelID, where, pt.Name, s, 2*pt.Size)
			}
			for j := 0; j < int(pt.Size); j++ {
				var hi, lo byte
				if 2*j < len(s) {
					hi = s[2*j]
				}
				if 2*j+1 < len(s) {
					lo = s[2*j+1]
				}
				regs[off+j] = uint16(hi)<<8 | uint16(lo)
			}
			continue
		}
		raw := notImpl(pt.Type)
		if sym, ok := p.Str[pt.Name]; ok {
			found := false
			for _, s := range pt.Symbols {
				if s.Name == sym {
					raw, found = s.Value, true
					break
				}
			}
			if !found {
				return fmt.Errorf("sunspec: model %d%s: %s has no symbol %q", modelID, where, pt.Name, sym)
			}
		} else if pt.Type == SunSSF {
			if e, ok := exps[pt.Name]; ok {
				raw = uint32(uint16(int16(e)))
			}
		} else if v, ok := p.Num[pt.Name]; ok && !math.IsNaN(v) {
			r, err := toRaw(pt, v, exps[pt.SF])
			if err != nil {
				return fmt.Errorf("sunspec: model %d%s: %s = %v: %w", modelID, where, pt.Name, v, err)
			}
			raw = r
		}
		put(regs, off, pt.Size, raw)
	}
	return nil
}
