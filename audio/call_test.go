package audio

import (
	"bytes"
	"encoding/binary"
	"flag"
	"os"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite call.wav from callNotes")

func TestDefaultCall(t *testing.T) {
	want, err := Chime(callRate, callAmplitude, callNotes...)
	if err != nil {
		t.Fatal(err)
	}
	if *update {
		var b bytes.Buffer
		if err := want.WriteWAV(&b); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile("call.wav", b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote call.wav (%d bytes); rebuild to embed it", b.Len())
		return
	}
	c := DefaultCall()
	if DefaultCall() != c {
		t.Error("DefaultCall parsed the clip twice")
	}
	if c.SampleRate() != 16000 || c.Channels() != 1 || c.BitsPerSample() != 16 {
		t.Errorf("call is %d Hz, %d channels, %d bits; want 16000 Hz mono 16-bit", c.SampleRate(), c.Channels(), c.BitsPerSample())
	}
	if c.Duration() != 1500*time.Millisecond {
		t.Errorf("call lasts %s, want 1.5s", c.Duration())
	}
	if len(callWAV) > 100<<10 {
		t.Errorf("call.wav is %d bytes, want under 100 KiB", len(callWAV))
	}
	// Floating point may round differently on another GOARCH (fused
	// multiply-add), so the embedded file must match the generator to
	// within one step rather than bit for bit.
	if len(c.Data()) != len(want.Data()) {
		t.Fatalf("call.wav has %d bytes of PCM, generator %d: run go test -run TestDefaultCall -update", len(c.Data()), len(want.Data()))
	}
	for i := 0; i < len(want.Data()); i += 2 {
		g := int(int16(binary.LittleEndian.Uint16(c.Data()[i:])))
		w := int(int16(binary.LittleEndian.Uint16(want.Data()[i:])))
		if g-w > 1 || w-g > 1 {
			t.Fatalf("call.wav sample %d is %d, generator says %d: run go test -run TestDefaultCall -update", i/2, g, w)
		}
	}
}

func TestMustParsePanics(t *testing.T) {
	defer func() {
		r := recover()
		if s, _ := r.(string); !strings.Contains(s, "audio: embedded call.wav: audio: wav: not a RIFF file") {
			t.Errorf("panic %v, want one naming the embedded file and the parse error", r)
		}
	}()
	mustParse([]byte("not a wav file"))
	t.Error("mustParse did not panic")
}
