package audio

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// Helpers that build WAV files piece by piece, so that each test case shows
// exactly what is unusual about its file.

func le16(v int) []byte { return binary.LittleEndian.AppendUint16(nil, uint16(v)) }
func le32(v int) []byte { return binary.LittleEndian.AppendUint32(nil, uint32(v)) }

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

// chunk returns a chunk with its true size and the pad byte RIFF wants after
// an odd-sized body.
func chunk(id string, body []byte) []byte {
	c := cat([]byte(id), le32(len(body)), body)
	if len(body)%2 == 1 {
		c = append(c, 0)
	}
	return c
}

// lyingChunk declares size whatever the body is.
func lyingChunk(id string, size int, body []byte) []byte {
	return cat([]byte(id), le32(size), body)
}

func riff(chunks ...[]byte) []byte {
	body := cat(chunks...)
	return cat([]byte("RIFF"), le32(4+len(body)), []byte("WAVE"), body)
}

func fmtBody(tag, channels, rate, bits int) []byte {
	ba := channels * bits / 8
	return cat(le16(tag), le16(channels), le32(rate), le32(rate*ba), le16(ba), le16(bits))
}

func fmtBodyBA(tag, channels, rate, bits, blockAlign int) []byte {
	return cat(le16(tag), le16(channels), le32(rate), le32(rate*blockAlign), le16(blockAlign), le16(bits))
}

func guid(sub int) []byte { return cat(le16(sub), pcmGUIDTail) }

func extBody(channels, rate, bits, valid int, g []byte) []byte {
	return cat(fmtBody(formatExtensible, channels, rate, bits), le16(22), le16(valid), le32(3), g)
}

func pcm(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + 3)
	}
	return b
}

type validWAV struct {
	name                 string
	file                 []byte
	rate, channels, bits int
	data                 []byte
}

func validWAVs() []validWAV {
	return []validWAV{
		{"8-bit mono", riff(chunk("fmt ", fmtBody(1, 1, 8000, 8)), chunk("data", pcm(100))), 8000, 1, 8, pcm(100)},
		{"8-bit mono odd length with pad", riff(chunk("fmt ", fmtBody(1, 1, 8000, 8)), chunk("data", pcm(101))), 8000, 1, 8, pcm(101)},
		{"16-bit mono", riff(chunk("fmt ", fmtBody(1, 1, 16000, 16)), chunk("data", pcm(200))), 16000, 1, 16, pcm(200)},
		{"16-bit stereo", riff(chunk("fmt ", fmtBody(1, 2, 44100, 16)), chunk("data", pcm(400))), 44100, 2, 16, pcm(400)},
		{"24-bit stereo", riff(chunk("fmt ", fmtBody(1, 2, 48000, 24)), chunk("data", pcm(600))), 48000, 2, 24, pcm(600)},
		{"32-bit mono 192k", riff(chunk("fmt ", fmtBody(1, 1, 192000, 32)), chunk("data", pcm(400))), 192000, 1, 32, pcm(400)},
		{"8 channels", riff(chunk("fmt ", fmtBody(1, 8, 48000, 16)), chunk("data", pcm(160))), 48000, 8, 16, pcm(160)},
		{"fmt with cbSize", riff(chunk("fmt ", cat(fmtBody(1, 1, 8000, 16), le16(0))), chunk("data", pcm(20))), 8000, 1, 16, pcm(20)},
		{"extensible 24 in 24", riff(chunk("fmt ", extBody(2, 48000, 24, 24, guid(1))), chunk("data", pcm(60))), 48000, 2, 24, pcm(60)},
		{"extensible 20 valid bits in 24", riff(chunk("fmt ", extBody(1, 96000, 24, 20, guid(1))), chunk("data", pcm(30))), 96000, 1, 24, pcm(30)},
		{"extensible 0 valid bits", riff(chunk("fmt ", extBody(1, 8000, 16, 0, guid(1))), chunk("data", pcm(30))), 8000, 1, 16, pcm(30)},
		{"LIST before fmt and between", riff(
			chunk("LIST", []byte("INFOISFT\x0e\x00\x00\x00Lavf58.76.100\x00")),
			chunk("fmt ", fmtBody(1, 1, 8000, 16)),
			chunk("LIST", []byte("INFOINAM\x04\x00\x00\x00bark")),
			chunk("data", pcm(40))), 8000, 1, 16, pcm(40)},
		{"odd unknown chunks padded", riff(chunk("junk", pcm(3)), chunk("fmt ", fmtBody(1, 1, 8000, 16)), chunk("bext", pcm(1)), chunk("data", pcm(8))), 8000, 1, 16, pcm(8)},
		{"odd fmt chunk padded", riff(chunk("fmt ", cat(fmtBody(1, 1, 8000, 16), []byte{0})), chunk("data", pcm(8))), 8000, 1, 16, pcm(8)},
		{"chunks after data ignored", riff(chunk("fmt ", fmtBody(1, 1, 8000, 16)), chunk("data", pcm(8)), chunk("id3 ", pcm(50)), []byte("garbage")), 8000, 1, 16, pcm(8)},
		{"partial last frame dropped", riff(chunk("fmt ", fmtBody(1, 2, 8000, 16)), chunk("data", pcm(10))), 8000, 2, 16, pcm(8)},
		{"empty data", riff(chunk("fmt ", fmtBody(1, 1, 8000, 16)), chunk("data", nil)), 8000, 1, 16, []byte{}},
		{"RIFF size wrong", cat([]byte("RIFF"), le32(0), []byte("WAVE"), chunk("fmt ", fmtBody(1, 1, 8000, 16)), chunk("data", pcm(4))), 8000, 1, 16, pcm(4)},
	}
}

type brokenWAV struct {
	name string
	file []byte
	want string // substring of the error, after the "audio: wav: " prefix
}

func brokenWAVs() []brokenWAV {
	okFmt := chunk("fmt ", fmtBody(1, 1, 8000, 16))
	okData := chunk("data", pcm(8))
	return []brokenWAV{
		{"empty", nil, "empty input"},
		{"short header", []byte("RIFF\x00"), "truncated file: incomplete RIFF header"},
		{"text file", []byte("hello, world, this is not audio"), `not a RIFF file (starts with "hell")`},
		{"big-endian RIFX", cat([]byte("RIFX"), le32(4), []byte("WAVE")), "RIFX files are not supported"},
		{"RF64", cat([]byte("RF64"), le32(4), []byte("WAVE")), "RF64 files are not supported"},
		{"AVI", cat([]byte("RIFF"), le32(4), []byte("AVI ")), `not a WAVE file (RIFF form type "AVI ")`},
		{"no chunks", riff(), "missing fmt chunk"},
		{"only LIST", riff(chunk("LIST", pcm(6))), "missing fmt chunk"},
		{"fmt only", riff(okFmt), "missing data chunk"},
		{"data before fmt", riff(okData, okFmt), "data chunk before fmt chunk"},
		{"mp3", riff(chunk("fmt ", fmtBodyBA(0x55, 2, 44100, 0, 1)), okData), "unsupported format 0x0055 (MP3); only integer PCM is supported"},
		{"float", riff(chunk("fmt ", fmtBody(3, 1, 44100, 32)), okData), "unsupported format 0x0003 (IEEE float)"},
		{"unknown code", riff(chunk("fmt ", fmtBody(0x1234, 1, 44100, 16)), okData), "unsupported format 0x1234;"},
		{"extensible float", riff(chunk("fmt ", extBody(2, 48000, 32, 32, guid(3))), okData), "WAVE_FORMAT_EXTENSIBLE with sub-format 0x0003 (IEEE float)"},
		{"extensible bad GUID", riff(chunk("fmt ", extBody(1, 8000, 16, 16, pcm(16))), okData), "unsupported WAVE_FORMAT_EXTENSIBLE sub-format GUID"},
		{"extensible short", riff(chunk("fmt ", cat(fmtBody(formatExtensible, 1, 8000, 16), le16(0))), okData), "WAVE_FORMAT_EXTENSIBLE fmt chunk too short (18 bytes, want 40)"},
		{"extensible valid bits too many", riff(chunk("fmt ", extBody(1, 8000, 16, 24, guid(1))), okData), "24 valid bits in 16-bit samples"},
		{"zero channels", riff(chunk("fmt ", fmtBody(1, 0, 8000, 16)), okData), "unsupported channel count 0 (want 1..8)"},
		{"nine channels", riff(chunk("fmt ", fmtBody(1, 9, 8000, 16)), okData), "unsupported channel count 9"},
		{"rate too low", riff(chunk("fmt ", fmtBody(1, 1, 4000, 16)), okData), "unsupported sample rate 4000 Hz (want 8000..192000)"},
		{"rate too high", riff(chunk("fmt ", fmtBody(1, 1, 384000, 16)), okData), "unsupported sample rate 384000 Hz"},
		{"rate absurd", riff(chunk("fmt ", fmtBodyBA(1, 1, -1, 16, 2)), okData), "unsupported sample rate 4294967295 Hz"},
		{"12-bit", riff(chunk("fmt ", fmtBodyBA(1, 1, 8000, 12, 2)), okData), "unsupported sample size 12 bits"},
		{"block align mismatch", riff(chunk("fmt ", fmtBodyBA(1, 2, 8000, 16, 2)), okData), "block align 2 does not match 2 channels of 16 bits (want 4)"},
		{"fmt too short", riff(chunk("fmt ", fmtBody(1, 1, 8000, 16)[:14]), okData), "fmt chunk has implausible size 14 bytes"},
		{"fmt huge", riff(lyingChunk("fmt ", 1<<30, fmtBody(1, 1, 8000, 16))), "fmt chunk has implausible size 1073741824 bytes"},
		{"duplicate fmt", riff(okFmt, okFmt, okData), "duplicate fmt chunk"},
		{"truncated fmt", riff(lyingChunk("fmt ", 16, fmtBody(1, 1, 8000, 16)[:10])), "truncated file: incomplete fmt chunk"},
		{"truncated chunk header", riff(okFmt, []byte("dat")), "truncated file: incomplete chunk header"},
		{"truncated data", riff(okFmt, lyingChunk("data", 1000, pcm(10))), "truncated data chunk (10 of 1000 bytes)"},
		{"streaming size", riff(okFmt, lyingChunk("data", -1, pcm(10))), "data chunk of 4294967295 bytes exceeds the 64 MiB limit"},
		{"truncated LIST", riff(okFmt, lyingChunk("LIST", 100, pcm(10))), `truncated file: incomplete "LIST" chunk`},
	}
}

func TestParseWAV(t *testing.T) {
	for _, tc := range validWAVs() {
		t.Run(tc.name, func(t *testing.T) {
			c, err := ParseWAV(bytes.NewReader(tc.file))
			if err != nil {
				t.Fatal(err)
			}
			got := []int{c.SampleRate(), c.Channels(), c.BitsPerSample()}
			if diff := cmp.Diff([]int{tc.rate, tc.channels, tc.bits}, got); diff != "" {
				t.Errorf("rate, channels, bits (-want +got):\n%s", diff)
			}
			if !bytes.Equal(c.Data(), tc.data) {
				t.Errorf("data = %v, want %v", c.Data(), tc.data)
			}
			checkClip(t, c)
		})
	}
}

// checkClip checks a clip's invariants, for the parser tests and the fuzzer.
func checkClip(t *testing.T, c *Clip) {
	t.Helper()
	if err := checkFormat(c.SampleRate(), c.Channels(), c.BitsPerSample()); err != nil {
		t.Errorf("accepted clip has bad format: %v", err)
	}
	if c.BlockAlign() != c.Channels()*c.BitsPerSample()/8 {
		t.Errorf("BlockAlign %d for %d channels of %d bits", c.BlockAlign(), c.Channels(), c.BitsPerSample())
	}
	if c.Frames()*c.BlockAlign() != len(c.Data()) {
		t.Errorf("Frames %d × BlockAlign %d != %d data bytes", c.Frames(), c.BlockAlign(), len(c.Data()))
	}
	if len(c.Data()) > MaxDataSize {
		t.Errorf("%d data bytes exceed MaxDataSize", len(c.Data()))
	}
	if want := time.Duration(c.Frames()) * time.Second / time.Duration(c.SampleRate()); c.Duration() != want {
		t.Errorf("Duration %s, want %s", c.Duration(), want)
	}
}

func TestParseWAVErrors(t *testing.T) {
	for _, tc := range brokenWAVs() {
		t.Run(tc.name, func(t *testing.T) {
			c, err := ParseWAV(bytes.NewReader(tc.file))
			if err == nil {
				t.Fatalf("parsed %d Hz %d ch %d bits, want error containing %q", c.SampleRate(), c.Channels(), c.BitsPerSample(), tc.want)
			}
			if !strings.HasPrefix(err.Error(), "audio: wav: ") || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q, want \"audio: wav: ...%s...\"", err, tc.want)
			}
			if strings.Contains(tc.want, "truncated") && !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Errorf("error %q does not wrap io.ErrUnexpectedEOF", err)
			}
		})
	}
}

type failingReader struct {
	r   io.Reader
	err error
}

func (f *failingReader) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	if err == io.EOF {
		return n, f.err
	}
	return n, err
}

func TestParseWAVReadError(t *testing.T) {
	boom := errors.New("boom")
	file := riff(chunk("fmt ", fmtBody(1, 1, 8000, 16)), lyingChunk("data", 100, pcm(10)))
	_, err := ParseWAV(&failingReader{bytes.NewReader(file), boom})
	if !errors.Is(err, boom) || !strings.HasPrefix(err.Error(), "audio: wav: reading data chunk: ") {
		t.Errorf("error %v, want one wrapping the reader's error", err)
	}
}

// A header may declare a 64 MiB data chunk; memory must follow the bytes
// that actually arrive.
func TestParseWAVDoesNotTrustSizes(t *testing.T) {
	file := riff(chunk("fmt ", fmtBody(1, 1, 8000, 16)), lyingChunk("data", MaxDataSize, pcm(10)))
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err := ParseWAV(bytes.NewReader(file))
	runtime.ReadMemStats(&after)
	if err == nil || !strings.Contains(err.Error(), "truncated data chunk") {
		t.Errorf("error %v, want truncated data chunk", err)
	}
	if n := after.TotalAlloc - before.TotalAlloc; n > 4<<20 {
		t.Errorf("parsing allocated %d bytes for a 10-byte data chunk", n)
	}
}

func TestReadAtMostLarge(t *testing.T) {
	want := pcm(3<<20 + 5)
	got, err := readAtMost(bytes.NewReader(want), len(want))
	if err != nil || !bytes.Equal(got, want) {
		t.Errorf("readAtMost: %d bytes, %v; want %d bytes", len(got), err, len(want))
	}
}

func TestWriteWAVRoundTrip(t *testing.T) {
	for _, tc := range validWAVs() {
		t.Run(tc.name, func(t *testing.T) {
			c, err := ParseWAV(bytes.NewReader(tc.file))
			if err != nil {
				t.Fatal(err)
			}
			var b bytes.Buffer
			if err := c.WriteWAV(&b); err != nil {
				t.Fatal(err)
			}
			pad := len(c.Data()) % 2
			if b.Len() != 44+len(c.Data())+pad {
				t.Errorf("WriteWAV wrote %d bytes, want 44-byte header + %d + pad %d", b.Len(), len(c.Data()), pad)
			}
			if riffSize := binary.LittleEndian.Uint32(b.Bytes()[4:]); int(riffSize) != b.Len()-8 {
				t.Errorf("RIFF size %d, file is %d bytes", riffSize, b.Len())
			}
			c2, err := ParseWAV(&b)
			if err != nil {
				t.Fatal(err)
			}
			if c2.SampleRate() != c.SampleRate() || c2.Channels() != c.Channels() || c2.BitsPerSample() != c.BitsPerSample() || !bytes.Equal(c2.Data(), c.Data()) {
				t.Error("round trip changed the clip")
			}
		})
	}
}

func TestWriteWAVCanonicalHeader(t *testing.T) {
	c, err := NewClip(22050, 2, 16, pcm(8))
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := c.WriteWAV(&b); err != nil {
		t.Fatal(err)
	}
	want := cat([]byte("RIFF"), le32(36+8), []byte("WAVEfmt "), le32(16), fmtBody(1, 2, 22050, 16), []byte("data"), le32(8), pcm(8))
	if diff := cmp.Diff(want, b.Bytes()); diff != "" {
		t.Errorf("WriteWAV (-want +got):\n%s", diff)
	}
}

type failingWriter struct{ n int }

func (w *failingWriter) Write(p []byte) (int, error) {
	if w.n == 0 {
		return 0, errors.New("disk full")
	}
	w.n--
	return len(p), nil
}

func TestWriteWAVErrors(t *testing.T) {
	c, _ := NewClip(8000, 1, 8, pcm(3))
	for n := range 3 {
		if err := c.WriteWAV(&failingWriter{n}); err == nil || err.Error() != "audio: wav: write: disk full" {
			t.Errorf("failing at write %d: error %v", n, err)
		}
	}
	if err := (&Clip{}).WriteWAV(io.Discard); err == nil {
		t.Error("WriteWAV of the zero Clip succeeded")
	}
}

func TestNewClip(t *testing.T) {
	c, err := NewClip(48000, 2, 24, pcm(6*480))
	if err != nil {
		t.Fatal(err)
	}
	if c.Frames() != 480 || c.Duration() != 10*time.Millisecond || c.BlockAlign() != 6 {
		t.Errorf("Frames %d, Duration %s, BlockAlign %d", c.Frames(), c.Duration(), c.BlockAlign())
	}
	for _, tc := range []struct {
		rate, ch, bits int
		data           []byte
		want           string
	}{
		{8000, 1, 16, pcm(3), "audio: 3 bytes of PCM are not a whole number of 2-byte frames"},
		{8000, 0, 16, nil, "audio: unsupported channel count 0"},
		{7999, 1, 16, nil, "audio: unsupported sample rate 7999 Hz"},
		{8000, 1, 20, nil, "audio: unsupported sample size 20 bits"},
		{8000, 1, 8, make([]byte, MaxDataSize+1), "audio: 67108865 bytes of PCM exceed the 64 MiB limit"},
	} {
		if _, err := NewClip(tc.rate, tc.ch, tc.bits, tc.data); err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("NewClip(%d, %d, %d, %d bytes): error %v, want %q", tc.rate, tc.ch, tc.bits, len(tc.data), err, tc.want)
		}
	}
}

func TestZeroClip(t *testing.T) {
	var c Clip
	if c.Frames() != 0 || c.Duration() != 0 {
		t.Errorf("zero Clip: Frames %d, Duration %s", c.Frames(), c.Duration())
	}
}

func TestLoadWAV(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.wav")
	if err := os.WriteFile(good, validWAVs()[2].file, 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := LoadWAV(good)
	if err != nil || c.Frames() != 100 {
		t.Fatalf("LoadWAV: %v", err)
	}
	bad := filepath.Join(dir, "bad.wav")
	if err := os.WriteFile(bad, []byte("ID3\x04 mp3 really"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadWAV(bad); err == nil || err.Error() != `audio: wav: `+bad+`: not a RIFF file (starts with "ID3\x04")` {
		t.Errorf("LoadWAV(bad): %v", err)
	}
	_, err = LoadWAV(filepath.Join(dir, "missing.wav"))
	if !errors.Is(err, os.ErrNotExist) || !strings.HasPrefix(err.Error(), "audio: wav: open ") {
		t.Errorf("LoadWAV(missing): %v", err)
	}
}

func FuzzParseWAV(f *testing.F) {
	for _, tc := range validWAVs() {
		f.Add(tc.file)
	}
	for _, tc := range brokenWAVs() {
		f.Add(tc.file)
	}
	f.Add(callWAV[:200])
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseWAV(bytes.NewReader(b))
		if err != nil {
			if c != nil || !strings.HasPrefix(err.Error(), "audio: wav: ") {
				t.Fatalf("clip %v, error %q", c, err)
			}
			return
		}
		checkClip(t, c)
		var out bytes.Buffer
		if err := c.WriteWAV(&out); err != nil {
			t.Fatal(err)
		}
		c2, err := ParseWAV(&out)
		if err != nil {
			t.Fatalf("re-parsing WriteWAV output: %v", err)
		}
		if c2.SampleRate() != c.SampleRate() || c2.Channels() != c.Channels() || c2.BitsPerSample() != c.BitsPerSample() || !bytes.Equal(c2.Data(), c.Data()) {
			t.Fatal("round trip changed the clip")
		}
	})
}
