package irlamp

import (
	"fmt"
	"time"
)

// DefaultFrequency is the carrier of a remote whose lircd.conf gives none,
// and of LED24Key: 38 kHz, what nearly every consumer IR receiver expects.
const DefaultFrequency = 38000

// Remote is a remote control: named keys and the signal each sends. Get one
// from LED24Key or ParseLircdConf.
//
// A Remote is immutable and safe for concurrent use.
type Remote struct {
	name  string
	freq  int
	gap   time.Duration
	raw   bool
	keys  []string // table order
	codes map[string]keyCode
}

// keyCode is one key's signal, computed once when the remote is built.
type keyCode struct {
	pulses []uint32
	necx   uint32
	nec    bool
}

// newRemote builds a remote from each key's pulses, which must already be
// valid (see checkPulses). Keys of encoded remotes whose signal decodes as an
// NEC frame also get their NECX scancode.
func newRemote(name string, freq int, gap time.Duration, raw bool, keys []string, pulses [][]uint32) *Remote {
	r := &Remote{name: name, freq: freq, gap: gap, raw: raw, keys: keys, codes: make(map[string]keyCode, len(keys))}
	for i, k := range keys {
		c := keyCode{pulses: pulses[i]}
		if !raw {
			if addr, cmd, err := DecodeNEC(c.pulses); err == nil {
				c.necx, c.nec = necxScancode(addr, cmd), true
			}
		}
		r.codes[k] = c
	}
	return r
}

// Name returns the remote's name, as lircd knows it.
func (r *Remote) Name() string { return r.name }

// Keys returns the key names in table order: the order of the lircd.conf
// file, or for LED24Key the order of the command bytes.
func (r *Remote) Keys() []string { return append([]string(nil), r.keys...) }

// HasKey reports whether the remote has a key of that name.
func (r *Remote) HasKey(key string) bool {
	_, ok := r.codes[key]
	return ok
}

// Pulses returns one full transmission of key as alternating mark and space
// durations in microseconds, starting and ending with a mark (an odd count,
// as /dev/lirc's pulse mode wants), without the gap that must follow it (see
// Gap). The slice is the caller's to modify. An unknown key is an error
// wrapping ErrUnknownKey.
func (r *Remote) Pulses(key string) ([]uint32, error) {
	c, ok := r.codes[key]
	if !ok {
		return nil, fmt.Errorf("%w %q on remote %q", ErrUnknownKey, key, r.name)
	}
	return append([]uint32(nil), c.pulses...), nil
}

// Frequency returns the carrier frequency in Hz: the lircd.conf's frequency,
// DefaultFrequency if it gives none.
func (r *Remote) Frequency() int { return r.freq }

// Gap returns the pause to leave after a transmission before the next one,
// so that the receiver sees two codes rather than one garbled one. It is the
// lircd.conf's gap (40 ms if it gives none); for a CONST_LENGTH remote,
// whose gap is the period from the start of one code to the next, it is that
// period minus the longest key's transmission, but at least 10 ms. For
// LED24Key it is 41.15 ms: NEC's 108 ms frame period minus the 66.85 ms
// these frames take.
func (r *Remote) Gap() time.Duration { return r.gap }

// NECX returns the Linux kernel's NECX scancode of key (as ir-ctl -S
// necx:0x00ef04 takes it): the two address bytes in the order sent in bits
// 23..8 and the command in bits 7..0; LED24Key's ON is 0x00ef03. ok is false
// for an unknown key, for every key of a raw-code remote, and for keys whose
// signal is not an NEC frame with a complemented command byte.
func (r *Remote) NECX(key string) (scancode uint32, ok bool) {
	c, found := r.codes[key]
	if !found || !c.nec {
		return 0, false
	}
	return c.necx, true
}

// String returns the remote's name.
func (r *Remote) String() string { return r.name }

// necxScancode converts DecodeNEC's address and command to the kernel's
// NECX scancode.
func necxScancode(address uint16, command uint8) uint32 {
	return uint32(address&0xff)<<16 | uint32(address>>8)<<8 | uint32(command)
}

// led24Address is the LED_24_KEY remote's address as DecodeNEC returns it:
// byte 0x00 then 0xEF on air.
const led24Address = 0xEF00

// led24Keys is the LED_24_KEY table, in command byte order.
var led24Keys = [...]string{
	0x00: "BRIGHT_UP",
	0x01: "BRIGHT_DOWN",
	0x02: "OFF",
	0x03: "ON",
	0x04: "RED",
	0x05: "GREEN",
	0x06: "BLUE",
	0x07: "WHITE",
	0x08: "ORANGE",
	0x09: "PEA_GREEN",
	0x0A: "DARK_BLUE",
	0x0B: "7_JUMP",
	0x0C: "DARK_YELLOW",
	0x0D: "CYAN",
	0x0E: "BROWN",
	0x0F: "ALL_FADE",
	0x10: "YELLOW",
	0x11: "LIGHT_BLUE",
	0x12: "PINK",
	0x13: "7_FADE",
	0x14: "STRAW_YELLOW",
	0x15: "SKY_BLUE",
	0x16: "PURPLE",
	0x17: "3_JUMP",
}

var led24 = func() *Remote {
	keys := make([]string, len(led24Keys))
	pulses := make([][]uint32, len(led24Keys))
	var longest uint32
	for cmd, k := range led24Keys {
		keys[cmd] = k
		pulses[cmd] = encodeNEC(led24Address, uint8(cmd))
		longest = max(longest, sum(pulses[cmd]))
	}
	gap := time.Duration(necFramePeriod-longest) * time.Microsecond
	return newRemote("LED_24_KEY", DefaultFrequency, gap, false, keys, pulses)
}()

// LED24Key returns the remote of the common RGB LED bulbs and strips sold
// with a 24-key remote ("24 Key LED Controller", LED_24_KEY in lirc's remote
// database): extended NEC, address bytes 0x00 0xEF, 38 kHz. Its keys are
// BRIGHT_UP, BRIGHT_DOWN, OFF, ON, the 16 colours listed by Colors and the 4
// effects listed by Effects. Every call returns the same immutable Remote.
func LED24Key() *Remote { return led24 }

func sum(p []uint32) uint32 {
	var t uint32
	for _, d := range p {
		t += d
	}
	return t
}
