package camera

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pikit/pikit/internal/devspec"
)

// SimOptions configures a simulated camera. The zero value gives 640x480
// at 30 fps.
type SimOptions struct {
	// Width and Height are the picture size, 16 to 4096 pixels each
	// (default 640x480).
	Width, Height int
	// FPS is the frame rate, 1 to 120 (default 30).
	FPS int
	// Quality is the JPEG quality, 1 to 100 (default 75).
	Quality int
	// Now stamps Frame.Time (default time.Now); tests inject a fixed
	// clock for reproducible frames. The frame rate is always paced by
	// the real clock.
	Now func() time.Time
}

// Sim is a simulated camera: a test picture (colour bars, a bar sweeping
// across once every two seconds and a frame counter, so that a person
// watching sees it is live), encoded to JPEG once per frame and delivered
// at a steady rate. The picture depends only on the frame number.
type Sim struct {
	opts  SimOptions
	img   *image.YCbCr
	base  []byte // the static background: Y, then Cb, then Cr
	enc   jpegBuffer
	pace  pacer
	seq   uint64
	count atomic.Uint64

	closeOnce sync.Once
	closed    chan struct{}
}

// NewSim returns a simulated camera.
func NewSim(opts SimOptions) (*Sim, error) {
	if opts.Width == 0 && opts.Height == 0 {
		opts.Width, opts.Height = 640, 480
	}
	if opts.Width < 16 || opts.Width > 4096 || opts.Height < 16 || opts.Height > 4096 {
		return nil, fmt.Errorf("camera: sim: size %dx%d out of range (16 to 4096 pixels each way)", opts.Width, opts.Height)
	}
	if opts.FPS == 0 {
		opts.FPS = 30
	}
	if opts.FPS < 1 || opts.FPS > 120 {
		return nil, fmt.Errorf("camera: sim: frame rate %d out of range (1 to 120)", opts.FPS)
	}
	if opts.Quality == 0 {
		opts.Quality = 75
	}
	if opts.Quality < 1 || opts.Quality > 100 {
		return nil, fmt.Errorf("camera: sim: JPEG quality %d out of range (1 to 100)", opts.Quality)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	s := &Sim{
		opts:   opts,
		img:    image.NewYCbCr(image.Rect(0, 0, opts.Width, opts.Height), image.YCbCrSubsampleRatio420),
		pace:   newPacer(time.Second / time.Duration(opts.FPS)),
		closed: make(chan struct{}),
	}
	s.drawBackground()
	s.base = make([]byte, 0, len(s.img.Y)+2*len(s.img.Cb))
	s.base = append(append(append(s.base, s.img.Y...), s.img.Cb...), s.img.Cr...)
	return s, nil
}

// ReadFrame waits for the next frame time and returns a freshly encoded
// frame.
func (s *Sim) ReadFrame(ctx context.Context) (Frame, error) {
	select {
	case <-s.closed:
		return Frame{}, ErrClosed
	default:
	}
	if err := s.pace.wait(ctx, s.closed); err != nil {
		return Frame{}, err
	}
	s.seq++
	data, err := s.encode(s.seq)
	if err != nil {
		return Frame{}, fmt.Errorf("camera: sim: %w", err)
	}
	s.count.Add(1)
	return Frame{Data: data, Seq: s.seq, Time: s.opts.Now()}, nil
}

// Frames returns the number of frames produced so far.
func (s *Sim) Frames() uint64 { return s.count.Load() }

// Close stops the simulation and makes a concurrent ReadFrame return
// ErrClosed. Closing twice is harmless.
func (s *Sim) Close() error {
	s.closeOnce.Do(func() { close(s.closed) })
	return nil
}

// encode draws frame n and encodes it into a new, exactly sized slice.
func (s *Sim) encode(n uint64) ([]byte, error) {
	s.draw(n)
	s.enc.Reset()
	if err := jpeg.Encode(&s.enc, s.img, &jpeg.Options{Quality: s.opts.Quality}); err != nil {
		return nil, err
	}
	out := make([]byte, s.enc.Len())
	copy(out, s.enc.Bytes())
	return out, nil
}

// jpegBuffer is a bytes.Buffer that image/jpeg writes to directly: with a
// Flush method it needs no bufio.Writer of its own for every frame.
type jpegBuffer struct{ bytes.Buffer }

func (*jpegBuffer) Flush() error { return nil }

var simBars = []color.RGBA{
	{192, 192, 192, 255}, {192, 192, 0, 255}, {0, 192, 192, 255}, {0, 192, 0, 255},
	{192, 0, 192, 255}, {192, 0, 0, 255}, {0, 0, 192, 255},
}

func ycc(c color.RGBA) color.YCbCr {
	y, cb, cr := color.RGBToYCbCr(c.R, c.G, c.B)
	return color.YCbCr{Y: y, Cb: cb, Cr: cr}
}

// drawBackground paints the static part: colour bars over the top three
// quarters, a grey ramp below.
func (s *Sim) drawBackground() {
	w, h := s.opts.Width, s.opts.Height
	for i, c := range simBars {
		fillYCbCr(s.img, image.Rect(i*w/len(simBars), 0, (i+1)*w/len(simBars), h*3/4), ycc(c))
	}
	const steps = 16
	for i := range steps {
		g := uint8(i * 255 / (steps - 1))
		fillYCbCr(s.img, image.Rect(i*w/steps, h*3/4, (i+1)*w/steps, h), color.YCbCr{Y: g, Cb: 128, Cr: 128})
	}
}

// draw paints frame n over a copy of the background.
func (s *Sim) draw(n uint64) {
	ny := len(s.img.Y)
	nc := len(s.img.Cb)
	copy(s.img.Y, s.base[:ny])
	copy(s.img.Cb, s.base[ny:ny+nc])
	copy(s.img.Cr, s.base[ny+nc:])

	w, h := s.opts.Width, s.opts.Height
	// A white bar crossing the picture every two seconds.
	period := uint64(2 * s.opts.FPS)
	bw := max(w/32, 2)
	x := int((n-1)%period) * (w + bw) / int(period)
	fillYCbCr(s.img, image.Rect(x-bw, 0, x, h*3/4), color.YCbCr{Y: 235, Cb: 128, Cr: 128})

	// The frame number, white on black, top left.
	scale := max(h/120, 1)
	digits := strconv.FormatUint(n, 10)
	pad := scale * 2
	box := image.Rect(0, 0, len(digits)*6*scale+2*pad-scale, 7*scale+2*pad)
	fillYCbCr(s.img, box, color.YCbCr{Y: 16, Cb: 128, Cr: 128})
	white := color.YCbCr{Y: 235, Cb: 128, Cr: 128}
	for i, d := range digits {
		glyph := simFont[d-'0']
		x0 := pad + i*6*scale
		for row := range 7 {
			for col := range 5 {
				if glyph[row]&(0x10>>col) != 0 {
					fillYCbCr(s.img, image.Rect(x0+col*scale, pad+row*scale, x0+(col+1)*scale, pad+(row+1)*scale), white)
				}
			}
		}
	}
}

// simFont is a 5x7 pixel font for the digits; each byte is a row, bit 4
// the leftmost pixel.
var simFont = [10][7]byte{
	{0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E}, // 0
	{0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E}, // 1
	{0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F}, // 2
	{0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E}, // 3
	{0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02}, // 4
	{0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E}, // 5
	{0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E}, // 6
	{0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08}, // 7
	{0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E}, // 8
	{0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C}, // 9
}

// fillYCbCr fills r (clipped to the picture) with c, writing the planes
// directly: image/draw cannot draw onto a YCbCr image. Chroma is shared by
// 2x2 pixels, so an odd edge colours its neighbour's chroma.
func fillYCbCr(img *image.YCbCr, r image.Rectangle, c color.YCbCr) {
	r = r.Intersect(img.Rect)
	if r.Empty() {
		return
	}
	for y := r.Min.Y; y < r.Max.Y; y++ {
		fill(img.Y[y*img.YStride+r.Min.X:y*img.YStride+r.Max.X], c.Y)
	}
	for y := r.Min.Y / 2; y < (r.Max.Y+1)/2; y++ {
		lo, hi := y*img.CStride+r.Min.X/2, y*img.CStride+(r.Max.X+1)/2
		fill(img.Cb[lo:hi], c.Cb)
		fill(img.Cr[lo:hi], c.Cr)
	}
}

func fill(b []byte, v byte) {
	for i := range b {
		b[i] = v
	}
}

// pacer spaces frames at a steady rate on a fixed grid, start + n·period,
// so the rate does not drift with the time spent making each frame. A
// reader that falls behind gets one frame at once and then rejoins the
// grid, instead of a burst of frames to catch up.
type pacer struct {
	period time.Duration
	start  time.Time
	n      int64 // frames released so far
	now    func() time.Time
	after  func(time.Duration) <-chan time.Time
}

func newPacer(period time.Duration) pacer {
	return pacer{period: period, now: time.Now, after: time.After}
}

// wait blocks until the next frame is due, ctx is done or closed is
// closed. The first frame is due at once.
func (p *pacer) wait(ctx context.Context, closed <-chan struct{}) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if p.n == 0 {
		p.start = p.now()
		p.n = 1
		return nil
	}
	due := p.start.Add(time.Duration(p.n) * p.period)
	if d := due.Sub(p.now()); d > 0 {
		select {
		case <-p.after(d):
		case <-ctx.Done():
			return ctx.Err()
		case <-closed:
			return ErrClosed
		}
	} else if missed := int64(-d / p.period); missed > 0 {
		// Late by whole periods: skip those slots.
		p.n += missed
	}
	p.n++
	return nil
}

// parseSize parses "WIDTHxHEIGHT".
func parseSize(s string) (w, h int, err error) {
	ws, hs, ok := strings.Cut(s, "x")
	if ok {
		w, err = strconv.Atoi(ws)
		if err == nil {
			h, err = strconv.Atoi(hs)
		}
	}
	if !ok || err != nil || w <= 0 || h <= 0 {
		return 0, 0, fmt.Errorf("bad size %q: want WIDTHxHEIGHT, e.g. 640x480", s)
	}
	return w, h, nil
}

const simUsage = "sim[:WIDTHxHEIGHT][@FPS][?quality=75]"

// openSim opens "sim", "sim:320x240", "sim:320x240@15", "sim:@15".
func openSim(arg string) (Source, error) {
	target, opts, err := devspec.ParseArg(arg, "quality")
	if err != nil {
		return nil, fmt.Errorf("camera: sim: %w", err)
	}
	var so SimOptions
	size, fps, hasFPS := strings.Cut(target, "@")
	if size != "" {
		if so.Width, so.Height, err = parseSize(size); err != nil {
			return nil, fmt.Errorf("camera: sim: %w (form: %s)", err, simUsage)
		}
	}
	if hasFPS {
		if so.FPS, err = strconv.Atoi(fps); err != nil || so.FPS <= 0 {
			return nil, fmt.Errorf("camera: sim: bad frame rate %q: want a whole number of frames per second (form: %s)", fps, simUsage)
		}
	}
	if q, ok := opts["quality"]; ok {
		if so.Quality, err = strconv.Atoi(q); err != nil || so.Quality <= 0 {
			return nil, fmt.Errorf("camera: sim: option quality=%q: want 1 to 100", q)
		}
	}
	return NewSim(so)
}

func init() {
	registry.MustRegister(devspec.Driver[Source]{Name: "sim", Usage: simUsage, Open: openSim})
}
