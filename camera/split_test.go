package camera

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"io"
	"math/rand"
	"mime/multipart"
	"net/textproto"
	"os"
	"path/filepath"
	"testing"
	"testing/iotest"

	"github.com/google/go-cmp/cmp"
)

// testJPEG encodes a w×h picture that differs with seed.
func testJPEG(tb testing.TB, w, h, seed int) []byte {
	tb.Helper()
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			img.Set(x, y, color.RGBA{uint8(x*7 + seed*40), uint8(y*5 + seed*13), uint8((x + y + seed) * 3), 255})
		}
	}
	var b bytes.Buffer
	if err := jpeg.Encode(&b, img, &jpeg.Options{Quality: 75}); err != nil {
		tb.Fatal(err)
	}
	return b.Bytes()
}

// exifJPEG inserts after the SOI of img an EXIF APP1 segment whose IFD1
// holds thumb, as cameras and phones write them: the thumbnail is a whole
// JPEG, SOI to EOI, inside the frame.
func exifJPEG(tb testing.TB, img, thumb []byte) []byte {
	tb.Helper()
	le := binary.LittleEndian
	tiff := []byte("II*\x00")
	tiff = le.AppendUint32(tiff, 8) // IFD0
	tiff = le.AppendUint16(tiff, 0) // no entries
	tiff = le.AppendUint32(tiff, 14)
	// IFD1: JPEGInterchangeFormat (offset) and ...Length, then no next IFD.
	thumbAt := uint32(14 + 2 + 2*12 + 4)
	tiff = le.AppendUint16(tiff, 2)
	for _, e := range [][2]uint32{{0x0201, thumbAt}, {0x0202, uint32(len(thumb))}} {
		tiff = le.AppendUint16(tiff, uint16(e[0]))
		tiff = le.AppendUint16(tiff, 4) // LONG
		tiff = le.AppendUint32(tiff, 1)
		tiff = le.AppendUint32(tiff, e[1])
	}
	tiff = le.AppendUint32(tiff, 0)
	tiff = append(tiff, thumb...)
	payload := append([]byte("Exif\x00\x00"), tiff...)
	if len(payload)+2 > 0xFFFF {
		tb.Fatalf("thumbnail too large for APP1: %d bytes", len(thumb))
	}
	seg := []byte{0xFF, 0xE1, byte((len(payload) + 2) >> 8), byte(len(payload) + 2)}
	out := append([]byte{0xFF, 0xD8}, seg...)
	out = append(out, payload...)
	return append(out, img[2:]...)
}

func readTestdata(tb testing.TB, name string) []byte {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// splitAll returns every frame Next yields up to io.EOF; any other error
// fails the test.
func splitAll(t *testing.T, r io.Reader, max int) ([][]byte, *Splitter) {
	t.Helper()
	s := NewSplitter(r, max)
	var frames [][]byte
	for {
		f, err := s.Next()
		if err == io.EOF {
			return frames, s
		}
		if err != nil {
			t.Fatalf("Next after %d frames: %v", len(frames), err)
		}
		frames = append(frames, f)
	}
}

func checkDecodes(t *testing.T, f []byte, w, h int) {
	t.Helper()
	cfg, err := jpeg.DecodeConfig(bytes.NewReader(f))
	if err != nil {
		t.Fatalf("frame does not decode: %v", err)
	}
	if cfg.Width != w || cfg.Height != h {
		t.Errorf("frame is %dx%d, want %dx%d", cfg.Width, cfg.Height, w, h)
	}
	if _, err := jpeg.Decode(bytes.NewReader(f)); err != nil {
		t.Errorf("frame does not decode: %v", err)
	}
}

func TestSplitterKinds(t *testing.T) {
	plain := testJPEG(t, 40, 30, 1)
	thumb := testJPEG(t, 8, 8, 2)
	exif := exifJPEG(t, testJPEG(t, 48, 32, 3), thumb)
	progressive := readTestdata(t, "progressive.jpg")
	restart := readTestdata(t, "restart.jpg")
	want := [][]byte{plain, exif, progressive, restart, plain}

	readers := map[string]func(io.Reader) io.Reader{
		"whole":    func(r io.Reader) io.Reader { return r },
		"one byte": iotest.OneByteReader,
		"half":     iotest.HalfReader,
		"data+err": iotest.DataErrReader,
	}
	for name, wrap := range readers {
		t.Run(name, func(t *testing.T) {
			frames, s := splitAll(t, wrap(bytes.NewReader(bytes.Join(want, nil))), 0)
			if diff := cmp.Diff(want, frames); diff != "" {
				t.Fatalf("frames differ (-want +got):\n%s", diff)
			}
			if st := s.Stats(); st != (SplitterStats{Frames: 5}) {
				t.Errorf("stats = %+v", st)
			}
		})
	}
	checkDecodes(t, exif, 48, 32)
	checkDecodes(t, progressive, 96, 64)
	checkDecodes(t, restart, 96, 64)
}

// The thumbnail inside an EXIF segment is a complete JPEG; a splitter that
// searched for FF D9 would end the frame at the thumbnail's EOI.
func TestSplitterEXIFThumbnail(t *testing.T) {
	thumb := testJPEG(t, 16, 16, 4)
	f := exifJPEG(t, testJPEG(t, 64, 48, 5), thumb)
	if i := bytes.Index(f, []byte{0xFF, 0xD9}); i >= len(f)-2 {
		t.Fatal("test frame has no early EOI")
	}
	frames, _ := splitAll(t, bytes.NewReader(append(append([]byte{}, f...), f...)), 0)
	if len(frames) != 2 || !bytes.Equal(frames[0], f) || !bytes.Equal(frames[1], f) {
		t.Fatalf("got %d frames of sizes %v, want 2 of %d bytes", len(frames), sizes(frames), len(f))
	}
}

func sizes(frames [][]byte) []int {
	var n []int
	for _, f := range frames {
		n = append(n, len(f))
	}
	return n
}

func TestSplitterGarbage(t *testing.T) {
	a, b := testJPEG(t, 32, 24, 6), testJPEG(t, 24, 32, 7)
	var in bytes.Buffer
	in.WriteString("junk\xff\xff\xd9\xff")
	in.Write(a)
	in.WriteString("\x00\x00\xff\x00\xff\xd9 more junk \xff")
	in.Write(b)
	in.WriteString("\r\n--end--\r\n")
	frames, s := splitAll(t, &in, 0)
	if diff := cmp.Diff([][]byte{a, b}, frames); diff != "" {
		t.Fatalf("frames differ (-want +got):\n%s", diff)
	}
	st := s.Stats()
	if st.Frames != 2 || st.Dropped != 0 || st.Garbage != 8+18+11 {
		t.Errorf("stats = %+v, want 2 frames, 0 dropped, 37 bytes of garbage", st)
	}
}

// A multipart/x-mixed-replace body, as an MJPEG HTTP camera sends it, is
// split by skipping the part headers as garbage.
func TestSplitterMultipart(t *testing.T) {
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	var want [][]byte
	for i := range 4 {
		f := testJPEG(t, 32, 32, i)
		want = append(want, f)
		h := textproto.MIMEHeader{}
		h.Set("Content-Type", "image/jpeg")
		h.Set("Content-Length", fmt.Sprint(len(f)))
		pw, err := mw.CreatePart(h)
		if err != nil {
			t.Fatal(err)
		}
		pw.Write(f)
	}
	mw.Close()
	frames, _ := splitAll(t, &body, 0)
	if diff := cmp.Diff(want, frames); diff != "" {
		t.Fatalf("frames differ (-want +got):\n%s", diff)
	}
}

// A frame cut short (a camera restarted, a pipe lost bytes) is dropped and
// the splitter picks up the frame after it, when the cut is at a segment
// boundary or in the entropy-coded data. A cut inside a segment with a
// length may take the next frame with it (the length, read from bytes that
// are no longer there, swallows it): JPEG has no way to tell.
func TestSplitterTruncated(t *testing.T) {
	a := exifJPEG(t, testJPEG(t, 24, 16, 8), testJPEG(t, 8, 8, 9))
	b, c := testJPEG(t, 16, 24, 10), testJPEG(t, 16, 16, 11)
	safe := safeCuts(t, a)
	for cut := 1; cut < len(a); cut++ {
		in := bytes.Join([][]byte{a[:cut], b, c}, nil)
		s := NewSplitter(bytes.NewReader(in), 0)
		var got [][]byte
		for {
			f, err := s.Next()
			if err == io.EOF {
				break
			}
			if err == io.ErrUnexpectedEOF && !safe[cut] {
				continue
			}
			if err != nil {
				t.Fatalf("cut at %d: %v", cut, err)
			}
			if f[0] != 0xFF || f[1] != 0xD8 || f[len(f)-2] != 0xFF || f[len(f)-1] != 0xD9 {
				t.Fatalf("cut at %d: frame is not SOI..EOI", cut)
			}
			got = append(got, f)
		}
		if !safe[cut] {
			continue
		}
		if diff := cmp.Diff([][]byte{b, c}, got); diff != "" {
			t.Fatalf("cut at %d: frames differ (-want +got):\n%s", cut, diff)
		}
		if st := s.Stats(); cut >= 2 && st.Dropped != 1 {
			t.Errorf("cut at %d: stats %+v, want 1 dropped", cut, st)
		}
	}
}

// safeCuts marks the offsets of frame f that are the start of a segment or
// inside entropy-coded data.
func safeCuts(t *testing.T, f []byte) map[int]bool {
	safe := map[int]bool{1: true, 2: true}
	i := 2
	for i < len(f)-2 {
		safe[i] = true
		m := f[i+1]
		n := int(f[i+2])<<8 | int(f[i+3])
		i += 2 + n
		if m == mSOS {
			for ; i < len(f)-2; i++ {
				safe[i] = true
			}
		}
	}
	if len(safe) < 20 {
		t.Fatalf("only %d safe cuts in %d bytes", len(safe), len(f))
	}
	return safe
}

func TestSplitterEnd(t *testing.T) {
	a := testJPEG(t, 16, 16, 12)
	s := NewSplitter(bytes.NewReader(nil), 0)
	if _, err := s.Next(); err != io.EOF {
		t.Errorf("empty input: err = %v, want io.EOF", err)
	}
	s = NewSplitter(bytes.NewReader(append(append([]byte{}, a...), a[:len(a)/2]...)), 0)
	if f, err := s.Next(); err != nil || !bytes.Equal(f, a) {
		t.Fatalf("first frame: %v", err)
	}
	if _, err := s.Next(); err != io.ErrUnexpectedEOF {
		t.Errorf("truncated last frame: err = %v, want io.ErrUnexpectedEOF", err)
	}
	if _, err := s.Next(); err != io.EOF {
		t.Errorf("after the end: err = %v, want io.EOF", err)
	}
	if st := s.Stats(); st.Frames != 1 || st.Dropped != 1 {
		t.Errorf("stats = %+v", st)
	}
}

func TestSplitterMaxFrame(t *testing.T) {
	small, big := testJPEG(t, 16, 16, 13), testJPEG(t, 128, 128, 14)
	max := len(small) + 10
	if len(big) <= max {
		t.Fatal("big frame not big")
	}
	frames, s := splitAll(t, bytes.NewReader(bytes.Join([][]byte{small, big, small, big, big, small}, nil)), max)
	if diff := cmp.Diff([][]byte{small, small, small}, frames); diff != "" {
		t.Fatalf("frames differ (-want +got):\n%s", diff)
	}
	if st := s.Stats(); st.Dropped != 3 || st.Garbage != 0 {
		t.Errorf("stats = %+v, want 3 dropped, no garbage", st)
	}
	if cap(s.buf) > 2*max {
		t.Errorf("splitter buffer grew to %d bytes for a maximum frame of %d", cap(s.buf), max)
	}
}

func TestSplitterExactSize(t *testing.T) {
	a, b := testJPEG(t, 64, 64, 15), testJPEG(t, 16, 16, 16)
	s := NewSplitter(bytes.NewReader(append(append([]byte{}, a...), b...)), 0)
	f1, _ := s.Next()
	f2, _ := s.Next()
	if len(f1) != len(a) || cap(f1) != len(a) || cap(f2) != len(b) {
		t.Errorf("len/cap = %d/%d and %d/%d, want %d and %d", len(f1), cap(f1), len(f2), cap(f2), len(a), len(b))
	}
	if !bytes.Equal(f1, a) {
		t.Error("first frame changed by reading the second")
	}
}

func TestSplitterNotJPEG(t *testing.T) {
	in := bytes.Repeat([]byte{0, 0, 0, 1, 0x65, 0xFF, 0x88}, 1000) // H.264-ish
	a := testJPEG(t, 16, 16, 17)
	s := NewSplitter(io.MultiReader(bytes.NewReader(in), bytes.NewReader(a)), 2000)
	var notJPEG int
	for {
		f, err := s.Next()
		if errors.Is(err, ErrNotJPEG) {
			notJPEG++
			continue
		}
		if err != nil {
			t.Fatalf("Next: %v", err)
		}
		if !bytes.Equal(f, a) {
			t.Fatal("wrong frame")
		}
		break
	}
	if notJPEG != 3 {
		t.Errorf("ErrNotJPEG reported %d times for 7000 bytes with max 2000, want 3", notJPEG)
	}
}

// errAfter returns err once after n bytes, then carries on with r.
type errAfter struct {
	r   io.Reader
	n   int
	err error
}

func (e *errAfter) Read(p []byte) (int, error) {
	if e.n == 0 && e.err != nil {
		err := e.err
		e.err = nil
		return 0, err
	}
	if e.err != nil && len(p) > e.n {
		p = p[:e.n]
	}
	n, err := e.r.Read(p)
	e.n -= n
	return n, err
}

// After a read error (such as a deadline), the partial frame is dropped
// and the splitter resynchronises.
func TestSplitterResumeAfterError(t *testing.T) {
	a, b := testJPEG(t, 16, 16, 18), testJPEG(t, 24, 24, 19)
	boom := errors.New("boom")
	for _, at := range []int{0, len(a), len(a) + 5, len(a) + len(b)/2} {
		r := &errAfter{r: bytes.NewReader(bytes.Join([][]byte{a, b, a}, nil)), n: at, err: boom}
		s := NewSplitter(r, 0)
		var got [][]byte
		var errs int
		for {
			f, err := s.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				if err != boom {
					t.Fatalf("error at %d: %v", at, err)
				}
				errs++
				continue
			}
			got = append(got, f)
		}
		if errs != 1 || len(got) < 2 || !bytes.Equal(got[len(got)-1], a) {
			t.Errorf("error at %d: %d errors, frames %v", at, errs, sizes(got))
		}
	}
}

func FuzzSplitter(f *testing.F) {
	plain := testJPEG(f, 16, 16, 1)
	exif := exifJPEG(f, testJPEG(f, 16, 8, 2), testJPEG(f, 8, 8, 3))
	progressive := readTestdata(f, "progressive.jpg")
	restart := readTestdata(f, "restart.jpg")
	seeds := [][]byte{
		plain,
		exif,
		progressive,
		restart,
		bytes.Join([][]byte{plain, exif, progressive, restart}, nil),
		bytes.Join([][]byte{[]byte("garbage\xff\xd8\xff"), plain, []byte("\xff\xff\x00junk"), plain}, nil),
		bytes.Join([][]byte{[]byte("--b\r\nContent-Type: image/jpeg\r\n\r\n"), plain, []byte("\r\n--b\r\n\r\n"), exif}, nil),
		append(append([]byte{}, plain[:len(plain)/2]...), plain...),
		append(append([]byte{}, exif[:30]...), progressive...),
		{0xFF, 0xD8, 0xFF, 0xD9},
		{0xFF, 0xD8, 0xFF, 0xDA, 0x00, 0x02, 0xFF, 0x00, 0xFF, 0xD0, 0xFF, 0xFF, 0xD9},
		{0xFF, 0xD8, 0xFF, 0xE1, 0x00},
		{},
	}
	for _, s := range seeds {
		f.Add(s, uint16(0))
		f.Add(s, uint16(len(s)/2))
	}
	f.Fuzz(func(t *testing.T, data []byte, max16 uint16) {
		max := int(max16)
		if max == 0 {
			max = DefaultMaxFrame
		}
		s := NewSplitter(bytes.NewReader(data), max)
		for calls := 0; ; calls++ {
			if calls > len(data)+3 {
				t.Fatalf("no end after %d calls on %d bytes", calls, len(data))
			}
			fr, err := s.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				if err != io.ErrUnexpectedEOF && !errors.Is(err, ErrNotJPEG) {
					t.Fatalf("unexpected error %v", err)
				}
				continue
			}
			if len(fr) < 4 || fr[0] != 0xFF || fr[1] != 0xD8 || fr[len(fr)-2] != 0xFF || fr[len(fr)-1] != 0xD9 {
				t.Fatalf("frame % x is not SOI..EOI", fr)
			}
			if len(fr) > max || len(fr) > len(data) {
				t.Fatalf("frame of %d bytes (max %d, input %d)", len(fr), max, len(data))
			}
		}
		st := s.Stats()
		if st.Garbage > uint64(len(data)) {
			t.Fatalf("stats %+v for %d bytes", st, len(data))
		}
	})
}

// loopReader repeats b forever.
type loopReader struct {
	b   []byte
	off int
}

func (l *loopReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		c := copy(p[n:], l.b[l.off:])
		n += c
		l.off = (l.off + c) % len(l.b)
	}
	return n, nil
}

func BenchmarkSplitter(b *testing.B) {
	// Camera-like frames: a noisy picture compresses like a real scene.
	rng := rand.New(rand.NewSource(1))
	var frames [][]byte
	for range 4 {
		img := image.NewGray(image.Rect(0, 0, 640, 480))
		for i := range img.Pix {
			img.Pix[i] = uint8(i/640 + i%640/3 + rng.Intn(40))
		}
		var buf bytes.Buffer
		if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: 75}); err != nil {
			b.Fatal(err)
		}
		frames = append(frames, buf.Bytes())
	}
	stream := bytes.Join(frames, nil)
	b.SetBytes(int64(len(stream) / len(frames)))
	b.ReportAllocs()
	s := NewSplitter(&loopReader{b: stream}, 0)
	b.ResetTimer()
	for range b.N {
		if _, err := s.Next(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(stream)/len(frames)), "bytes/frame")
}
