package camera

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"
)

func TestSimFrames(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	s, err := NewSim(SimOptions{Width: 160, Height: 120, FPS: 120, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var prev []byte
	for i := 1; i <= 5; i++ {
		f, err := s.ReadFrame(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if f.Seq != uint64(i) || !f.Time.Equal(now) {
			t.Errorf("frame %d: Seq %d, Time %v", i, f.Seq, f.Time)
		}
		if cap(f.Data) != len(f.Data) {
			t.Errorf("frame %d: cap %d for len %d", i, cap(f.Data), len(f.Data))
		}
		checkDecodes(t, f.Data, 160, 120)
		if bytes.Equal(f.Data, prev) {
			t.Errorf("frame %d is the same as the one before: the picture does not move", i)
		}
		prev = f.Data
		if s.Frames() != uint64(i) {
			t.Errorf("Frames() = %d after %d frames", s.Frames(), i)
		}
	}
}

// The picture depends only on the frame number.
func TestSimDeterministic(t *testing.T) {
	a, _ := NewSim(SimOptions{Width: 64, Height: 48})
	b, _ := NewSim(SimOptions{Width: 64, Height: 48})
	for n := uint64(1); n < 70; n += 7 {
		fa, err := a.encode(n)
		if err != nil {
			t.Fatal(err)
		}
		fb, _ := b.encode(n)
		if !bytes.Equal(fa, fb) {
			t.Fatalf("frame %d differs between two sims", n)
		}
	}
}

func TestSimSizes(t *testing.T) {
	for _, sz := range [][2]int{{16, 16}, {17, 33}, {4096, 16}, {1279, 721}} {
		s, err := NewSim(SimOptions{Width: sz[0], Height: sz[1]})
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range []uint64{1, 9, 12345678901} {
			f, err := s.encode(n)
			if err != nil {
				t.Fatal(err)
			}
			checkDecodes(t, f, sz[0], sz[1])
		}
	}
}

func TestSimOptions(t *testing.T) {
	for _, tc := range []struct {
		opts SimOptions
		err  string
	}{
		{SimOptions{Width: 15, Height: 100}, "camera: sim: size 15x100 out of range (16 to 4096 pixels each way)"},
		{SimOptions{Width: 100, Height: 4097}, "camera: sim: size 100x4097 out of range"},
		{SimOptions{Width: 100}, "camera: sim: size 100x0 out of range"},
		{SimOptions{FPS: 121}, "camera: sim: frame rate 121 out of range (1 to 120)"},
		{SimOptions{FPS: -1}, "camera: sim: frame rate -1 out of range"},
		{SimOptions{Quality: 101}, "camera: sim: JPEG quality 101 out of range (1 to 100)"},
	} {
		if _, err := NewSim(tc.opts); err == nil || !strings.HasPrefix(err.Error(), tc.err) {
			t.Errorf("NewSim(%+v) = %v, want %q", tc.opts, err, tc.err)
		}
	}
}

func TestOpenSim(t *testing.T) {
	for spec, want := range map[string]SimOptions{
		"sim":                    {Width: 640, Height: 480, FPS: 30, Quality: 75},
		"sim:":                   {Width: 640, Height: 480, FPS: 30, Quality: 75},
		"sim:320x240":            {Width: 320, Height: 240, FPS: 30, Quality: 75},
		"sim:320x240@15":         {Width: 320, Height: 240, FPS: 15, Quality: 75},
		"sim:@5":                 {Width: 640, Height: 480, FPS: 5, Quality: 75},
		"sim?quality=40":         {Width: 640, Height: 480, FPS: 30, Quality: 40},
		"sim:64x48@1?quality=90": {Width: 64, Height: 48, FPS: 1, Quality: 90},
	} {
		src, err := Open(spec)
		if err != nil {
			t.Errorf("Open(%q): %v", spec, err)
			continue
		}
		o := src.(*Sim).opts
		if o.Width != want.Width || o.Height != want.Height || o.FPS != want.FPS || o.Quality != want.Quality {
			t.Errorf("Open(%q) options %+v, want %+v", spec, o, want)
		}
		src.Close()
	}
	for spec, want := range map[string]string{
		"sim:640":         `camera: sim: bad size "640": want WIDTHxHEIGHT, e.g. 640x480 (form: sim[:WIDTHxHEIGHT][@FPS][?quality=75])`,
		"sim:axb":         `camera: sim: bad size "axb"`,
		"sim:640x480@":    `camera: sim: bad frame rate ""`,
		"sim:640x480@2.5": `camera: sim: bad frame rate "2.5": want a whole number`,
		"sim:8x8":         "camera: sim: size 8x8 out of range",
		"sim:@500":        "camera: sim: frame rate 500 out of range",
		"sim?q=1":         `camera: sim: unknown option "q" (accepted: quality)`,
		"sim?quality=0":   `camera: sim: option quality="0": want 1 to 100`,
		"sim?quality=200": "camera: sim: JPEG quality 200 out of range",
	} {
		if _, err := Open(spec); err == nil || !strings.HasPrefix(err.Error(), want) {
			t.Errorf("Open(%q) = %v, want an error starting %q", spec, err, want)
		}
	}
}

func TestSimRate(t *testing.T) {
	s, _ := NewSim(SimOptions{Width: 32, Height: 32, FPS: 50})
	defer s.Close()
	ctx := context.Background()
	start := time.Now()
	for range 11 {
		if _, err := s.ReadFrame(ctx); err != nil {
			t.Fatal(err)
		}
	}
	// The first frame comes at once, then one every 20ms.
	if d := time.Since(start); d < 195*time.Millisecond || d > 600*time.Millisecond {
		t.Errorf("11 frames at 50 fps took %s, want 200ms", d)
	}
}

func TestSimCloseAndContext(t *testing.T) {
	s, _ := NewSim(SimOptions{Width: 32, Height: 32, FPS: 1})
	ctx := context.Background()
	if _, err := s.ReadFrame(ctx); err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if _, err := s.ReadFrame(short); err != context.DeadlineExceeded {
		t.Errorf("ReadFrame with a short deadline: %v", err)
	}
	done := make(chan error)
	go func() {
		_, err := s.ReadFrame(ctx)
		done <- err
	}()
	time.Sleep(20 * time.Millisecond)
	s.Close()
	select {
	case err := <-done:
		if err != ErrClosed {
			t.Errorf("ReadFrame during Close: %v", err)
		}
	case <-time.After(500 * time.Millisecond):
		t.Fatal("Close did not interrupt ReadFrame")
	}
	if _, err := s.ReadFrame(ctx); err != ErrClosed {
		t.Errorf("ReadFrame after Close: %v", err)
	}
	if s.Frames() != 1 {
		t.Errorf("Frames() = %d", s.Frames())
	}
}

// fakeClock is a clock for the pacer whose timers fire at once, moving the
// clock to their deadline.
type fakeClock struct {
	now   time.Time
	slept []time.Duration
}

func (c *fakeClock) pacer(period time.Duration) pacer {
	return pacer{
		period: period,
		now:    func() time.Time { return c.now },
		after: func(d time.Duration) <-chan time.Time {
			c.slept = append(c.slept, d)
			c.now = c.now.Add(d)
			ch := make(chan time.Time, 1)
			ch <- c.now
			return ch
		},
	}
}

func TestPacer(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	c := &fakeClock{now: t0}
	p := c.pacer(100 * time.Millisecond)
	ctx := context.Background()
	var released []time.Duration
	wait := func() {
		t.Helper()
		if err := p.wait(ctx, nil); err != nil {
			t.Fatal(err)
		}
		released = append(released, c.now.Sub(t0))
	}
	// A reader that takes 30ms per frame does not make the rate drift.
	for range 4 {
		wait()
		c.now = c.now.Add(30 * time.Millisecond)
	}
	// A reader 350ms late (at 680ms, the 400ms slot was due) gets one
	// frame at once, skips the 500 and 600ms slots, and is back on the
	// grid at 700ms.
	c.now = c.now.Add(350 * time.Millisecond)
	wait()
	wait()
	wait()
	ms := time.Millisecond
	want := []time.Duration{0, 100 * ms, 200 * ms, 300 * ms, 680 * ms, 700 * ms, 800 * ms}
	if len(released) != len(want) {
		t.Fatalf("released at %v", released)
	}
	for i := range want {
		if released[i] != want[i] {
			t.Fatalf("released at %v, want %v", released, want)
		}
	}
	if c.slept[0] != 70*ms {
		t.Errorf("first sleep %s, want 70ms (100ms less the 30ms the reader took)", c.slept[0])
	}
	// Slightly late (less than a period): no slot skipped.
	c.now = c.now.Add(150 * time.Millisecond) // at 950ms, the 900ms slot is due
	wait()
	wait()
	if got := released[len(released)-2:]; got[0] != 950*ms || got[1] != 1000*ms {
		t.Errorf("slightly late: released at %v, want 950ms, 1000ms", got)
	}

	done, cancel := context.WithCancel(ctx)
	cancel()
	if err := p.wait(done, nil); err != context.Canceled {
		t.Errorf("canceled: %v", err)
	}
}

func BenchmarkSimFrame(b *testing.B) {
	s, err := NewSim(SimOptions{Width: 640, Height: 480})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	var size int
	for i := range b.N {
		f, err := s.encode(uint64(i + 1))
		if err != nil {
			b.Fatal(err)
		}
		size = len(f)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/frame")
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "frames/s")
	b.ReportMetric(float64(size), "bytes/frame")
}
