package camera

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"image/jpeg"
	"io"
	"mime"
	"mime/multipart"
	"net"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pikit/pikit/internal/realprog"
)

// startStream GETs an MJPEG stream and returns a multipart reader over it.
func startStream(t *testing.T, ctx context.Context, client *http.Client, url string) (*http.Response, *multipart.Reader) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		t.Fatalf("GET %s: %s: %s", url, resp.Status, body)
	}
	mt, params, err := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/x-mixed-replace" || params["boundary"] == "" {
		resp.Body.Close()
		t.Fatalf("Content-Type %q (%v), want multipart/x-mixed-replace with a boundary", resp.Header.Get("Content-Type"), err)
	}
	return resp, multipart.NewReader(resp.Body, params["boundary"])
}

func checkNoCache(t *testing.T, h http.Header) {
	t.Helper()
	for k, want := range map[string]string{
		"Cache-Control": "no-cache, no-store, must-revalidate",
		"Pragma":        "no-cache",
		"Expires":       "0",
	} {
		if got := h.Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
}

// readPart reads one part and checks its headers against its body.
func readPart(t *testing.T, mr *multipart.Reader) []byte {
	t.Helper()
	p, err := mr.NextPart()
	if err != nil {
		t.Fatalf("NextPart: %v", err)
	}
	data, err := io.ReadAll(p)
	if err != nil {
		t.Fatalf("reading part: %v", err)
	}
	if ct := p.Header.Get("Content-Type"); ct != "image/jpeg" {
		t.Errorf("part Content-Type = %q, want image/jpeg", ct)
	}
	if cl := p.Header.Get("Content-Length"); cl != strconv.Itoa(len(data)) {
		t.Errorf("part Content-Length = %q, but the part has %d bytes", cl, len(data))
	}
	ts, err := strconv.ParseFloat(p.Header.Get("X-Timestamp"), 64)
	if err != nil {
		t.Errorf("part X-Timestamp %q: %v", p.Header.Get("X-Timestamp"), err)
	} else if d := time.Since(time.Unix(0, int64(ts*1e9))); d < -time.Minute || d > time.Minute {
		t.Errorf("part X-Timestamp %q is %s away from now", p.Header.Get("X-Timestamp"), d)
	}
	return data
}

func TestMJPEGHandler(t *testing.T) {
	c := newTestCamera()
	b := newTestBroadcaster(t, c, BroadcastOptions{})
	srv := httptest.NewServer(b.MJPEGHandler())
	defer srv.Close()
	client := &http.Client{Transport: &http.Transport{}}

	resp, mr := startStream(t, context.Background(), client, srv.URL)
	defer resp.Body.Close()
	checkNoCache(t, resp.Header)
	for i := range 8 {
		data := readPart(t, mr)
		if !bytes.Equal(data, c.jpegs[i%len(c.jpegs)]) {
			t.Fatalf("part %d differs from frame %d", i, i+1)
		}
		if _, err := jpeg.Decode(bytes.NewReader(data)); err != nil {
			t.Fatalf("part %d: %v", i, err)
		}
	}
}

// The handler returns and nothing is left running when the client goes
// away.
func TestMJPEGHandlerClientGone(t *testing.T) {
	c := newTestCamera()
	b := newTestBroadcaster(t, c, BroadcastOptions{Idle: 10 * time.Millisecond})
	returned := make(chan struct{}, 10)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.MJPEGHandler().ServeHTTP(w, r)
		returned <- struct{}{}
	}))
	defer srv.Close()
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	base := runtime.NumGoroutine()

	for range 3 {
		ctx, cancel := context.WithCancel(context.Background())
		resp, mr := startStream(t, ctx, client, srv.URL)
		readPart(t, mr)
		readPart(t, mr)
		cancel()
		resp.Body.Close()
		select {
		case <-returned:
		case <-time.After(10 * time.Second):
			t.Fatal("handler did not return after the client left")
		}
	}
	eventually(t, "the viewer to leave", func() bool { return b.Stats().Viewers == 0 })
	eventually(t, "capture to stop", func() bool { return c.live.Load() == 0 })
	tr.CloseIdleConnections()
	checkGoroutines(t, base)
}

// A client that stops reading is dropped after WriteTimeout, and does not
// hold up the others meanwhile.
func TestMJPEGHandlerDropsStuckClient(t *testing.T) {
	c := newTestCamera()
	// Big frames fill the socket buffers quickly.
	c.jpegs = [][]byte{bytes.Repeat([]byte{0xff}, 256<<10)}
	c.interval = time.Millisecond
	b := newTestBroadcaster(t, c, BroadcastOptions{WriteTimeout: 200 * time.Millisecond})
	srv := httptest.NewServer(b.MJPEGHandler())
	defer srv.Close()

	stuck, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer stuck.Close()
	fmt.Fprintf(stuck, "GET / HTTP/1.1\r\nHost: camera\r\n\r\n")
	eventually(t, "the stuck viewer to subscribe", func() bool { return b.Stats().Viewers == 1 })

	client := &http.Client{Transport: &http.Transport{}}
	resp, mr := startStream(t, context.Background(), client, srv.URL)
	defer resp.Body.Close()
	// The stuck viewer is dropped while the other keeps reading.
	deadline := time.Now().Add(10 * time.Second)
	n := 0
	for b.Stats().Viewers != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("stuck client still connected after %d parts to the other viewer", n)
		}
		p, err := mr.NextPart()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(io.Discard, p); err != nil {
			t.Fatal(err)
		}
		n++
	}
	// The other viewer still gets frames.
	for range 3 {
		p, err := mr.NextPart()
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, p)
	}
}

// When the Broadcaster ends, streams end with the closing delimiter (a
// complete multipart body) and new requests get 503.
func TestMJPEGHandlerBroadcastEnds(t *testing.T) {
	for _, tc := range []struct {
		name    string
		setup   func(*testCamera) BroadcastOptions
		end     func(*Broadcaster)
		message string
	}{
		{
			name: "close",
			setup: func(*testCamera) BroadcastOptions {
				return BroadcastOptions{}
			},
			end:     func(b *Broadcaster) { b.Close() },
			message: "camera: closed",
		},
		{
			name: "give up",
			setup: func(c *testCamera) BroadcastOptions {
				// The first source fails after 3 frames and cannot be
				// reopened.
				c.failAfter, c.readErr = 3, errors.New("cable pulled")
				c.openErr = func(n int) error {
					if n > 1 {
						return errors.New("no camera")
					}
					return nil
				}
				return BroadcastOptions{RestartBackoff: time.Millisecond, MaxFailures: 2}
			},
			end:     func(*Broadcaster) {},
			message: "giving up",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newTestCamera()
			b := newTestBroadcaster(t, c, tc.setup(c))
			returned := make(chan struct{}, 10)
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				b.MJPEGHandler().ServeHTTP(w, r)
				returned <- struct{}{}
			}))
			defer srv.Close()
			client := &http.Client{Transport: &http.Transport{}}
			resp, mr := startStream(t, context.Background(), client, srv.URL)
			defer resp.Body.Close()
			readPart(t, mr)
			tc.end(b)
			for {
				p, err := mr.NextPart()
				if err == io.EOF {
					break // the closing delimiter
				}
				if err != nil {
					t.Fatalf("stream ended with %v, want the closing delimiter", err)
				}
				io.Copy(io.Discard, p)
			}
			select {
			case <-returned:
			case <-time.After(10 * time.Second):
				t.Fatal("handler did not return")
			}
			resp, err := client.Get(srv.URL)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), tc.message) {
				t.Errorf("after the end: %s %q, want 503 mentioning %q", resp.Status, body, tc.message)
			}
		})
	}
}

func TestMJPEGHandlerMethods(t *testing.T) {
	c := newTestCamera()
	b := newTestBroadcaster(t, c, BroadcastOptions{})
	h := b.MJPEGHandler()

	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/stream.mjpg", nil))
	if rec.Code != http.StatusMethodNotAllowed || rec.Header().Get("Allow") != "GET, HEAD" {
		t.Errorf("POST: %d, Allow %q; want 405 with Allow: GET, HEAD", rec.Code, rec.Header().Get("Allow"))
	}

	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodHead, "/stream.mjpg", nil))
	if rec.Code != http.StatusOK || !strings.HasPrefix(rec.Header().Get("Content-Type"), "multipart/x-mixed-replace; boundary=") {
		t.Errorf("HEAD: %d, Content-Type %q", rec.Code, rec.Header().Get("Content-Type"))
	}
	checkNoCache(t, rec.Header())
	if n := c.opens.Load(); n != 0 {
		t.Errorf("HEAD opened the source %d times", n)
	}
}

// The handler works on a ResponseWriter without deadlines (a recorder),
// ending when the request context is cancelled.
func TestMJPEGHandlerRecorder(t *testing.T) {
	c := newTestCamera()
	b := newTestBroadcaster(t, c, BroadcastOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	rec := httptest.NewRecorder()
	b.MJPEGHandler().ServeHTTP(rec, httptest.NewRequestWithContext(ctx, http.MethodGet, "/", nil))
	_, params, _ := mime.ParseMediaType(rec.Header().Get("Content-Type"))
	mr := multipart.NewReader(bytes.NewReader(rec.Body.Bytes()), params["boundary"])
	if _, err := mr.NextPart(); err != nil {
		t.Fatalf("first part: %v", err)
	}
}

// Over TLS and HTTP/2 the handler cannot use writev, and must not ask for
// HTTP/1 framing; the stream is the same.
func TestMJPEGHandlerTLS(t *testing.T) {
	for _, h2 := range []bool{false, true} {
		t.Run(fmt.Sprintf("http2=%v", h2), func(t *testing.T) {
			c := newTestCamera()
			b := newTestBroadcaster(t, c, BroadcastOptions{})
			srv := httptest.NewUnstartedServer(b.MJPEGHandler())
			srv.EnableHTTP2 = h2
			srv.StartTLS()
			defer srv.Close()
			resp, mr := startStream(t, context.Background(), srv.Client(), srv.URL)
			defer resp.Body.Close()
			if want := map[bool]int{false: 1, true: 2}[h2]; resp.ProtoMajor != want {
				t.Fatalf("protocol %s, want HTTP/%d", resp.Proto, want)
			}
			checkNoCache(t, resp.Header)
			for i := range 5 {
				if data := readPart(t, mr); !bytes.Equal(data, c.jpegs[i%len(c.jpegs)]) {
					t.Fatalf("part %d differs from frame %d", i, i+1)
				}
			}
		})
	}
}

// Frames slower than WriteTimeout do not trip the deadline while the
// handler waits for them (HTTP/2 would reset the stream).
func TestMJPEGHandlerSlowFrames(t *testing.T) {
	for _, h2 := range []bool{false, true} {
		t.Run(fmt.Sprintf("http2=%v", h2), func(t *testing.T) {
			c := newTestCamera()
			c.interval = 150 * time.Millisecond
			b := newTestBroadcaster(t, c, BroadcastOptions{WriteTimeout: 30 * time.Millisecond})
			srv := httptest.NewUnstartedServer(b.MJPEGHandler())
			srv.EnableHTTP2 = h2
			srv.StartTLS()
			defer srv.Close()
			resp, mr := startStream(t, context.Background(), srv.Client(), srv.URL)
			defer resp.Body.Close()
			for range 3 {
				readPart(t, mr)
			}
		})
	}
}

func TestSnapshotHandler(t *testing.T) {
	c := newTestCamera()
	b := newTestBroadcaster(t, c, BroadcastOptions{})
	srv := httptest.NewServer(b.SnapshotHandler())
	defer srv.Close()
	client := &http.Client{Transport: &http.Transport{}}

	resp, err := client.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "image/jpeg" {
		t.Fatalf("snapshot: %s, Content-Type %q", resp.Status, resp.Header.Get("Content-Type"))
	}
	if resp.Header.Get("Content-Length") != strconv.Itoa(len(body)) || !bytes.Equal(body, c.jpegs[0]) {
		t.Errorf("snapshot: Content-Length %q, %d bytes; want the first frame (%d bytes)", resp.Header.Get("Content-Length"), len(body), len(c.jpegs[0]))
	}
	if _, err := strconv.ParseFloat(resp.Header.Get("X-Timestamp"), 64); err != nil {
		t.Errorf("X-Timestamp: %v", err)
	}
	checkNoCache(t, resp.Header)

	rec := httptest.NewRecorder()
	b.SnapshotHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodPut, "/", nil))
	if rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("PUT: %d, want 405", rec.Code)
	}
}

func TestSnapshotHandlerNoFrame(t *testing.T) {
	c := newTestCamera()
	c.interval, c.step = 0, make(chan struct{}) // a camera that never delivers
	b := newTestBroadcaster(t, c, BroadcastOptions{SnapshotWait: 30 * time.Millisecond})
	rec := httptest.NewRecorder()
	b.SnapshotHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/snapshot.jpg", nil))
	if rec.Code != http.StatusServiceUnavailable || !strings.Contains(rec.Body.String(), "no frame within 30ms") {
		t.Errorf("snapshot without frames: %d %q; want 503 saying so", rec.Code, rec.Body.String())
	}
	checkNoCache(t, rec.Header())

	b.Close()
	rec = httptest.NewRecorder()
	b.SnapshotHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/snapshot.jpg", nil))
	if rec.Code != http.StatusServiceUnavailable || !strings.Contains(rec.Body.String(), "closed") {
		t.Errorf("snapshot after Close: %d %q; want 503 saying closed", rec.Code, rec.Body.String())
	}
}

// realStream serves 320×240 test frames at about 100 fps for a real peer.
func realStream(t *testing.T) string {
	c := newTestCamera()
	c.jpegs = encodeTestJPEGs(4, 320, 240)
	c.interval = 10 * time.Millisecond
	b := newTestBroadcaster(t, c, BroadcastOptions{})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(b.MJPEGHandler())
	srv.Listener.Close()
	srv.Listener = l
	srv.Start()
	t.Cleanup(srv.Close)
	return srv.URL + "/stream.mjpg"
}

// ffmpeg decodes 20 frames from the stream: the parts are intact JPEGs
// and the framing is what its mpjpeg demuxer expects.
func TestMJPEGFFmpeg(t *testing.T) {
	ffmpeg := realprog.Require(t, "ffmpeg", "ffmpeg")
	url := realStream(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error",
		"-f", "mpjpeg", "-i", url, "-frames:v", "20", "-f", "framemd5", "-")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("ffmpeg: %v\n%s", err, stderr.Bytes())
	}
	if stderr.Len() > 0 {
		t.Errorf("ffmpeg complained:\n%s", stderr.Bytes())
	}
	frames := 0
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if line := sc.Text(); line != "" && !strings.HasPrefix(line, "#") {
			frames++
			if !strings.Contains(line, " 115200,") { // 320×240 decoded as 4:2:0
				t.Errorf("unexpected frame: %s", line)
			}
		}
	}
	if frames != 20 {
		t.Errorf("ffmpeg decoded %d frames, want 20:\n%s", frames, out)
	}
}

// ffprobe recognises the stream (with content sniffing, not a forced
// format) as 320×240 MJPEG.
func TestMJPEGFFprobe(t *testing.T) {
	ffprobe := realprog.Require(t, "ffprobe", "ffmpeg")
	url := realStream(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, ffprobe, "-hide_banner", "-loglevel", "error",
		"-show_entries", "stream=codec_name,width,height:format=format_name", "-of", "default=nw=1", url)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("ffprobe: %v\n%s", err, stderr.Bytes())
	}
	for _, want := range []string{"codec_name=mjpeg", "width=320", "height=240", "format_name=mpjpeg"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("ffprobe output lacks %q:\n%s", want, out)
		}
	}
}
