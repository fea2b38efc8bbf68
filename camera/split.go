package camera

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
)

// DefaultMaxFrame is the largest frame a Splitter returns unless told
// otherwise: far above any MJPEG camera's output (a 12 MP JPEG at high
// quality is about 5 MiB), small enough to bound memory.
const DefaultMaxFrame = 8 << 20

// ErrNotJPEG is returned by Splitter.Next when more than the maximum frame
// size of input went by without a JPEG start (FF D8): the producer is most
// likely writing something else, such as H.264. The splitter stays usable;
// it reports again after every further maxFrame bytes without a frame.
var ErrNotJPEG = errors.New("camera: input is not JPEG")

// splitBufSize is the read buffer: large enough that a pipe or socket read
// lands in it whole and a typical frame is scanned without refills.
const splitBufSize = 256 << 10

// JPEG markers the splitter treats specially.
const (
	mSOI = 0xD8
	mEOI = 0xD9
	mSOS = 0xDA
	mTEM = 0x01
)

// SplitterStats counts what a Splitter has seen.
type SplitterStats struct {
	// Frames is the number of frames returned.
	Frames uint64
	// Dropped counts frames that were started but not returned: larger
	// than the maximum, corrupt, or cut short by the start of another
	// frame.
	Dropped uint64
	// Garbage counts bytes outside frames (multipart headers, padding,
	// junk) that were skipped while looking for the next frame.
	Garbage uint64
}

// Splitter cuts a byte stream of concatenated JPEG images (the output of
// rpicam-vid --codec mjpeg, ffmpeg -f mjpeg, an MJPEG webcam, or a
// multipart/x-mixed-replace HTTP body) into whole frames.
//
// It follows the JPEG segment structure instead of searching for the EOI
// bytes: segments with a length (APPn, DQT, SOF, DHT, COM, ...) are skipped
// by that length, so an EXIF thumbnail inside APP1, which is a complete
// JPEG of its own, does not end the frame; inside entropy-coded data FF 00
// (stuffing) and FF D0–D7 (restart markers) are data and any other marker
// ends the scan, so progressive images with many scans come out whole.
//
// Anything between frames is skipped up to the next SOI (FF D8), which
// also steps over multipart boundaries and headers. A frame that is larger
// than the maximum, corrupt, or cut short by the start of the next frame is
// dropped and counted in Stats rather than reported as an error, because
// a live stream recovers by itself at the next frame.
//
// A Splitter is not safe for concurrent use.
type Splitter struct {
	r    *bufio.Reader
	max  int
	buf  []byte // frame being assembled; reused, copied out when complete
	size int    // size of the frame so far, also once it no longer fits buf
	// sinceSOI counts garbage bytes since the last frame start, for
	// ErrNotJPEG.
	sinceSOI int
	stats    SplitterStats
}

// NewSplitter returns a Splitter reading from r that returns frames of at
// most maxFrame bytes (DefaultMaxFrame if maxFrame <= 0).
func NewSplitter(r io.Reader, maxFrame int) *Splitter {
	if maxFrame <= 0 {
		maxFrame = DefaultMaxFrame
	}
	// No point in buffering more than a frame.
	size := min(splitBufSize, max(maxFrame, 4096))
	return &Splitter{r: bufio.NewReaderSize(r, size), max: maxFrame}
}

// Stats returns the counters so far.
func (s *Splitter) Stats() SplitterStats { return s.stats }

// errRestart and errCorrupt end the current frame early; Next recovers.
var (
	errRestart = errors.New("frame cut short by SOI")
	errCorrupt = errors.New("corrupt frame")
)

// Next returns the next whole frame, from SOI to EOI inclusive. The slice
// is newly allocated and exactly sized; the Splitter never touches it
// again, so it may be shared.
//
// Next returns io.EOF when the input ends between frames,
// io.ErrUnexpectedEOF when it ends inside a frame, ErrNotJPEG (see there),
// and the reader's errors as they are. After an error other than io.EOF,
// Next may be called again: the partial frame is dropped and the splitter
// resynchronises at the next SOI.
func (s *Splitter) Next() ([]byte, error) {
	for {
		if err := s.findSOI(); err != nil {
			return nil, err
		}
		err := s.readFrame()
		for err == errRestart {
			// The frame was cut short and another began: its SOI is
			// already consumed, so carry on with that frame.
			s.stats.Dropped++
			s.startFrame()
			err = s.readFrame()
		}
		switch {
		case err == nil:
			if s.size > s.max {
				s.stats.Dropped++
				continue
			}
			s.stats.Frames++
			f := make([]byte, len(s.buf))
			copy(f, s.buf)
			return f, nil
		case err == errCorrupt:
			s.stats.Dropped++
			continue
		case err == io.EOF:
			s.stats.Dropped++
			return nil, io.ErrUnexpectedEOF
		default:
			s.stats.Dropped++
			return nil, err
		}
	}
}

// findSOI skips input up to and including the next FF D8 and starts a
// frame.
func (s *Splitter) findSOI() error {
	for {
		b, err := s.peekBuffered()
		if err != nil {
			return err
		}
		i := bytes.IndexByte(b, 0xFF)
		if i < 0 {
			if err := s.skipGarbage(len(b)); err != nil {
				return err
			}
			continue
		}
		if err := s.skipGarbage(i); err != nil {
			return err
		}
		p, err := s.r.Peek(2)
		if err != nil {
			if err == io.EOF {
				// A lone FF at the very end.
				_, _ = s.r.Discard(len(p))
				s.stats.Garbage += uint64(len(p))
			}
			return err
		}
		if p[1] == mSOI {
			_, _ = s.r.Discard(2)
			s.sinceSOI = 0
			s.startFrame()
			return nil
		}
		if err := s.skipGarbage(1); err != nil {
			return err
		}
	}
}

func (s *Splitter) skipGarbage(n int) error {
	_, _ = s.r.Discard(n) // n bytes are buffered
	s.stats.Garbage += uint64(n)
	s.sinceSOI += n
	if s.sinceSOI > s.max {
		s.sinceSOI = 0
		return fmt.Errorf("%w: %d bytes without a JPEG start marker (FF D8)", ErrNotJPEG, s.max)
	}
	return nil
}

func (s *Splitter) startFrame() {
	s.buf = append(s.buf[:0], 0xFF, mSOI)
	s.size = 2
}

// readFrame reads the segments of a frame after its SOI, up to and
// including EOI.
func (s *Splitter) readFrame() error {
	for {
		m, err := s.readMarker()
		if err != nil {
			return err
		}
		switch {
		case m == mEOI:
			return nil
		case m == mSOI:
			return errRestart
		case m == mTEM || m >= 0xD0 && m <= 0xD7:
			// Standalone markers: no length, no payload.
			continue
		case m == 0x00:
			return errCorrupt
		}
		p, err := s.r.Peek(2)
		if err != nil {
			return err
		}
		n := int(p[0])<<8 | int(p[1])
		if n < 2 {
			return errCorrupt
		}
		if err := s.copyN(n); err != nil {
			return err
		}
		if m == mSOS {
			if err := s.scan(); err != nil {
				return err
			}
		}
	}
}

// readMarker consumes the next marker, FF followed by the marker code with
// any fill bytes (FF) in between, and returns the code. Anything else where
// a marker must be means the frame is corrupt.
func (s *Splitter) readMarker() (byte, error) {
	b, err := s.r.ReadByte()
	if err != nil {
		return 0, err
	}
	if b != 0xFF {
		return 0, errCorrupt
	}
	for {
		m, err := s.r.ReadByte()
		if err != nil {
			return 0, err
		}
		if m == 0xFF {
			continue
		}
		if m != mSOI {
			s.append([]byte{0xFF, m})
		}
		return m, nil
	}
}

// scan copies entropy-coded data up to, not including, the marker that
// ends it.
func (s *Splitter) scan() error {
	for {
		b, err := s.peekBuffered()
		if err != nil {
			return err
		}
		i := bytes.IndexByte(b, 0xFF)
		if i < 0 {
			s.append(b)
			_, _ = s.r.Discard(len(b))
			continue
		}
		s.append(b[:i])
		_, _ = s.r.Discard(i)
		p, err := s.r.Peek(2)
		if err != nil {
			return err
		}
		switch m := p[1]; {
		case m == 0x00 || m >= 0xD0 && m <= 0xD7:
			// Byte stuffing or a restart marker: data.
			s.append(p)
			_, _ = s.r.Discard(2)
		case m == 0xFF:
			// A fill byte before a marker.
			_, _ = s.r.Discard(1)
		default:
			return nil
		}
	}
}

// copyN copies n bytes of segment into the frame.
func (s *Splitter) copyN(n int) error {
	for n > 0 {
		b, err := s.peekBuffered()
		if err != nil {
			return err
		}
		if len(b) > n {
			b = b[:n]
		}
		s.append(b)
		_, _ = s.r.Discard(len(b))
		n -= len(b)
	}
	return nil
}

// append adds b to the frame unless the frame is already too large, in
// which case only its size is tracked so that it can be skipped whole.
func (s *Splitter) append(b []byte) {
	s.size += len(b)
	if s.size <= s.max {
		s.buf = append(s.buf, b...)
	}
}

// peekBuffered returns the buffered input, reading more if there is none.
// The result is valid until the next read.
func (s *Splitter) peekBuffered() ([]byte, error) {
	n := s.r.Buffered()
	if n == 0 {
		if _, err := s.r.Peek(1); err != nil {
			return nil, err
		}
		n = s.r.Buffered()
	}
	return s.r.Peek(n)
}
