package audio

import (
	"encoding/binary"
	"fmt"
	"math"
	"time"
)

// fadeTime is the length of the fade-in and fade-out of generated tones:
// starting or stopping a sine at full level clicks audibly, and 10 ms is
// too short to be heard as a fade.
const fadeTime = 10 * time.Millisecond

// maxToneDuration bounds generated sounds before any arithmetic, so that
// duration × rate cannot overflow; MaxDataSize is the tighter limit at most
// rates anyway.
const maxToneDuration = time.Hour

// Note is one step of a Chime: a sine tone of Freq hertz lasting Dur, or
// silence when Freq is zero.
type Note struct {
	Freq float64
	Dur  time.Duration
}

// Tone returns a 16-bit mono clip of a sine wave of freq hertz lasting d, at
// rate frames per second and amplitude between 0 (exclusive) and 1 (full
// scale). The tone fades in and out over 10 ms so it starts and stops
// without a click. freq must be below half the rate, the highest frequency
// the rate can represent.
func Tone(freq float64, d time.Duration, rate int, amplitude float64) (*Clip, error) {
	if !(freq > 0) {
		// Chime would take zero for a rest; a tone needs a pitch.
		return nil, fmt.Errorf("audio: tone: frequency %g Hz out of range (0, %d)", freq, rate/2)
	}
	return Chime(rate, amplitude, Note{Freq: freq, Dur: d})
}

// Chime returns a 16-bit mono clip playing notes one after the other, each
// generated as by Tone (rests are silent), at rate frames per second and the
// given amplitude.
func Chime(rate int, amplitude float64, notes ...Note) (*Clip, error) {
	if err := checkFormat(rate, 1, 16); err != nil {
		return nil, fmt.Errorf("audio: tone: %w", err)
	}
	if !(amplitude > 0 && amplitude <= 1) {
		return nil, fmt.Errorf("audio: tone: amplitude %g out of range (0, 1]", amplitude)
	}
	if len(notes) == 0 {
		return nil, fmt.Errorf("audio: tone: no notes")
	}
	counts := make([]int, len(notes))
	total := 0
	for i, n := range notes {
		if !(n.Freq >= 0 && n.Freq < float64(rate)/2) {
			return nil, fmt.Errorf("audio: tone: frequency %g Hz out of range [0, %d) for %d Hz sampling", n.Freq, rate/2, rate)
		}
		if n.Dur <= 0 || n.Dur > maxToneDuration {
			return nil, fmt.Errorf("audio: tone: duration %s out of range (0, %s]", n.Dur, maxToneDuration)
		}
		counts[i] = int((int64(n.Dur)*int64(rate) + int64(time.Second)/2) / int64(time.Second))
		if counts[i] == 0 {
			return nil, fmt.Errorf("audio: tone: duration %s is shorter than one frame at %d Hz", n.Dur, rate)
		}
		total += counts[i]
		if total*2 > MaxDataSize {
			return nil, fmt.Errorf("audio: tone: sound longer than the %d MiB limit", MaxDataSize>>20)
		}
	}
	data := make([]byte, 2*total)
	off := 0
	for i, n := range notes {
		if n.Freq > 0 {
			sine(data[off:off+2*counts[i]], n.Freq, rate, amplitude)
		}
		off += 2 * counts[i]
	}
	return &Clip{rate: rate, channels: 1, bits: 16, data: data}, nil
}

// sine fills buf with 16-bit samples of a sine wave with raised-cosine fades
// at both ends.
func sine(buf []byte, freq float64, rate int, amplitude float64) {
	n := len(buf) / 2
	fade := min(int(int64(fadeTime)*int64(rate)/int64(time.Second)), n/2)
	step := 2 * math.Pi * freq / float64(rate)
	for i := range n {
		v := amplitude * math.Sin(step*float64(i))
		if d := min(i, n-1-i); d < fade {
			v *= 0.5 - 0.5*math.Cos(math.Pi*float64(d)/float64(fade))
		}
		binary.LittleEndian.PutUint16(buf[2*i:], uint16(int16(math.Round(v*math.MaxInt16))))
	}
}
