package irlamp

import (
	"errors"
	"fmt"
)

// NEC timings in microseconds: the protocol's 562.5 µs unit rounded the way
// lircd.conf files write it.
const (
	necHeaderMark  = 9000
	necHeaderSpace = 4500
	necRepeatSpace = 2250
	necBitMark     = 560
	necZeroSpace   = 560
	necOneSpace    = 1690
	necTrailMark   = 560
	necFramePeriod = 108000 // from the start of one frame to the next

	necFrameLen = 2 + 2*32 + 1 // header, 32 bits, trailing mark

	// necTolerance is how far, in percent, a received duration may be off.
	// Demodulating receivers lengthen marks and shorten spaces by 50–100 µs
	// and cheap remotes' clocks drift; 30% still keeps a 0's space
	// (392–728 µs) apart from a 1's (1183–2197 µs).
	necTolerance = 30
)

// encodeNEC returns the NEC frame of address and command: address's low byte
// first, then its high byte, the command and its complement, each byte LSB
// first. For standard NEC, the high byte is the complement of the low one.
func encodeNEC(address uint16, command uint8) []uint32 {
	p := make([]uint32, 0, necFrameLen)
	p = append(p, necHeaderMark, necHeaderSpace)
	v := uint32(address) | uint32(command)<<16 | uint32(^command)<<24
	for i := range 32 {
		s := uint32(necZeroSpace)
		if v>>i&1 == 1 {
			s = necOneSpace
		}
		p = append(p, necBitMark, s)
	}
	return append(p, necTrailMark)
}

// near reports whether the duration d is within necTolerance of want.
func near(d, want uint32) bool {
	diff := int64(d) - int64(want)
	if diff < 0 {
		diff = -diff
	}
	return diff*100 <= int64(want)*necTolerance
}

var errNECRepeat = errors.New("irlamp: nec: repeat frame, not a full code")

// isNECRepeat reports whether pulses are an NEC repeat frame: a header mark,
// a 2.25 ms space and a trailing mark.
func isNECRepeat(pulses []uint32) bool {
	if len(pulses) == 4 {
		pulses = pulses[:3]
	}
	return len(pulses) == 3 && near(pulses[0], necHeaderMark) && near(pulses[1], necRepeatSpace) && near(pulses[2], necTrailMark)
}

// DecodeNEC decodes one NEC frame from alternating mark and space durations
// in microseconds, as Remote.Pulses returns them or a receiver records them:
// a 9 ms header mark, a 4.5 ms space, 32 bits (a 560 µs mark then a 560 µs
// space for 0 or a 1690 µs space for 1) and a trailing mark. Each duration
// may be 30% off. A trailing space (an even count) is ignored; anything else
// beyond one frame is an error, as is an NEC repeat frame.
//
// address holds the first 16 bits received: the first byte in bits 0..7 and
// the second in bits 8..15. For standard NEC the second byte is the
// complement of the first (address 0x04 gives 0xFB04); for extended NEC
// (NEC-X) the two bytes are one 16-bit address: the LED_24_KEY remote sends
// 0x00 then 0xEF, giving 0xEF00 (the kernel's NECX scancode puts them the
// other way round, 0x00EF). command is the third byte; the fourth must be
// its complement, so 32-bit NEC variants are refused.
func DecodeNEC(pulses []uint32) (address uint16, command uint8, err error) {
	if len(pulses)%2 == 0 && len(pulses) > 0 {
		pulses = pulses[:len(pulses)-1]
	}
	if isNECRepeat(pulses) {
		return 0, 0, errNECRepeat
	}
	if len(pulses) != necFrameLen {
		return 0, 0, fmt.Errorf("irlamp: nec: %d durations, want %d (header, 32 bits, trailing mark)", len(pulses), necFrameLen)
	}
	if !near(pulses[0], necHeaderMark) || !near(pulses[1], necHeaderSpace) {
		return 0, 0, fmt.Errorf("irlamp: nec: header %d/%d µs, want %d/%d µs ±%d%%", pulses[0], pulses[1], necHeaderMark, necHeaderSpace, necTolerance)
	}
	var v uint32
	for i := range 32 {
		m, s := pulses[2+2*i], pulses[3+2*i]
		if !near(m, necBitMark) {
			return 0, 0, fmt.Errorf("irlamp: nec: bit %d: mark %d µs, want %d µs ±%d%%", i, m, necBitMark, necTolerance)
		}
		switch {
		case near(s, necZeroSpace):
		case near(s, necOneSpace):
			v |= 1 << i
		default:
			return 0, 0, fmt.Errorf("irlamp: nec: bit %d: space %d µs is neither a 0 (%d µs) nor a 1 (%d µs) ±%d%%", i, s, necZeroSpace, necOneSpace, necTolerance)
		}
	}
	if t := pulses[necFrameLen-1]; !near(t, necTrailMark) {
		return 0, 0, fmt.Errorf("irlamp: nec: trailing mark %d µs, want %d µs ±%d%%", t, necTrailMark, necTolerance)
	}
	command = uint8(v >> 16)
	if inv := uint8(v >> 24); command^inv != 0xff {
		return 0, 0, fmt.Errorf("irlamp: nec: command byte 0x%02x and 0x%02x are not complements (not an NEC code, or a 32-bit variant)", command, inv)
	}
	return uint16(v), command, nil
}

// necFrameBreak is the shortest space that ends an IR frame: longer than any
// space inside an NEC frame (4.5 ms), shorter than the gap between frames.
const necFrameBreak = 10000

// splitFrames splits a transmission at spaces of necFrameBreak or longer, the
// way a receiver's idle timeout does, dropping those spaces. A recorded
// remote's raw code often holds a frame followed by a repeat frame.
func splitFrames(pulses []uint32) [][]uint32 {
	var frames [][]uint32
	start := 0
	for i := 1; i < len(pulses); i += 2 {
		if pulses[i] >= necFrameBreak {
			frames = append(frames, pulses[start:i])
			start = i + 1
		}
	}
	if start < len(pulses) {
		frames = append(frames, pulses[start:])
	}
	return frames
}
