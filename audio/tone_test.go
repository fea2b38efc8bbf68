package audio

import (
	"encoding/binary"
	"math"
	"strings"
	"testing"
	"time"
)

func samples16(c *Clip) []int {
	d := c.Data()
	out := make([]int, len(d)/2)
	for i := range out {
		out[i] = int(int16(binary.LittleEndian.Uint16(d[2*i:])))
	}
	return out
}

func TestTone(t *testing.T) {
	c, err := Tone(440, 500*time.Millisecond, 8000, 0.5)
	if err != nil {
		t.Fatal(err)
	}
	if c.SampleRate() != 8000 || c.Channels() != 1 || c.BitsPerSample() != 16 || c.Frames() != 4000 || c.Duration() != 500*time.Millisecond {
		t.Fatalf("got %d Hz, %d ch, %d bits, %d frames, %s", c.SampleRate(), c.Channels(), c.BitsPerSample(), c.Frames(), c.Duration())
	}
	s := samples16(c)
	peak, crossings := 0, 0
	for i, v := range s {
		peak = max(peak, v, -v)
		if i > 0 && (s[i-1] < 0) != (v < 0) {
			crossings++
		}
	}
	if want := 16384; peak < want-3 || peak > want+1 {
		t.Errorf("peak %d, want about %d", peak, want)
	}
	// 440 Hz for 0.5 s crosses zero about 440 times.
	if crossings < 436 || crossings > 444 {
		t.Errorf("%d zero crossings, want about 440", crossings)
	}
	// The fades make both ends start and stop at silence, without a click.
	if s[0] != 0 || abs(s[len(s)-1]) > 10 || abs(s[1]) > 10 {
		t.Errorf("ends %d, %d ... %d: want fades from and to silence", s[0], s[1], s[len(s)-1])
	}
}

func abs(v int) int { return max(v, -v) }

func TestChime(t *testing.T) {
	c, err := Chime(16000, 0.3, Note{Freq: 1000, Dur: 100 * time.Millisecond}, Note{Dur: 50 * time.Millisecond}, Note{Freq: 1500, Dur: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if c.Duration() != 250*time.Millisecond {
		t.Errorf("Duration %s, want 250ms", c.Duration())
	}
	s := samples16(c)
	for _, v := range s[1600:2400] {
		if v != 0 {
			t.Fatal("rest is not silent")
		}
	}
	if peak := slicesMax(s[2400:]); peak < 9000 {
		t.Errorf("second note peak %d, want about 9830", peak)
	}
}

func slicesMax(s []int) int {
	m := 0
	for _, v := range s {
		m = max(m, v)
	}
	return m
}

func TestToneErrors(t *testing.T) {
	for _, tc := range []struct {
		freq float64
		d    time.Duration
		rate int
		amp  float64
		want string
	}{
		{0, time.Second, 8000, 0.5, "frequency 0 Hz out of range"},
		{-1, time.Second, 8000, 0.5, "frequency -1 Hz out of range"},
		{math.NaN(), time.Second, 8000, 0.5, "frequency NaN Hz out of range"},
		{math.Inf(1), time.Second, 8000, 0.5, "frequency +Inf Hz out of range"},
		{4000, time.Second, 8000, 0.5, "frequency 4000 Hz out of range [0, 4000) for 8000 Hz sampling"},
		{440, 0, 8000, 0.5, "duration 0s out of range"},
		{440, -time.Second, 8000, 0.5, "duration -1s out of range"},
		{440, 2 * time.Hour, 8000, 0.5, "duration 2h0m0s out of range"},
		{440, time.Nanosecond, 8000, 0.5, "duration 1ns is shorter than one frame at 8000 Hz"},
		{440, time.Hour, 192000, 0.5, "sound longer than the 64 MiB limit"},
		{440, time.Second, 7999, 0.5, "unsupported sample rate 7999 Hz"},
		{440, time.Second, 8000, 0, "amplitude 0 out of range (0, 1]"},
		{440, time.Second, 8000, 1.01, "amplitude 1.01 out of range"},
		{440, time.Second, 8000, math.NaN(), "amplitude NaN out of range"},
	} {
		_, err := Tone(tc.freq, tc.d, tc.rate, tc.amp)
		if err == nil || !strings.HasPrefix(err.Error(), "audio: tone: ") || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Tone(%g, %s, %d, %g): error %v, want %q", tc.freq, tc.d, tc.rate, tc.amp, err, tc.want)
		}
	}
	if _, err := Chime(8000, 0.5); err == nil || err.Error() != "audio: tone: no notes" {
		t.Errorf("Chime with no notes: %v", err)
	}
}
