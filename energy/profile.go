package energy

import (
	"bytes"
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math"
	"net/url"
	"path"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

//go:embed profiles/*.json
var profileFS embed.FS

// Register data types of profile fields.
const (
	TypeU16 = "U16"
	TypeI16 = "I16"
	TypeU32 = "U32"
	TypeI32 = "I32"
	TypeF32 = "F32"
	TypeU64 = "U64"
	TypeI64 = "I64"
	TypeSTR = "STR"
	TypeHEX = "HEX"
)

// Word orders of multi-register values.
const (
	WordsBig    = "big"
	WordsLittle = "little"
)

// DefaultMaxGap is how many unused registers a coalesced read may span when
// a profile does not say.
const DefaultMaxGap = 16

// States are the state words a profile may use, SunSpec's operating states.
var States = []string{"off", "sleeping", "starting", "mppt", "throttled", "shutting_down", "fault", "standby"}

// Profile is a vendor register map: where one brand's devices keep their
// values in their Modbus registers, so that devices without SunSpec are
// read by data rather than by code. The profiles shipped with this package
// are in profiles/*.json (embedded); users can write their own and load them
// with ParseProfile. The format, one JSON object per profile:
//
//	{
//	  "name": "huawei",              // spec prefix: a-z 0-9 '-', at most 20 characters
//	  "manufacturer": "Huawei",
//	  "description": "SUN2000 string inverters (Modbus TCP via SDongle or RS485)",
//	  "kind": "inverter",            // "inverter" or "meter"
//	  "unit": 1,                     // usual Modbus unit id (slave id), 0-247 (*)
//	  "function": 3,                 // default function code of the fields: 3 holding, 4 input
//	  "max_gap": 16,                 // unused registers a coalesced read may span (default 16, 0-124)
//	  "serial": {"address": 30015, "count": 10, "type": "STR"},
//	  "model":  {"address": 30000, "count": 15, "type": "STR"},
//	  "fields": {
//	    "ac_power":     {"address": 32080, "type": "I32", "unit": "W"},
//	    "energy_total": {"address": 32106, "type": "U32", "scale": 0.01, "unit": "kWh"},
//	    "phases": [{"voltage": {...}, "current": {...}, "power": {...}}, ...],
//	    "dc":     [{"voltage": {...}, "current": {...}, "power": {...}}, ...],
//	    "state":  {"address": 32089, "type": "U16", "states": {"0x0200": "mppt", ...}}
//	  },
//	  "blocks": [{"function": 3, "start": 32000, "count": 125}],
//	  "sources": ["where the register facts come from"]
//	}
//
// (*) "unit" is the default of solarman specs and simulators; specs of the
// form <profile>+tcp://HOST take unit=1 unless the spec says otherwise.
//
// Fields (all optional): ac_power and dc_power (unit W or kW), energy_total
// (lifetime; Wh, kWh or MWh), frequency (Hz), temperature (°C), phases
// (voltage V, current A or mA, power W or kW, per phase) and dc (the same per
// PV input), and state. They map one to one to Reading's fields.
//
// A numeric field has:
//
//   - "function": 3 or 4 (default: the profile's "function").
//   - "address": the PDU address, 0-based as sent on the wire (documentation
//     that counts registers from 1, or as 30001/40001, must be converted).
//   - "type": U16 I16 U32 I32 F32 U64 I64 (1, 1, 2, 2, 2, 4, 4 registers).
//   - "words": "big" (default; most significant register first) or "little"
//     (least significant register first). Bytes within a register are always
//     big-endian, as Modbus sends them.
//   - "scale": a fixed multiplier (default 1), e.g. 0.1 for a value in tenths.
//   - "scale_register": the address of a SunSpec-style scale factor (an I16
//     register, same function): the value is multiplied by 10^sf. A scale
//     factor of -32768 (SunSpec's "not implemented") or outside ±10 makes the
//     value missing.
//   - "offset": added after scaling (e.g. -100 for a temperature sent as
//     tenths of a degree plus 1000).
//   - "unit": the unit of raw × scale × 10^sf + offset; it is converted to
//     the unit of the Reading field (kW to W, kWh to Wh, mA to A).
//   - "negate": true flips the sign, for devices whose convention is the
//     opposite of Reading's (a meter that reports import as positive).
//   - "invalid": raw values meaning "not available", as unsigned integers of
//     the whole field (e.g. 65535 for U16, 32768 for an I16 0x8000). F32 NaN
//     and infinities are always missing.
//   - "sum": instead of an address, a list of fields whose values are added
//     (e.g. a total DC power from per-input powers); the sum is missing when
//     any part is.
//
// The state field has function, address, type (U16 or U32) and words, a
// "states" table from raw value (decimal or 0x-prefixed hexadecimal) to a
// state word, and an optional "default" word for values not in the table.
// State words are SunSpec's operating states in lower case: off, sleeping,
// starting, mppt, throttled, shutting_down, fault, standby.
//
// "serial" and "model" are read once per connection: type STR (ASCII, NULs
// and spaces trimmed; "count" registers), HEX (the registers as hexadecimal
// digits; "count" registers), or U16/U32/U64 (printed in decimal), with
// function (default: the profile's) and words.
//
// "blocks" are the register runs a gateway harvests raw (function 3 or 4,
// start, count 1-125), independent of the fields, read by
// ProfileDevice.Harvest and, with ProfileOptions.HarvestEvery, by Read.
//
// Unknown keys are errors, so that a typo never silently drops a value.
//
// Loaded profiles are validated and must not be modified; they are safe for
// concurrent use.
type Profile struct {
	Name         string   `json:"name"`
	Manufacturer string   `json:"manufacturer"`
	Description  string   `json:"description,omitempty"`
	Kind         string   `json:"kind"`
	Unit         uint8    `json:"unit"`
	Function     uint8    `json:"function,omitempty"`
	MaxGap       *int     `json:"max_gap,omitempty"`
	Serial       *Text    `json:"serial,omitempty"`
	Model        *Text    `json:"model,omitempty"`
	Fields       Fields   `json:"fields"`
	Blocks       []Block  `json:"blocks,omitempty"`
	Sources      []string `json:"sources,omitempty"`
}

// Text is a profile's serial-number or model block.
type Text struct {
	Function uint8  `json:"function,omitempty"`
	Address  uint16 `json:"address"`
	Count    uint16 `json:"count,omitempty"`
	Type     string `json:"type"`
	Words    string `json:"words,omitempty"`
}

// Fields maps Reading's fields to registers.
type Fields struct {
	ACPower     *Field        `json:"ac_power,omitempty"`
	DCPower     *Field        `json:"dc_power,omitempty"`
	EnergyTotal *Field        `json:"energy_total,omitempty"`
	Frequency   *Field        `json:"frequency,omitempty"`
	Temperature *Field        `json:"temperature,omitempty"`
	Phases      []PhaseFields `json:"phases,omitempty"`
	DC          []PhaseFields `json:"dc,omitempty"`
	State       *StateField   `json:"state,omitempty"`
}

// PhaseFields are the fields of one AC phase or one DC input.
type PhaseFields struct {
	Voltage *Field `json:"voltage,omitempty"`
	Current *Field `json:"current,omitempty"`
	Power   *Field `json:"power,omitempty"`
}

// Field is one numeric value in registers.
type Field struct {
	Function      uint8    `json:"function,omitempty"`
	Address       uint16   `json:"address,omitempty"`
	Type          string   `json:"type,omitempty"`
	Words         string   `json:"words,omitempty"`
	Scale         *float64 `json:"scale,omitempty"`
	ScaleRegister *uint16  `json:"scale_register,omitempty"`
	Offset        float64  `json:"offset,omitempty"`
	Unit          string   `json:"unit"`
	Negate        bool     `json:"negate,omitempty"`
	Invalid       []uint64 `json:"invalid,omitempty"`
	Sum           []*Field `json:"sum,omitempty"`
}

// StateField maps a status register to a state word.
type StateField struct {
	Function uint8             `json:"function,omitempty"`
	Address  uint16            `json:"address"`
	Type     string            `json:"type"`
	Words    string            `json:"words,omitempty"`
	States   map[string]string `json:"states"`
	Default  string            `json:"default,omitempty"`

	table map[uint64]string
}

// Block is a run of registers harvested raw.
type Block struct {
	Function uint8  `json:"function"`
	Start    uint16 `json:"start"`
	Count    uint16 `json:"count"`
}

// ---------------------------------------------------------------------------
// Register types

// TypeSize returns how many registers a value of type t occupies (0 for an
// unknown type, STR and HEX, whose size is given by the block).
func TypeSize(t string) int {
	switch t {
	case TypeU16, TypeI16:
		return 1
	case TypeU32, TypeI32, TypeF32:
		return 2
	case TypeU64, TypeI64:
		return 4
	}
	return 0
}

// rawBits assembles regs (len = TypeSize) into an unsigned integer,
// most significant register first after applying the word order.
func rawBits(words string, regs []uint16) uint64 {
	var u uint64
	n := len(regs)
	for i := range n {
		r := regs[i]
		if words == WordsLittle {
			r = regs[n-1-i]
		}
		u = u<<16 | uint64(r)
	}
	return u
}

// fromBits is the inverse of rawBits for n registers.
func fromBits(words string, u uint64, n int) []uint16 {
	regs := make([]uint16, n)
	for i := range n {
		r := uint16(u >> (16 * (n - 1 - i)))
		if words == WordsLittle {
			regs[n-1-i] = r
		} else {
			regs[i] = r
		}
	}
	return regs
}

// DecodeNumber decodes a value of type t (U16 … I64) and word order words
// ("big", "little"; empty means big) from regs. ok is false when len(regs)
// does not match the type, the type is unknown, or the value is a float
// NaN or infinity.
func DecodeNumber(t, words string, regs []uint16) (v float64, ok bool) {
	if n := TypeSize(t); n == 0 || len(regs) != n {
		return 0, false
	}
	u := rawBits(words, regs)
	switch t {
	case TypeU16, TypeU32, TypeU64:
		return float64(u), true
	case TypeI16:
		return float64(int16(u)), true
	case TypeI32:
		return float64(int32(u)), true
	case TypeI64:
		return float64(int64(u)), true
	case TypeF32:
		f := float64(math.Float32frombits(uint32(u)))
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return 0, false
		}
		return f, true
	}
	return 0, false
}

// EncodeNumber is the inverse of DecodeNumber: it rounds v to the nearest
// integer for integer types and reports an error when v is NaN, infinite or
// out of the type's range.
func EncodeNumber(t, words string, v float64) ([]uint16, error) {
	n := TypeSize(t)
	if n == 0 {
		return nil, fmt.Errorf("energy: unknown register type %q", t)
	}
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return nil, fmt.Errorf("energy: cannot encode %v as %s", v, t)
	}
	var u uint64
	r := math.Round(v)
	switch t {
	case TypeU16, TypeU32, TypeU64:
		limit := math.Ldexp(1, 16*n) // 2^bits, exclusive
		if r < 0 || r >= limit {
			return nil, fmt.Errorf("energy: %v out of range for %s", v, t)
		}
		u = uint64(r)
	case TypeI16, TypeI32, TypeI64:
		limit := math.Ldexp(1, 16*n-1)
		if r < -limit || r >= limit {
			return nil, fmt.Errorf("energy: %v out of range for %s", v, t)
		}
		u = uint64(int64(r))
		if n < 4 {
			u &= 1<<(16*n) - 1
		}
	case TypeF32:
		if math.Abs(v) > math.MaxFloat32 {
			return nil, fmt.Errorf("energy: %v out of range for %s", v, t)
		}
		u = uint64(math.Float32bits(float32(v)))
	}
	return fromBits(words, u, n), nil
}

// DecodeString decodes ASCII text packed two bytes per register, high byte
// first, as most devices store names and serial numbers. It stops at the
// first NUL, trims spaces and replaces bytes that are not printable ASCII
// with '?', so that the result is always valid UTF-8.
func DecodeString(regs []uint16) string {
	b := make([]byte, 0, 2*len(regs))
	for _, r := range regs {
		b = append(b, byte(r>>8), byte(r))
	}
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	for i, c := range b {
		if c < 0x20 || c > 0x7e {
			b[i] = '?'
		}
	}
	return strings.TrimSpace(string(b))
}

// EncodeString is the inverse of DecodeString: s padded with NULs to n
// registers (and truncated to fit).
func EncodeString(s string, n int) []uint16 {
	regs := make([]uint16, n)
	for i := 0; i < len(s) && i < 2*n; i++ {
		if i%2 == 0 {
			regs[i/2] |= uint16(s[i]) << 8
		} else {
			regs[i/2] |= uint16(s[i])
		}
	}
	return regs
}

// ---------------------------------------------------------------------------
// Loading and validation

var (
	builtinOnce     sync.Once
	builtinProfiles map[string]*Profile
	builtinNames    []string
	builtinErr      error
)

// LoadProfiles returns the profiles shipped with the package, by name. The
// map is a fresh copy; the profiles are shared and must not be modified.
func LoadProfiles() (map[string]*Profile, error) {
	builtinOnce.Do(loadBuiltin)
	if builtinErr != nil {
		return nil, builtinErr
	}
	m := make(map[string]*Profile, len(builtinProfiles))
	for k, v := range builtinProfiles {
		m[k] = v
	}
	return m, nil
}

// ProfileNames returns the names of the shipped profiles, sorted.
func ProfileNames() []string {
	builtinOnce.Do(loadBuiltin)
	return append([]string(nil), builtinNames...)
}

// LookupProfile returns the shipped profile with the given name; the error
// for an unknown name lists the known ones.
func LookupProfile(name string) (*Profile, error) {
	builtinOnce.Do(loadBuiltin)
	if builtinErr != nil {
		return nil, builtinErr
	}
	p, ok := builtinProfiles[name]
	if !ok {
		return nil, fmt.Errorf("energy: unknown profile %q (known: %s)", name, strings.Join(builtinNames, ", "))
	}
	return p, nil
}

func loadBuiltin() {
	builtinProfiles = map[string]*Profile{}
	files, err := fs.Glob(profileFS, "profiles/*.json")
	if err != nil {
		builtinErr = fmt.Errorf("energy: embedded profiles: %w", err)
		return
	}
	for _, f := range files {
		b, err := profileFS.ReadFile(f)
		if err != nil {
			builtinErr = fmt.Errorf("energy: embedded profile %s: %w", f, err)
			return
		}
		p, err := ParseProfile(bytes.NewReader(b))
		if err != nil {
			builtinErr = fmt.Errorf("energy: embedded profile %s: %w", path.Base(f), err)
			return
		}
		if _, dup := builtinProfiles[p.Name]; dup {
			builtinErr = fmt.Errorf("energy: embedded profile %s: name %q used twice", path.Base(f), p.Name)
			return
		}
		builtinProfiles[p.Name] = p
		builtinNames = append(builtinNames, p.Name)
	}
	sort.Strings(builtinNames)
}

// ParseProfile reads and validates one profile in the JSON format described
// in the package's profile documentation. Errors name the offending field,
// e.g. `energy: profile "acme": fields.phases[1].voltage.type: unknown type "U17"`.
func ParseProfile(r io.Reader) (*Profile, error) {
	dec := json.NewDecoder(io.LimitReader(r, 1<<20))
	dec.DisallowUnknownFields()
	var p Profile
	if err := dec.Decode(&p); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			return nil, fmt.Errorf("energy: profile: %s: %w", te.Field, err)
		}
		return nil, fmt.Errorf("energy: profile: %w", err)
	}
	if dec.More() {
		return nil, errors.New("energy: profile: more than one JSON value")
	}
	if err := p.validate(); err != nil {
		return nil, fmt.Errorf("energy: profile %q: %w", p.Name, err)
	}
	return &p, nil
}

// fieldRef names one field of a profile for errors and iteration.
type fieldRef struct {
	path string
	f    *Field
	kind string // "power", "energy", "frequency", "voltage", "current", "temperature"
}

// numericFields lists the profile's numeric fields with their paths.
func (p *Profile) numericFields() []fieldRef {
	var out []fieldRef
	add := func(path, kind string, f *Field) {
		if f != nil {
			out = append(out, fieldRef{path, f, kind})
		}
	}
	fl := &p.Fields
	add("fields.ac_power", "power", fl.ACPower)
	add("fields.dc_power", "power", fl.DCPower)
	add("fields.energy_total", "energy", fl.EnergyTotal)
	add("fields.frequency", "frequency", fl.Frequency)
	add("fields.temperature", "temperature", fl.Temperature)
	for i := range fl.Phases {
		ph := &fl.Phases[i]
		add(fmt.Sprintf("fields.phases[%d].voltage", i), "voltage", ph.Voltage)
		add(fmt.Sprintf("fields.phases[%d].current", i), "current", ph.Current)
		add(fmt.Sprintf("fields.phases[%d].power", i), "power", ph.Power)
	}
	for i := range fl.DC {
		ph := &fl.DC[i]
		add(fmt.Sprintf("fields.dc[%d].voltage", i), "voltage", ph.Voltage)
		add(fmt.Sprintf("fields.dc[%d].current", i), "current", ph.Current)
		add(fmt.Sprintf("fields.dc[%d].power", i), "power", ph.Power)
	}
	return out
}

// unitFactors converts a field's unit to the Reading's unit, by kind.
var unitFactors = map[string]map[string]float64{
	"power":       {"W": 1, "kW": 1e3},
	"energy":      {"Wh": 1, "kWh": 1e3, "MWh": 1e6},
	"frequency":   {"Hz": 1},
	"voltage":     {"V": 1},
	"current":     {"A": 1, "mA": 1e-3},
	"temperature": {"°C": 1, "C": 1},
}

func validName(s string) bool {
	if s == "" || len(s) > 20 || s[0] < 'a' || s[0] > 'z' {
		return false
	}
	for _, c := range s {
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '-' {
			return false
		}
	}
	return true
}

func (p *Profile) validate() error {
	if !validName(p.Name) {
		return fmt.Errorf("name: %q is not 1-20 characters a-z, 0-9, '-' starting with a letter", p.Name)
	}
	if p.Manufacturer == "" {
		return errors.New("manufacturer: missing")
	}
	if p.Kind != "inverter" && p.Kind != "meter" {
		return fmt.Errorf("kind: %q is not \"inverter\" or \"meter\"", p.Kind)
	}
	if p.Unit > 247 {
		return fmt.Errorf("unit: %d is not a Modbus unit id (0-247)", p.Unit)
	}
	if p.Function != 0 && p.Function != 3 && p.Function != 4 {
		return fmt.Errorf("function: %d is not 3 (holding) or 4 (input)", p.Function)
	}
	if p.MaxGap != nil && (*p.MaxGap < 0 || *p.MaxGap >= MaxRegisters) {
		return fmt.Errorf("max_gap: %d is not 0-%d", *p.MaxGap, MaxRegisters-1)
	}
	for _, t := range []struct {
		name string
		t    *Text
	}{{"serial", p.Serial}, {"model", p.Model}} {
		if t.t == nil {
			continue
		}
		if err := p.validateText(t.t); err != nil {
			return fmt.Errorf("%s.%w", t.name, err)
		}
	}
	fields := p.numericFields()
	for _, fr := range fields {
		if err := p.validateField(fr.f, fr.kind, true); err != nil {
			return fmt.Errorf("%s.%w", fr.path, err)
		}
	}
	if s := p.Fields.State; s != nil {
		if err := p.validateState(s); err != nil {
			return fmt.Errorf("fields.state.%w", err)
		}
	}
	if len(fields) == 0 && p.Fields.State == nil {
		return errors.New("fields: no field defined")
	}
	for i, b := range p.Blocks {
		switch {
		case b.Function != 3 && b.Function != 4:
			return fmt.Errorf("blocks[%d].function: %d is not 3 or 4", i, b.Function)
		case b.Count == 0 || b.Count > MaxRegisters:
			return fmt.Errorf("blocks[%d].count: %d is not 1-%d", i, b.Count, MaxRegisters)
		case int(b.Start)+int(b.Count) > 1<<16:
			return fmt.Errorf("blocks[%d]: %d+%d runs past register 65535", i, b.Start, b.Count)
		}
	}
	return nil
}

func (p *Profile) fc(f uint8) uint8 {
	if f != 0 {
		return f
	}
	if p.Function != 0 {
		return p.Function
	}
	return 3
}

func checkFunction(f uint8) error {
	if f != 0 && f != 3 && f != 4 {
		return fmt.Errorf("function: %d is not 3 (holding) or 4 (input)", f)
	}
	return nil
}

func checkWords(w string) error {
	if w != "" && w != WordsBig && w != WordsLittle {
		return fmt.Errorf("words: %q is not \"big\" or \"little\"", w)
	}
	return nil
}

func checkSpan(addr uint16, n int) error {
	if int(addr)+n > 1<<16 {
		return fmt.Errorf("address: %d+%d runs past register 65535", addr, n)
	}
	return nil
}

func (p *Profile) validateText(t *Text) error {
	if err := checkFunction(t.Function); err != nil {
		return err
	}
	if err := checkWords(t.Words); err != nil {
		return err
	}
	switch t.Type {
	case TypeSTR, TypeHEX:
		if t.Count == 0 || t.Count > MaxRegisters {
			return fmt.Errorf("count: %d is not 1-%d", t.Count, MaxRegisters)
		}
	case TypeU16, TypeU32, TypeU64:
		if t.Count != 0 && int(t.Count) != TypeSize(t.Type) {
			return fmt.Errorf("count: %d does not match type %s (%d registers)", t.Count, t.Type, TypeSize(t.Type))
		}
		t.Count = uint16(TypeSize(t.Type))
	default:
		return fmt.Errorf("type: %q is not STR, HEX, U16, U32 or U64", t.Type)
	}
	return checkSpan(t.Address, int(t.Count))
}

func (p *Profile) validateField(f *Field, kind string, allowSum bool) error {
	units := unitFactors[kind]
	if _, ok := units[f.Unit]; !ok {
		var want []string
		for u := range units {
			want = append(want, u)
		}
		sort.Strings(want)
		return fmt.Errorf("unit: %q is not a %s unit (want %s)", f.Unit, kind, strings.Join(want, ", "))
	}
	if math.IsNaN(f.Offset) || math.IsInf(f.Offset, 0) {
		return errors.New("offset: not a finite number")
	}
	if len(f.Sum) > 0 {
		if !allowSum {
			return errors.New("sum: parts of a sum cannot be sums")
		}
		if f.Type != "" || f.Address != 0 || f.ScaleRegister != nil || f.Scale != nil || len(f.Invalid) > 0 || f.Function != 0 || f.Words != "" {
			return errors.New("sum: a sum has only unit, offset, negate and its parts")
		}
		for i, part := range f.Sum {
			if part == nil {
				return fmt.Errorf("sum[%d]: null", i)
			}
			if err := p.validateField(part, kind, false); err != nil {
				return fmt.Errorf("sum[%d].%w", i, err)
			}
		}
		return nil
	}
	if err := checkFunction(f.Function); err != nil {
		return err
	}
	if err := checkWords(f.Words); err != nil {
		return err
	}
	n := TypeSize(f.Type)
	if n == 0 {
		return fmt.Errorf("type: %q is not one of U16, I16, U32, I32, F32, U64, I64", f.Type)
	}
	if err := checkSpan(f.Address, n); err != nil {
		return err
	}
	if f.Scale != nil && (*f.Scale == 0 || math.IsNaN(*f.Scale) || math.IsInf(*f.Scale, 0)) {
		return fmt.Errorf("scale: %v is not a finite non-zero multiplier", *f.Scale)
	}
	for i, v := range f.Invalid {
		if n < 4 && v >= 1<<(16*n) {
			return fmt.Errorf("invalid[%d]: %d does not fit %s", i, v, f.Type)
		}
	}
	return nil
}

func (p *Profile) validateState(s *StateField) error {
	if err := checkFunction(s.Function); err != nil {
		return err
	}
	if err := checkWords(s.Words); err != nil {
		return err
	}
	if s.Type != TypeU16 && s.Type != TypeU32 {
		return fmt.Errorf("type: %q is not U16 or U32", s.Type)
	}
	if err := checkSpan(s.Address, TypeSize(s.Type)); err != nil {
		return err
	}
	if len(s.States) == 0 {
		return errors.New("states: empty")
	}
	s.table = make(map[uint64]string, len(s.States))
	for k, w := range s.States {
		v, err := strconv.ParseUint(k, 0, 32)
		if err != nil || (s.Type == TypeU16 && v > 0xffff) {
			return fmt.Errorf("states: key %q is not a %s value (decimal or 0x hexadecimal)", k, s.Type)
		}
		if !knownState(w) {
			return fmt.Errorf("states[%q]: %q is not one of %s", k, w, strings.Join(States, ", "))
		}
		s.table[v] = w
	}
	if s.Default != "" && !knownState(s.Default) {
		return fmt.Errorf("default: %q is not one of %s", s.Default, strings.Join(States, ", "))
	}
	return nil
}

func knownState(w string) bool {
	for _, s := range States {
		if s == w {
			return true
		}
	}
	return false
}

// ---------------------------------------------------------------------------
// Decoding

// regLookup finds registers in a set of blocks, wherever the blocks split
// them (a value may span two reads).
type regLookup map[uint8]map[uint16]uint16

func newLookup(blocks []RegisterBlock) regLookup {
	l := regLookup{}
	for _, b := range blocks {
		m := l[b.Function]
		if m == nil {
			m = map[uint16]uint16{}
			l[b.Function] = m
		}
		for i, v := range b.Values {
			if int(b.Start)+i > 0xffff {
				break
			}
			m[b.Start+uint16(i)] = v
		}
	}
	return l
}

func (l regLookup) get(fc uint8, addr uint16, n int) ([]uint16, bool) {
	m := l[fc]
	if m == nil || int(addr)+n > 1<<16 {
		return nil, false
	}
	out := make([]uint16, n)
	for i := range out {
		v, ok := m[addr+uint16(i)]
		if !ok {
			return nil, false
		}
		out[i] = v
	}
	return out, true
}

// value decodes a numeric field, converted to the Reading's unit.
func (p *Profile) value(l regLookup, f *Field, kind string) Value {
	if f == nil {
		return Value{}
	}
	var v float64
	if len(f.Sum) > 0 {
		for _, part := range f.Sum {
			pv := p.value(l, part, kind)
			if !pv.OK {
				return Value{}
			}
			v += pv.V
		}
	} else {
		raw, ok := p.rawValue(l, f)
		if !ok {
			return Value{}
		}
		v = raw * unitFactors[kind][f.Unit]
	}
	v += f.Offset * unitFactors[kind][f.Unit]
	if f.Negate {
		v = -v
	}
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return Value{}
	}
	return Some(v)
}

// rawValue returns raw × scale × 10^sf in the field's own unit.
func (p *Profile) rawValue(l regLookup, f *Field) (float64, bool) {
	fc := p.fc(f.Function)
	n := TypeSize(f.Type)
	regs, ok := l.get(fc, f.Address, n)
	if !ok {
		return 0, false
	}
	bits := rawBits(f.Words, regs)
	for _, inv := range f.Invalid {
		if bits == inv {
			return 0, false
		}
	}
	v, ok := DecodeNumber(f.Type, f.Words, regs)
	if !ok {
		return 0, false
	}
	if f.Scale != nil {
		v *= *f.Scale
	}
	if f.ScaleRegister != nil {
		sr, ok := l.get(fc, *f.ScaleRegister, 1)
		if !ok {
			return 0, false
		}
		sf := int16(sr[0])
		if sf < -10 || sf > 10 {
			return 0, false
		}
		v *= math.Pow10(int(sf))
	}
	return v, true
}

func (p *Profile) text(l regLookup, t *Text) string {
	if t == nil {
		return ""
	}
	regs, ok := l.get(p.fc(t.Function), t.Address, int(t.Count))
	if !ok {
		return ""
	}
	return textFromRegs(t, regs)
}

func textFromRegs(t *Text, regs []uint16) string {
	switch t.Type {
	case TypeSTR:
		return DecodeString(regs)
	case TypeHEX:
		var sb strings.Builder
		for _, r := range regs {
			fmt.Fprintf(&sb, "%04X", r)
		}
		return sb.String()
	}
	return strconv.FormatUint(rawBits(t.Words, regs), 10)
}

// textToRegs is the inverse of textFromRegs; text that the type cannot
// hold becomes zeros.
func textToRegs(t *Text, s string) []uint16 {
	n := int(t.Count)
	switch t.Type {
	case TypeSTR:
		return EncodeString(s, n)
	case TypeHEX:
		regs := make([]uint16, n)
		for i := range regs {
			if len(s) >= 4*(i+1) {
				x, _ := strconv.ParseUint(s[4*i:4*i+4], 16, 16)
				regs[i] = uint16(x)
			}
		}
		return regs
	}
	x, err := strconv.ParseUint(s, 10, 16*n)
	if err != nil {
		x = 0
	}
	return fromBits(t.Words, x, n)
}

func (p *Profile) state(l regLookup) string {
	s := p.Fields.State
	if s == nil {
		return ""
	}
	regs, ok := l.get(p.fc(s.Function), s.Address, TypeSize(s.Type))
	if !ok {
		return ""
	}
	if w, ok := s.table[rawBits(s.Words, regs)]; ok {
		return w
	}
	return s.Default
}

// Info returns what the profile alone says about a device: manufacturer,
// profile name and kind.
func (p *Profile) Info() Info {
	return Info{Manufacturer: p.Manufacturer, Profile: p.Name, Kind: p.Kind}
}

// Decode decodes register blocks into a Reading. Values whose registers
// are not in blocks, that hold an "invalid" value, or that decode to NaN or
// an infinity are missing; the serial number and model are decoded when
// their registers are present. Time and Raw are left for the caller.
// Decode fails only when blocks hold none of the profile's registers, which
// means the blocks came from another device or another profile.
//
// Decode is pure and safe for concurrent use.
func (p *Profile) Decode(blocks []RegisterBlock) (Reading, error) {
	l := newLookup(blocks)
	r := Reading{Device: p.Info()}
	r.Device.Serial = p.text(l, p.Serial)
	r.Device.Model = p.text(l, p.Model)
	fl := &p.Fields
	r.ACPower = p.value(l, fl.ACPower, "power")
	r.DCPower = p.value(l, fl.DCPower, "power")
	r.EnergyTotal = p.value(l, fl.EnergyTotal, "energy")
	r.Frequency = p.value(l, fl.Frequency, "frequency")
	r.Temperature = p.value(l, fl.Temperature, "temperature")
	for _, ph := range fl.Phases {
		r.Phases = append(r.Phases, Phase{
			Voltage: p.value(l, ph.Voltage, "voltage"),
			Current: p.value(l, ph.Current, "current"),
			Power:   p.value(l, ph.Power, "power"),
		})
	}
	for _, dc := range fl.DC {
		r.DC = append(r.DC, DCInput{
			Voltage: p.value(l, dc.Voltage, "voltage"),
			Current: p.value(l, dc.Current, "current"),
			Power:   p.value(l, dc.Power, "power"),
		})
	}
	r.State = p.state(l)
	found := false
	for _, sp := range p.fieldSpans() {
		if _, ok := l.get(sp.fc, sp.start, 1); ok {
			found = true
			break
		}
	}
	if !found {
		return r, fmt.Errorf("energy: %s: the blocks hold none of the profile's registers", p.Name)
	}
	return r, nil
}

// ---------------------------------------------------------------------------
// Encoding (for simulators and tests)

// RegisterMap holds register values by function code and PDU address: what a
// simulated device serves.
type RegisterMap map[uint8]map[uint16]uint16

// Set stores consecutive register values from addr on.
func (m RegisterMap) Set(fc uint8, addr uint16, vals ...uint16) {
	if m[fc] == nil {
		m[fc] = map[uint16]uint16{}
	}
	for i, v := range vals {
		m[fc][addr+uint16(i)] = v
	}
}

// Has reports whether every register of the run is set.
func (m RegisterMap) Has(fc uint8, addr, count uint16) bool {
	for i := range count {
		if _, ok := m[fc][addr+i]; !ok {
			return false
		}
	}
	return true
}

// Read returns count registers from addr on, zero where unset.
func (m RegisterMap) Read(fc uint8, addr, count uint16) []uint16 {
	out := make([]uint16, count)
	for i := range count {
		out[i] = m[fc][addr+i]
	}
	return out
}

// Restrict returns r reduced to what p can carry: values of fields the
// profile lacks become missing, phases and DC inputs are cut to the
// profile's count, and a state word the profile cannot express becomes the
// closest one it can ("sleeping" → "standby" → "off"), or "". Identity and
// Raw are replaced by the profile's Info and nil. Simulators serve
// Restrict(r) so that what a client decodes equals what they report.
func (p *Profile) Restrict(r Reading) Reading {
	out := Reading{Time: r.Time, Device: r.Device}
	out.Device.Manufacturer, out.Device.Profile, out.Device.Kind = p.Manufacturer, p.Name, p.Kind
	restrictText := func(t *Text, s string) string {
		if t == nil {
			return ""
		}
		return textFromRegs(t, textToRegs(t, s))
	}
	out.Device.Serial = restrictText(p.Serial, r.Device.Serial)
	out.Device.Model = restrictText(p.Model, r.Device.Model)
	out.Device.Version = ""
	keep := func(f *Field, v Value) Value {
		if f == nil {
			return Value{}
		}
		return v
	}
	fl := &p.Fields
	out.ACPower = keep(fl.ACPower, r.ACPower)
	out.DCPower = keep(fl.DCPower, r.DCPower)
	out.EnergyTotal = keep(fl.EnergyTotal, r.EnergyTotal)
	out.Frequency = keep(fl.Frequency, r.Frequency)
	out.Temperature = keep(fl.Temperature, r.Temperature)
	for i, ph := range fl.Phases {
		var src Phase
		if i < len(r.Phases) {
			src = r.Phases[i]
		}
		out.Phases = append(out.Phases, Phase{keep(ph.Voltage, src.Voltage), keep(ph.Current, src.Current), keep(ph.Power, src.Power)})
	}
	for i, dc := range fl.DC {
		var src DCInput
		if i < len(r.DC) {
			src = r.DC[i]
		}
		out.DC = append(out.DC, DCInput{keep(dc.Voltage, src.Voltage), keep(dc.Current, src.Current), keep(dc.Power, src.Power)})
	}
	out.State = p.expressible(r.State)
	return out
}

// expressible returns the state word p can encode closest to w.
func (p *Profile) expressible(w string) string {
	s := p.Fields.State
	if s == nil || w == "" {
		return ""
	}
	fallbacks := map[string][]string{
		"sleeping":      {"standby", "off"},
		"standby":       {"sleeping", "off"},
		"off":           {"standby", "sleeping"},
		"throttled":     {"mppt"},
		"starting":      {"standby"},
		"shutting_down": {"off", "standby"},
	}
	for _, c := range append([]string{w}, fallbacks[w]...) {
		if _, ok := p.stateRaw(c); ok {
			return c
		}
	}
	return ""
}

// stateRaw returns the smallest raw value that decodes to word w.
func (p *Profile) stateRaw(w string) (uint64, bool) {
	s := p.Fields.State
	if s == nil {
		return 0, false
	}
	best, found := uint64(0), false
	for v, sw := range s.table {
		if sw == w && (!found || v < best) {
			best, found = v, true
		}
	}
	return best, found
}

// Encode is the inverse of Decode: it writes r's values into a register
// map, for simulators and tests. Values are rounded to the field's
// resolution. Fields with a scale register share one scale factor per
// register, chosen as the finest that fits every value using it. A missing
// value is written as the field's first "invalid" value, or left unset. A
// sum is split evenly over its parts, unless another field writes them. The
// serial number and model come from r.Device.
func (p *Profile) Encode(r Reading) (RegisterMap, error) {
	m := RegisterMap{}
	if err := p.EncodeInto(m, r); err != nil {
		return nil, err
	}
	return m, nil
}

type fieldValue struct {
	path string
	f    *Field
	kind string
	v    Value
}

// EncodeInto is Encode into an existing map (which keeps registers the
// profile does not define).
func (p *Profile) EncodeInto(m RegisterMap, r Reading) error {
	fl := &p.Fields
	var fvs []fieldValue
	add := func(path, kind string, f *Field, v Value) {
		if f != nil {
			fvs = append(fvs, fieldValue{path, f, kind, v})
		}
	}
	add("ac_power", "power", fl.ACPower, r.ACPower)
	add("dc_power", "power", fl.DCPower, r.DCPower)
	add("energy_total", "energy", fl.EnergyTotal, r.EnergyTotal)
	add("frequency", "frequency", fl.Frequency, r.Frequency)
	add("temperature", "temperature", fl.Temperature, r.Temperature)
	for i, ph := range fl.Phases {
		var src Phase
		if i < len(r.Phases) {
			src = r.Phases[i]
		}
		add(fmt.Sprintf("phases[%d].voltage", i), "voltage", ph.Voltage, src.Voltage)
		add(fmt.Sprintf("phases[%d].current", i), "current", ph.Current, src.Current)
		add(fmt.Sprintf("phases[%d].power", i), "power", ph.Power, src.Power)
	}
	for i, dc := range fl.DC {
		var src DCInput
		if i < len(r.DC) {
			src = r.DC[i]
		}
		add(fmt.Sprintf("dc[%d].voltage", i), "voltage", dc.Voltage, src.Voltage)
		add(fmt.Sprintf("dc[%d].current", i), "current", dc.Current, src.Current)
		add(fmt.Sprintf("dc[%d].power", i), "power", dc.Power, src.Power)
	}

	// Expand sums into their parts (written first, so that direct fields
	// sharing the registers win).
	direct := map[[2]uint32]bool{}
	var flat []fieldValue
	for _, fv := range fvs {
		if len(fv.f.Sum) == 0 {
			direct[[2]uint32{uint32(p.fc(fv.f.Function)), uint32(fv.f.Address)}] = true
		}
	}
	for _, fv := range fvs {
		if len(fv.f.Sum) == 0 {
			continue
		}
		own := fv.v
		if own.OK {
			x := own.V
			if fv.f.Negate {
				x = -x
			}
			x -= fv.f.Offset * unitFactors[fv.kind][fv.f.Unit]
			own = Some(x)
		}
		var free []*Field
		for _, part := range fv.f.Sum {
			if !direct[[2]uint32{uint32(p.fc(part.Function)), uint32(part.Address)}] {
				free = append(free, part)
			}
		}
		for i, part := range free {
			pv := own
			if pv.OK {
				pv = Some(own.V / float64(len(free)))
			}
			flat = append(flat, fieldValue{fmt.Sprintf("%s.sum[%d]", fv.path, i), part, fv.kind, pv})
		}
	}
	for _, fv := range fvs {
		if len(fv.f.Sum) == 0 {
			flat = append(flat, fv)
		}
	}

	// Convert to each field's own unit, before scale factors.
	type pending struct {
		fieldValue
		x float64 // value / (scale) in the field's unit, before 10^sf
	}
	var pend []pending
	sfGroups := map[[2]uint32][]int{}
	for _, fv := range flat {
		if !fv.v.OK || math.IsNaN(fv.v.V) || math.IsInf(fv.v.V, 0) {
			if len(fv.f.Invalid) > 0 {
				n := TypeSize(fv.f.Type)
				m.Set(p.fc(fv.f.Function), fv.f.Address, fromBits(fv.f.Words, fv.f.Invalid[0], n)...)
			}
			continue
		}
		x := fv.v.V
		if fv.f.Negate {
			x = -x
		}
		x = x/unitFactors[fv.kind][fv.f.Unit] - fv.f.Offset
		if fv.f.Scale != nil {
			x /= *fv.f.Scale
		}
		pend = append(pend, pending{fv, x})
		if fv.f.ScaleRegister != nil {
			k := [2]uint32{uint32(p.fc(fv.f.Function)), uint32(*fv.f.ScaleRegister)}
			sfGroups[k] = append(sfGroups[k], len(pend)-1)
		}
	}
	sfs := map[[2]uint32]int{}
	for k, idx := range sfGroups {
		chosen, ok := 0, false
		for sf := -4; sf <= 10 && !ok; sf++ {
			fits := true
			for _, i := range idx {
				if _, err := EncodeNumber(pend[i].f.Type, pend[i].f.Words, pend[i].x/math.Pow10(sf)); err != nil {
					fits = false
					break
				}
			}
			if fits {
				chosen, ok = sf, true
			}
		}
		if !ok {
			return fmt.Errorf("energy: %s: no scale factor fits the values of register %d", p.Name, k[1])
		}
		sfs[k] = chosen
		m.Set(uint8(k[0]), uint16(k[1]), uint16(int16(chosen)))
	}
	for _, pe := range pend {
		x := pe.x
		if pe.f.ScaleRegister != nil {
			x /= math.Pow10(sfs[[2]uint32{uint32(p.fc(pe.f.Function)), uint32(*pe.f.ScaleRegister)}])
		}
		regs, err := EncodeNumber(pe.f.Type, pe.f.Words, x)
		if err != nil {
			return fmt.Errorf("energy: %s: %s: %w", p.Name, pe.path, err)
		}
		m.Set(p.fc(pe.f.Function), pe.f.Address, regs...)
	}

	if s := fl.State; s != nil {
		if raw, ok := p.stateRaw(p.expressible(r.State)); ok {
			m.Set(p.fc(s.Function), s.Address, fromBits(s.Words, raw, TypeSize(s.Type))...)
		}
	}
	for _, t := range []struct {
		t *Text
		v string
	}{{p.Serial, r.Device.Serial}, {p.Model, r.Device.Model}} {
		if t.t != nil {
			m.Set(p.fc(t.t.Function), t.t.Address, textToRegs(t.t, t.v)...)
		}
	}
	return nil
}

// ---------------------------------------------------------------------------
// Read planning

// span is a run of registers a profile needs.
type span struct {
	fc           uint8
	start, count uint16
}

// fieldSpans lists the registers of every field (scale registers and sum
// parts included), not the serial and model.
func (p *Profile) fieldSpans() []span {
	var out []span
	var addField func(f *Field)
	addField = func(f *Field) {
		if len(f.Sum) > 0 {
			for _, part := range f.Sum {
				addField(part)
			}
			return
		}
		fc := p.fc(f.Function)
		out = append(out, span{fc, f.Address, uint16(TypeSize(f.Type))})
		if f.ScaleRegister != nil {
			out = append(out, span{fc, *f.ScaleRegister, 1})
		}
	}
	for _, fr := range p.numericFields() {
		addField(fr.f)
	}
	if s := p.Fields.State; s != nil {
		out = append(out, span{p.fc(s.Function), s.Address, uint16(TypeSize(s.Type))})
	}
	return out
}

func (p *Profile) textSpans() []span {
	var out []span
	for _, t := range []*Text{p.Serial, p.Model} {
		if t != nil {
			out = append(out, span{p.fc(t.Function), t.Address, t.Count})
		}
	}
	return out
}

func (p *Profile) maxGap() int {
	if p.MaxGap != nil {
		return *p.MaxGap
	}
	return DefaultMaxGap
}

// coalesce merges spans of the same function whose gap is at most maxGap
// into reads of at most MaxRegisters registers, so that a Read costs
// few round trips without reading far outside what the profile defines
// (devices answer an exception for undefined registers).
func coalesce(spans []span, maxGap int) []span {
	sorted := append([]span(nil), spans...)
	sort.Slice(sorted, func(i, j int) bool {
		if sorted[i].fc != sorted[j].fc {
			return sorted[i].fc < sorted[j].fc
		}
		return sorted[i].start < sorted[j].start
	})
	var out []span
	for _, s := range sorted {
		if len(out) > 0 {
			cur := &out[len(out)-1]
			end := int(cur.start) + int(cur.count)
			send := int(s.start) + int(s.count)
			if cur.fc == s.fc && int(s.start) <= end+maxGap && max(end, send)-int(cur.start) <= MaxRegisters {
				if send > end {
					cur.count = uint16(send - int(cur.start))
				}
				continue
			}
		}
		out = append(out, s)
	}
	return out
}

// ReadPlan returns the register runs one Read of a ProfileDevice fetches:
// every field's registers, coalesced into at most MaxRegisters per read.
func (p *Profile) ReadPlan() []Block {
	var out []Block
	for _, s := range coalesce(p.fieldSpans(), p.maxGap()) {
		out = append(out, Block{Function: s.fc, Start: s.start, Count: s.count})
	}
	return out
}

// InfoPlan returns the register runs ProfileDevice.Info reads once: the
// serial number and model, coalesced like ReadPlan.
func (p *Profile) InfoPlan() []Block {
	var out []Block
	for _, s := range coalesce(p.textSpans(), p.maxGap()) {
		out = append(out, Block{Function: s.fc, Start: s.start, Count: s.count})
	}
	return out
}

// ---------------------------------------------------------------------------
// ProfileDevice

// ProfileOptions configures a ProfileDevice. The zero value is ready to use.
type ProfileOptions struct {
	// HarvestEvery makes every n-th Read also read the profile's harvest
	// blocks and append them to Reading.Raw (1: every Read; 0: never).
	HarvestEvery int
	// Logger, if set, receives serial-number read failures and skipped
	// blocks at debug level.
	Logger *slog.Logger
}

// ProfileDevice reads an inverter or meter through a vendor profile over
// any RegisterReader. Its methods are safe for concurrent use.
type ProfileDevice struct {
	rr   RegisterReader
	unit uint8
	p    *Profile
	opts ProfileOptions
	log  *slog.Logger
	plan []span
	text []span

	mu     sync.Mutex
	info   *Info
	reads  int
	closed bool
}

// NewProfileDevice returns a device that reads rr's unit through profile p.
// It does not access the device; the serial number is read by the first
// Read or Info and cached.
func NewProfileDevice(rr RegisterReader, unit uint8, p *Profile, opts ProfileOptions) (*ProfileDevice, error) {
	if rr == nil {
		return nil, errors.New("energy: profile device: nil RegisterReader")
	}
	if p == nil {
		return nil, errors.New("energy: profile device: nil profile")
	}
	if unit > 247 {
		return nil, fmt.Errorf("energy: %s: unit %d is not a Modbus unit id (0-247)", p.Name, unit)
	}
	if opts.HarvestEvery < 0 {
		return nil, fmt.Errorf("energy: %s: negative HarvestEvery %d", p.Name, opts.HarvestEvery)
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &ProfileDevice{
		rr: rr, unit: unit, p: p, opts: opts, log: log,
		plan: coalesce(p.fieldSpans(), p.maxGap()),
		text: coalesce(p.textSpans(), p.maxGap()),
	}, nil
}

// Profile returns the device's profile.
func (d *ProfileDevice) Profile() *Profile { return d.p }

func (d *ProfileDevice) readSpans(ctx context.Context, spans []span) ([]RegisterBlock, error) {
	out := make([]RegisterBlock, 0, len(spans))
	for _, s := range spans {
		vals, err := d.rr.ReadRegisters(ctx, d.unit, s.fc, s.start, s.count)
		if err != nil {
			return out, fmt.Errorf("energy: %s: read fc%d %d+%d: %w", d.p.Name, s.fc, s.start, s.count, err)
		}
		if len(vals) != int(s.count) {
			return out, fmt.Errorf("energy: %s: read fc%d %d+%d: got %d registers", d.p.Name, s.fc, s.start, s.count, len(vals))
		}
		out = append(out, RegisterBlock{Function: s.fc, Start: s.start, Values: vals})
	}
	return out, nil
}

// Info reads the serial number and model once and returns the device's
// identity. A device that refuses the serial registers (a Modbus exception)
// is still usable: its Serial is empty.
func (d *ProfileDevice) Info(ctx context.Context) (Info, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.infoLocked(ctx)
}

func (d *ProfileDevice) infoLocked(ctx context.Context) (Info, error) {
	if d.closed {
		return Info{}, ErrClosed
	}
	if d.info != nil {
		return *d.info, nil
	}
	info := d.p.Info()
	if len(d.text) > 0 {
		blocks, err := d.readSpans(ctx, d.text)
		if err != nil {
			if ctx.Err() != nil || !IsException(err) {
				return Info{}, err
			}
			d.log.Debug("energy: serial number not readable", "profile", d.p.Name, "err", err)
		}
		l := newLookup(blocks)
		info.Serial = d.p.text(l, d.p.Serial)
		info.Model = d.p.text(l, d.p.Model)
	}
	d.info = &info
	return info, nil
}

// Read reads every field of the profile with a few coalesced register reads
// (see Profile.ReadPlan), kept in Reading.Raw. A failed read fails the
// Read; a Modbus exception is returned wrapped as *ModbusException. The
// first Read also reads the serial number (see Info).
func (d *ProfileDevice) Read(ctx context.Context) (Reading, error) {
	d.mu.Lock()
	info, err := d.infoLocked(ctx)
	d.reads++
	harvest := d.opts.HarvestEvery > 0 && (d.reads-1)%d.opts.HarvestEvery == 0
	d.mu.Unlock()
	if err != nil {
		return Reading{}, err
	}
	blocks, err := d.readSpans(ctx, d.plan)
	if err != nil {
		return Reading{}, err
	}
	r, err := d.p.Decode(blocks)
	if err != nil {
		return Reading{}, err
	}
	r.Time = time.Now()
	r.Device = info
	r.Raw = blocks
	if harvest {
		hb, err := d.Harvest(ctx)
		if err != nil {
			return Reading{}, err
		}
		r.Raw = append(r.Raw, hb...)
	}
	return r, nil
}

// Harvest reads the profile's harvest blocks, raw.
func (d *ProfileDevice) Harvest(ctx context.Context) ([]RegisterBlock, error) {
	spans := make([]span, len(d.p.Blocks))
	for i, b := range d.p.Blocks {
		spans[i] = span{b.Function, b.Start, b.Count}
	}
	return d.readSpans(ctx, spans)
}

// Close closes the RegisterReader. Later calls return ErrClosed.
func (d *ProfileDevice) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return ErrClosed
	}
	d.closed = true
	return d.rr.Close()
}

func init() {
	// The shipped profiles are validated by the tests; failing here is a
	// build error, not a runtime condition.
	builtinOnce.Do(loadBuiltin)
	if builtinErr != nil {
		panic(builtinErr)
	}
	for _, name := range builtinNames {
		p := builtinProfiles[name]
		unit := p.Unit
		if unit == 0 {
			unit = 1
		}
		err := RegisterTransportDriversUnit(name, unit, func(rr RegisterReader, unit uint8, q url.Values) (Inverter, error) {
			if err := NoOptions(name, q); err != nil {
				return nil, err
			}
			return NewProfileDevice(rr, unit, p, ProfileOptions{})
		}, "")
		if err != nil {
			panic(err)
		}
	}
}
