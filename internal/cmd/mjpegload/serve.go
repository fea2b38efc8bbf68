package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/jpeg"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"runtime"
	"sync"
	"time"

	"github.com/pikit/pikit/camera"
)

// simConfig is what -serve-sim serves.
type simConfig struct {
	Addr     string
	Source   string // camera spec; empty replays pre-encoded frames
	FPS      int
	Width    int // of replayed frames; default 640×480
	Height   int
	Idle     time.Duration
	Duration time.Duration
}

// serveSim serves a Broadcaster over a simulated camera until ctx is done
// or cfg.Duration has passed.
func serveSim(ctx context.Context, cfg simConfig, stdout io.Writer) error {
	host, _, err := net.SplitHostPort(cfg.Addr)
	if err != nil {
		return fmt.Errorf("-serve-sim %q: %w", cfg.Addr, err)
	}
	if !loopbackHost(host) {
		return fmt.Errorf("-serve-sim %q: refusing to listen on an address that is not loopback", cfg.Addr)
	}
	if cfg.Duration <= 0 || cfg.Duration > maxServeDuration {
		return fmt.Errorf("-duration %s: want more than 0, at most %s", cfg.Duration, maxServeDuration)
	}
	h, bc, err := newSimServer(cfg)
	if err != nil {
		return err
	}
	defer bc.Close()
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	fmt.Fprintf(stdout, "serving http://%s/stream.mjpg, /snapshot.jpg and /stats for %s\n", ln.Addr(), cfg.Duration)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	ctx, cancel := context.WithTimeout(ctx, cfg.Duration)
	defer cancel()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	bc.Close() // ends the streams, which Shutdown would wait for
	sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer scancel()
	if err := srv.Shutdown(sctx); err != nil {
		return err
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// newSimServer returns the handler of -serve-sim and its Broadcaster.
func newSimServer(cfg simConfig) (http.Handler, *camera.Broadcaster, error) {
	opts := camera.BroadcastOptions{Idle: cfg.Idle}
	var bc *camera.Broadcaster
	var err error
	if cfg.Source != "" {
		bc, err = camera.NewBroadcasterSpec(cfg.Source, opts)
	} else {
		if cfg.FPS <= 0 || cfg.FPS > 1000 {
			return nil, nil, fmt.Errorf("-fps %d: want 1 to 1000", cfg.FPS)
		}
		w, h := cfg.Width, cfg.Height
		if w <= 0 || h <= 0 {
			w, h = 640, 480
		}
		frames := replayFrames(w, h, 8)
		period := time.Second / time.Duration(cfg.FPS)
		bc, err = camera.NewBroadcaster(func(context.Context) (camera.Source, error) {
			return newReplay(frames, period), nil
		}, opts)
	}
	if err != nil {
		return nil, nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("/stream.mjpg", bc.MJPEGHandler())
	mux.Handle("/snapshot.jpg", bc.SnapshotHandler())
	mux.HandleFunc("/stats", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("gc") != "" {
			// Twice: the first GC only moves sync.Pool contents (net/http's
			// per-connection buffers) to the victim cache.
			runtime.GC()
			runtime.GC()
		}
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(serverStats{
			HeapInuse: ms.HeapInuse, HeapAlloc: ms.HeapAlloc, Sys: ms.Sys, NumGC: ms.NumGC,
			Goroutines: runtime.NumGoroutine(), Broadcast: bc.Stats(),
		})
	})
	return mux, bc, nil
}

// replayFrames encodes n different w×h frames with sensor-like noise, so
// that they are about as big as a real camera's.
func replayFrames(w, h, n int) [][]byte {
	r := rand.New(rand.NewPCG(1, 2))
	out := make([][]byte, n)
	for i := range out {
		img := image.NewYCbCr(image.Rect(0, 0, w, h), image.YCbCrSubsampleRatio420)
		for y := 0; y < h; y++ {
			for x := 0; x < w; x++ {
				img.Y[y*img.YStride+x] = uint8((x+i*w/n)%w*200/w + r.IntN(24))
			}
		}
		for j := range img.Cb {
			img.Cb[j], img.Cr[j] = uint8(100+r.IntN(16)), uint8(140+r.IntN(16))
		}
		var buf bytes.Buffer
		if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: 80}); err != nil {
			panic(err) // cannot fail writing to a bytes.Buffer
		}
		out[i] = buf.Bytes()
	}
	return out
}

// replay is a camera.Source that plays pre-encoded frames in a loop at a
// fixed rate, dropping frames rather than drifting when it falls behind.
type replay struct {
	frames [][]byte
	period time.Duration
	start  time.Time
	tick   uint64 // frame slots since start
	seq    uint64
	closed chan struct{}
	once   sync.Once
}

func newReplay(frames [][]byte, period time.Duration) *replay {
	return &replay{frames: frames, period: period, start: time.Now(), closed: make(chan struct{})}
}

func (s *replay) ReadFrame(ctx context.Context) (camera.Frame, error) {
	s.tick++
	due := s.start.Add(time.Duration(s.tick) * s.period)
	if late := time.Since(due); late > s.period {
		s.tick += uint64(late / s.period) // a real camera drops frames too
		due = s.start.Add(time.Duration(s.tick) * s.period)
	}
	t := time.NewTimer(time.Until(due))
	defer t.Stop()
	select {
	case <-ctx.Done():
		return camera.Frame{}, ctx.Err()
	case <-s.closed:
		return camera.Frame{}, camera.ErrClosed
	case now := <-t.C:
		s.seq++
		return camera.Frame{Data: s.frames[s.tick%uint64(len(s.frames))], Seq: s.seq, Time: now}, nil
	}
}

func (s *replay) Close() error {
	s.once.Do(func() { close(s.closed) })
	return nil
}
