package camera

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"io"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// encodeTestJPEGs returns n distinct w×h JPEGs (a gradient with a moving
// bar), encoded once.
func encodeTestJPEGs(n, w, h int) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		img := image.NewRGBA(image.Rect(0, 0, w, h))
		for y := 0; y < h; y++ {
			for x := 0; x < w; x++ {
				c := color.RGBA{uint8(x * 255 / w), uint8(y * 255 / h), uint8(i * 40), 255}
				if (x+i*w/n)%w < w/8 {
					c = color.RGBA{255, 255, 255, 255}
				}
				img.Set(x, y, c)
			}
		}
		var buf bytes.Buffer
		if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: 75}); err != nil {
			panic(err)
		}
		out[i] = buf.Bytes()
	}
	return out
}

var smallJPEGs = sync.OnceValue(func() [][]byte { return encodeTestJPEGs(4, 64, 48) })

// testCamera opens testSources and counts what happens to them. Its
// fields are set before use; the counters are safe to read at any time.
type testCamera struct {
	jpegs [][]byte
	// interval paces frames; zero means frames come only when step is sent
	// to (if step is nil, as fast as they are read).
	interval time.Duration
	step     chan struct{}
	// openErr, if set, decides whether the nth open (from 1) fails.
	openErr func(n int) error
	// failAfter, if set, makes each source fail with readErr after that
	// many frames.
	failAfter int
	readErr   error

	opens, closes, live atomic.Int32
}

func newTestCamera() *testCamera {
	return &testCamera{jpegs: smallJPEGs(), interval: 5 * time.Millisecond}
}

func (c *testCamera) open(ctx context.Context) (Source, error) {
	n := int(c.opens.Add(1))
	if c.openErr != nil {
		if err := c.openErr(n); err != nil {
			return nil, err
		}
	}
	c.live.Add(1)
	return &testSource{cam: c, closed: make(chan struct{})}, nil
}

// testSource yields the camera's JPEGs in turn.
type testSource struct {
	cam    *testCamera
	seq    uint64
	closed chan struct{}
	once   sync.Once
}

func (s *testSource) ReadFrame(ctx context.Context) (Frame, error) {
	c := s.cam
	if c.failAfter > 0 && s.seq >= uint64(c.failAfter) {
		return Frame{}, c.readErr
	}
	var wait <-chan struct{}
	var timer *time.Timer
	switch {
	case c.interval > 0:
		timer = time.NewTimer(c.interval)
		defer timer.Stop()
	case c.step != nil:
		wait = c.step
	}
	var tc <-chan time.Time
	if timer != nil {
		tc = timer.C
	}
	if wait != nil || tc != nil {
		select {
		case <-ctx.Done():
			return Frame{}, ctx.Err()
		case <-s.closed:
			return Frame{}, ErrClosed
		case <-wait:
		case <-tc:
		}
	} else {
		select {
		case <-ctx.Done():
			return Frame{}, ctx.Err()
		case <-s.closed:
			return Frame{}, ErrClosed
		default:
		}
	}
	s.seq++
	return Frame{Data: c.jpegs[int(s.seq-1)%len(c.jpegs)], Seq: s.seq, Time: time.Now()}, nil
}

func (s *testSource) Close() error {
	s.once.Do(func() {
		close(s.closed)
		s.cam.closes.Add(1)
		s.cam.live.Add(-1)
	})
	return nil
}

// eventually polls cond until it holds or a generous deadline passes.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// checkGoroutines waits for the number of goroutines to drop back to base,
// reporting the stacks if it does not.
func checkGoroutines(t *testing.T, base int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > base {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines, want at most %d:\n%s", runtime.NumGoroutine(), base, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func newTestBroadcaster(t *testing.T, c *testCamera, opts BroadcastOptions) *Broadcaster {
	t.Helper()
	b, err := NewBroadcaster(c.open, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func TestNewBroadcasterValidates(t *testing.T) {
	open := newTestCamera().open
	for _, o := range []BroadcastOptions{
		{RestartBackoff: -1},
		{MaxBackoff: -1},
		{RestartBackoff: time.Second, MaxBackoff: time.Millisecond},
		{MaxFailures: -1},
		{SnapshotWait: -time.Second},
		{WriteTimeout: -time.Second},
	} {
		if _, err := NewBroadcaster(open, o); err == nil {
			t.Errorf("NewBroadcaster(%+v) succeeded", o)
		}
	}
	if _, err := NewBroadcaster(nil, BroadcastOptions{}); err == nil {
		t.Error("NewBroadcaster(nil) succeeded")
	}
	if _, err := NewBroadcasterSpec("nosuchdriver:x", BroadcastOptions{}); err == nil {
		t.Error("NewBroadcasterSpec with an unknown driver succeeded")
	}
}

func TestBroadcastNothingOpenedUntilSubscribe(t *testing.T) {
	c := newTestCamera()
	b := newTestBroadcaster(t, c, BroadcastOptions{})
	time.Sleep(20 * time.Millisecond)
	if n := c.opens.Load(); n != 0 {
		t.Fatalf("source opened %d times before any viewer", n)
	}
	if s := b.Stats(); s.Capturing || s.Viewers != 0 {
		t.Fatalf("Stats = %+v, want idle", s)
	}
}

// Viewers that keep up get every frame, in order.
func TestBroadcastFastViewersGetEveryFrame(t *testing.T) {
	c := newTestCamera()
	c.interval, c.step = 0, make(chan struct{})
	b := newTestBroadcaster(t, c, BroadcastOptions{})
	const viewers, frames = 20, 50
	got := make(chan uint64, viewers)
	var wg sync.WaitGroup
	errs := make(chan error, viewers)
	for range viewers {
		v, err := b.Subscribe()
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer v.Close()
			for want := uint64(1); want <= frames; want++ {
				f, err := v.Next(context.Background())
				if err != nil {
					errs <- err
					return
				}
				if f.Seq != want {
					errs <- fmt.Errorf("got frame %d, want %d", f.Seq, want)
					return
				}
				got <- f.Seq
			}
		}()
	}
	// Step the camera only when every viewer has the current frame, so
	// that "fast" does not depend on the scheduler.
	for i := 1; i <= frames; i++ {
		c.step <- struct{}{}
		for range viewers {
			select {
			case <-got:
			case err := <-errs:
				t.Fatal(err)
			}
		}
	}
	wg.Wait()
	s := b.Stats()
	if s.Captured != frames || s.Delivered != viewers*frames || s.Skipped != 0 {
		t.Errorf("Stats = %+v, want %d captured, %d delivered, 0 skipped", s, frames, viewers*frames)
	}
}

// A viewer that does not ask for frames skips them without holding up the
// others, and then gets the newest one.
func TestBroadcastSlowViewerSkips(t *testing.T) {
	c := newTestCamera()
	c.interval, c.step = 0, make(chan struct{})
	b := newTestBroadcaster(t, c, BroadcastOptions{})
	slow, err := b.Subscribe()
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	fast, err := b.Subscribe()
	if err != nil {
		t.Fatal(err)
	}
	defer fast.Close()
	ctx := context.Background()

	c.step <- struct{}{}
	if f, err := slow.Next(ctx); err != nil || f.Seq != 1 {
		t.Fatalf("slow viewer: frame %d, %v; want frame 1", f.Seq, err)
	}
	for want := uint64(1); want <= 10; want++ {
		if want > 1 {
			c.step <- struct{}{}
		}
		f, err := fast.Next(ctx)
		if err != nil || f.Seq != want {
			t.Fatalf("fast viewer: frame %d, %v; want %d", f.Seq, err, want)
		}
	}
	f, err := slow.Next(ctx)
	if err != nil || f.Seq != 10 {
		t.Fatalf("slow viewer: frame %d, %v; want the latest, 10", f.Seq, err)
	}
	if s := b.Stats(); s.Skipped != 8 || s.Delivered != 12 {
		t.Errorf("Stats = %+v, want 8 skipped and 12 delivered", s)
	}
	// The frame a viewer already has is not returned again.
	ctx2, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if f, err := slow.Next(ctx2); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Next without a new frame = frame %d, %v; want deadline exceeded", f.Seq, err)
	}
}

func TestBroadcastIdleStopsAndRestarts(t *testing.T) {
	c := newTestCamera()
	b := newTestBroadcaster(t, c, BroadcastOptions{Idle: 30 * time.Millisecond})
	ctx := context.Background()
	v, err := b.Subscribe()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Next(ctx); err != nil {
		t.Fatal(err)
	}
	v.Close()
	v.Close() // idempotent
	if _, err := v.Next(ctx); !errors.Is(err, ErrClosed) {
		t.Errorf("Next after Close = %v, want ErrClosed", err)
	}
	eventually(t, "the idle source to be closed", func() bool { return c.closes.Load() == 1 })
	if s := b.Stats(); s.Capturing || s.Viewers != 0 {
		t.Fatalf("Stats after idle = %+v, want not capturing", s)
	}

	v, err = b.Subscribe()
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	f, err := v.Next(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if f.Seq != 1 {
		t.Errorf("first frame after restart has Seq %d; want 1 (a fresh frame, not the stale one)", f.Seq)
	}
	if n := c.opens.Load(); n != 2 {
		t.Errorf("source opened %d times, want 2", n)
	}
	if n := b.Stats().Restarts; n != 0 {
		t.Errorf("Restarts = %d, want 0 (idle restarts are not failures)", n)
	}
}

// A viewer arriving within the grace period keeps the source open.
func TestBroadcastIdleGrace(t *testing.T) {
	c := newTestCamera()
	b := newTestBroadcaster(t, c, BroadcastOptions{Idle: time.Hour})
	ctx := context.Background()
	for range 3 {
		v, err := b.Subscribe()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := v.Next(ctx); err != nil {
			t.Fatal(err)
		}
		v.Close()
	}
	if n := c.opens.Load(); n != 1 {
		t.Errorf("source opened %d times, want 1", n)
	}
	if !b.Stats().Capturing {
		t.Error("capture stopped within the grace period")
	}
}

func TestBroadcastRestartsAfterErrors(t *testing.T) {
	c := newTestCamera()
	c.openErr = func(n int) error {
		if n <= 2 {
			return errors.New("camera busy")
		}
		return nil
	}
	c.failAfter, c.readErr = 3, errors.New("usb hiccup")
	b := newTestBroadcaster(t, c, BroadcastOptions{RestartBackoff: time.Millisecond, MaxBackoff: 4 * time.Millisecond, MaxFailures: 3})
	v, err := b.Subscribe()
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	// Two failed opens, then sources that fail after 3 frames: frames keep
	// coming (each source resets the failure count), numbered 1..3 again.
	var seqs []uint64
	for len(seqs) < 9 {
		f, err := v.Next(context.Background())
		if err != nil {
			t.Fatalf("after %v: %v", seqs, err)
		}
		seqs = append(seqs, f.Seq)
	}
	for i, s := range seqs {
		if s != uint64(i%3+1) {
			t.Fatalf("frames %v; want 1 2 3 repeated", seqs)
		}
	}
	if n := c.opens.Load(); n < 5 {
		t.Errorf("opened %d times, want at least 5", n)
	}
	if s := b.Stats(); s.Restarts < 4 {
		t.Errorf("Restarts = %d, want at least 4", s.Restarts)
	}
	eventually(t, "failed sources to be closed", func() bool { return c.live.Load() <= 1 })
}

func TestBroadcastEOFRestarts(t *testing.T) {
	c := newTestCamera()
	c.failAfter, c.readErr = 2, io.EOF
	b := newTestBroadcaster(t, c, BroadcastOptions{RestartBackoff: time.Millisecond, MaxFailures: 2})
	v, err := b.Subscribe()
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	for range 5 {
		if _, err := v.Next(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if n := c.opens.Load(); n < 3 {
		t.Errorf("opened %d times, want at least 3", n)
	}
}

func TestBroadcastStopOnEOF(t *testing.T) {
	c := newTestCamera()
	c.failAfter, c.readErr = 2, io.EOF
	b := newTestBroadcaster(t, c, BroadcastOptions{StopOnEOF: true})
	v, err := b.Subscribe()
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	for range 2 {
		if _, err := v.Next(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := v.Next(context.Background()); err != io.EOF {
		t.Fatalf("Next after the source ended = %v, want io.EOF", err)
	}
	if _, err := b.Subscribe(); err != io.EOF {
		t.Fatalf("Subscribe after the source ended = %v, want io.EOF", err)
	}
	eventually(t, "the source to be closed", func() bool { return c.closes.Load() == 1 })
}

func TestBroadcastGivesUp(t *testing.T) {
	c := newTestCamera()
	openErr := errors.New("no such camera")
	c.openErr = func(int) error { return openErr }
	b := newTestBroadcaster(t, c, BroadcastOptions{RestartBackoff: time.Millisecond, MaxFailures: 3})
	v, err := b.Subscribe()
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	_, err = v.Next(context.Background())
	if !errors.Is(err, ErrFailed) || !errors.Is(err, openErr) {
		t.Fatalf("Next = %v, want an error wrapping ErrFailed and the open error", err)
	}
	if n := c.opens.Load(); n != 3 {
		t.Errorf("opened %d times, want 3", n)
	}
	if _, err := b.Subscribe(); !errors.Is(err, ErrFailed) {
		t.Errorf("Subscribe after giving up = %v, want ErrFailed", err)
	}
	if _, err := b.Snapshot(context.Background()); !errors.Is(err, ErrFailed) {
		t.Errorf("Snapshot after giving up = %v, want ErrFailed", err)
	}
	if err := b.Close(); err != nil {
		t.Errorf("Close after giving up = %v", err)
	}
}

func TestBroadcastBackoff(t *testing.T) {
	b, err := NewBroadcaster(newTestCamera().open, BroadcastOptions{RestartBackoff: 100 * time.Millisecond, MaxBackoff: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		n        int
		min, max time.Duration
	}{
		{1, 50 * time.Millisecond, 100 * time.Millisecond},
		{2, 100 * time.Millisecond, 200 * time.Millisecond},
		{4, 400 * time.Millisecond, 800 * time.Millisecond},
		{5, 500 * time.Millisecond, time.Second},
		{1000, 500 * time.Millisecond, time.Second},
	} {
		for range 50 {
			if d := b.backoff(tc.n); d < tc.min || d > tc.max {
				t.Fatalf("backoff(%d) = %s, want within [%s, %s]", tc.n, d, tc.min, tc.max)
			}
		}
	}
}

func TestBroadcastClose(t *testing.T) {
	base := runtime.NumGoroutine()
	c := newTestCamera()
	b, err := NewBroadcaster(c.open, BroadcastOptions{})
	if err != nil {
		t.Fatal(err)
	}
	v, err := b.Subscribe()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Next(context.Background()); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		for {
			if _, err := v.Next(context.Background()); err != nil {
				done <- err
				return
			}
		}
	}()
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if n := c.live.Load(); n != 0 {
		t.Errorf("%d sources open after Close returned", n)
	}
	if err := <-done; !errors.Is(err, ErrClosed) {
		t.Errorf("waiting Next = %v, want ErrClosed", err)
	}
	if err := b.Close(); err != nil {
		t.Errorf("second Close = %v", err)
	}
	if _, err := b.Subscribe(); !errors.Is(err, ErrClosed) {
		t.Errorf("Subscribe after Close = %v, want ErrClosed", err)
	}
	v.Close()
	checkGoroutines(t, base)
}

func TestBroadcastSnapshot(t *testing.T) {
	c := newTestCamera()
	b := newTestBroadcaster(t, c, BroadcastOptions{Idle: 20 * time.Millisecond})
	f, err := b.Snapshot(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(f.Data, c.jpegs[0]) {
		t.Error("snapshot is not the first frame")
	}
	// The snapshot started capture, which stops again when idle.
	eventually(t, "capture to stop", func() bool { return c.closes.Load() == 1 })

	c2 := newTestCamera()
	c2.interval, c2.step = 0, make(chan struct{}) // never a frame
	b2 := newTestBroadcaster(t, c2, BroadcastOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := b2.Snapshot(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Snapshot without frames = %v, want deadline exceeded", err)
	}
}

// Concurrent subscribing, leaving and closing, for the race detector.
func TestBroadcastConcurrentChurn(t *testing.T) {
	base := runtime.NumGoroutine()
	c := newTestCamera()
	c.interval = 200 * time.Microsecond
	b, err := NewBroadcaster(c.open, BroadcastOptions{Idle: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 50 {
				v, err := b.Subscribe()
				if err != nil {
					return
				}
				ctx, cancel := context.WithTimeout(context.Background(), time.Second)
				for range i % 3 {
					if _, err := v.Next(ctx); err != nil {
						break
					}
				}
				cancel()
				v.Close()
				_ = b.Stats()
			}
		}()
	}
	wg.Wait()
	b.Close()
	if n := c.live.Load(); n != 0 {
		t.Errorf("%d sources open after Close", n)
	}
	checkGoroutines(t, base)
}

func TestAppendTimestamp(t *testing.T) {
	for _, tc := range []struct {
		t    time.Time
		want string
	}{
		{time.Unix(1700000000, 123456789), "1700000000.123456"},
		{time.Unix(5, 1000), "5.000001"},
		{time.Unix(0, 0), "0.000000"},
	} {
		if got := string(appendTimestamp(nil, tc.t)); got != tc.want {
			t.Errorf("appendTimestamp(%v) = %q, want %q", tc.t, got, tc.want)
		}
	}
}
