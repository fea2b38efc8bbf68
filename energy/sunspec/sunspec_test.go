package sunspec

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
)

// Offsets and lengths from the SunSpec model definitions (ID at offset 0).
func TestLayout(t *testing.T) {
	tests := []struct {
		model  uint16
		length uint16
		points map[string]uint16
	}{
		{1, 66, map[string]uint16{"Mn": 2, "Md": 18, "Opt": 34, "Vr": 42, "SN": 50, "DA": 66, "Pad": 67}},
		{101, 50, map[string]uint16{"A": 2, "AphA": 3, "A_SF": 6, "PhVphA": 10, "V_SF": 13, "W": 14, "W_SF": 15,
			"Hz": 16, "Hz_SF": 17, "WH": 24, "WH_SF": 26, "DCW": 31, "TmpCab": 33, "Tmp_SF": 37, "St": 38, "Evt1": 40, "EvtVnd4": 50}},
		{102, 50, map[string]uint16{"AphB": 4, "PhVphB": 11, "W": 14, "St": 38}},
		{103, 50, map[string]uint16{"A": 2, "AphA": 3, "AphB": 4, "AphC": 5, "A_SF": 6, "PPVphAB": 7, "PPVphBC": 8,
			"PPVphCA": 9, "PhVphA": 10, "PhVphB": 11, "PhVphC": 12, "V_SF": 13, "W": 14, "W_SF": 15, "Hz": 16,
			"Hz_SF": 17, "VA": 18, "VA_SF": 19, "VAr": 20, "VAr_SF": 21, "PF": 22, "PF_SF": 23, "WH": 24,
			"WH_SF": 26, "DCA": 27, "DCA_SF": 28, "DCV": 29, "DCV_SF": 30, "DCW": 31, "DCW_SF": 32,
			"TmpCab": 33, "TmpSnk": 34, "TmpTrns": 35, "TmpOt": 36, "Tmp_SF": 37, "St": 38, "StVnd": 39, "Evt1": 40}},
		{111, 60, map[string]uint16{"A": 2, "AphA": 4, "PhVphA": 16, "W": 22, "Hz": 24, "WH": 32, "DCW": 38, "TmpCab": 40, "St": 48, "Evt1": 50}},
		{112, 60, map[string]uint16{"W": 22, "St": 48}},
		{113, 60, map[string]uint16{"AphC": 8, "PhVphC": 20, "W": 22, "Hz": 24, "WH": 32, "TmpSnk": 42, "St": 48, "EvtVnd4": 60}},
		{160, 8, map[string]uint16{"DCA_SF": 2, "DCV_SF": 3, "DCW_SF": 4, "DCWH_SF": 5, "Evt": 6, "N": 8, "TmsPer": 9}},
	}
	for _, tt := range tests {
		d, ok := Lookup(tt.model)
		if !ok {
			t.Fatalf("model %d not defined", tt.model)
		}
		if d.Length != tt.length {
			t.Errorf("model %d: length %d, want %d", tt.model, d.Length, tt.length)
		}
		for name, off := range tt.points {
			p := d.Point(name)
			if p == nil {
				t.Errorf("model %d: no point %s", tt.model, name)
				continue
			}
			if p.Offset != off {
				t.Errorf("model %d: %s at %d, want %d", tt.model, name, p.Offset, off)
			}
		}
	}
	mod := map[string]uint16{"ID": 0, "IDStr": 1, "DCA": 9, "DCV": 10, "DCW": 11, "DCWH": 12, "Tms": 14, "Tmp": 16, "DCSt": 17, "DCEvt": 18}
	g := defs[160].Repeat
	if g.Length != 20 {
		t.Errorf("model 160 module length %d, want 20", g.Length)
	}
	for _, p := range g.Points {
		if mod[p.Name] != p.Offset {
			t.Errorf("model 160 module %s at %d, want %d", p.Name, p.Offset, mod[p.Name])
		}
	}
	if got := fmt.Sprint(Models()); got != "[1 101 102 103 111 112 113 160]" {
		t.Errorf("Models() = %s", got)
	}
	// Every scale-factor reference names a sunssf point of the fixed block.
	for _, id := range Models() {
		d := defs[id]
		all := append([]Point(nil), d.Points...)
		if d.Repeat != nil {
			all = append(all, d.Repeat.Points...)
		}
		for _, p := range all {
			if p.SF != "" {
				if sp := d.Point(p.SF); sp == nil || sp.Type != SunSSF {
					t.Errorf("model %d: %s refers to %s, not a scale factor", id, p.Name, p.SF)
				}
			}
		}
	}
}

// body returns a model body of the defined length filled with "not
// implemented" values, and a setter by point name.
func body(t *testing.T, id uint16) ([]uint16, func(name string, regs ...uint16)) {
	t.Helper()
	b, err := Encode(id, Points{})
	if err != nil {
		t.Fatal(err)
	}
	return b, func(name string, regs ...uint16) {
		p := defs[id].Point(name)
		if p == nil || int(p.Size) != len(regs) {
			t.Fatalf("bad test point %s", name)
		}
		copy(b[p.Offset-2:], regs)
	}
}

func TestDecodeIntInverter(t *testing.T) {
	for _, id := range []uint16{101, 102, 103} {
		b, set := body(t, id)
		set("A", 123)
		set("AphA", 41)
		set("A_SF", 0xFFFF) // -1
		set("PhVphA", 2305)
		set("PhVphB", 0xFFFF) // not implemented
		set("V_SF", 0xFFFF)
		set("W", 0xFC18) // -1000
		set("W_SF", 1)
		set("Hz", 5001)
		set("Hz_SF", 0xFFFE) // -2
		set("WH", 0x0001, 0x86A0)
		set("WH_SF", 3)
		set("DCW", 0x8000) // not implemented
		set("DCW_SF", 0)
		set("TmpCab", 0xFF9C) // -100
		set("Tmp_SF", 0xFFFF)
		set("TmpSnk", 400)
		set("St", 4)
		set("Evt1", 0, 0x81)
		m, err := Decode(id, b)
		if err != nil {
			t.Fatal(err)
		}
		check := func(name string, want float64, ok bool) {
			t.Helper()
			v := m.Points[name]
			if v.OK != ok || (ok && v.Num != want) {
				t.Errorf("model %d %s = %+v, want %v ok=%v", id, name, v, want, ok)
			}
		}
		check("A", 12.3, true)
		check("AphA", 4.1, true)
		check("AphB", 0, false)
		check("A_SF", -1, true)
		check("PhVphA", 230.5, true)
		check("PhVphB", 0, false)
		check("W", -10000, true)
		check("Hz", 50.01, true)
		check("WH", 100000e3, true)
		check("DCW", 0, false)
		check("DCA", 0, false) // DCA_SF not implemented either
		check("TmpCab", -10, true)
		check("TmpSnk", 40, true)
		check("St", 4, true)
		check("Evt1", 0x81, true)
		check("Evt2", 0, false)
		if got := m.Str("St"); got != "MPPT" {
			t.Errorf("St symbol %q", got)
		}
		if got := defs[id].Point("Evt1").Flags(uint32(m.Points["Evt1"].Num)); fmt.Sprint(got) != "[GROUND_FAULT OVER_TEMP]" {
			t.Errorf("Evt1 flags %v", got)
		}
	}
}

func TestDecodeSentinels(t *testing.T) {
	b, set := body(t, 103)
	// A value is missing when its scale factor is missing, out of range,
	// or the value itself is the type's sentinel.
	set("W", 100)
	set("W_SF", 0x8000)
	set("Hz", 5000)
	set("Hz_SF", 11) // out of -10..10
	set("WH", 0, 0)  // acc32 0
	set("WH_SF", 0)
	set("A", 0xFFFF) // uint16
	set("A_SF", 0)
	set("TmpCab", 0x8000) // int16
	set("Tmp_SF", 0)
	set("St", 0xFFFF)           // enum16
	set("Evt1", 0xFFFF, 0xFFFF) // bitfield32
	m, _ := Decode(103, b)
	for _, n := range []string{"W", "Hz", "WH", "A", "TmpCab", "St", "Evt1", "W_SF", "Hz_SF"} {
		if v := m.Points[n]; v.OK {
			t.Errorf("%s = %+v, want missing", n, v)
		}
	}
	if v := m.Points["A_SF"]; !v.OK || v.Num != 0 {
		t.Errorf("A_SF = %+v", v)
	}
	// A short body: points past its end are missing, the rest decode.
	m, _ = Decode(103, b[:14])
	if v := m.Points["W"]; v.OK {
		t.Errorf("W in short body = %+v", v)
	}
	if m.Length != 14 {
		t.Errorf("Length %d", m.Length)
	}
}

func TestDecodeFloat(t *testing.T) {
	for _, id := range []uint16{111, 112, 113} {
		b, set := body(t, id)
		f := func(v float32) []uint16 {
			u := math.Float32bits(v)
			return []uint16{uint16(u >> 16), uint16(u)}
		}
		set("W", f(1234.5)...)
		set("Hz", f(49.98)...)
		set("WH", f(5e6)...)
		set("TmpCab", 0x7FC0, 0x0000) // NaN: not implemented
		set("TmpSnk", 0x7F80, 0x0000) // +Inf: no meaning either
		set("St", 7)
		m, _ := Decode(id, b)
		if v, ok := m.Num("W"); !ok || v != 1234.5 {
			t.Errorf("model %d W = %v %v", id, v, ok)
		}
		if v, ok := m.Num("Hz"); !ok || float32(v) != 49.98 {
			t.Errorf("model %d Hz = %v %v", id, v, ok)
		}
		if v, ok := m.Num("WH"); !ok || v != 5e6 {
			t.Errorf("model %d WH = %v %v", id, v, ok)
		}
		for _, n := range []string{"TmpCab", "TmpSnk", "A", "DCW"} {
			if v := m.Points[n]; v.OK {
				t.Errorf("model %d %s = %+v, want missing", id, n, v)
			}
		}
		if m.Str("St") != "FAULT" {
			t.Errorf("model %d St %q", id, m.Str("St"))
		}
	}
}

func TestDecodeCommon(t *testing.T) {
	b, err := Encode(1, Points{Str: map[string]string{"Mn": "Fronius", "Md": "Symo 8.2-3-M", "SN": "12345678", "Vr": "1.2.3 "}})
	if err != nil {
		t.Fatal(err)
	}
	m, _ := Decode(1, b)
	for n, want := range map[string]string{"Mn": "Fronius", "Md": "Symo 8.2-3-M", "SN": "12345678", "Vr": "1.2.3", "Opt": ""} {
		if got := m.Str(n); got != want {
			t.Errorf("%s = %q, want %q", n, got, want)
		}
	}
	if m.Points["Opt"].OK {
		t.Error("all-zero Opt should be missing")
	}
	if m.Points["DA"].OK {
		t.Error("DA 0xFFFF should be missing")
	}
	// Older devices report length 65 (no pad).
	m, _ = Decode(1, b[:65])
	if m.Str("SN") != "12345678" {
		t.Errorf("SN from 65-register body: %q", m.Str("SN"))
	}
}

func TestDecodeMPPT(t *testing.T) {
	b, err := Encode(160, Points{
		Num: map[string]float64{"DCA_SF": -2, "DCV_SF": -1, "DCW_SF": 0, "DCWH_SF": 0},
		Groups: []Points{
			{Num: map[string]float64{"ID": 1, "DCA": 8.25, "DCV": 350.5, "DCW": 2892, "DCWH": 123456, "Tmp": 41}, Str: map[string]string{"IDStr": "PV1", "DCSt": "MPPT"}},
			{Num: map[string]float64{"ID": 2, "DCA": 0, "DCV": 12.3, "DCW": math.NaN()}, Str: map[string]string{"IDStr": "PV2"}},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != 8+40 {
		t.Fatalf("body length %d", len(b))
	}
	m, _ := Decode(160, b)
	if n, _ := m.Num("N"); n != 2 || len(m.Groups) != 2 {
		t.Fatalf("N=%v groups=%d", n, len(m.Groups))
	}
	g := m.Groups[0]
	if g["DCA"].Num != 8.25 || g["DCV"].Num != 350.5 || g["DCW"].Num != 2892 || g["DCWH"].Num != 123456 || g["IDStr"].Str != "PV1" || g["DCSt"].Str != "MPPT" || g["Tmp"].Num != 41 {
		t.Errorf("module 1 = %+v", g)
	}
	g = m.Groups[1]
	if g["DCW"].OK || g["DCWH"].OK || g["Tms"].OK || !g["DCA"].OK || g["DCA"].Num != 0 {
		t.Errorf("module 2 = %+v", g)
	}
	// N larger than the body: only whole modules that fit.
	b[6] = 9
	m, _ = Decode(160, b[:8+30])
	if len(m.Groups) != 1 {
		t.Errorf("groups %d, want 1", len(m.Groups))
	}
	// N missing (count 0): as many as fit.
	b[6] = 0
	m, _ = Decode(160, b)
	if len(m.Groups) != 0 {
		t.Errorf("N=0: groups %d", len(m.Groups))
	}
}

func TestDecodeUnknown(t *testing.T) {
	if _, err := Decode(999, nil); !errors.Is(err, ErrUnknownModel) {
		t.Errorf("err = %v", err)
	}
	if _, err := Encode(999, Points{}); !errors.Is(err, ErrUnknownModel) {
		t.Errorf("err = %v", err)
	}
}

func TestEncodeRoundTrip(t *testing.T) {
	in := map[string]float64{"W": 1234.5, "Hz": 50.01, "WH": 1.5e6, "PhVphA": 230.1, "PhVphB": 231, "PhVphC": 229.9,
		"AphA": 1.8, "AphB": 1.81, "AphC": 1.79, "A": 5.4, "TmpCab": 41.5, "St": 4, "DCW": -20, "Evt1": 3}
	b, err := Encode(103, Points{Num: in})
	if err != nil {
		t.Fatal(err)
	}
	m, _ := Decode(103, b)
	for n, want := range in {
		if got, ok := m.Num(n); !ok || math.Abs(got-want) > 1e-9 {
			t.Errorf("%s = %v (%v), want %v", n, got, ok, want)
		}
	}
	// Chosen scale factors: the finest that fits.
	for n, want := range map[string]float64{"W_SF": -1, "Hz_SF": -3, "A_SF": -3, "V_SF": -2, "WH_SF": -3, "Tmp_SF": -2} {
		if got, _ := m.Num(n); got != want {
			t.Errorf("%s = %v, want %v", n, got, want)
		}
	}
	// WH 1.5e6 with -3 would be 1.5e9: fits acc32. 5e9 needs 0.
	b, _ = Encode(103, Points{Num: map[string]float64{"WH": 5e9}})
	m, _ = Decode(103, b)
	if v, _ := m.Num("WH"); v != 5e9 {
		t.Errorf("WH = %v", v)
	}
	if m.Points["VA_SF"].OK {
		t.Error("unused VA_SF should be not implemented")
	}
	// Given scale factors are used as given.
	b, _ = Encode(103, Points{Num: map[string]float64{"W": 1234.5, "W_SF": 0}})
	m, _ = Decode(103, b)
	if v, _ := m.Num("W"); v != 1235 {
		t.Errorf("W with W_SF 0 = %v", v)
	}
	// Enum by symbol.
	b, _ = Encode(113, Points{Str: map[string]string{"St": "THROTTLED"}, Num: map[string]float64{"W": 10.25}})
	m, _ = Decode(113, b)
	if m.Str("St") != "THROTTLED" || m.Points["W"].Num != 10.25 {
		t.Errorf("113: %+v %+v", m.Points["St"], m.Points["W"])
	}
}

func TestEncodeErrors(t *testing.T) {
	tests := []struct {
		id   uint16
		p    Points
		want string
	}{
		{103, Points{Num: map[string]float64{"Nope": 1}}, `no point "Nope"`},
		{103, Points{Num: map[string]float64{"W": 1e9, "W_SF": 0}}, "out of range"},
		{103, Points{Num: map[string]float64{"W": 1, "W_SF": 0.5}}, "scale factor W_SF"},
		{103, Points{Str: map[string]string{"St": "DANCING"}}, `no symbol "DANCING"`},
		{103, Points{Str: map[string]string{"W": "1"}}, "not a string"},
		{1, Points{Num: map[string]float64{"Mn": 1}}, "not a number"},
		{1, Points{Str: map[string]string{"Mn": strings.Repeat("x", 33)}}, "longer than 32"},
		{103, Points{Groups: []Points{{}}}, "no repeating group"},
		{160, Points{Groups: []Points{{Num: map[string]float64{"W": 1}}}}, `group 0 has no point "W"`},
		{103, Points{Num: map[string]float64{"W": 1e30}}, "no scale factor W_SF fits"},
	}
	for _, tt := range tests {
		_, err := Encode(tt.id, tt.p)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Encode(%d, %+v) = %v, want error containing %q", tt.id, tt.p, err, tt.want)
		}
	}
}

// mem serves an image as a ReadFunc: addresses outside it are "absent".
type mem struct {
	base  uint16
	img   []uint16
	reads int
}

var errAbsent = errors.New("illegal data address")

func (m *mem) read(_ context.Context, addr, count uint16) ([]uint16, error) {
	m.reads++
	if int(addr) < int(m.base) || int(addr)+int(count) > int(m.base)+len(m.img) {
		return nil, errAbsent
	}
	return append([]uint16(nil), m.img[int(addr)-int(m.base):int(addr)-int(m.base)+int(count)]...), nil
}

func isAbsent(err error) bool { return errors.Is(err, errAbsent) }

func testImage(t *testing.T, base uint16) []uint16 {
	c, _ := Encode(1, Points{Str: map[string]string{"Mn": "Pikit", "Md": "Sim", "SN": "1"}})
	inv, _ := Encode(103, Points{Num: map[string]float64{"W": 100}})
	return BuildImage(base, []ModelImage{{ID: 1, Regs: c}, {ID: 103, Regs: inv}})
}

func TestDiscover(t *testing.T) {
	for _, base := range []uint16{40000, 50000, 0} {
		m := &mem{base: base, img: testImage(t, base)}
		got, err := Discover(context.Background(), m.read, DiscoverOptions{Absent: isAbsent})
		if err != nil {
			t.Fatalf("base %d: %v", base, err)
		}
		want := fmt.Sprintf("{%d [{1 %d 66} {103 %d 50}]}", base, base+2, base+70)
		if fmt.Sprint(got) != want {
			t.Errorf("base %d: %v, want %s", base, got, want)
		}
		if h, ok := got.Find(103, 101); !ok || h.BodyAddr() != base+72 {
			t.Errorf("Find(103) = %v %v", h, ok)
		}
	}
	// Without an end marker, a chain ending at an absent register ends.
	img := testImage(t, 40000)
	m := &mem{base: 40000, img: img[:len(img)-2]}
	if got, err := Discover(context.Background(), m.read, DiscoverOptions{Absent: isAbsent}); err != nil || len(got.Models) != 2 {
		t.Errorf("chain without end marker: %v %v", got, err)
	}
}

func TestDiscoverErrors(t *testing.T) {
	ctx := context.Background()
	// Zero registers everywhere: no marker, and the error lists what was seen.
	zero := &mem{base: 0, img: make([]uint16, 0x10000)}
	_, err := Discover(ctx, zero.read, DiscoverOptions{Absent: isAbsent})
	if !errors.Is(err, ErrNoMarker) || !strings.Contains(err.Error(), "40000: 0000 0000") {
		t.Errorf("zeros: %v", err)
	}
	// Nothing at all.
	none := &mem{}
	if _, err := Discover(ctx, none.read, DiscoverOptions{Absent: isAbsent}); !errors.Is(err, ErrNoMarker) {
		t.Errorf("empty: %v", err)
	}
	// A transport failure aborts rather than trying other bases.
	failing := func(context.Context, uint16, uint16) ([]uint16, error) { return nil, errors.New("timeout") }
	if _, err := Discover(ctx, failing, DiscoverOptions{Absent: isAbsent}); err == nil || errors.Is(err, ErrNoMarker) || !strings.Contains(err.Error(), "at 40000: timeout") {
		t.Errorf("failing: %v", err)
	}

	bad := func(regs ...uint16) *mem {
		return &mem{base: 40000, img: append([]uint16{0x5375, 0x6e53}, regs...)}
	}
	tests := []struct {
		name string
		m    *mem
		want string
	}{
		{"length past end", bad(1, 0xFFF0), "model 1 at 40002 has length 65520, past the end"},
		{"model id 0", bad(1, 0, 0, 5), "invalid model ID 0 at 40004"},
		{"header past image", bad(1, 2, 0, 0), "read model header at 40006"},
	}
	for _, tt := range tests {
		_, err := Discover(ctx, tt.m.read, DiscoverOptions{})
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %v, want %q", tt.name, err, tt.want)
		}
	}
	// A device that answers the same registers at every address (ignoring
	// the address) looks like an endless chain: bounded.
	loop := func(_ context.Context, addr, count uint16) ([]uint16, error) {
		if addr == 40000 {
			return Marker[:], nil
		}
		return []uint16{103, 50}, nil
	}
	_, err = Discover(ctx, loop, DiscoverOptions{MaxModels: 10})
	if !errors.Is(err, ErrBadChain) || !strings.Contains(err.Error(), "more than 10 models") {
		t.Errorf("loop: %v", err)
	}
	// Zero-length models all the way to the end of the address space.
	zeroLen := func(_ context.Context, addr, count uint16) ([]uint16, error) {
		if addr == 0 {
			return Marker[:], nil
		}
		return []uint16{7, 0xFFFD}, nil
	}
	_, err = Discover(ctx, zeroLen, DiscoverOptions{Bases: []uint16{0}})
	if !errors.Is(err, ErrBadChain) {
		t.Errorf("zeroLen: %v", err)
	}
}

func TestBuildImageEdge(t *testing.T) {
	img := BuildImage(0xFFFE, []ModelImage{{ID: 1, Regs: make([]uint16, 66)}})
	if len(img) != 2 {
		t.Errorf("image at 0xFFFE has %d registers, want 2 (cut at the end of the address space)", len(img))
	}
	img = BuildImage(0, nil)
	if fmt.Sprint(img) != "[21365 28243 65535 0]" {
		t.Errorf("empty image %v", img)
	}
}

// FuzzDiscoverDecode runs arbitrary register images through discovery and
// decoding: nothing panics, and values the device reports as not
// implemented always decode as missing.
func FuzzDiscoverDecode(f *testing.F) {
	enc := func(regs []uint16) []byte {
		b := make([]byte, 2*len(regs))
		for i, r := range regs {
			b[2*i], b[2*i+1] = byte(r>>8), byte(r)
		}
		return b
	}
	c, _ := Encode(1, Points{Str: map[string]string{"Mn": "A", "SN": "B"}})
	inv, _ := Encode(103, Points{Num: map[string]float64{"W": 5, "Hz": 50}})
	fl, _ := Encode(113, Points{Num: map[string]float64{"W": 5}})
	mp, _ := Encode(160, Points{Groups: []Points{{Num: map[string]float64{"DCW": 3}}}})
	f.Add(enc(BuildImage(0, []ModelImage{{1, c}, {103, inv}, {160, mp}})))
	f.Add(enc(BuildImage(0, []ModelImage{{113, fl}})))
	f.Add(enc([]uint16{0x5375, 0x6e53, 160, 3, 0, 0, 0xFFFF}))
	f.Add(enc([]uint16{0x5375, 0x6e53, 1, 0xFFFF}))
	f.Fuzz(func(t *testing.T, data []byte) {
		regs := make([]uint16, len(data)/2)
		for i := range regs {
			regs[i] = uint16(data[2*i])<<8 | uint16(data[2*i+1])
		}
		m := &mem{base: 0, img: regs}
		dm, err := Discover(context.Background(), m.read, DiscoverOptions{Bases: []uint16{0}, Absent: isAbsent})
		if err != nil {
			return
		}
		if m.reads > DefaultMaxModels+2 {
			t.Fatalf("%d reads", m.reads)
		}
		for _, h := range dm.Models {
			end := min(int(h.BodyAddr())+int(h.Length), len(regs))
			b := regs[h.BodyAddr():end]
			dec, err := Decode(h.ID, b)
			if err != nil {
				continue
			}
			checkMissing(t, dec, b)
		}
		// Every model decodes any body without panicking.
		for _, id := range Models() {
			dec, _ := Decode(id, regs)
			checkMissing(t, dec, regs)
		}
	})
}

// checkMissing verifies that sentinel registers decode as missing.
func checkMissing(t *testing.T, m Model, b []uint16) {
	t.Helper()
	for _, p := range m.Def.Points {
		r := regsAt(b, int(p.Offset)-2, int(p.Size))
		if r == nil || p.Type == Pad {
			if v := m.Points[p.Name]; v.OK {
				t.Fatalf("model %d %s outside the body decoded as %+v", m.ID, p.Name, v)
			}
			continue
		}
		if isSentinel(p.Type, r) && m.Points[p.Name].OK {
			t.Fatalf("model %d %s: sentinel %04x decoded as present %+v", m.ID, p.Name, r, m.Points[p.Name])
		}
		if p.SF != "" {
			sp := m.Def.Point(p.SF)
			if sr := regsAt(b, int(sp.Offset)-2, 1); (sr == nil || sr[0] == 0x8000) && m.Points[p.Name].OK {
				t.Fatalf("model %d %s present without scale factor", m.ID, p.Name)
			}
		}
		if v := m.Points[p.Name]; v.OK && (math.IsNaN(v.Num) || math.IsInf(v.Num, 0)) {
			t.Fatalf("model %d %s = %v", m.ID, p.Name, v.Num)
		}
	}
}

func isSentinel(t Type, r []uint16) bool {
	var raw uint32
	if len(r) == 2 {
		raw = uint32(r[0])<<16 | uint32(r[1])
	} else {
		raw = uint32(r[0])
	}
	switch t {
	case Uint16, Enum16, Bitfield16:
		return raw == 0xFFFF
	case Int16, SunSSF:
		return raw == 0x8000
	case Uint32, Enum32, Bitfield32:
		return raw == 0xFFFFFFFF
	case Int32:
		return raw == 0x80000000
	case Acc16, Acc32:
		return raw == 0
	case Float32:
		return raw == 0x7FC00000
	case String:
		for _, w := range r {
			if w != 0 {
				return false
			}
		}
		return true
	}
	return false
}
