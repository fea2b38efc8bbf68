package energy

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"testing"
)

// img is a test-side register image built from typed values at documented
// addresses, independent of the profile code under test.
type img map[uint8]map[uint16]uint16

func (m img) put(fc uint8, addr uint16, regs ...uint16) img {
	if m[fc] == nil {
		m[fc] = map[uint16]uint16{}
	}
	for i, r := range regs {
		m[fc][addr+uint16(i)] = r
	}
	return m
}

// u16 … f32 encode a raw value the way the vendor documents it.
func u16(v uint16) []uint16 { return []uint16{v} }
func i16(v int16) []uint16  { return []uint16{uint16(v)} }
func u32(v uint32) []uint16 { return []uint16{uint16(v >> 16), uint16(v)} }
func i32(v int32) []uint16  { return u32(uint32(v)) }
func u32le(v uint32) []uint16 {
	return []uint16{uint16(v), uint16(v >> 16)}
}
func i32le(v int32) []uint16 { return u32le(uint32(v)) }
func f32(v float32) []uint16 { return u32(math.Float32bits(v)) }
func f32le(v float32) []uint16 {
	return u32le(math.Float32bits(v))
}
func u64(v uint64) []uint16 {
	return []uint16{uint16(v >> 48), uint16(v >> 32), uint16(v >> 16), uint16(v)}
}
func str(s string, n int) []uint16 {
	out := make([]uint16, n)
	for i := 0; i < len(s); i++ {
		if i%2 == 0 {
			out[i/2] |= uint16(s[i]) << 8
		} else {
			out[i/2] |= uint16(s[i])
		}
	}
	return out
}

// blocks turns the image into one block per register (the decoder must
// not care how registers are grouped).
func (m img) blocks() []RegisterBlock {
	var out []RegisterBlock
	for fc, regs := range m {
		for a, v := range regs {
			out = append(out, RegisterBlock{Function: fc, Start: a, Values: []uint16{v}})
		}
	}
	return out
}

type want struct {
	ac, dc, energy, freq, temp *float64
	phase0V, phase0I, phase0P  *float64
	dc0V, dc0I, dc0P           *float64
	state, serial, model       string
	phases, dcs                int
}

func fp(v float64) *float64 { return &v }

func TestProfilesLoad(t *testing.T) {
	ps, err := LoadProfiles()
	if err != nil {
		t.Fatal(err)
	}
	wantNames := []string{"deye", "deye-micro", "ferroamp", "fronius", "fronius-sf", "goodwe", "growatt", "huawei",
		"lqt40s", "sdm630", "sma", "sofar", "solaredge", "solax", "solis", "solis-hybrid", "sungrow", "sungrow-sf"}
	if got := strings.Join(ProfileNames(), " "); got != strings.Join(wantNames, " ") {
		t.Fatalf("profiles = %s\nwant      %s", got, strings.Join(wantNames, " "))
	}
	for name, p := range ps {
		if len(p.Sources) == 0 {
			t.Errorf("%s: no sources", name)
		}
		for _, b := range p.ReadPlan() {
			if b.Count == 0 || b.Count > MaxRegisters {
				t.Errorf("%s: read plan block %+v", name, b)
			}
		}
		if _, err := LookupProfile(name); err != nil {
			t.Error(err)
		}
	}
	if _, err := LookupProfile("nope"); err == nil || !strings.Contains(err.Error(), "huawei") {
		t.Errorf("unknown profile error = %v, want it to list the known ones", err)
	}
}

// TestProfileFacts decodes, for every profile, a register image written
// from the vendors' documentation (addresses, types, word order, scale) and
// checks the values. This is what pins the profile files to the facts.
func TestProfileFacts(t *testing.T) {
	cases := map[string]struct {
		m img
		w want
	}{
		"huawei": {img{}.
			put(3, 30000, str("SUN2000-10KTL-M1", 15)...).put(3, 30015, str("HV2150012345", 10)...).
			put(3, 32080, i32(4321)...).put(3, 32064, i32(4500)...).
			put(3, 32106, u32(1234567)...).put(3, 32085, u16(5002)...).put(3, 32087, i16(-53)...).
			put(3, 32069, u16(2301)...).put(3, 32072, i32(6250)...).
			put(3, 32016, i16(6123)...).put(3, 32017, i16(812)...).put(3, 32089, u16(0x0200)...),
			want{ac: fp(4321), dc: fp(4500), energy: fp(12345670), freq: fp(50.02), temp: fp(-5.3),
				phase0V: fp(230.1), phase0I: fp(6.25), dc0V: fp(612.3), dc0I: fp(8.12), state: "mppt",
				serial: "HV2150012345", model: "SUN2000-10KTL-M1", phases: 3, dcs: 4}},
		"solaredge": {img{}.
			put(3, 40052, str("7E123456", 16)...).put(3, 40020, str("SE5000H", 16)...).
			put(3, 40083, i16(4321)...).put(3, 40084, i16(0)...).
			put(3, 40085, u16(4999)...).put(3, 40086, i16(-2)...).
			put(3, 40093, u32(1234567)...).put(3, 40095, i16(1)...).
			put(3, 40100, i16(4500)...).put(3, 40101, i16(0)...).
			put(3, 40103, i16(4120)...).put(3, 40106, i16(-2)...).
			put(3, 40079, u16(2301)...).put(3, 40082, i16(-1)...).
			put(3, 40072, u16(625)...).put(3, 40075, i16(-2)...).
			put(3, 40096, u16(1234)...).put(3, 40097, i16(-2)...).put(3, 40098, u16(3801)...).put(3, 40099, i16(-1)...).
			put(3, 40107, u16(4)...),
			want{ac: fp(4321), dc: fp(4500), energy: fp(12345670), freq: fp(49.99), temp: fp(41.2),
				phase0V: fp(230.1), phase0I: fp(6.25), dc0V: fp(380.1), dc0I: fp(12.34), dc0P: fp(4500),
				state: "mppt", serial: "7E123456", model: "SE5000H", phases: 3, dcs: 1}},
		"fronius-sf": {img{}.
			put(3, 40083, i16(-1)...).put(3, 40084, i16(3)...).put(3, 40085, u16(50)...).put(3, 40086, i16(0)...).
			put(3, 40107, u16(2)...),
			want{ac: fp(-1000), freq: fp(50), state: "sleeping", phases: 3, dcs: 1}},
		"fronius": {img{}.
			put(3, 40091, f32(3210.5)...).put(3, 40093, f32(50.01)...).put(3, 40101, f32(9876543)...).
			put(3, 40107, f32(3300)...).put(3, 40111, f32(float32(math.NaN()))...).
			put(3, 40085, f32(231.5)...).put(3, 40073, f32(4.5)...).put(3, 40117, u16(4)...),
			want{ac: fp(3210.5), freq: fp(float64(float32(50.01))), energy: fp(9876543), dc: fp(3300),
				phase0V: fp(231.5), phase0I: fp(4.5), state: "mppt", phases: 3, dcs: 1}},
		"sungrow": {img{}.
			put(4, 4989, str("A2350415770", 10)...).put(4, 4999, u16(0xE02)...).
			put(4, 5030, i32le(514)...).put(4, 5016, i32le(515)...).put(4, 5003, u32le(1231)...).
			put(4, 5035, u16(500)...).put(4, 5007, i16(390)...).put(4, 5018, u16(2321)...).put(4, 5021, i16(8)...).
			put(4, 5010, u16(5406)...).put(4, 5011, u16(7)...).put(4, 5037, u16(0x8100)...),
			want{ac: fp(514), dc: fp(515), energy: fp(123100), freq: fp(50), temp: fp(39),
				phase0V: fp(232.1), phase0I: fp(0.8), dc0V: fp(540.6), dc0I: fp(0.7), state: "throttled",
				serial: "A2350415770", model: "3586", phases: 3, dcs: 2}},
		"sungrow-sf": {img{}.put(4, 5035, u16(5001)...).put(4, 5030, i32le(-12)...),
			want{freq: fp(50.01), ac: fp(-12), phases: 3, dcs: 2}},
		"sma": {img{}.
			put(4, 30057, u32(2130012345)...).put(4, 30775, i32(5000)...).
			put(4, 30773, i32(2600)...).put(4, 30961, i32(2500)...).
			put(4, 30513, u64(98765432)...).put(4, 30803, u32(5001)...).put(4, 30953, i32(385)...).
			put(4, 30783, u32(23012)...).put(4, 30977, i32(7250)...).put(4, 30777, i32(1666)...).
			put(4, 30771, u32(40123)...).put(4, 30769, i32(6480)...).put(4, 30201, u32(307)...),
			want{ac: fp(5000), dc: fp(5100), energy: fp(98765432), freq: fp(50.01), temp: fp(38.5),
				phase0V: fp(230.12), phase0I: fp(7.25), phase0P: fp(1666), dc0V: fp(401.23), dc0I: fp(6.48), dc0P: fp(2600),
				state: "mppt", serial: "2130012345", phases: 3, dcs: 2}},
		"growatt": {img{}.
			put(3, 23, str("AB12345678", 5)...).
			put(4, 0, u16(1)...).put(4, 1, u32(45000)...).put(4, 3, u16(3805)...).put(4, 4, u16(118)...).put(4, 5, u32(44900)...).
			put(4, 35, u32(43210)...).put(4, 37, u16(5002)...).put(4, 38, u16(2305)...).put(4, 39, u16(187)...).put(4, 40, u32(43000)...).
			put(4, 55, u32(123456)...).put(4, 93, u16(412)...),
			want{ac: fp(4321), dc: fp(4500), energy: fp(12345600), freq: fp(50.02), temp: fp(41.2),
				phase0V: fp(230.5), phase0I: fp(18.7), phase0P: fp(4300), dc0V: fp(380.5), dc0I: fp(11.8), dc0P: fp(4490),
				state: "mppt", serial: "AB12345678", phases: 3, dcs: 2}},
		"goodwe": {img{}.
			put(3, 35003, str("95000ETU123W4567", 8)...).put(3, 35011, str("GW10K-ET", 5)...).
			put(3, 35103, u16(3805)...).put(3, 35104, u16(52)...).put(3, 35105, u32(1979)...).put(3, 35109, u32(1021)...).
			put(3, 35121, u16(2311)...).put(3, 35122, u16(43)...).put(3, 35123, u16(4998)...).put(3, 35125, i16(990)...).
			put(3, 35138, i16(2950)...).put(3, 35176, i16(356)...).put(3, 35187, u16(1)...).put(3, 35191, u32(54321)...),
			want{ac: fp(2950), dc: fp(3000), energy: fp(5432100), freq: fp(49.98), temp: fp(35.6),
				phase0V: fp(231.1), phase0I: fp(4.3), phase0P: fp(990), dc0V: fp(380.5), dc0I: fp(5.2), dc0P: fp(1979),
				state: "mppt", serial: "95000ETU123W4567", model: "GW10K-ET", phases: 3, dcs: 2}},
		"solis": {img{}.
			put(4, 3060, 0x1234, 0x5678, 0x9ABC, 0xDEF0).
			put(4, 3004, u32(3456)...).put(4, 3006, u32(3600)...).put(4, 3008, u32(12345)...).
			put(4, 3021, u16(3512)...).put(4, 3022, u16(51)...).put(4, 3033, u16(2298)...).put(4, 3036, u16(150)...).
			put(4, 3041, i16(-25)...).put(4, 3042, u16(5003)...).put(4, 3043, u16(3)...),
			want{ac: fp(3456), dc: fp(3600), energy: fp(12345000), freq: fp(50.03), temp: fp(-2.5),
				phase0V: fp(229.8), phase0I: fp(15), dc0V: fp(351.2), dc0I: fp(5.1), state: "mppt",
				serial: "123456789ABCDEF0", phases: 3, dcs: 2}},
		"solis-hybrid": {img{}.
			put(4, 33004, str("1031050223120123", 16)...).
			put(4, 33079, i32(-250)...).put(4, 33057, u32(4100)...).put(4, 33029, u32(9876)...).
			put(4, 33094, u16(4997)...).put(4, 33093, i16(311)...).put(4, 33073, u16(2350)...).put(4, 33076, u16(12)...).
			put(4, 33049, u16(4012)...).put(4, 33050, u16(102)...).put(4, 33095, u16(0x1004)...),
			want{ac: fp(-250), dc: fp(4100), energy: fp(9876000), freq: fp(49.97), temp: fp(31.1),
				phase0V: fp(235), phase0I: fp(1.2), dc0V: fp(401.2), dc0I: fp(10.2), state: "fault",
				serial: "1031050223120123", phases: 3, dcs: 2}},
		"sofar": {img{}.
			put(3, 1093, str("SP1ES120N1234", 7)...).
			put(3, 1157, i16(432)...).put(3, 1414, u16(250)...).put(3, 1417, u16(200)...).
			put(3, 1670, u32(54321)...).put(3, 1156, u16(5001)...).
			put(3, 1165, u16(2310)...).put(3, 1166, u16(625)...).put(3, 1167, i16(144)...).
			put(3, 1412, u16(3800)...).put(3, 1413, u16(658)...).put(3, 1028, u16(2)...),
			want{ac: fp(4320), dc: fp(4500), energy: fp(5432100), freq: fp(50.01),
				phase0V: fp(231), phase0I: fp(6.25), phase0P: fp(1440), dc0V: fp(380), dc0I: fp(6.58), dc0P: fp(2500),
				state: "mppt", serial: "SP1ES120N1234", phases: 3, dcs: 2}},
		"deye": {img{}.
			put(3, 3, str("2305123456", 5)...).put(3, 500, u16(2)...).
			put(3, 534, u32le(123456)...).put(3, 541, u16(1352)...).
			put(3, 598, u16(2305)...).put(3, 630, i16(652)...).
			put(3, 633, i16(1500)...).put(3, 634, i16(1400)...).put(3, 635, i16(1300)...).
			put(3, 609, u16(5000)...).
			put(3, 672, u16(2000)...).put(3, 673, u16(2400)...).put(3, 674, u16(0)...).put(3, 675, u16(0)...).
			put(3, 676, u16(3905)...).put(3, 677, u16(51)...),
			want{ac: fp(4200), dc: fp(4400), energy: fp(12345600), freq: fp(50), temp: fp(35.2),
				phase0V: fp(230.5), phase0I: fp(6.52), phase0P: fp(1500), dc0V: fp(390.5), dc0I: fp(5.1), dc0P: fp(2000),
				state: "mppt", serial: "2305123456", phases: 3, dcs: 4}},
		"deye-micro": {img{}.
			put(3, 3, str("4105123456", 5)...).put(3, 59, u16(2)...).
			put(3, 63, u32le(2345)...).put(3, 73, u16(2341)...).put(3, 76, u16(26)...).put(3, 79, u16(4999)...).
			put(3, 86, u32le(6123)...).put(3, 109, u16(331)...).put(3, 110, u16(95)...),
			want{ac: fp(612.3), energy: fp(234500), freq: fp(49.99), phase0V: fp(234.1), phase0I: fp(2.6),
				dc0V: fp(33.1), dc0I: fp(9.5), state: "mppt", serial: "4105123456", phases: 1, dcs: 4}},
		"solax": {img{}.
			put(3, 0, str("H1E502I1234567", 7)...).
			put(4, 0, u16(2312)...).put(4, 1, i16(131)...).put(4, 2, i16(3010)...).
			put(4, 3, u16(3510)...).put(4, 5, u16(45)...).put(4, 10, u16(1600)...).put(4, 11, u16(1500)...).
			put(4, 7, u16(5001)...).put(4, 8, i16(38)...).put(4, 9, u16(2)...).put(4, 148, u32le(4321)...),
			want{ac: fp(3010), dc: fp(3100), energy: fp(432100), freq: fp(50.01), temp: fp(38),
				phase0V: fp(231.2), phase0I: fp(13.1), phase0P: fp(3010), dc0V: fp(351), dc0I: fp(4.5), dc0P: fp(1600),
				state: "mppt", serial: "H1E502I1234567", phases: 1, dcs: 2}},
		"ferroamp": {img{}.
			put(4, 2000, u16(2)...).put(4, 2016, f32le(49.95)...).put(4, 2032, f32le(229.5)...).
			put(4, 2100, f32le(3.25)...).put(4, 5100, f32le(3.5)...).put(4, 5064, f32le(12345.5)...),
			want{ac: fp(3250), dc: fp(3500), energy: fp(12345500), freq: fp(float64(float32(49.95))),
				phase0V: fp(229.5), state: "mppt", phases: 3}},
		"sdm630": {img{}.
			put(3, 64512, u32(20123456)...).
			put(4, 0, f32(231.25)...).put(4, 6, f32(5.5)...).put(4, 12, f32(1200)...).
			put(4, 52, f32(-2500)...).put(4, 70, f32(50)...).put(4, 74, f32(1234.5)...),
			want{ac: fp(2500), energy: fp(1234500), freq: fp(50),
				phase0V: fp(231.25), phase0I: fp(5.5), phase0P: fp(-1200), serial: "20123456", phases: 3}},
		"lqt40s": {img{}.put(4, 0, f32(50.5)...).put(4, 24, f32(-750)...),
			want{ac: fp(-750), freq: fp(50.5)}},
	}
	ps, err := LoadProfiles()
	if err != nil {
		t.Fatal(err)
	}
	for name := range ps {
		if _, ok := cases[name]; !ok {
			t.Errorf("profile %s has no facts test", name)
		}
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			p := ps[name]
			if p == nil {
				t.Fatalf("no profile %q", name)
			}
			r, err := p.Decode(c.m.blocks())
			if err != nil {
				t.Fatal(err)
			}
			check := func(what string, got Value, w *float64) {
				t.Helper()
				if w == nil {
					return
				}
				if !got.OK || math.Abs(got.V-*w) > 1e-6*math.Max(1, math.Abs(*w)) {
					t.Errorf("%s = %v, want %v", what, got, *w)
				}
			}
			check("ac", r.ACPower, c.w.ac)
			check("dc", r.DCPower, c.w.dc)
			check("energy", r.EnergyTotal, c.w.energy)
			check("frequency", r.Frequency, c.w.freq)
			check("temperature", r.Temperature, c.w.temp)
			if len(r.Phases) != c.w.phases {
				t.Errorf("%d phases, want %d", len(r.Phases), c.w.phases)
			}
			if len(r.Phases) > 0 {
				check("phase 1 voltage", r.Phases[0].Voltage, c.w.phase0V)
				check("phase 1 current", r.Phases[0].Current, c.w.phase0I)
				check("phase 1 power", r.Phases[0].Power, c.w.phase0P)
			}
			if len(r.DC) != c.w.dcs {
				t.Errorf("%d DC inputs, want %d", len(r.DC), c.w.dcs)
			}
			if len(r.DC) > 0 {
				check("dc 1 voltage", r.DC[0].Voltage, c.w.dc0V)
				check("dc 1 current", r.DC[0].Current, c.w.dc0I)
				check("dc 1 power", r.DC[0].Power, c.w.dc0P)
			}
			if r.State != c.w.state {
				t.Errorf("state = %q, want %q", r.State, c.w.state)
			}
			if r.Device.Serial != c.w.serial || r.Device.Model != c.w.model {
				t.Errorf("serial, model = %q, %q, want %q, %q", r.Device.Serial, r.Device.Model, c.w.serial, c.w.model)
			}
			if r.Device.Profile != name || r.Device.Manufacturer != p.Manufacturer || r.Device.Kind != p.Kind {
				t.Errorf("device = %+v", r.Device)
			}
		})
	}
}

func TestDecodeInvalidAndMissing(t *testing.T) {
	p, _ := LookupProfile("huawei")
	m := img{}.put(3, 32080, u32(0x7FFFFFFF)...).put(3, 32085, u16(5000)...)
	r, err := p.Decode(m.blocks())
	if err != nil {
		t.Fatal(err)
	}
	if r.ACPower.OK {
		t.Errorf("0x7FFFFFFF decoded as %v, want missing", r.ACPower)
	}
	if r.DCPower.OK || r.EnergyTotal.OK {
		t.Errorf("absent registers decoded: dc %v energy %v", r.DCPower, r.EnergyTotal)
	}
	if !r.Frequency.OK {
		t.Error("frequency missing")
	}
	// SunSpec scale factor "not implemented" makes the value missing.
	se, _ := LookupProfile("solaredge")
	r, _ = se.Decode(img{}.put(3, 40083, i16(100)...).put(3, 40084, u16(0x8000)...).blocks())
	if r.ACPower.OK {
		t.Errorf("value with sf 0x8000 = %v, want missing", r.ACPower)
	}
	if _, err := p.Decode(img{}.put(3, 1, 2).blocks()); err == nil {
		t.Error("blocks of another device decoded without error")
	}
	// Unknown state values use the default ("" for Huawei).
	r, _ = p.Decode(img{}.put(3, 32089, u16(0x7777)...).blocks())
	if r.State != "" {
		t.Errorf("unknown state = %q", r.State)
	}
}

func TestParseProfileErrors(t *testing.T) {
	base := `{"name":"acme","manufacturer":"Acme","kind":"inverter","unit":1,"function":3,"fields":{%s}%s}`
	cases := []struct{ fields, extra, want string }{
		{`"ac_power":{"address":1,"type":"U17","unit":"W"}`, ``, `fields.ac_power.type: "U17"`},
		{`"ac_power":{"address":1,"type":"U16","unit":"Hz"}`, ``, `fields.ac_power.unit: "Hz" is not a power unit`},
		{`"phases":[{"voltage":{"address":1,"type":"U16","unit":"V"}},{"voltage":{"address":1,"type":"U16","unit":"V","words":"middle"}}]`, ``, `fields.phases[1].voltage.words`},
		{`"ac_power":{"address":1,"type":"U16","unit":"W","scale":0}`, ``, `fields.ac_power.scale`},
		{`"ac_power":{"address":65535,"type":"U32","unit":"W"}`, ``, `fields.ac_power.address`},
		{`"ac_power":{"address":1,"type":"U16","unit":"W","invalid":[70000]}`, ``, `fields.ac_power.invalid[0]`},
		{`"ac_power":{"address":1,"type":"U16","unit":"W","function":6}`, ``, `fields.ac_power.function`},
		{`"dc_power":{"unit":"W","sum":[{"address":1,"type":"U16","unit":"W"},{"address":2,"type":"X","unit":"W"}]}`, ``, `fields.dc_power.sum[1].type`},
		{`"state":{"address":1,"type":"U16","states":{"zero":"mppt"}}`, ``, `fields.state.states: key "zero"`},
		{`"state":{"address":1,"type":"U16","states":{"1":"producing"}}`, ``, `fields.state.states["1"]: "producing"`},
		{`"ac_power":{"address":1,"type":"U16","unit":"W","colour":"red"}`, ``, `unknown field "colour"`},
		{`"ac_power":{"address":"one","type":"U16","unit":"W"}`, ``, `fields.ac_power.address`},
		{``, ``, `fields: no field defined`},
		{`"ac_power":{"address":1,"type":"U16","unit":"W"}`, `,"blocks":[{"function":3,"start":0,"count":126}]`, `blocks[0].count`},
		{`"ac_power":{"address":1,"type":"U16","unit":"W"}`, `,"serial":{"address":1,"type":"STR"}`, `serial.count`},
	}
	for _, c := range cases {
		src := strings.Replace(strings.Replace(base, "%s", c.fields, 1), "%s", c.extra, 1)
		_, err := ParseProfile(strings.NewReader(src))
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.HasPrefix(err.Error(), "energy: ") {
			t.Errorf("%s\n  error %v\n  want it to contain %q", src, err, c.want)
		}
	}
	for _, bad := range []string{
		`{"name":"Acme","manufacturer":"A","kind":"inverter","fields":{"frequency":{"address":1,"type":"U16","unit":"Hz"}}}`,
		`{"name":"a_b","manufacturer":"A","kind":"inverter","fields":{"frequency":{"address":1,"type":"U16","unit":"Hz"}}}`,
		`{"name":"acme","manufacturer":"A","kind":"battery","fields":{"frequency":{"address":1,"type":"U16","unit":"Hz"}}}`,
		`{"name":"acme","manufacturer":"A","kind":"meter","unit":250,"fields":{"frequency":{"address":1,"type":"U16","unit":"Hz"}}}`,
	} {
		if _, err := ParseProfile(strings.NewReader(bad)); err == nil {
			t.Errorf("accepted %s", bad)
		}
	}
	p, err := ParseProfile(strings.NewReader(`{"name":"acme","manufacturer":"Acme","kind":"meter","unit":2,"fields":{"frequency":{"address":7,"type":"U16","scale":0.1,"unit":"Hz"}}}`))
	if err != nil {
		t.Fatal(err)
	}
	r, err := p.Decode([]RegisterBlock{{Function: 3, Start: 7, Values: []uint16{500}}})
	if err != nil || !r.Frequency.OK || r.Frequency.V != 50 {
		t.Errorf("user profile decoded %v, %v", r.Frequency, err)
	}
}

func TestRegisterTypes(t *testing.T) {
	cases := []struct {
		typ, words string
		regs       []uint16
		want       float64
	}{
		{TypeU16, "", []uint16{0xFFFF}, 65535},
		{TypeI16, "", []uint16{0xFFFE}, -2},
		{TypeU32, WordsBig, []uint16{1, 2}, 65538},
		{TypeU32, WordsLittle, []uint16{2, 1}, 65538},
		{TypeI32, WordsBig, []uint16{0xFFFF, 0xFFFF}, -1},
		{TypeI32, WordsLittle, []uint16{0xFFF6, 0xFFFF}, -10},
		{TypeF32, WordsBig, []uint16{0x4248, 0}, 50},
		{TypeF32, WordsLittle, []uint16{0, 0x4248}, 50},
		{TypeU64, WordsBig, []uint16{0, 0, 1, 0}, 65536},
		{TypeI64, WordsLittle, []uint16{0xFFFF, 0xFFFF, 0xFFFF, 0xFFFF}, -1},
	}
	for _, c := range cases {
		got, ok := DecodeNumber(c.typ, c.words, c.regs)
		if !ok || got != c.want {
			t.Errorf("DecodeNumber(%s, %s, %x) = %v, %v; want %v", c.typ, c.words, c.regs, got, ok, c.want)
		}
		back, err := EncodeNumber(c.typ, c.words, c.want)
		if err != nil || !equalRegs(back, c.regs) {
			t.Errorf("EncodeNumber(%s, %s, %v) = %x, %v; want %x", c.typ, c.words, c.want, back, err, c.regs)
		}
	}
	if _, ok := DecodeNumber(TypeF32, "", []uint16{0x7FC0, 0}); ok {
		t.Error("NaN decoded as a value")
	}
	if _, ok := DecodeNumber(TypeU32, "", []uint16{1}); ok {
		t.Error("short input decoded")
	}
	for _, c := range []struct {
		typ string
		v   float64
	}{{TypeU16, -1}, {TypeU16, 65536}, {TypeI16, 32768}, {TypeI32, -2147483649}, {TypeF32, math.Inf(1)}, {TypeU64, 1.9e19}} {
		if _, err := EncodeNumber(c.typ, "", c.v); err == nil {
			t.Errorf("EncodeNumber(%s, %v) accepted", c.typ, c.v)
		}
	}
	if s := DecodeString(str(" SN-1\x01", 4)); s != "SN-1?" {
		t.Errorf("DecodeString = %q", s)
	}
}

func equalRegs(a, b []uint16) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// sampleFor returns a plausible reading with every field present and
// consistent with p's layout: the phase powers add up to the AC power and
// the inputs' powers to the DC power, as on a real device (profiles may
// share registers between a total and its parts).
func sampleFor(p *Profile) Reading {
	r := Reading{
		ACPower: Some(4321.5), DCPower: Some(4499.6), EnergyTotal: Some(12345678),
		Frequency: Some(50.02), Temperature: Some(41.3), State: "mppt",
		Device: Info{Serial: "SN12345678", Model: "MODEL-X"},
	}
	np, nd := max(1, len(p.Fields.Phases)), max(1, len(p.Fields.DC))
	for i := range np {
		r.Phases = append(r.Phases, Phase{Voltage: Some(230.1 + float64(i)), Current: Some(6.25), Power: Some(r.ACPower.V / float64(np))})
	}
	for range nd {
		r.DC = append(r.DC, DCInput{Voltage: Some(380.2), Current: Some(5.9), Power: Some(r.DCPower.V / float64(nd))})
	}
	return r
}

// TestEncodeDecodeRoundTrip checks that Encode is Decode's inverse for every
// profile, within each field's resolution.
func TestEncodeDecodeRoundTrip(t *testing.T) {
	ps, _ := LoadProfiles()
	for name, p := range ps {
		want := p.Restrict(sampleFor(p))
		m, err := p.Encode(want)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		var blocks []RegisterBlock
		for _, b := range p.ReadPlan() {
			blocks = append(blocks, RegisterBlock{Function: b.Function, Start: b.Start, Values: m.Read(b.Function, b.Start, b.Count)})
		}
		for _, s := range p.textSpans() {
			blocks = append(blocks, RegisterBlock{Function: s.fc, Start: s.start, Values: m.Read(s.fc, s.start, s.count)})
		}
		got, err := p.Decode(blocks)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if d := diffReadings(got, want); d != "" {
			t.Errorf("%s: %s", name, d)
		}
	}
}

// diffReadings compares readings allowing the rounding of a register: 1% of
// the value or one unit of the coarsest scale used by the profiles (10 W,
// 100 Wh, 0.1 V, 0.1 A, 0.1 °C, 0.1 Hz).
func diffReadings(got, want Reading) string {
	var diffs []string
	cmp := func(what string, g, w Value, tol float64) {
		if g.OK != w.OK || (w.OK && math.Abs(g.V-w.V) > math.Max(tol, 1e-6*math.Abs(w.V))) {
			diffs = append(diffs, what+": got "+g.String()+" want "+w.String())
		}
	}
	cmp("ac", got.ACPower, want.ACPower, 10)
	cmp("dc", got.DCPower, want.DCPower, 20)
	cmp("energy", got.EnergyTotal, want.EnergyTotal, 1000)
	cmp("frequency", got.Frequency, want.Frequency, 0.1)
	cmp("temperature", got.Temperature, want.Temperature, 1)
	if len(got.Phases) != len(want.Phases) || len(got.DC) != len(want.DC) {
		diffs = append(diffs, "phase or DC count differs")
	} else {
		for i := range want.Phases {
			cmp("phase V", got.Phases[i].Voltage, want.Phases[i].Voltage, 0.1)
			cmp("phase A", got.Phases[i].Current, want.Phases[i].Current, 0.1)
			cmp("phase W", got.Phases[i].Power, want.Phases[i].Power, 10)
		}
		for i := range want.DC {
			cmp("dc V", got.DC[i].Voltage, want.DC[i].Voltage, 0.1)
			cmp("dc A", got.DC[i].Current, want.DC[i].Current, 0.1)
			cmp("dc W", got.DC[i].Power, want.DC[i].Power, 10)
		}
	}
	if got.State != want.State {
		diffs = append(diffs, "state: got "+got.State+" want "+want.State)
	}
	if got.Device.Serial != want.Device.Serial && want.Device.Serial != "" {
		diffs = append(diffs, "serial: got "+got.Device.Serial+" want "+want.Device.Serial)
	}
	return strings.Join(diffs, "; ")
}

// fakeRR serves a RegisterMap and counts requests.
type fakeRR struct {
	mu     sync.Mutex
	m      RegisterMap
	reads  []Block
	refuse map[uint16]bool // start addresses answered with an exception
	closed bool
}

func (f *fakeRR) ReadRegisters(ctx context.Context, unit, fc uint8, addr, count uint16) ([]uint16, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reads = append(f.reads, Block{fc, addr, count})
	if f.refuse[addr] {
		return nil, &ModbusException{Function: fc, Code: ExceptionIllegalDataAddress}
	}
	return f.m.Read(fc, addr, count), nil
}

func (f *fakeRR) Close() error { f.closed = true; return nil }

func TestProfileDevice(t *testing.T) {
	p, _ := LookupProfile("huawei")
	m, err := p.Encode(p.Restrict(sampleFor(p)))
	if err != nil {
		t.Fatal(err)
	}
	rr := &fakeRR{m: m}
	d, err := NewProfileDevice(rr, 1, p, ProfileOptions{HarvestEvery: 2})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	r, err := d.Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if r.Device.Serial != "SN12345678" || r.Device.Model != "MODEL-X" || !r.ACPower.OK {
		t.Errorf("reading %+v", r)
	}
	// 1 serial/model read, the plan's reads, then the 2 harvest blocks.
	plan := p.ReadPlan()
	if len(rr.reads) != 1+len(plan)+len(p.Blocks) {
		t.Errorf("first Read did %d reads: %v", len(rr.reads), rr.reads)
	}
	if len(r.Raw) != len(plan)+len(p.Blocks) {
		t.Errorf("Raw has %d blocks", len(r.Raw))
	}
	n := len(rr.reads)
	if _, err := d.Read(ctx); err != nil {
		t.Fatal(err)
	}
	if got := len(rr.reads) - n; got != len(plan) {
		t.Errorf("second Read did %d reads, want %d (serial cached, no harvest)", got, len(plan))
	}
	if len(plan) > 3 {
		t.Errorf("huawei read plan has %d reads: %v", len(plan), plan)
	}
	if err := d.Close(); err != nil || !rr.closed {
		t.Errorf("Close = %v, closed %v", err, rr.closed)
	}
	if _, err := d.Read(ctx); !errors.Is(err, ErrClosed) {
		t.Errorf("Read after Close = %v", err)
	}

	// A device that refuses the serial registers is still readable.
	rr = &fakeRR{m: m, refuse: map[uint16]bool{30000: true}}
	d, _ = NewProfileDevice(rr, 1, p, ProfileOptions{})
	r, err = d.Read(ctx)
	if err != nil || r.Device.Serial != "" || !r.ACPower.OK {
		t.Errorf("Read with refused serial = %+v, %v", r.Device, err)
	}
	// A refused data block fails the Read, naming it.
	rr.refuse = map[uint16]bool{plan[0].Start: true}
	if _, err := d.Read(ctx); err == nil || !IsException(err) || !strings.Contains(err.Error(), "huawei") {
		t.Errorf("Read with refused block = %v", err)
	}
	if _, err := NewProfileDevice(nil, 1, p, ProfileOptions{}); err == nil {
		t.Error("nil reader accepted")
	}
}

func TestCoalesce(t *testing.T) {
	got := coalesce([]span{{3, 100, 2}, {3, 0, 1}, {3, 110, 1}, {4, 5, 1}, {3, 200, 2}, {3, 101, 1}}, 16)
	want := []span{{3, 0, 1}, {3, 100, 11}, {3, 200, 2}, {4, 5, 1}}
	if len(got) != len(want) {
		t.Fatalf("coalesce = %v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("coalesce = %v, want %v", got, want)
		}
	}
	// Never more than MaxRegisters per read.
	var spans []span
	for a := uint16(0); a < 400; a += 2 {
		spans = append(spans, span{3, a, 2})
	}
	for _, s := range coalesce(spans, 16) {
		if s.count > MaxRegisters {
			t.Fatalf("read of %d registers", s.count)
		}
	}
}

func TestProfileDriversRegistered(t *testing.T) {
	names := map[string]bool{}
	for _, d := range Drivers() {
		names[d.Name] = true
	}
	for _, n := range ProfileNames() {
		for _, s := range []string{"+tcp", "+rtu", "+rtuovertcp"} {
			if !names[n+s] {
				t.Errorf("driver %s%s not registered", n, s)
			}
		}
	}
	if _, err := Open("huawei+tcp://127.0.0.1:1?unit=1&colour=red"); err == nil || !strings.Contains(err.Error(), "colour") {
		t.Errorf("unknown option accepted: %v", err)
	}
}

func FuzzRegisterDecode(f *testing.F) {
	f.Add(uint8(0), false, uint16(1), uint16(2), uint16(3), uint16(4))
	f.Add(uint8(4), true, uint16(0x7FC0), uint16(0), uint16(0), uint16(0))
	types := []string{TypeU16, TypeI16, TypeU32, TypeI32, TypeF32, TypeU64, TypeI64}
	f.Fuzz(func(t *testing.T, ti uint8, little bool, a, b, c, d uint16) {
		typ := types[int(ti)%len(types)]
		words := WordsBig
		if little {
			words = WordsLittle
		}
		regs := []uint16{a, b, c, d}[:TypeSize(typ)]
		v, ok := DecodeNumber(typ, words, regs)
		if !ok {
			if typ != TypeF32 {
				t.Fatalf("%s %x did not decode", typ, regs)
			}
			return
		}
		if math.IsNaN(v) || math.IsInf(v, 0) {
			t.Fatalf("decoded %v", v)
		}
		back, err := EncodeNumber(typ, words, v)
		if err != nil {
			// 64-bit integers beyond 2^53 lose precision in float64 and
			// may round past the type's range.
			if typ == TypeU64 || typ == TypeI64 {
				return
			}
			t.Fatalf("EncodeNumber(%s, %v): %v", typ, v, err)
		}
		if typ != TypeU64 && typ != TypeI64 && !equalRegs(back, regs) {
			// F32 -0 and denormals survive; only NaN payloads differ,
			// and NaN is rejected above.
			t.Fatalf("%s %x -> %v -> %x", typ, regs, v, back)
		}
		_ = DecodeString(regs)
	})
}

func FuzzProfileDecode(f *testing.F) {
	f.Add([]byte{0, 1, 2, 3}, uint16(0))
	f.Add([]byte{0xFF, 0xFF, 0x7F, 0xC0, 0x80, 0x00}, uint16(7))
	ps, err := LoadProfiles()
	if err != nil {
		f.Fatal(err)
	}
	names := ProfileNames()
	f.Fuzz(func(t *testing.T, data []byte, shift uint16) {
		for _, name := range names {
			p := ps[name]
			// Fill every register the profile reads from data (cycled),
			// so that all fields see arbitrary values.
			var blocks []RegisterBlock
			k := int(shift)
			word := func() uint16 {
				if len(data) == 0 {
					return 0
				}
				hi := data[k%len(data)]
				lo := data[(k+1)%len(data)]
				k += 2
				return uint16(hi)<<8 | uint16(lo)
			}
			for _, b := range append(p.ReadPlan(), p.Blocks...) {
				vals := make([]uint16, b.Count)
				for i := range vals {
					vals[i] = word()
				}
				blocks = append(blocks, RegisterBlock{Function: b.Function, Start: b.Start, Values: vals})
			}
			r, err := p.Decode(blocks)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			vals := []Value{r.ACPower, r.DCPower, r.EnergyTotal, r.Frequency, r.Temperature}
			for _, ph := range r.Phases {
				vals = append(vals, ph.Voltage, ph.Current, ph.Power)
			}
			for _, dc := range r.DC {
				vals = append(vals, dc.Voltage, dc.Current, dc.Power)
			}
			for _, v := range vals {
				if v.OK && (math.IsNaN(v.V) || math.IsInf(v.V, 0)) {
					t.Fatalf("%s: present non-finite value %v", name, v.V)
				}
			}
		}
	})
}

// A user-supplied profile for a meter that keeps its power in tenths of a
// kilowatt, import positive, decoded from registers read elsewhere.
func ExampleParseProfile() {
	p, err := ParseProfile(strings.NewReader(`{
	  "name": "acme-meter", "manufacturer": "Acme", "kind": "meter", "unit": 1, "function": 4,
	  "fields": {
	    "ac_power":  {"address": 10, "type": "I16", "scale": 0.1, "unit": "kW", "negate": true},
	    "frequency": {"address": 12, "type": "U16", "scale": 0.01, "unit": "Hz"}
	  }
	}`))
	if err != nil {
		fmt.Println(err)
		return
	}
	r, err := p.Decode([]RegisterBlock{{Function: 4, Start: 10, Values: []uint16{15, 0, 5001}}})
	fmt.Println(r.ACPower, "W,", r.Frequency, "Hz,", err)
	// Output: -1500 W, 50.01 Hz, <nil>
}
