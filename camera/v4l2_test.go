package camera

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// fakeV4L2 is a V4L2 device in memory. Frames pushed with fill land in the
// next queued buffer, as a driver would fill them.
type fakeV4L2 struct {
	caps    v4l2Caps
	pixfmts []uint32
	// adjust, if set, is the size the "driver" picks instead of the one
	// asked for.
	adjust   [2]int
	fps      float64
	nbufs    int
	failStep string // the operation that fails with errFake

	mu     sync.Mutex
	calls  []string
	bufs   [][]byte
	queued []int // buffer indexes owned by the driver, in order
	filled []v4l2Buf
	wakeC  chan struct{}
	ready  chan struct{}
	closed bool
}

var errFake = errors.New("fake failure")

func newFakeV4L2() *fakeV4L2 {
	return &fakeV4L2{
		caps:    v4l2Caps{Driver: "uvcvideo", Card: "Fake Webcam", Caps: v4l2CapVideoCapture | v4l2CapStreaming},
		pixfmts: []uint32{fourcc("YUYV"), v4l2PixFmtMJPEG},
		fps:     30,
		nbufs:   4,
		wakeC:   make(chan struct{}, 1),
		ready:   make(chan struct{}, 1),
	}
}

func (f *fakeV4L2) call(format string, args ...any) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := fmt.Sprintf(format, args...)
	f.calls = append(f.calls, c)
	if f.failStep != "" && strings.HasPrefix(c, f.failStep) {
		return errFake
	}
	return nil
}

func (f *fakeV4L2) querycap() (v4l2Caps, error) { return f.caps, f.call("querycap") }
func (f *fakeV4L2) formats() ([]uint32, error)  { return f.pixfmts, f.call("formats") }

func (f *fakeV4L2) setFormat(w, h int, pixfmt uint32) (int, int, uint32, error) {
	if err := f.call("setFormat %dx%d %s", w, h, fourccString(pixfmt)); err != nil {
		return 0, 0, 0, err
	}
	if f.adjust != [2]int{} {
		w, h = f.adjust[0], f.adjust[1]
	}
	return w, h, pixfmt, nil
}

func (f *fakeV4L2) setFPS(fps int) (float64, error) { return f.fps, f.call("setFPS %d", fps) }

func (f *fakeV4L2) requestBuffers(n int) (int, error) {
	return min(n, f.nbufs), f.call("requestBuffers %d", n)
}

func (f *fakeV4L2) mapBuffer(i int) ([]byte, error) {
	if err := f.call("mapBuffer %d", i); err != nil {
		return nil, err
	}
	b := make([]byte, 4096)
	f.mu.Lock()
	f.bufs = append(f.bufs, b)
	f.mu.Unlock()
	return b, nil
}

func (f *fakeV4L2) queue(i int) error {
	if err := f.call("queue %d", i); err != nil {
		return err
	}
	f.mu.Lock()
	f.queued = append(f.queued, i)
	f.mu.Unlock()
	return nil
}

func (f *fakeV4L2) streamOn() error  { return f.call("streamOn") }
func (f *fakeV4L2) streamOff() error { return f.call("streamOff") }

func (f *fakeV4L2) dequeue() (v4l2Buf, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		panic("dequeue after close")
	}
	if len(f.filled) == 0 {
		return v4l2Buf{}, errAgain
	}
	b := f.filled[0]
	f.filled = f.filled[1:]
	f.calls = append(f.calls, fmt.Sprintf("dequeue %d", b.Index))
	return b, nil
}

func (f *fakeV4L2) wait(timeout time.Duration) (bool, error) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-f.ready:
		return true, nil
	case <-f.wakeC:
		return false, nil
	case <-t.C:
		return false, nil
	}
}

func (f *fakeV4L2) wake() {
	select {
	case f.wakeC <- struct{}{}:
	default:
	}
}

func (f *fakeV4L2) close() error {
	f.mu.Lock()
	f.closed = true
	f.mu.Unlock()
	return f.call("close")
}

// fill writes data into the next queued buffer and marks it filled.
func (f *fakeV4L2) fill(data []byte, flags uint32) {
	f.mu.Lock()
	i := f.queued[0]
	f.queued = f.queued[1:]
	n := copy(f.bufs[i], data)
	f.filled = append(f.filled, v4l2Buf{Index: i, BytesUsed: n, Flags: flags, Age: 5 * time.Millisecond})
	f.mu.Unlock()
	select {
	case f.ready <- struct{}{}:
	default:
	}
}

func (f *fakeV4L2) callLog() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

func startFake(t *testing.T, f *fakeV4L2, opts V4L2Options) *V4L2 {
	t.Helper()
	if err := checkV4L2Options(&opts); err != nil {
		t.Fatal(err)
	}
	v, err := startV4L2(f, "/dev/video0", opts)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestV4L2Capture(t *testing.T) {
	f := newFakeV4L2()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	v := startFake(t, f, V4L2Options{Width: 1280, Height: 720, FPS: 30, Now: func() time.Time { return now }})
	want := []string{
		"querycap", "formats", "setFormat 1280x720 MJPG", "setFPS 30", "requestBuffers 4",
		"mapBuffer 0", "queue 0", "mapBuffer 1", "queue 1", "mapBuffer 2", "queue 2", "mapBuffer 3", "queue 3",
		"streamOn",
	}
	if diff := cmp.Diff(want, f.callLog()); diff != "" {
		t.Fatalf("start-up (-want +got):\n%s", diff)
	}
	if w, h := v.Size(); w != 1280 || h != 720 || v.FPS() != 30 {
		t.Errorf("Size %dx%d, FPS %g", w, h, v.FPS())
	}

	a, b := testJPEG(t, 16, 16, 1), testJPEG(t, 16, 16, 2)
	f.fill(append(append([]byte{}, a...), 0, 0, 0, 0), 0) // padded after EOI
	f.fill(b, v4l2BufFlagError)                           // flagged corrupt
	f.fill([]byte("garbage"), 0)                          // not a JPEG
	f.fill(b, 0)

	ctx := context.Background()
	fr, err := v.ReadFrame(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(fr.Data, a) || fr.Seq != 1 || !fr.Time.Equal(now.Add(-5*time.Millisecond)) {
		t.Errorf("frame 1: %d bytes, Seq %d, Time %v", len(fr.Data), fr.Seq, fr.Time)
	}
	if cap(fr.Data) != len(fr.Data) || &fr.Data[0] == &f.bufs[0][0] {
		t.Error("frame 1 is not an exactly sized copy")
	}
	fr, err = v.ReadFrame(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(fr.Data, b) || fr.Seq != 2 {
		t.Errorf("frame 2: %d bytes, Seq %d", len(fr.Data), fr.Seq)
	}
	if v.Dropped() != 2 {
		t.Errorf("Dropped = %d, want 2", v.Dropped())
	}
	// Every buffer went back to the driver.
	if got := f.callLog()[len(want):]; !cmp.Equal(got, []string{"dequeue 0", "queue 0", "dequeue 1", "queue 1", "dequeue 2", "queue 2", "dequeue 3", "queue 3"}) {
		t.Errorf("capture calls: %v", got)
	}

	// Close interrupts a waiting ReadFrame, then tears down.
	done := make(chan error)
	go func() {
		_, err := v.ReadFrame(ctx)
		done <- err
	}()
	time.Sleep(20 * time.Millisecond)
	if err := v.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != ErrClosed {
		t.Errorf("ReadFrame during Close: %v", err)
	}
	log := f.callLog()
	if got := log[len(log)-2:]; !cmp.Equal(got, []string{"streamOff", "close"}) {
		t.Errorf("close calls: %v", got)
	}
	if _, err := v.ReadFrame(ctx); err != ErrClosed {
		t.Errorf("after Close: %v", err)
	}
	if err := v.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestV4L2ContextAndTimeout(t *testing.T) {
	f := newFakeV4L2()
	v := startFake(t, f, V4L2Options{})
	defer v.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	if _, err := v.ReadFrame(ctx); err != context.DeadlineExceeded {
		t.Errorf("ReadFrame with a deadline: %v", err)
	}
	v.timeout = 50 * time.Millisecond
	_, err := v.ReadFrame(context.Background())
	if err == nil || err.Error() != "camera: v4l2: /dev/video0: no frame for 50ms" {
		t.Errorf("stalled camera: %v", err)
	}
}

func TestV4L2Negotiation(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(*fakeV4L2)
		opts  V4L2Options
		err   string // "" for success
		calls string // a call that must have been made
	}{
		{
			name:  "default size may be adjusted",
			setup: func(f *fakeV4L2) { f.adjust = [2]int{320, 240} },
			calls: "setFormat 640x480 MJPG",
		},
		{
			name:  "explicit size must fit",
			setup: func(f *fakeV4L2) { f.adjust = [2]int{960, 720}; f.caps.Card = "HD Cam" },
			opts:  V4L2Options{Width: 1000, Height: 700},
			err:   "camera: v4l2: /dev/video0: size 1000x700 not supported by HD Cam, nearest is 960x720 (ask for size=960x720)",
		},
		{
			name:  "JPEG when there is no MJPG",
			setup: func(f *fakeV4L2) { f.pixfmts = []uint32{fourcc("YUYV"), v4l2PixFmtJPEG} },
			calls: "setFormat 640x480 JPEG",
		},
		{
			name:  "MJPG preferred over JPEG",
			setup: func(f *fakeV4L2) { f.pixfmts = []uint32{v4l2PixFmtJPEG, v4l2PixFmtMJPEG} },
			calls: "setFormat 640x480 MJPG",
		},
		{
			name:  "raw formats only",
			setup: func(f *fakeV4L2) { f.pixfmts = []uint32{fourcc("YUYV"), fourcc("NV12")} },
			err:   "camera: v4l2: /dev/video0 offers no MJPEG (formats: YUYV, NV12); use the mediadevices driver (build with cgo) or exec:ffmpeg -f v4l2 -i /dev/video0 -f mjpeg - to encode",
		},
		{
			name:  "no formats",
			setup: func(f *fakeV4L2) { f.pixfmts = nil },
			err:   "camera: v4l2: /dev/video0 offers no MJPEG (formats: none)",
		},
		{
			name: "not a capture device",
			setup: func(f *fakeV4L2) {
				f.caps = v4l2Caps{Driver: "bcm2835-codec", Card: "bcm2835-codec-decode", Caps: 0x00004000 | v4l2CapStreaming}
			},
			err: "camera: v4l2: /dev/video0: bcm2835-codec-decode (bcm2835-codec) is not a video capture device",
		},
		{
			name:  "multi-planar only",
			setup: func(f *fakeV4L2) { f.caps.Caps = v4l2CapCaptureMPlan | v4l2CapStreaming },
			err:   "camera: v4l2: /dev/video0: Fake Webcam (uvcvideo) has only the multi-planar capture API",
		},
		{
			name:  "no streaming",
			setup: func(f *fakeV4L2) { f.caps.Caps = v4l2CapVideoCapture },
			err:   "camera: v4l2: /dev/video0: Fake Webcam (uvcvideo) does not support streaming I/O",
		},
		{
			name:  "too few buffers",
			setup: func(f *fakeV4L2) { f.nbufs = 1 },
			err:   "camera: v4l2: /dev/video0: driver granted 1 buffers, need at least 2",
		},
		{
			name:  "two buffers are enough",
			setup: func(f *fakeV4L2) { f.nbufs = 2 },
			calls: "queue 1",
		},
		{
			name:  "querycap fails",
			setup: func(f *fakeV4L2) { f.failStep = "querycap" },
			err:   "camera: v4l2: /dev/video0: query capabilities: fake failure",
		},
		{
			name:  "set format fails",
			setup: func(f *fakeV4L2) { f.failStep = "setFormat" },
			err:   "camera: v4l2: /dev/video0: set format MJPG 640x480: fake failure",
		},
		{
			name:  "mmap fails",
			setup: func(f *fakeV4L2) { f.failStep = "mapBuffer 2" },
			err:   "camera: v4l2: /dev/video0: map buffer 2: fake failure",
		},
		{
			name:  "stream on fails",
			setup: func(f *fakeV4L2) { f.failStep = "streamOn" },
			err:   "camera: v4l2: /dev/video0: start streaming: fake failure",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeV4L2()
			tc.setup(f)
			opts := tc.opts
			if err := checkV4L2Options(&opts); err != nil {
				t.Fatal(err)
			}
			v, err := startV4L2(f, "/dev/video0", opts)
			if tc.err != "" {
				if err == nil || !strings.HasPrefix(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				if errors.Is(err, errFake) != strings.Contains(tc.err, "fake failure") {
					t.Errorf("error does not wrap the device's error: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(strings.Join(f.callLog(), "\n")+"\n", tc.calls+"\n") {
				t.Errorf("no call %q in %v", tc.calls, f.callLog())
			}
			v.Close()
		})
	}
}

func TestFourccString(t *testing.T) {
	for code, want := range map[uint32]string{
		v4l2PixFmtMJPEG:         "MJPG",
		fourcc("YUYV"):          "YUYV",
		fourcc("Y10 "):          "Y10",
		fourcc("XR24") | 1<<31:  "XR24-BE",
		0x00000001:              "0x00000001",
		fourcc("AB\x00\x00"):    "0x00004241",
		fourcc("pRAA"):          "pRAA",
		fourcc("NV12") | 1<<31:  "NV12-BE",
		0xFFFFFFFF &^ (1 << 31): "0x7fffffff",
	} {
		if got := fourccString(code); got != want {
			t.Errorf("fourccString(%#x) = %q, want %q", code, got, want)
		}
	}
}

func TestParseV4L2Arg(t *testing.T) {
	for arg, want := range map[string]struct {
		path string
		opts V4L2Options
	}{
		"":                                    {"/dev/video0", V4L2Options{}},
		"/dev/video2":                         {"/dev/video2", V4L2Options{}},
		"?fps=15":                             {"/dev/video0", V4L2Options{FPS: 15}},
		"/dev/video0?size=1280x720&fps=30":    {"/dev/video0", V4L2Options{Width: 1280, Height: 720, FPS: 30}},
		"/dev/v4l/by-id/usb-cam?size=320x240": {"/dev/v4l/by-id/usb-cam", V4L2Options{Width: 320, Height: 240}},
	} {
		path, opts, err := parseV4L2Arg(arg)
		if err != nil || path != want.path || opts.Width != want.opts.Width || opts.Height != want.opts.Height || opts.FPS != want.opts.FPS {
			t.Errorf("parseV4L2Arg(%q) = %q, %+v, %v; want %q, %+v", arg, path, opts, err, want.path, want.opts)
		}
	}
	for arg, want := range map[string]string{
		"/dev/video0?size=big":    `camera: v4l2: bad size "big": want WIDTHxHEIGHT, e.g. 640x480 (form: v4l2:/dev/videoN[?size=WIDTHxHEIGHT&fps=N])`,
		"/dev/video0?fps=0":       `camera: v4l2: option fps="0": want a whole number from 1 to 120`,
		"/dev/video0?fps=29.97":   `camera: v4l2: option fps="29.97"`,
		"/dev/video0?format=YUYV": `camera: v4l2: unknown option "format" (accepted: size, fps)`,
	} {
		if _, _, err := parseV4L2Arg(arg); err == nil || !strings.HasPrefix(err.Error(), want) {
			t.Errorf("parseV4L2Arg(%q) = %v, want %q", arg, err, want)
		}
	}
	o := V4L2Options{Width: 640}
	if err := checkV4L2Options(&o); err == nil {
		t.Error("width without height accepted")
	}
}

func TestTrimJPEG(t *testing.T) {
	a := testJPEG(t, 16, 16, 1)
	for name, tc := range map[string]struct {
		in, want []byte
	}{
		"exact":     {a, a},
		"padded":    {append(append([]byte{}, a...), make([]byte, 100)...), a},
		"no EOI":    {a[:len(a)-2], nil},
		"no SOI":    {a[2:], nil},
		"empty":     {nil, nil},
		"SOI EOI":   {[]byte{0xFF, 0xD8, 0xFF, 0xD9}, []byte{0xFF, 0xD8, 0xFF, 0xD9}},
		"only SOI":  {[]byte{0xFF, 0xD8, 0xD9, 0x00}, nil},
		"short SOI": {[]byte{0xFF, 0xD8, 0xFF}, nil},
	} {
		got := trimJPEG(tc.in)
		if !bytes.Equal(got, tc.want) || (got == nil) != (tc.want == nil) {
			t.Errorf("%s: trimJPEG = %d bytes, want %d", name, len(got), len(tc.want))
		}
	}
}
