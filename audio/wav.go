package audio

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"time"
)

// MaxDataSize is the largest PCM payload a Clip may hold: 64 MiB, about six
// minutes of CD-quality stereo. It bounds what ParseWAV allocates whatever
// sizes a file declares.
const MaxDataSize = 64 << 20

const (
	minRate     = 8000
	maxRate     = 192000
	maxChannels = 8
	// maxFmtSize bounds the fmt chunk we read into memory: a PCM fmt chunk
	// is 16 to 40 bytes; anything much larger is corrupt.
	maxFmtSize = 1024
	// canonicalHeaderSize is the size of the header WriteWAV writes.
	canonicalHeaderSize = 44
)

const (
	formatPCM        = 0x0001
	formatExtensible = 0xFFFE
)

// pcmGUIDTail is KSDATAFORMAT_SUBTYPE_PCM after its first two bytes: the
// sub-format GUID of WAVE_FORMAT_EXTENSIBLE is the old format code followed
// by these fixed bytes.
var pcmGUIDTail = []byte{0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x80, 0x00, 0x00, 0xAA, 0x00, 0x38, 0x9B, 0x71}

// formatNames names the WAVE format codes people actually run into, so that
// an error says "MP3" rather than only a number.
var formatNames = map[uint16]string{
	0x0002: "Microsoft ADPCM",
	0x0003: "IEEE float",
	0x0006: "A-law",
	0x0007: "µ-law",
	0x0011: "IMA ADPCM",
	0x0031: "GSM 6.10",
	0x0050: "MPEG",
	0x0055: "MP3",
	0x00FF: "AAC",
	0x674F: "Ogg Vorbis",
	0xF1AC: "FLAC",
}

// Clip is a sound held in memory as uncompressed little-endian PCM with
// interleaved channels: unsigned 8-bit, or signed 16, 24 or 32-bit samples,
// as in WAV files. A Clip is immutable and safe to play from several
// goroutines and players at once.
type Clip struct {
	rate     int
	channels int
	bits     int
	data     []byte
}

// NewClip returns a clip over raw PCM data in WAV sample layout (see Clip).
// rate must be 8000..192000 Hz, channels 1..8, bits 8, 16, 24 or 32, and
// data a whole number of frames of at most MaxDataSize bytes. The clip keeps
// data without copying it: the caller must not modify it afterwards.
func NewClip(rate, channels, bits int, data []byte) (*Clip, error) {
	if err := checkFormat(rate, channels, bits); err != nil {
		return nil, fmt.Errorf("audio: %w", err)
	}
	c := &Clip{rate: rate, channels: channels, bits: bits, data: data}
	if len(data) > MaxDataSize {
		return nil, fmt.Errorf("audio: %d bytes of PCM exceed the %d MiB limit", len(data), MaxDataSize>>20)
	}
	if len(data)%c.BlockAlign() != 0 {
		return nil, fmt.Errorf("audio: %d bytes of PCM are not a whole number of %d-byte frames", len(data), c.BlockAlign())
	}
	return c, nil
}

func checkFormat(rate, channels, bits int) error {
	if channels < 1 || channels > maxChannels {
		return fmt.Errorf("unsupported channel count %d (want 1..%d)", channels, maxChannels)
	}
	if rate < minRate || rate > maxRate {
		return fmt.Errorf("unsupported sample rate %d Hz (want %d..%d)", rate, minRate, maxRate)
	}
	switch bits {
	case 8, 16, 24, 32:
	default:
		return fmt.Errorf("unsupported sample size %d bits (want 8, 16, 24 or 32)", bits)
	}
	return nil
}

// SampleRate returns the number of frames per second.
func (c *Clip) SampleRate() int { return c.rate }

// Channels returns the number of interleaved channels (1 mono, 2 stereo).
func (c *Clip) Channels() int { return c.channels }

// BitsPerSample returns the size of one sample: 8, 16, 24 or 32.
func (c *Clip) BitsPerSample() int { return c.bits }

// BlockAlign returns the size in bytes of one frame (one sample of every
// channel).
func (c *Clip) BlockAlign() int { return c.channels * c.bits / 8 }

// Frames returns the number of frames in the clip.
func (c *Clip) Frames() int {
	if c.BlockAlign() == 0 {
		return 0
	}
	return len(c.data) / c.BlockAlign()
}

// Duration returns how long the clip plays.
func (c *Clip) Duration() time.Duration {
	if c.rate == 0 {
		return 0
	}
	return time.Duration(int64(c.Frames()) * int64(time.Second) / int64(c.rate))
}

// Data returns the raw PCM bytes. They are shared, not copied: do not modify
// them.
func (c *Clip) Data() []byte { return c.data }

// valid reports whether c was made by this package (the zero Clip is not).
func (c *Clip) valid() bool { return c != nil && c.rate != 0 }

// WriteWAV writes the clip as a canonical WAV file: a 44-byte header (PCM
// format 1) followed by the data and, when the data has an odd length, the
// pad byte RIFF requires.
func (c *Clip) WriteWAV(w io.Writer) error {
	if !c.valid() {
		return errors.New("audio: wav: write: invalid clip")
	}
	pad := len(c.data) & 1
	var h [canonicalHeaderSize]byte
	le := binary.LittleEndian
	copy(h[0:], "RIFF")
	le.PutUint32(h[4:], uint32(36+len(c.data)+pad))
	copy(h[8:], "WAVEfmt ")
	le.PutUint32(h[16:], 16)
	le.PutUint16(h[20:], formatPCM)
	le.PutUint16(h[22:], uint16(c.channels))
	le.PutUint32(h[24:], uint32(c.rate))
	le.PutUint32(h[28:], uint32(c.rate*c.BlockAlign()))
	le.PutUint16(h[32:], uint16(c.BlockAlign()))
	le.PutUint16(h[34:], uint16(c.bits))
	copy(h[36:], "data")
	le.PutUint32(h[40:], uint32(len(c.data)))
	if _, err := w.Write(h[:]); err != nil {
		return fmt.Errorf("audio: wav: write: %w", err)
	}
	if _, err := w.Write(c.data); err != nil {
		return fmt.Errorf("audio: wav: write: %w", err)
	}
	if pad != 0 {
		if _, err := w.Write([]byte{0}); err != nil {
			return fmt.Errorf("audio: wav: write: %w", err)
		}
	}
	return nil
}

// LoadWAV reads a WAV file; see ParseWAV.
func LoadWAV(path string) (*Clip, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("audio: wav: %w", err)
	}
	defer f.Close()
	c, err := parseWAV(f)
	if err != nil {
		return nil, fmt.Errorf("audio: wav: %s: %w", path, err)
	}
	return c, nil
}

// ParseWAV reads a RIFF/WAVE stream holding integer PCM: format 1, or
// WAVE_FORMAT_EXTENSIBLE with the PCM sub-format; 8, 16, 24 or 32-bit
// samples; 1 to 8 channels; 8000 to 192000 Hz. Chunks other than fmt and
// data (LIST, fact, cue...) are skipped, and reading stops at the end of the
// data chunk.
//
// Declared sizes are not trusted: memory grows only as data actually
// arrives, and a data chunk over MaxDataSize is refused. A data chunk shorter
// than declared is an error (the file was cut), but a trailing partial frame
// within the declared size is dropped, as players do, since it cannot be
// played. The RIFF size field is ignored because streaming writers often
// leave it wrong.
//
// Errors start with "audio: wav: "; a cut file's error wraps
// io.ErrUnexpectedEOF.
func ParseWAV(r io.Reader) (*Clip, error) {
	c, err := parseWAV(r)
	if err != nil {
		return nil, fmt.Errorf("audio: wav: %w", err)
	}
	return c, nil
}

func parseWAV(r io.Reader) (*Clip, error) {
	var hdr [12]byte
	if n, err := io.ReadFull(r, hdr[:]); err != nil {
		if n == 0 && err == io.EOF {
			return nil, errors.New("empty input")
		}
		return nil, readErr("RIFF header", err)
	}
	switch id := string(hdr[0:4]); id {
	case "RIFF":
	case "RIFX", "RF64":
		return nil, fmt.Errorf("%s files are not supported, only little-endian RIFF", id)
	default:
		return nil, fmt.Errorf("not a RIFF file (starts with %q)", hdr[0:4])
	}
	if string(hdr[8:12]) != "WAVE" {
		return nil, fmt.Errorf("not a WAVE file (RIFF form type %q)", hdr[8:12])
	}
	var f *wavFormat
	for {
		var ch [8]byte
		if n, err := io.ReadFull(r, ch[:]); err != nil {
			if n == 0 && err == io.EOF {
				if f == nil {
					return nil, errors.New("missing fmt chunk")
				}
				return nil, errors.New("missing data chunk")
			}
			return nil, readErr("chunk header", err)
		}
		id, size := ch[0:4], binary.LittleEndian.Uint32(ch[4:])
		switch string(id) {
		case "fmt ":
			if f != nil {
				return nil, errors.New("duplicate fmt chunk")
			}
			if size < 16 || size > maxFmtSize {
				return nil, fmt.Errorf("fmt chunk has implausible size %d bytes", size)
			}
			b := make([]byte, size)
			if _, err := io.ReadFull(r, b); err != nil {
				return nil, readErr("fmt chunk", err)
			}
			var err error
			if f, err = parseFmt(b); err != nil {
				return nil, err
			}
			if size&1 != 0 {
				if err := skip(r, 1, "fmt chunk pad byte"); err != nil {
					return nil, err
				}
			}
		case "data":
			if f == nil {
				return nil, errors.New("data chunk before fmt chunk")
			}
			if size > MaxDataSize {
				return nil, fmt.Errorf("data chunk of %d bytes exceeds the %d MiB limit", size, MaxDataSize>>20)
			}
			data, err := readAtMost(r, int(size))
			if err != nil {
				return nil, fmt.Errorf("reading data chunk: %w", err)
			}
			if len(data) < int(size) {
				return nil, fmt.Errorf("truncated data chunk (%d of %d bytes): %w", len(data), size, io.ErrUnexpectedEOF)
			}
			ba := f.channels * f.bits / 8
			return &Clip{rate: f.rate, channels: f.channels, bits: f.bits, data: data[:len(data)-len(data)%ba]}, nil
		default:
			if err := skip(r, int64(size)+int64(size&1), fmt.Sprintf("%q chunk", id)); err != nil {
				return nil, err
			}
		}
	}
}

type wavFormat struct {
	rate, channels, bits int
}

func parseFmt(b []byte) (*wavFormat, error) {
	le := binary.LittleEndian
	tag := le.Uint16(b[0:])
	channels := int(le.Uint16(b[2:]))
	rate := le.Uint32(b[4:])
	blockAlign := int(le.Uint16(b[12:]))
	bits := int(le.Uint16(b[14:]))
	if tag == formatExtensible {
		if len(b) < 40 {
			return nil, fmt.Errorf("WAVE_FORMAT_EXTENSIBLE fmt chunk too short (%d bytes, want 40)", len(b))
		}
		valid := int(le.Uint16(b[18:]))
		guid := b[24:40]
		if !bytes.Equal(guid[2:], pcmGUIDTail) {
			return nil, fmt.Errorf("unsupported WAVE_FORMAT_EXTENSIBLE sub-format GUID %x", guid)
		}
		if sub := le.Uint16(guid); sub != formatPCM {
			return nil, fmt.Errorf("unsupported format: WAVE_FORMAT_EXTENSIBLE with sub-format %s; only integer PCM is supported", formatName(sub))
		}
		// Valid bits below the container size (20 bits in 24) still play
		// as the container size; more than the container is nonsense.
		if valid > bits {
			return nil, fmt.Errorf("%d valid bits in %d-bit samples", valid, bits)
		}
	} else if tag != formatPCM {
		return nil, fmt.Errorf("unsupported format %s; only integer PCM is supported", formatName(tag))
	}
	if rate > maxRate {
		// Checked before the int conversion so a huge uint32 cannot wrap
		// on 32-bit platforms.
		return nil, fmt.Errorf("unsupported sample rate %d Hz (want %d..%d)", rate, minRate, maxRate)
	}
	if err := checkFormat(int(rate), channels, bits); err != nil {
		return nil, err
	}
	if want := channels * bits / 8; blockAlign != want {
		return nil, fmt.Errorf("block align %d does not match %d channels of %d bits (want %d)", blockAlign, channels, bits, want)
	}
	return &wavFormat{rate: int(rate), channels: channels, bits: bits}, nil
}

func formatName(code uint16) string {
	if n, ok := formatNames[code]; ok {
		return fmt.Sprintf("0x%04X (%s)", code, n)
	}
	return fmt.Sprintf("0x%04X", code)
}

// readErr describes a failed io.ReadFull of what; a short read means the
// file was cut.
func readErr(what string, err error) error {
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return fmt.Errorf("truncated file: incomplete %s: %w", what, io.ErrUnexpectedEOF)
	}
	return fmt.Errorf("reading %s: %w", what, err)
}

func skip(r io.Reader, n int64, what string) error {
	if _, err := io.CopyN(io.Discard, r, n); err != nil {
		return readErr(what, err)
	}
	return nil
}

// readAtMost reads up to n bytes. It preallocates at most 1 MiB, so a
// header that lies about the size costs memory only for bytes that exist.
func readAtMost(r io.Reader, n int) ([]byte, error) {
	buf := make([]byte, 0, min(n, 1<<20))
	for len(buf) < n {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		m, err := r.Read(buf[len(buf):min(cap(buf), n)])
		buf = buf[:len(buf)+m]
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
	}
	return buf, nil
}
