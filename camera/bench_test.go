//go:build unix

package camera

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"image"
	"image/jpeg"
	"io"
	"math/rand/v2"
	"net"
	"net/http/httptest"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// benchJPEG is a 640×480 frame with sensor-like noise, so that it is about
// as big as a real camera's (a clean test pattern compresses to a third).
var benchJPEG = sync.OnceValue(func() []byte {
	const w, h = 640, 480
	r := rand.New(rand.NewPCG(1, 2))
	img := image.NewYCbCr(image.Rect(0, 0, w, h), image.YCbCrSubsampleRatio420)
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			img.Y[y*img.YStride+x] = uint8(x*200/w + r.IntN(24))
		}
	}
	for i := range img.Cb {
		img.Cb[i], img.Cr[i] = uint8(100+r.IntN(16)), uint8(140+r.IntN(16))
	}
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: 80}); err != nil {
		panic(err)
	}
	return buf.Bytes()
})

var fanoutViewers = []int{1, 10, 100}

// BenchmarkBroadcastFanout measures the Broadcaster alone: one op is one
// frame handed to one viewer. The camera is stepped only when every viewer
// has the current frame, so every frame reaches every viewer.
func BenchmarkBroadcastFanout(b *testing.B) {
	for _, n := range fanoutViewers {
		b.Run(fmt.Sprintf("viewers=%d", n), func(b *testing.B) {
			c := newTestCamera()
			c.jpegs = [][]byte{benchJPEG()}
			c.interval, c.step = 0, make(chan struct{})
			bc, err := NewBroadcaster(c.open, BroadcastOptions{})
			if err != nil {
				b.Fatal(err)
			}
			defer bc.Close()
			frames := b.N/n + 1
			var left atomic.Int64
			allGot := make(chan struct{})
			var wg sync.WaitGroup
			for range n {
				v, err := bc.Subscribe()
				if err != nil {
					b.Fatal(err)
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					defer v.Close()
					for range frames {
						if _, err := v.next(context.Background()); err != nil {
							b.Error(err)
							return
						}
						if left.Add(-1) == 0 {
							allGot <- struct{}{}
						}
					}
				}()
			}
			b.ReportAllocs()
			b.ResetTimer()
			for range frames {
				left.Store(int64(n))
				c.step <- struct{}{}
				<-allGot
			}
			b.StopTimer()
			wg.Wait()
			if s := bc.Stats(); s.Skipped != 0 || s.Delivered != uint64(frames*n) {
				b.Fatalf("stats %+v, want %d delivered and none skipped", s, frames*n)
			}
			b.ReportMetric(float64(frames*n)/float64(b.N), "frames/op")
		})
	}
}

// The comparison below runs the viewers in a child process (this test
// binary, running TestHelperMJPEGViewers) so that the CPU time the
// benchmark process uses is the server's alone. Both servers are stepped
// frame by frame: the child writes one byte when all its viewers have the
// current frame, and only then is the next one published.

// BenchmarkBareWriter is the baseline: one goroutine per viewer writes the
// shared, pre-built part header and JPEG of the latest frame straight to
// its TCP connection with a single writev, with no HTTP server, deadlines
// or statistics involved.
func BenchmarkBareWriter(b *testing.B) {
	for _, n := range fanoutViewers {
		b.Run(fmt.Sprintf("viewers=%d", n), func(b *testing.B) {
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			defer l.Close()
			hub := &bareHub{wake: make(chan struct{})}
			var conns sync.WaitGroup
			var mu sync.Mutex
			var open []net.Conn
			go func() {
				for {
					conn, err := l.Accept()
					if err != nil {
						return
					}
					mu.Lock()
					open = append(open, conn)
					mu.Unlock()
					conns.Add(1)
					go func() {
						defer conns.Done()
						bareServe(conn, hub)
					}()
				}
			}()
			// Like the Broadcaster's capture goroutine, a producer
			// goroutine stands for the camera reader.
			boundary := newBoundary()
			data := benchJPEG()
			step := make(chan uint64)
			go func() {
				for seq := range step {
					f := Frame{Data: data, Seq: seq, Time: time.Now()}
					hub.publish(&barePart{hdr: appendPartHeader(nil, boundary, f), data: data})
				}
			}()
			measureServer(b, n, "http://"+l.Addr().String()+"/", func() int { return int(hub.viewers.Load()) }, func(seq uint64) { step <- seq })
			close(step)
			mu.Lock()
			for _, c := range open {
				c.Close()
			}
			mu.Unlock()
			hub.end()
			conns.Wait()
		})
	}
}

// BenchmarkHandlerMJPEG is the same over MJPEGHandler and net/http.
func BenchmarkHandlerMJPEG(b *testing.B) {
	for _, n := range fanoutViewers {
		b.Run(fmt.Sprintf("viewers=%d", n), func(b *testing.B) {
			c := newTestCamera()
			c.jpegs = [][]byte{benchJPEG()}
			c.interval, c.step = 0, make(chan struct{})
			bc, err := NewBroadcaster(c.open, BroadcastOptions{})
			if err != nil {
				b.Fatal(err)
			}
			srv := httptest.NewServer(bc.MJPEGHandler())
			measureServer(b, n, srv.URL+"/stream.mjpg", func() int { return bc.Stats().Viewers }, func(uint64) { c.step <- struct{}{} })
			bc.Close()
			srv.Close()
		})
	}
}

// measureServer starts n viewers of url in a child process, waits until
// the server counts them all, then publishes frames one at a time with
// publish, each once all viewers have the previous one. It reports the
// server's CPU time (this process, from getrusage) and the viewers' per
// delivered frame; one op is one delivered frame.
func measureServer(b *testing.B, n int, url string, viewers func() int, publish func(seq uint64)) {
	b.Helper()
	frames := b.N/n + 1
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperMJPEGViewers$")
	cmd.Env = append(os.Environ(), "PIKIT_MJPEG_VIEWERS="+strconv.Itoa(n), "PIKIT_MJPEG_URL="+url)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer cmd.Wait()         // reaps the child
	defer cmd.Process.Kill() // the viewers never stop by themselves
	deadline := time.Now().Add(30 * time.Second)
	for viewers() < n {
		if time.Now().After(deadline) {
			b.Fatalf("%d of %d viewers connected", viewers(), n)
		}
		time.Sleep(time.Millisecond)
	}
	ack := make([]byte, 1)
	b.ResetTimer()
	before := cpuTime()
	for i := range frames {
		publish(uint64(i + 1))
		if _, err := io.ReadFull(out, ack); err != nil {
			b.Fatalf("viewers: %v", err)
		}
	}
	used := cpuTime() - before
	b.StopTimer()
	delivered := float64(frames * n)
	b.ReportMetric(float64(used.Nanoseconds())/delivered, "srv-cpu-ns/frame")
	b.ReportMetric(float64(frames*n)/float64(b.N), "frames/op")
	b.SetBytes(int64(len(benchJPEG())))
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		panic(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// TestHelperMJPEGViewers is the viewer side of the server benchmarks, run
// in a child process; it does nothing in a normal test run.
func TestHelperMJPEGViewers(t *testing.T) {
	url := os.Getenv("PIKIT_MJPEG_URL")
	if url == "" {
		t.Skip("helper process for the MJPEG benchmarks")
	}
	n, _ := strconv.Atoi(os.Getenv("PIKIT_MJPEG_VIEWERS"))
	addr := strings.TrimPrefix(url, "http://")
	path := "/"
	if i := strings.IndexByte(addr, '/'); i >= 0 {
		addr, path = addr[:i], addr[i:]
	}
	var got atomic.Int64
	var mu sync.Mutex
	ack := bufio.NewWriter(os.Stdout)
	var wg sync.WaitGroup
	for range n {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer conn.Close()
			fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: %s\r\n\r\n", path, addr)
			br := bufio.NewReaderSize(conn, 64<<10)
			if _, err := readHeader(br); err != nil {
				return
			}
			for {
				h, err := readHeader(br)
				if err != nil {
					return
				}
				size, err := strconv.Atoi(h["content-length"])
				if err != nil {
					panic(fmt.Sprintf("part without Content-Length: %q", h))
				}
				if _, err := br.Discard(size); err != nil {
					return
				}
				if got.Add(1)%int64(n) == 0 {
					mu.Lock()
					ack.WriteByte(1)
					ack.Flush()
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
}

// readHeader reads lines up to a blank line (skipping the CRLF that ends a
// previous part) and returns the headers with lower-case names; the
// status line and boundary line are skipped.
func readHeader(br *bufio.Reader) (map[string]string, error) {
	h := map[string]string{}
	lines := 0
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return nil, err
		}
		s := strings.TrimRight(string(line), "\r\n")
		if s == "" {
			if lines == 0 {
				continue
			}
			return h, nil
		}
		lines++
		if k, v, ok := strings.Cut(s, ":"); ok {
			h[strings.ToLower(k)] = strings.TrimSpace(v)
		}
	}
}

// barePart is a frame of the baseline: the part header and the JPEG, sent
// together with writev.
type barePart struct{ hdr, data []byte }

// bareHub is the minimal latest-frame broadcast of the baseline.
type bareHub struct {
	mu      sync.Mutex
	p       *barePart
	wake    chan struct{}
	done    bool
	viewers atomic.Int32
}

func (h *bareHub) publish(p *barePart) {
	h.mu.Lock()
	h.p = p
	old := h.wake
	h.wake = make(chan struct{})
	h.mu.Unlock()
	close(old)
}

func (h *bareHub) end() {
	h.mu.Lock()
	h.done = true
	old := h.wake
	h.wake = make(chan struct{})
	h.mu.Unlock()
	close(old)
}

func bareServe(conn net.Conn, h *bareHub) {
	defer conn.Close()
	br := bufio.NewReader(conn)
	if _, err := readHeader(br); err != nil {
		return
	}
	if _, err := io.WriteString(conn, "HTTP/1.1 200 OK\r\nContent-Type: multipart/x-mixed-replace; boundary=x\r\n\r\n"); err != nil {
		return
	}
	h.viewers.Add(1)
	var last *barePart
	var arr [2][]byte
	for {
		h.mu.Lock()
		p, wake, done := h.p, h.wake, h.done
		h.mu.Unlock()
		if done {
			return
		}
		if p == nil || p == last {
			<-wake
			continue
		}
		last = p
		arr[0], arr[1] = p.hdr, p.data
		bufs := net.Buffers(arr[:])
		if _, err := bufs.WriteTo(conn); err != nil {
			return
		}
	}
}
