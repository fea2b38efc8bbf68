package camera

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pikit/pikit/internal/devspec"
)

// This file holds the V4L2 driver's logic: format negotiation, the
// capture loop and its errors, written against the small v4l2Dev
// interface so that it is tested without a camera. v4l2_linux.go maps the
// interface to the kernel's ioctls.

// V4L2 capabilities, buffer types and flags (linux/videodev2.h).
const (
	v4l2CapVideoCapture = 0x00000001
	v4l2CapCaptureMPlan = 0x00001000
	v4l2CapStreaming    = 0x04000000
	v4l2CapDeviceCaps   = 0x80000000

	v4l2BufTypeVideoCapture = 1
	v4l2MemoryMmap          = 1
	v4l2BufFlagError        = 0x00000040
)

// Compressed pixel formats the driver passes through, best first.
var (
	v4l2PixFmtMJPEG = fourcc("MJPG")
	v4l2PixFmtJPEG  = fourcc("JPEG")
)

func fourcc(s string) uint32 {
	return uint32(s[0]) | uint32(s[1])<<8 | uint32(s[2])<<16 | uint32(s[3])<<24
}

// fourccString formats a V4L2 pixel format code: "MJPG", "YUYV", "Y10"
// (trailing blanks trimmed), "XR24-BE" for the big-endian flag, and hex
// for codes that are not text.
func fourccString(f uint32) string {
	var suffix string
	if f&(1<<31) != 0 {
		f &^= 1 << 31
		suffix = "-BE"
	}
	b := []byte{byte(f), byte(f >> 8), byte(f >> 16), byte(f >> 24)}
	for _, c := range b {
		if c < ' ' || c > '~' {
			return fmt.Sprintf("0x%08x", f) + suffix
		}
	}
	return strings.TrimRight(string(b), " ") + suffix
}

// v4l2Caps is what VIDIOC_QUERYCAP reports.
type v4l2Caps struct {
	Driver, Card, BusInfo string
	// Caps are the capabilities of the opened device node (device_caps
	// when the driver reports them, else capabilities).
	Caps uint32
}

// v4l2Buf is a dequeued buffer.
type v4l2Buf struct {
	Index     int
	BytesUsed int
	Flags     uint32
	// Age is how long ago the frame was captured, 0 when unknown.
	Age time.Duration
}

// errAgain is returned by v4l2Dev.dequeue when no buffer is ready.
var errAgain = errors.New("no buffer ready")

// v4l2Dev is the part of a V4L2 device the driver uses; each method is
// one ioctl (or mmap/poll) on the device.
type v4l2Dev interface {
	querycap() (v4l2Caps, error)
	formats() ([]uint32, error)
	// setFormat asks for a size and pixel format and returns what the
	// driver chose.
	setFormat(w, h int, pixfmt uint32) (gw, gh int, gpixfmt uint32, err error)
	// setFPS asks for a frame rate and returns what the driver chose, 0
	// when the driver does not let the rate be set.
	setFPS(fps int) (float64, error)
	requestBuffers(n int) (int, error)
	// mapBuffer maps buffer i, which stays mapped until close.
	mapBuffer(i int) ([]byte, error)
	queue(i int) error
	streamOn() error
	streamOff() error
	// dequeue returns a filled buffer, or errAgain.
	dequeue() (v4l2Buf, error)
	// wait blocks until a buffer may be ready (true), wake is called or
	// the timeout passes (false).
	wait(timeout time.Duration) (bool, error)
	// wake makes a concurrent or the next wait return.
	wake()
	// close unmaps the buffers and closes the device.
	close() error
}

// openV4L2Dev opens a device node; set by v4l2_linux.go, nil elsewhere.
var openV4L2Dev func(path string) (v4l2Dev, error)

// V4L2Options configures a V4L2 source. The zero value asks for 640x480
// at 30 fps.
type V4L2Options struct {
	// Width and Height are the picture size. When both are 0 the driver
	// may pick the nearest size it supports to 640x480; a size that is
	// given must be supported exactly.
	Width, Height int
	// FPS is the frame rate to ask for, 1 to 120 (default 30). Drivers
	// pick the nearest rate they support.
	FPS int
	// Now is the clock for Frame.Time (default time.Now).
	Now func() time.Time
}

// v4l2Buffers is how many buffers are queued: one being copied out, one
// being filled, and slack for a reader that is briefly late.
const v4l2Buffers = 4

// v4l2Timeout is how long ReadFrame waits for a frame before it reports
// the camera stalled; cameras slow down in the dark, but not this much.
const v4l2Timeout = 10 * time.Second

// V4L2 is a Source for a Video4Linux2 camera with compressed output
// (MJPEG, as nearly every USB webcam offers): frames are passed through
// as the camera encodes them, with no decoding. It uses memory-mapped
// streaming I/O and copies each frame once, out of the kernel's buffer.
//
// Cameras with only raw formats (YUYV, NV12, Bayer) are refused; use the
// mediadevices driver or exec:ffmpeg to encode their frames.
type V4L2 struct {
	path        string
	dev         v4l2Dev
	bufs        [][]byte
	width       int
	height      int
	fps         float64
	now         func() time.Time
	timeout     time.Duration
	seq         uint64
	dropped     atomic.Uint64
	mu          sync.Mutex // held by ReadFrame while it uses the buffers
	closed      atomic.Bool
	releaseOnce sync.Once
}

// NewV4L2 opens the V4L2 device at path (such as /dev/video0) and starts
// capture. It is only supported on Linux.
func NewV4L2(path string, opts V4L2Options) (*V4L2, error) {
	if openV4L2Dev == nil {
		return nil, fmt.Errorf("camera: v4l2: not supported on %s", runtime.GOOS)
	}
	if err := checkV4L2Options(&opts); err != nil {
		return nil, err
	}
	dev, err := openV4L2Dev(path)
	if err != nil {
		return nil, fmt.Errorf("camera: v4l2: %w", err)
	}
	v, err := startV4L2(dev, path, opts)
	if err != nil {
		_ = dev.close()
		return nil, err
	}
	return v, nil
}

func checkV4L2Options(o *V4L2Options) error {
	if (o.Width == 0) != (o.Height == 0) || o.Width < 0 || o.Height < 0 || o.Width > 16384 || o.Height > 16384 {
		return fmt.Errorf("camera: v4l2: bad size %dx%d", o.Width, o.Height)
	}
	if o.FPS == 0 {
		o.FPS = 30
	}
	if o.FPS < 1 || o.FPS > 120 {
		return fmt.Errorf("camera: v4l2: frame rate %d out of range (1 to 120)", o.FPS)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return nil
}

// v4l2Suitable reports whether dev is a streaming capture device with a
// compressed format, and which; it does not change the device's state.
func v4l2Suitable(dev v4l2Dev) (caps v4l2Caps, pixfmt uint32, all []uint32, err error) {
	caps, err = dev.querycap()
	if err != nil {
		return caps, 0, nil, fmt.Errorf("query capabilities: %w", err)
	}
	if caps.Caps&v4l2CapVideoCapture == 0 {
		if caps.Caps&v4l2CapCaptureMPlan != 0 {
			return caps, 0, nil, fmt.Errorf("%s (%s) has only the multi-planar capture API, which this driver does not support", caps.Card, caps.Driver)
		}
		return caps, 0, nil, fmt.Errorf("%s (%s) is not a video capture device", caps.Card, caps.Driver)
	}
	if caps.Caps&v4l2CapStreaming == 0 {
		return caps, 0, nil, fmt.Errorf("%s (%s) does not support streaming I/O", caps.Card, caps.Driver)
	}
	all, err = dev.formats()
	if err != nil {
		return caps, 0, nil, fmt.Errorf("list formats: %w", err)
	}
	for _, want := range []uint32{v4l2PixFmtMJPEG, v4l2PixFmtJPEG} {
		for _, f := range all {
			if f == want {
				return caps, f, all, nil
			}
		}
	}
	return caps, 0, all, nil
}

// startV4L2 negotiates the format and starts streaming on an open device.
// On error the caller closes dev.
func startV4L2(dev v4l2Dev, path string, opts V4L2Options) (*V4L2, error) {
	caps, pixfmt, all, err := v4l2Suitable(dev)
	if err != nil {
		return nil, fmt.Errorf("camera: v4l2: %s: %w", path, err)
	}
	if pixfmt == 0 {
		names := make([]string, len(all))
		for i, f := range all {
			names[i] = fourccString(f)
		}
		list := strings.Join(names, ", ")
		if list == "" {
			list = "none"
		}
		return nil, fmt.Errorf("camera: v4l2: %s offers no MJPEG (formats: %s); use the mediadevices driver (build with cgo) or exec:ffmpeg -f v4l2 -i %s -f mjpeg - to encode", path, list, path)
	}
	w, h := opts.Width, opts.Height
	if w == 0 {
		w, h = 640, 480
	}
	gw, gh, gfmt, err := dev.setFormat(w, h, pixfmt)
	if err != nil {
		return nil, fmt.Errorf("camera: v4l2: %s: set format %s %dx%d: %w", path, fourccString(pixfmt), w, h, err)
	}
	if gfmt != pixfmt {
		return nil, fmt.Errorf("camera: v4l2: %s: asked for %s, driver chose %s", path, fourccString(pixfmt), fourccString(gfmt))
	}
	if opts.Width != 0 && (gw != w || gh != h) {
		return nil, fmt.Errorf("camera: v4l2: %s: size %dx%d not supported by %s, nearest is %dx%d (ask for size=%dx%d)", path, w, h, caps.Card, gw, gh, gw, gh)
	}
	fps, err := dev.setFPS(opts.FPS)
	if err != nil {
		return nil, fmt.Errorf("camera: v4l2: %s: set frame rate %d: %w", path, opts.FPS, err)
	}
	n, err := dev.requestBuffers(v4l2Buffers)
	if err != nil {
		return nil, fmt.Errorf("camera: v4l2: %s: request buffers: %w", path, err)
	}
	if n < 2 {
		return nil, fmt.Errorf("camera: v4l2: %s: driver granted %d buffers, need at least 2", path, n)
	}
	v := &V4L2{path: path, dev: dev, width: gw, height: gh, fps: fps, now: opts.Now, timeout: v4l2Timeout}
	for i := range n {
		b, err := dev.mapBuffer(i)
		if err != nil {
			return nil, fmt.Errorf("camera: v4l2: %s: map buffer %d: %w", path, i, err)
		}
		v.bufs = append(v.bufs, b)
		if err := dev.queue(i); err != nil {
			return nil, fmt.Errorf("camera: v4l2: %s: queue buffer %d: %w", path, i, err)
		}
	}
	if err := dev.streamOn(); err != nil {
		return nil, fmt.Errorf("camera: v4l2: %s: start streaming: %w", path, err)
	}
	return v, nil
}

// Size returns the picture size the camera delivers.
func (v *V4L2) Size() (width, height int) { return v.width, v.height }

// FPS returns the frame rate the driver chose, 0 if it does not say.
func (v *V4L2) FPS() float64 { return v.fps }

// Dropped returns how many buffers were skipped because the driver
// flagged them as corrupt or they held no whole JPEG.
func (v *V4L2) Dropped() uint64 { return v.dropped.Load() }

// ReadFrame waits for the camera's next frame and returns a copy of it.
func (v *V4L2) ReadFrame(ctx context.Context) (Frame, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.closed.Load() {
		return Frame{}, ErrClosed
	}
	stop := context.AfterFunc(ctx, v.dev.wake)
	defer stop()
	deadline := time.Now().Add(v.timeout)
	for {
		if v.closed.Load() {
			return Frame{}, ErrClosed
		}
		if err := ctx.Err(); err != nil {
			return Frame{}, err
		}
		b, err := v.dev.dequeue()
		if err == errAgain {
			left := time.Until(deadline)
			if left <= 0 {
				return Frame{}, fmt.Errorf("camera: v4l2: %s: no frame for %s", v.path, v.timeout)
			}
			if _, err := v.dev.wait(left); err != nil {
				return Frame{}, fmt.Errorf("camera: v4l2: %s: %w", v.path, err)
			}
			continue
		}
		if err != nil {
			return Frame{}, fmt.Errorf("camera: v4l2: %s: dequeue buffer: %w", v.path, err)
		}
		if b.Index < 0 || b.Index >= len(v.bufs) {
			return Frame{}, fmt.Errorf("camera: v4l2: %s: driver returned buffer %d of %d", v.path, b.Index, len(v.bufs))
		}
		var data []byte
		if b.Flags&v4l2BufFlagError == 0 && b.BytesUsed <= len(v.bufs[b.Index]) {
			if jpg := trimJPEG(v.bufs[b.Index][:b.BytesUsed]); jpg != nil {
				// The buffer goes back to the driver: one copy is needed.
				data = make([]byte, len(jpg))
				copy(data, jpg)
			}
		}
		t := v.now().Add(-b.Age)
		if err := v.dev.queue(b.Index); err != nil {
			return Frame{}, fmt.Errorf("camera: v4l2: %s: requeue buffer: %w", v.path, err)
		}
		if data == nil {
			v.dropped.Add(1)
			continue
		}
		v.seq++
		return Frame{Data: data, Seq: v.seq, Time: t}, nil
	}
}

// trimJPEG returns the JPEG in a driver buffer without the padding some
// cameras leave after EOI, or nil if the buffer holds no whole JPEG.
func trimJPEG(b []byte) []byte {
	if len(b) < 4 || b[0] != 0xFF || b[1] != mSOI {
		return nil
	}
	i := bytes.LastIndex(b, []byte{0xFF, mEOI})
	if i < 2 {
		return nil
	}
	return b[: i+2 : i+2]
}

// Close stops streaming and releases the device; a concurrent ReadFrame
// returns ErrClosed first. Closing twice is harmless.
func (v *V4L2) Close() error {
	var err error
	v.releaseOnce.Do(func() {
		v.closed.Store(true)
		v.dev.wake()
		// Wait for ReadFrame to leave the mapped buffers before unmapping.
		v.mu.Lock()
		defer v.mu.Unlock()
		// Closing the device stops streaming as well; STREAMOFF first is
		// the orderly way, and fails harmlessly on an unplugged camera.
		_ = v.dev.streamOff()
		if err = v.dev.close(); err != nil {
			err = fmt.Errorf("camera: v4l2: %s: close: %w", v.path, err)
		}
	})
	return err
}

const v4l2Usage = "v4l2:/dev/videoN[?size=WIDTHxHEIGHT&fps=N]"

// parseV4L2Arg parses "/dev/video0?size=1280x720&fps=30"; the device
// defaults to /dev/video0.
func parseV4L2Arg(arg string) (path string, opts V4L2Options, err error) {
	path, o, err := devspec.ParseArg(arg, "size", "fps")
	if err != nil {
		return "", opts, fmt.Errorf("camera: v4l2: %w", err)
	}
	if path == "" {
		path = "/dev/video0"
	}
	if s, ok := o["size"]; ok {
		if opts.Width, opts.Height, err = parseSize(s); err != nil {
			return "", opts, fmt.Errorf("camera: v4l2: %w (form: %s)", err, v4l2Usage)
		}
	}
	if s, ok := o["fps"]; ok {
		if opts.FPS, err = strconv.Atoi(s); err != nil || opts.FPS < 1 || opts.FPS > 120 {
			return "", opts, fmt.Errorf("camera: v4l2: option fps=%q: want a whole number from 1 to 120", s)
		}
	}
	return path, opts, nil
}
