// Package sunspec holds SunSpec model definitions and the pure logic around
// them: decoding a model's registers into named points with scale factors
// applied, encoding points into registers (for simulators), building a whole
// device register image, and discovering the model chain through any
// register-reading function. It does no I/O of its own and imports nothing
// from package energy, which uses it to read SunSpec inverters.
//
// Models defined: 1 (common), 101, 102, 103 (inverter, single, split and
// three phase, integer with scale factors), 111, 112, 113 (the same with
// float32 points) and 160 (multiple MPPT extension, repeating modules).
//
// # Register layout
//
// A SunSpec device map starts at a base address (40000, 50000 or 0, as PDU
// addresses) with the marker "SunS" (0x5375 0x6e53), followed by models.
// Each model is a header of two registers, its ID and its length L, and a
// body of L registers. After the last model comes the end marker 0xFFFF
// with length 0. In this package a model's "body" is always the L registers
// after the header: Decode takes a body, Encode returns one, and BuildImage
// adds the headers.
//
// # Building a device image (for simulators)
//
//	common, _ := sunspec.Encode(1, sunspec.Points{Str: map[string]string{
//		"Mn": "Pikit", "Md": "Sim 3P", "SN": "SIM0001", "Vr": "1.0"}})
//	inv, _ := sunspec.Encode(103, sunspec.Points{Num: map[string]float64{
//		"W": 1234.5, "W_SF": -1, // or leave W_SF out to have one chosen
//		"Hz": 50.01, "WH": 1.5e6, "PhVphA": 230.1, "AphA": 1.8, "St": 4}})
//	img := sunspec.BuildImage(40000, []sunspec.ModelImage{{ID: 1, Regs: common}, {ID: 103, Regs: inv}})
//	// Serve register address a (PDU, 0-based) as img[a-40000] for
//	// 40000 <= a < 40000+len(img), with function 3 (holding registers);
//	// answer other addresses with exception 2 (illegal data address).
//
// Points not given are encoded as "not implemented" and decode as missing.
package sunspec

import (
	"errors"
	"fmt"
	"math"
	"sort"
	"strings"
)

// Type is the data type of a point, as named by SunSpec.
type Type uint8

// Point types. Sizes are in 16-bit registers; 32-bit types are high word
// first.
const (
	Uint16     Type = iota + 1 // 0xFFFF means not implemented
	Int16                      // 0x8000 means not implemented
	Uint32                     // 0xFFFFFFFF means not implemented
	Int32                      // 0x80000000 means not implemented
	Acc16                      // accumulator; 0 means not implemented
	Acc32                      // accumulator; 0 means not implemented
	Float32                    // IEEE 754; NaN (0x7FC00000) means not implemented
	Enum16                     // 0xFFFF means not implemented
	Enum32                     // 0xFFFFFFFF means not implemented
	Bitfield16                 // 0xFFFF means not implemented
	Bitfield32                 // 0xFFFFFFFF means not implemented
	String                     // two characters per register; all zero means not implemented
	SunSSF                     // scale factor exponent, int16; 0x8000 means not implemented
	Count                      // number of repeating groups (uint16)
	Pad                        // alignment, no value
)

var typeNames = [...]string{"", "uint16", "int16", "uint32", "int32", "acc16", "acc32",
	"float32", "enum16", "enum32", "bitfield16", "bitfield32", "string", "sunssf", "count", "pad"}

// String returns the SunSpec name of the type ("uint16", "sunssf", ...).
func (t Type) String() string {
	if int(t) < len(typeNames) && t != 0 {
		return typeNames[t]
	}
	return fmt.Sprintf("Type(%d)", uint8(t))
}

// Symbol names a value of an enum point or a bit of a bitfield point.
type Symbol struct {
	Name  string
	Value uint32 // enum value, or bit number for bitfields
}

// Point describes one point of a model.
type Point struct {
	Name string
	Type Type
	// Offset is the point's register offset from the model's ID register,
	// as in the SunSpec tables (the first body point is at 2); in a body
	// it is at Offset-2. For points of a repeating group it is the offset
	// from the start of the group instance.
	Offset uint16
	Size   uint16 // registers
	// SF names the scale-factor point applied to this point, "" for none.
	// It is always a point of the model's fixed block.
	SF        string
	Units     string
	Mandatory bool
	// Symbols lists enum values or bitfield bits with their names.
	Symbols []Symbol
}

// Symbol returns the name of enum value v, or "" when the value has no name.
func (p *Point) Symbol(v uint32) string {
	for _, s := range p.Symbols {
		if s.Value == v {
			return s.Name
		}
	}
	return ""
}

// Flags returns the names of the bits set in bitfield value v, in bit
// order; bits without a name are given as "bitN".
func (p *Point) Flags(v uint32) []string {
	var out []string
	for b := uint32(0); b < 32; b++ {
		if v&(1<<b) == 0 {
			continue
		}
		name := fmt.Sprintf("bit%d", b)
		for _, s := range p.Symbols {
			if s.Value == b {
				name = s.Name
				break
			}
		}
		out = append(out, name)
	}
	return out
}

// Group is a repeating group of points, such as the modules of model 160.
type Group struct {
	Name   string
	Length uint16 // registers per instance
	Points []Point
}

// ModelDef describes a SunSpec model.
type ModelDef struct {
	ID   uint16
	Name string // SunSpec group name, e.g. "inverter_three_phase"
	// Length is the body length (L) of the fixed block: the whole model
	// for models without a repeating group.
	Length uint16
	// Points are the points of the fixed block, ID and L excluded.
	Points []Point
	// Repeat is the repeating group that follows the fixed block, nil for
	// models without one. A body is Length + n*Repeat.Length registers.
	Repeat *Group

	index map[string]int
}

// Point returns the fixed-block point with the given name, or nil.
func (d *ModelDef) Point(name string) *Point {
	i, ok := d.index[name]
	if !ok {
		return nil
	}
	return &d.Points[i]
}

func newModel(id uint16, name string, pts []Point, rep *Group) *ModelDef {
	d := &ModelDef{ID: id, Name: name, Points: pts, Repeat: rep, index: map[string]int{}}
	off := uint16(2)
	for i := range d.Points {
		d.Points[i].Offset = off
		off += d.Points[i].Size
		d.index[d.Points[i].Name] = i
	}
	d.Length = off - 2
	return d
}

func newGroup(name string, pts []Point) *Group {
	g := &Group{Name: name, Points: pts}
	for i := range g.Points {
		g.Points[i].Offset = g.Length
		g.Length += g.Points[i].Size
	}
	return g
}

// Lookup returns the definition of a model, or false when the package does
// not define it.
func Lookup(id uint16) (*ModelDef, bool) {
	d, ok := defs[id]
	return d, ok
}

// Models returns the IDs of the models the package defines, in ascending
// order.
func Models() []uint16 {
	ids := make([]uint16, 0, len(defs))
	for id := range defs {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	return ids
}

// ErrUnknownModel is returned by Decode and Encode for a model this package
// does not define.
var ErrUnknownModel = errors.New("sunspec: unknown model")

// Value is a decoded point. OK is false when the device reports the point
// as not implemented, when its scale factor is not implemented or out of
// range, or when the body is too short to hold it.
type Value struct {
	// Num is the point's value with its scale factor applied: the number
	// for numeric points, the raw value of enums, bitfields and counts,
	// the exponent of scale factors. It is 0 for strings.
	Num float64
	// Str is the text of a string point (trailing NULs and spaces
	// removed) or the symbol name of an enum value ("" when unnamed).
	Str string
	// Raw is the register content (high word first for 32-bit points);
	// 0 for strings.
	Raw uint32
	OK  bool
}

// Model is a decoded model.
type Model struct {
	Def    *ModelDef
	ID     uint16
	Length uint16 // body length as decoded
	// Points maps point names of the fixed block to their values. Every
	// defined point has an entry (except pads), present or missing.
	Points map[string]Value
	// Groups holds the repeating-group instances (model 160 modules), in
	// order.
	Groups []map[string]Value
}

// Num returns a numeric point's scaled value and whether it is present.
func (m *Model) Num(name string) (float64, bool) {
	v := m.Points[name]
	return v.Num, v.OK
}

// Str returns a string point's text or an enum point's symbol, "" when
// missing.
func (m *Model) Str(name string) string {
	v := m.Points[name]
	if !v.OK {
		return ""
	}
	return v.Str
}

// MaxGroups bounds the repeating-group instances Decode and Encode accept,
// so a corrupt count or length cannot make them allocate without limit.
const MaxGroups = 256

// Decode decodes the body of a model (the L registers after its ID and
// length). Points that do not fit in a short body are missing; registers
// beyond the defined points are ignored. For models with a repeating group
// the number of instances is the count point N when present and fitting,
// else as many whole instances as the body holds (at most MaxGroups).
//
// Decode never fails on register content; it returns ErrUnknownModel for
// models the package does not define.
func Decode(modelID uint16, regs []uint16) (Model, error) {
	d, ok := defs[modelID]
	if !ok {
		return Model{ID: modelID}, fmt.Errorf("%w %d", ErrUnknownModel, modelID)
	}
	m := Model{Def: d, ID: modelID, Length: uint16(min(len(regs), math.MaxUint16)),
		Points: make(map[string]Value, len(d.Points))}
	sf := func(name string) (int, bool) {
		p := d.Point(name)
		if p == nil {
			return 0, false
		}
		return scaleFactor(regsAt(regs, int(p.Offset)-2, 1))
	}
	for i := range d.Points {
		p := &d.Points[i]
		if p.Type == Pad {
			continue
		}
		m.Points[p.Name] = decodePoint(p, regsAt(regs, int(p.Offset)-2, int(p.Size)), sf)
	}
	if d.Repeat != nil && len(regs) > int(d.Length) {
		rest := regs[d.Length:]
		n := len(rest) / int(d.Repeat.Length)
		if c := m.Points["N"]; c.OK && int(c.Raw) < n {
			n = int(c.Raw)
		}
		n = min(n, MaxGroups)
		m.Groups = make([]map[string]Value, n)
		for g := range n {
			inst := rest[g*int(d.Repeat.Length) : (g+1)*int(d.Repeat.Length)]
			vals := make(map[string]Value, len(d.Repeat.Points))
			for i := range d.Repeat.Points {
				p := &d.Repeat.Points[i]
				vals[p.Name] = decodePoint(p, regsAt(inst, int(p.Offset), int(p.Size)), sf)
			}
			m.Groups[g] = vals
		}
	}
	return m, nil
}

// regsAt returns regs[off:off+n], or nil when it does not fit.
func regsAt(regs []uint16, off, n int) []uint16 {
	if off < 0 || off+n > len(regs) {
		return nil
	}
	return regs[off : off+n]
}

// maxSF bounds accepted scale factors; SunSpec allows -10..10.
const maxSF = 10

func scaleFactor(r []uint16) (int, bool) {
	if r == nil || r[0] == 0x8000 {
		return 0, false
	}
	e := int(int16(r[0]))
	if e < -maxSF || e > maxSF {
		return 0, false
	}
	return e, true
}

var pow10 = func() [maxSF + 1]float64 {
	var p [maxSF + 1]float64
	p[0] = 1
	for i := 1; i <= maxSF; i++ {
		p[i] = p[i-1] * 10
	}
	return p
}()

// scale applies exponent e. Dividing for negative exponents gives the
// decimal the device meant (2305 with -1 is 230.5, not 230.50000000000003).
func scale(v float64, e int) float64 {
	if e < 0 {
		return v / pow10[-e]
	}
	return v * pow10[e]
}

func decodePoint(p *Point, r []uint16, sf func(string) (int, bool)) Value {
	if r == nil {
		return Value{}
	}
	var raw uint32
	if len(r) == 2 {
		raw = uint32(r[0])<<16 | uint32(r[1])
	} else if len(r) == 1 {
		raw = uint32(r[0])
	}
	var num float64
	switch p.Type {
	case Uint16, Enum16, Bitfield16:
		if raw == 0xFFFF {
			return Value{Raw: raw}
		}
		num = float64(raw)
	case Int16:
		if raw == 0x8000 {
			return Value{Raw: raw}
		}
		num = float64(int16(raw))
	case Uint32, Enum32, Bitfield32:
		if raw == 0xFFFFFFFF {
			return Value{Raw: raw}
		}
		num = float64(raw)
	case Int32:
		if raw == 0x80000000 {
			return Value{Raw: raw}
		}
		num = float64(int32(raw))
	case Acc16, Acc32:
		if raw == 0 {
			return Value{}
		}
		num = float64(raw)
	case Count:
		num = float64(raw)
	case Float32:
		f := float64(math.Float32frombits(raw))
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return Value{Raw: raw}
		}
		return Value{Num: f, Raw: raw, OK: true}
	case SunSSF:
		e, ok := scaleFactor(r)
		return Value{Num: float64(e), Raw: raw, OK: ok}
	case String:
		return decodeString(r)
	default:
		return Value{}
	}
	v := Value{Num: num, Raw: raw, OK: true}
	switch p.Type {
	case Enum16, Enum32:
		v.Str = p.Symbol(raw)
	}
	if p.SF != "" {
		e, ok := sf(p.SF)
		if !ok {
			return Value{Raw: raw}
		}
		v.Num = scale(num, e)
	}
	return v
}

func decodeString(r []uint16) Value {
	b := make([]byte, 0, 2*len(r))
	for _, w := range r {
		b = append(b, byte(w>>8), byte(w))
	}
	if i := strings.IndexByte(string(b), 0); i >= 0 {
		b = b[:i]
	}
	s := strings.TrimRight(string(b), " ")
	if s == "" {
		// All zero is "not implemented"; an all-blank string says nothing
		// either.
		return Value{}
	}
	return Value{Str: s, OK: true}
}
