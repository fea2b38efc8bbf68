package irlamp

import (
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// led24Table is LED_24_KEY as lirc's database and the kernel know it: the
// command byte and lircd's 32-bit code (sent MSB first), written out
// independently of the package's table.
var led24Table = []struct {
	key    string
	cmd    uint8
	lircd  uint32
	necx   uint32
	colour bool
}{
	{"BRIGHT_DOWN", 0x01, 0x00F7807F, 0x00ef01, false},
	{"BRIGHT_UP", 0x00, 0x00F700FF, 0x00ef00, false},
	{"OFF", 0x02, 0x00F740BF, 0x00ef02, false},
	{"ON", 0x03, 0x00F7C03F, 0x00ef03, false},
	{"RED", 0x04, 0x00F720DF, 0x00ef04, true},
	{"GREEN", 0x05, 0x00F7A05F, 0x00ef05, true},
	{"BLUE", 0x06, 0x00F7609F, 0x00ef06, true},
	{"WHITE", 0x07, 0x00F7E01F, 0x00ef07, true},
	{"ORANGE", 0x08, 0x00F710EF, 0x00ef08, true},
	{"PEA_GREEN", 0x09, 0x00F7906F, 0x00ef09, true},
	{"DARK_BLUE", 0x0A, 0x00F750AF, 0x00ef0a, true},
	{"7_JUMP", 0x0B, 0x00F7D02F, 0x00ef0b, false},
	{"DARK_YELLOW", 0x0C, 0x00F730CF, 0x00ef0c, true},
	{"CYAN", 0x0D, 0x00F7B04F, 0x00ef0d, true},
	{"BROWN", 0x0E, 0x00F7708F, 0x00ef0e, true},
	{"ALL_FADE", 0x0F, 0x00F7F00F, 0x00ef0f, false},
	{"YELLOW", 0x10, 0x00F708F7, 0x00ef10, true},
	{"LIGHT_BLUE", 0x11, 0x00F78877, 0x00ef11, true},
	{"PINK", 0x12, 0x00F748B7, 0x00ef12, true},
	{"7_FADE", 0x13, 0x00F7C837, 0x00ef13, false},
	{"STRAW_YELLOW", 0x14, 0x00F728D7, 0x00ef14, true},
	{"SKY_BLUE", 0x15, 0x00F7A857, 0x00ef15, true},
	{"PURPLE", 0x16, 0x00F76897, 0x00ef16, true},
	{"3_JUMP", 0x17, 0x00F7E817, 0x00ef17, false},
}

// irctlRED is what ir-ctl -S necx:0x00ef04 writes to /dev/lirc: the kernel's
// NEC encoder rounds the unit to 563 µs.
var irctlRED = []uint32{9000, 4500, 563, 563, 563, 563, 563, 563, 563, 563, 563, 563, 563, 563, 563, 563, 563, 563, 563, 1688, 563, 1688, 563, 1688, 563, 1688, 563, 563, 563, 1688, 563, 1688, 563, 1688, 563, 563, 563, 563, 563, 1688, 563, 563, 563, 563, 563, 563, 563, 563, 563, 563, 563, 1688, 563, 1688, 563, 563, 563, 1688, 563, 1688, 563, 1688, 563, 1688, 563, 1688, 563}

func TestLED24KeyTimings(t *testing.T) {
	r := LED24Key()
	if len(r.Keys()) != 24 || len(led24Table) != 24 {
		t.Fatalf("%d keys, table %d", len(r.Keys()), len(led24Table))
	}
	for _, k := range led24Table {
		p, err := r.Pulses(k.key)
		if err != nil {
			t.Fatal(err)
		}
		// lircd sends its 32-bit code MSB first; so does the air.
		want := []uint32{9000, 4500}
		for i := 31; i >= 0; i-- {
			space := uint32(560)
			if k.lircd>>i&1 == 1 {
				space = 1690
			}
			want = append(want, 560, space)
		}
		want = append(want, 560)
		if !slices.Equal(p, want) {
			t.Errorf("%s: pulses\n%v\nwant\n%v", k.key, p, want)
		}
		addr, cmd, err := DecodeNEC(p)
		if err != nil || addr != 0xEF00 || cmd != k.cmd {
			t.Errorf("%s: DecodeNEC = 0x%04X 0x%02X %v, want 0xEF00 0x%02X", k.key, addr, cmd, err, k.cmd)
		}
		if sc, ok := r.NECX(k.key); !ok || sc != k.necx {
			t.Errorf("%s: NECX = 0x%06x %v, want 0x%06x", k.key, sc, ok, k.necx)
		}
		if sum(p)+uint32(r.Gap().Microseconds()) != 108000 {
			t.Errorf("%s: %d µs + gap %s is not NEC's 108 ms period", k.key, sum(p), r.Gap())
		}
	}
	if r.Frequency() != 38000 || r.Name() != "LED_24_KEY" {
		t.Errorf("frequency %d name %q", r.Frequency(), r.Name())
	}
}

func TestLED24KeyMatchesKernelEncoder(t *testing.T) {
	addr, cmd, err := DecodeNEC(irctlRED)
	if err != nil || addr != 0xEF00 || cmd != 0x04 {
		t.Fatalf("DecodeNEC(ir-ctl RED) = 0x%04X 0x%02X %v", addr, cmd, err)
	}
	p, _ := LED24Key().Pulses("RED")
	for i, d := range irctlRED {
		want := map[uint32]uint32{9000: 9000, 4500: 4500, 563: 560, 1688: 1690}[d]
		if p[i] != want {
			t.Fatalf("duration %d: %d, ir-ctl %d", i, p[i], d)
		}
	}
}

func TestRemoteKeys(t *testing.T) {
	r := LED24Key()
	keys := r.Keys()
	if keys[0] != "BRIGHT_UP" || keys[3] != "ON" || keys[23] != "3_JUMP" {
		t.Errorf("Keys not in command order: %v", keys)
	}
	keys[0] = "changed"
	if r.Keys()[0] != "BRIGHT_UP" {
		t.Error("Keys shares its slice")
	}
	p, _ := r.Pulses("ON")
	p[0] = 1
	if q, _ := r.Pulses("ON"); q[0] != 9000 {
		t.Error("Pulses shares its slice")
	}
	if _, err := r.Pulses("NOPE"); err == nil || !strings.Contains(err.Error(), `"NOPE"`) || !errors.Is(err, ErrUnknownKey) {
		t.Errorf("unknown key: %v", err)
	}
	if _, ok := r.NECX("NOPE"); ok {
		t.Error("NECX of unknown key")
	}
	if LED24Key() != r {
		t.Error("LED24Key returns different remotes")
	}
}

func TestDecodeNECStandard(t *testing.T) {
	// A standard NEC code: address 0x04 and its complement.
	p := encodeNEC(0xFB04, 0x08)
	addr, cmd, err := DecodeNEC(append(p, 40000)) // with a trailing gap
	if err != nil || addr != 0xFB04 || cmd != 0x08 {
		t.Fatalf("= 0x%04X 0x%02X %v", addr, cmd, err)
	}
	if sc := necxScancode(addr, cmd); sc != 0x04FB08 {
		t.Errorf("NECX scancode 0x%06x", sc)
	}
}

// jitter scales each duration by a random factor within ±frac.
func jitter(p []uint32, frac float64, rng *rand.Rand) []uint32 {
	q := make([]uint32, len(p))
	for i, d := range p {
		q[i] = uint32(float64(d) * (1 + frac*(2*rng.Float64()-1)))
	}
	return q
}

func TestDecodeNECTolerance(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, k := range led24Table {
		p, _ := LED24Key().Pulses(k.key)
		for range 50 {
			if _, cmd, err := DecodeNEC(jitter(p, 0.20, rng)); err != nil || cmd != k.cmd {
				t.Fatalf("%s with 20%% jitter: 0x%02X %v", k.key, cmd, err)
			}
		}
		for _, f := range []float64{0.8, 1.2} {
			q := make([]uint32, len(p))
			for i, d := range p {
				q[i] = uint32(float64(d) * f)
			}
			if _, cmd, err := DecodeNEC(q); err != nil || cmd != k.cmd {
				t.Fatalf("%s all ×%v: 0x%02X %v", k.key, f, cmd, err)
			}
		}
		// A receiver's typical distortion: marks 80 µs longer, spaces
		// 80 µs shorter.
		q := slices.Clone(p)
		for i := range q {
			if i%2 == 0 {
				q[i] += 80
			} else {
				q[i] -= 80
			}
		}
		if _, cmd, err := DecodeNEC(q); err != nil || cmd != k.cmd {
			t.Fatalf("%s with receiver distortion: 0x%02X %v", k.key, cmd, err)
		}
	}
	// 50% off anywhere fails: header, a bit's mark, a 0's and a 1's space,
	// the trailing mark.
	p, _ := LED24Key().Pulses("RED") // bit 18 (index 39) is a 1
	for _, i := range []int{0, 1, 2, 3, 39, 66} {
		for _, f := range []float64{0.5, 1.5} {
			q := slices.Clone(p)
			q[i] = uint32(float64(q[i]) * f)
			if _, _, err := DecodeNEC(q); err == nil {
				t.Errorf("duration %d (%d µs) ×%v decoded", i, p[i], f)
			}
		}
	}
	if p[39] != 1690 {
		t.Fatalf("test assumes a 1 at index 39, got %d", p[39])
	}
}

func TestDecodeNECErrors(t *testing.T) {
	red, _ := LED24Key().Pulses("RED")
	badCmd := encodeNEC(0xEF00, 0x04)
	badCmd[2+2*24+1] = 560 // first bit of the inverse: 1 → 0
	tests := []struct {
		name   string
		pulses []uint32
		want   string
	}{
		{"empty", nil, "0 durations"},
		{"truncated", red[:50], "49 durations"},
		{"too long", append(slices.Clone(red), 40000, 9000, 2250, 560), "71 durations"},
		{"repeat frame", []uint32{9000, 2250, 560}, "repeat frame"},
		{"repeat frame with gap", []uint32{9000, 2250, 560, 96000}, "repeat frame"},
		{"header", append([]uint32{4500, 4500}, red[2:]...), "header 4500/4500"},
		{"bit mark", append(slices.Clone(red[:10]), append([]uint32{1000}, red[11:]...)...), "bit 4: mark 1000"},
		{"bit space", append(slices.Clone(red[:11]), append([]uint32{1000}, red[12:]...)...), "bit 4: space 1000"},
		{"trailing mark", append(slices.Clone(red[:66]), 2000), "trailing mark 2000"},
		{"command", badCmd, "not complements"},
		{"garbage", []uint32{1, 2, 3}, "3 durations"},
	}
	for _, tt := range tests {
		_, _, err := DecodeNEC(tt.pulses)
		if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), "irlamp: nec: ") {
			t.Errorf("%s: %v, want %q", tt.name, err, tt.want)
		}
	}
}

func TestSplitFrames(t *testing.T) {
	red, _ := LED24Key().Pulses("RED")
	p := append(slices.Clone(red), 41000, 9000, 2250, 560)
	f := splitFrames(p)
	if len(f) != 2 || !slices.Equal(f[0], red) || !isNECRepeat(f[1]) {
		t.Fatalf("splitFrames = %v", f)
	}
	if f := splitFrames(red); len(f) != 1 || len(f[0]) != 67 {
		t.Fatalf("one frame: %v", f)
	}
	if f := splitFrames(nil); len(f) != 0 {
		t.Fatalf("nothing: %v", f)
	}
}

// uint32s turns fuzz bytes into durations, two bytes each, so that the
// fuzzer reaches realistic values.
func uint32s(b []byte) []uint32 {
	p := make([]uint32, len(b)/2)
	for i := range p {
		p[i] = uint32(binary.LittleEndian.Uint16(b[2*i:]))
	}
	return p
}

func bytesOf(p []uint32) []byte {
	b := make([]byte, 0, 2*len(p))
	for _, d := range p {
		b = binary.LittleEndian.AppendUint16(b, uint16(min(d, 65535)))
	}
	return b
}

func FuzzDecodeNEC(f *testing.F) {
	red, _ := LED24Key().Pulses("RED")
	f.Add(bytesOf(red))
	f.Add(bytesOf(append(slices.Clone(red), 41000)))
	f.Add(bytesOf(encodeNEC(0xFB04, 0x08)))
	f.Add(bytesOf(irctlRED))
	f.Add(bytesOf(jitter(red, 0.25, rand.New(rand.NewPCG(3, 4)))))
	f.Add(bytesOf(red[:40]))
	f.Add(bytesOf([]uint32{9000, 2250, 560}))
	f.Add([]byte("garbage, not a pulse train at all"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		p := uint32s(b)
		addr, cmd, err := DecodeNEC(p)
		if err != nil {
			return
		}
		if n := len(p); n != 67 && n != 68 {
			t.Fatalf("decoded %d durations", n)
		}
		a2, c2, err := DecodeNEC(encodeNEC(addr, cmd))
		if err != nil || a2 != addr || c2 != cmd {
			t.Fatalf("0x%04X 0x%02X re-encoded decodes to 0x%04X 0x%02X %v", addr, cmd, a2, c2, err)
		}
	})
}
