// Command mjpegload measures an MJPEG server with many simultaneous
// viewers, and can serve a simulated camera to measure.
//
//	mjpegload -serve-sim 127.0.0.1:8080 -duration 30m          # the server to measure
//	mjpegload -url http://127.0.0.1:8080/stream.mjpg -viewers 100 -duration 10s
//	mjpegload -viewers 100 -slow 1                              # one viewer reads 1 frame/s
//	mjpegload -viewers 500 -cycle -stats http://127.0.0.1:8080/stats
//	mjpegload -header 'Authorization: Bearer x' ...            # -header repeats
//
// Each viewer parses the multipart stream by Content-Length and checks that
// every part is a whole JPEG (SOI to EOI). The report gives per-viewer frame
// rates, first-frame latency (request to first complete frame), the age of
// frames on arrival (from X-Timestamp, so only meaningful on one machine),
// bytes and errors; with -stats, the server's heap before, during and after
// the run.
//
// It only talks to loopback addresses (127.0.0.0/8, ::1, localhost): it is
// a load generator, and must not be pointed at anybody else's machine.
// Runs are bounded by -duration (at most 10 minutes of load, 2 hours of
// serving).
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"mime"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Limits that keep a mistyped flag from turning into a runaway.
const (
	maxLoadDuration  = 10 * time.Minute
	maxServeDuration = 2 * time.Hour
	maxViewers       = 5000
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// run is main without the process: it returns the exit status (2 for bad
// flags, 1 when the run failed).
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("mjpegload", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg config
	fs.StringVar(&cfg.URL, "url", "http://127.0.0.1:8080/stream.mjpg", "MJPEG stream to load (loopback only)")
	fs.IntVar(&cfg.Viewers, "viewers", 10, "number of simultaneous viewers")
	fs.IntVar(&cfg.Slow, "slow", 0, "how many of the viewers read only 1 frame per second")
	fs.DurationVar(&cfg.Duration, "duration", 10*time.Second, "how long to run (with -serve-sim: how long to serve, default 10m)")
	fs.BoolVar(&cfg.Cycle, "cycle", false, "viewers disconnect and reconnect in cycles")
	fs.DurationVar(&cfg.CyclePeriod, "cycle-period", time.Second, "with -cycle, how long each connection lasts (±50% at random)")
	fs.StringVar(&cfg.StatsURL, "stats", "", "server stats URL (as served by -serve-sim) to report the server's memory")
	cfg.Header = http.Header{}
	fs.Func("header", "request header 'Name: value' (repeatable)", func(s string) error {
		k, v, ok := strings.Cut(s, ":")
		if !ok || strings.TrimSpace(k) == "" {
			return fmt.Errorf("want 'Name: value', got %q", s)
		}
		cfg.Header.Add(strings.TrimSpace(k), strings.TrimSpace(v))
		return nil
	})
	jsonOut := fs.Bool("json", false, "print the report as JSON")
	var sim simConfig
	fs.StringVar(&sim.Addr, "serve-sim", "", "instead of loading, serve a simulated camera on this loopback address (/stream.mjpg, /snapshot.jpg, /stats)")
	fs.StringVar(&sim.Source, "source", "", "with -serve-sim, a camera spec to serve (e.g. sim:640x480@30) instead of replaying pre-encoded 640x480 frames")
	fs.IntVar(&sim.FPS, "fps", 30, "with -serve-sim, frame rate of the replayed frames")
	fs.DurationVar(&sim.Idle, "idle", 5*time.Second, "with -serve-sim, the broadcaster's idle grace period")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "mjpegload: unexpected arguments %q\n", fs.Args())
		return 2
	}
	if sim.Addr != "" {
		sim.Duration = 10 * time.Minute
		fs.Visit(func(f *flag.Flag) {
			if f.Name == "duration" {
				sim.Duration = cfg.Duration
			}
		})
		if err := serveSim(ctx, sim, stdout); err != nil {
			fmt.Fprintln(stderr, "mjpegload:", err)
			return 1
		}
		return 0
	}
	if err := cfg.check(); err != nil {
		fmt.Fprintln(stderr, "mjpegload:", err)
		return 2
	}
	rep, err := load(ctx, cfg)
	if err != nil {
		fmt.Fprintln(stderr, "mjpegload:", err)
		return 1
	}
	if *jsonOut {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		enc.Encode(rep)
	} else {
		rep.print(stdout)
	}
	if rep.Frames == 0 {
		return 1
	}
	return 0
}

// config is what to load.
type config struct {
	URL         string
	Viewers     int
	Slow        int
	Duration    time.Duration
	Cycle       bool
	CyclePeriod time.Duration
	Header      http.Header
	StatsURL    string
}

func (c *config) check() error {
	if err := checkLoopbackURL(c.URL); err != nil {
		return fmt.Errorf("-url: %w", err)
	}
	if c.StatsURL != "" {
		if err := checkLoopbackURL(c.StatsURL); err != nil {
			return fmt.Errorf("-stats: %w", err)
		}
	}
	switch {
	case c.Viewers < 1 || c.Viewers > maxViewers:
		return fmt.Errorf("-viewers %d: want 1 to %d", c.Viewers, maxViewers)
	case c.Slow < 0 || c.Slow > c.Viewers:
		return fmt.Errorf("-slow %d: want 0 to -viewers", c.Slow)
	case c.Duration <= 0 || c.Duration > maxLoadDuration:
		return fmt.Errorf("-duration %s: want more than 0, at most %s", c.Duration, maxLoadDuration)
	case c.Cycle && c.CyclePeriod <= 0:
		return fmt.Errorf("-cycle-period %s: want more than 0", c.CyclePeriod)
	}
	return nil
}

// checkLoopbackURL accepts http(s) URLs whose host is a loopback address
// or localhost.
func checkLoopbackURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return err
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("%q: want an http or https URL", s)
	}
	if !loopbackHost(u.Hostname()) {
		return fmt.Errorf("%q: refusing a host that is not loopback (127.0.0.0/8, ::1, localhost)", s)
	}
	return nil
}

func loopbackHost(h string) bool {
	if strings.EqualFold(h, "localhost") {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// loopbackDialer refuses connections to anything but loopback addresses,
// whatever a name resolves to.
var loopbackDialer = &net.Dialer{
	Timeout: 5 * time.Second,
	Control: func(network, address string, _ syscall.RawConn) error {
		host, _, err := net.SplitHostPort(address)
		if err != nil {
			return err
		}
		if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
			return fmt.Errorf("refusing to connect to %s: not a loopback address", address)
		}
		return nil
	},
}

func newClient() *http.Client {
	return &http.Client{
		Transport: &http.Transport{
			Proxy:                 nil, // a proxy would take the traffic elsewhere
			DialContext:           loopbackDialer.DialContext,
			DisableCompression:    true,
			ResponseHeaderTimeout: 10 * time.Second,
			MaxIdleConnsPerHost:   -1,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return errors.New("not following redirects")
		},
	}
}

// report is the outcome of a run.
type report struct {
	URL      string        `json:"url"`
	Viewers  int           `json:"viewers"`
	Slow     int           `json:"slow_viewers"`
	Duration time.Duration `json:"duration_ns"`
	Connects int64         `json:"connects"`
	Frames   int64         `json:"frames"`
	Bytes    int64         `json:"bytes"`
	Corrupt  int64         `json:"corrupt_frames"`
	// Frame rates per viewer (frames after the first per second between
	// the first and the last), for the normal and the slow viewers.
	FPS     rates `json:"fps"`
	SlowFPS rates `json:"slow_fps"`
	// First-frame latency: from sending the request to having the whole
	// first frame, per connection.
	FirstFrameP50 time.Duration `json:"first_frame_p50_ns"`
	FirstFrameMax time.Duration `json:"first_frame_max_ns"`
	// Age of frames on arrival (now minus X-Timestamp) over all frames of
	// the normal viewers.
	AgeP50 time.Duration `json:"age_p50_ns"`
	AgeP99 time.Duration `json:"age_p99_ns"`
	AgeMax time.Duration `json:"age_max_ns"`
	Errors int64         `json:"errors"`
	// ErrorSamples are the first few distinct errors.
	ErrorSamples []string `json:"error_samples,omitempty"`
	// Server memory, from -stats: before and after the run (after a GC)
	// and the peak sampled during it.
	Server *serverMemory `json:"server,omitempty"`
}

type rates struct {
	Min    float64 `json:"min"`
	Median float64 `json:"median"`
	Mean   float64 `json:"mean"`
}

type serverMemory struct {
	HeapInuseBefore, HeapInusePeak, HeapInuseAfter    uint64
	GoroutinesBefore, GoroutinesPeak, GoroutinesAfter int
}

func (r *report) print(w io.Writer) {
	fmt.Fprintf(w, "url %s: %d viewers (%d slow) for %s, %d connections\n", r.URL, r.Viewers, r.Slow, r.Duration, r.Connects)
	fmt.Fprintf(w, "frames: %d (%d corrupt), %.1f MB\n", r.Frames, r.Corrupt, float64(r.Bytes)/1e6)
	if r.Viewers > r.Slow {
		fmt.Fprintf(w, "fps per viewer: min %.2f, median %.2f, mean %.2f\n", r.FPS.Min, r.FPS.Median, r.FPS.Mean)
	}
	if r.Slow > 0 {
		fmt.Fprintf(w, "fps per slow viewer: min %.2f, median %.2f, mean %.2f\n", r.SlowFPS.Min, r.SlowFPS.Median, r.SlowFPS.Mean)
	}
	fmt.Fprintf(w, "first frame: p50 %s, max %s\n", ms(r.FirstFrameP50), ms(r.FirstFrameMax))
	fmt.Fprintf(w, "frame age on arrival: p50 %s, p99 %s, max %s\n", ms(r.AgeP50), ms(r.AgeP99), ms(r.AgeMax))
	fmt.Fprintf(w, "errors: %d\n", r.Errors)
	for _, e := range r.ErrorSamples {
		fmt.Fprintf(w, "  %s\n", e)
	}
	if s := r.Server; s != nil {
		fmt.Fprintf(w, "server heap in use: %.2f MB before, %.2f MB peak, %.2f MB after; goroutines %d, %d, %d\n",
			mb(s.HeapInuseBefore), mb(s.HeapInusePeak), mb(s.HeapInuseAfter), s.GoroutinesBefore, s.GoroutinesPeak, s.GoroutinesAfter)
	}
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1fms", float64(d)/1e6) }
func mb(n uint64) float64       { return float64(n) / (1 << 20) }

// viewerResult is what one viewer saw over all its connections.
type viewerResult struct {
	slow            bool
	frames          int64         // frames counted for the rate
	span            time.Duration // time between first and last frame, summed over connections
	firstFrame      []time.Duration
	connects, bytes int64
}

// loadRun is the shared state of a run.
type loadRun struct {
	cfg    config
	client *http.Client
	ages   histogram
	frames atomic.Int64
	bad    atomic.Int64
	errs   atomic.Int64

	mu      sync.Mutex
	samples []string
}

func (l *loadRun) fail(err error) {
	l.errs.Add(1)
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.samples) < 5 && !slices.Contains(l.samples, err.Error()) {
		l.samples = append(l.samples, err.Error())
	}
}

// load runs the viewers for cfg.Duration and reports what they got.
func load(ctx context.Context, cfg config) (*report, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.Duration)
	defer cancel()
	l := &loadRun{cfg: cfg, client: newClient()}
	defer l.client.CloseIdleConnections()

	var mem *serverMemory
	var memDone chan struct{}
	if cfg.StatsURL != "" {
		st, err := fetchStats(context.Background(), l.client, cfg.StatsURL, true)
		if err != nil {
			return nil, fmt.Errorf("server stats: %w", err)
		}
		mem = &serverMemory{HeapInuseBefore: st.HeapInuse, HeapInusePeak: st.HeapInuse,
			GoroutinesBefore: st.Goroutines, GoroutinesPeak: st.Goroutines}
		memDone = make(chan struct{})
		go func() {
			defer close(memDone)
			t := time.NewTicker(500 * time.Millisecond)
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-t.C:
				}
				if st, err := fetchStats(ctx, l.client, cfg.StatsURL, false); err == nil {
					mem.HeapInusePeak = max(mem.HeapInusePeak, st.HeapInuse)
					mem.GoroutinesPeak = max(mem.GoroutinesPeak, st.Goroutines)
				}
			}
		}()
	}

	start := time.Now()
	results := make([]viewerResult, cfg.Viewers)
	var wg sync.WaitGroup
	for i := range results {
		results[i].slow = i < cfg.Slow
		wg.Add(1)
		go func() {
			defer wg.Done()
			l.viewer(ctx, &results[i])
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	if memDone != nil {
		<-memDone
	}

	rep := &report{URL: cfg.URL, Viewers: cfg.Viewers, Slow: cfg.Slow, Duration: elapsed.Round(time.Millisecond),
		Frames: l.frames.Load(), Corrupt: l.bad.Load(), Errors: l.errs.Load(), ErrorSamples: l.samples}
	var fps, slowFPS []float64
	var first []time.Duration
	for _, r := range results {
		rep.Connects += r.connects
		rep.Bytes += r.bytes
		first = append(first, r.firstFrame...)
		rate := 0.0
		if r.span > 0 {
			rate = float64(r.frames) / r.span.Seconds()
		}
		if r.slow {
			slowFPS = append(slowFPS, rate)
		} else {
			fps = append(fps, rate)
		}
	}
	rep.FPS, rep.SlowFPS = summarize(fps), summarize(slowFPS)
	if len(first) > 0 {
		slices.Sort(first)
		rep.FirstFrameP50, rep.FirstFrameMax = first[len(first)/2], first[len(first)-1]
	}
	rep.AgeP50, rep.AgeP99, rep.AgeMax = l.ages.quantile(0.5), l.ages.quantile(0.99), l.ages.max()

	if mem != nil {
		// Let the server notice the closed connections before measuring.
		l.client.CloseIdleConnections()
		time.Sleep(500 * time.Millisecond)
		st, err := fetchStats(context.Background(), l.client, cfg.StatsURL, true)
		if err != nil {
			return nil, fmt.Errorf("server stats: %w", err)
		}
		mem.HeapInuseAfter, mem.GoroutinesAfter = st.HeapInuse, st.Goroutines
		rep.Server = mem
	}
	return rep, nil
}

func summarize(v []float64) rates {
	if len(v) == 0 {
		return rates{}
	}
	slices.Sort(v)
	sum := 0.0
	for _, x := range v {
		sum += x
	}
	return rates{Min: v[0], Median: v[len(v)/2], Mean: sum / float64(len(v))}
}

// viewer watches the stream until ctx is done, reconnecting after errors
// (after a pause) and, with -cycle, after each cycle period.
func (l *loadRun) viewer(ctx context.Context, r *viewerResult) {
	for ctx.Err() == nil {
		cctx, cancel := ctx, context.CancelFunc(func() {})
		if l.cfg.Cycle {
			p := l.cfg.CyclePeriod
			cctx, cancel = context.WithTimeout(ctx, p/2+rand.N(p))
		}
		err := l.watch(cctx, r)
		cancel()
		if err != nil && ctx.Err() == nil && cctx.Err() == nil {
			l.fail(err)
			select {
			case <-ctx.Done():
			case <-time.After(100 * time.Millisecond):
			}
		}
		if !l.cfg.Cycle && err == nil {
			return
		}
	}
}

// watch runs one connection until ctx is done or the stream fails. An
// error caused by ctx ending is not reported.
func (l *loadRun) watch(ctx context.Context, r *viewerResult) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, l.cfg.URL, nil)
	if err != nil {
		return err
	}
	for k, v := range l.cfg.Header {
		req.Header[k] = v
	}
	start := time.Now()
	r.connects++
	resp, err := l.client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 200))
		return fmt.Errorf("%s: %s", resp.Status, bytes.TrimSpace(body))
	}
	mt, params, err := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if err != nil || !strings.HasPrefix(mt, "multipart/") || params["boundary"] == "" {
		return fmt.Errorf("Content-Type %q is not multipart with a boundary", resp.Header.Get("Content-Type"))
	}
	pr := newPartReader(resp.Body, params["boundary"])
	var first, last time.Time
	n := int64(0)
	defer func() {
		if n > 1 {
			r.frames += n - 1
			r.span += last.Sub(first)
		}
	}()
	for {
		p, err := pr.next()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if err == io.EOF {
				return errors.New("stream ended")
			}
			return err
		}
		now := time.Now()
		l.frames.Add(1)
		r.bytes += int64(p.size)
		if !p.intact {
			l.bad.Add(1)
		}
		if n == 0 {
			first = now
			r.firstFrame = append(r.firstFrame, now.Sub(start))
		}
		n++
		last = now
		if !p.ts.IsZero() && !r.slow {
			l.ages.add(now.Sub(p.ts))
		}
		if r.slow {
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(time.Second - time.Since(now)):
			}
		}
	}
}

// partReader parses a multipart stream by Content-Length, without
// scanning the JPEG data for the boundary.
type partReader struct {
	br    *bufio.Reader
	delim string // "--" + boundary
	tail  [2]byte
}

type partInfo struct {
	size   int
	ts     time.Time
	intact bool // starts with SOI and ends with EOI
}

func newPartReader(r io.Reader, boundary string) *partReader {
	return &partReader{br: bufio.NewReaderSize(r, 64<<10), delim: "--" + boundary}
}

// next reads one part. It returns io.EOF at the closing delimiter.
func (pr *partReader) next() (partInfo, error) {
	var p partInfo
	// Skip blank lines (the CRLF after the previous part) up to the
	// delimiter.
	for {
		line, err := pr.line()
		if err != nil {
			return p, err
		}
		if line == "" {
			continue
		}
		if line == pr.delim+"--" {
			return p, io.EOF
		}
		if line != pr.delim {
			return p, fmt.Errorf("expected the boundary, got %.40q", line)
		}
		break
	}
	size := -1
	for {
		line, err := pr.line()
		if err != nil {
			return p, err
		}
		if line == "" {
			break
		}
		k, v, _ := strings.Cut(line, ":")
		v = strings.TrimSpace(v)
		switch {
		case strings.EqualFold(k, "Content-Length"):
			if size, err = strconv.Atoi(v); err != nil || size < 0 {
				return p, fmt.Errorf("bad Content-Length %q", v)
			}
		case strings.EqualFold(k, "X-Timestamp"):
			p.ts = parseTimestamp(v)
		}
	}
	if size < 0 {
		return p, errors.New("part without Content-Length")
	}
	p.size = size
	if size < 4 {
		_, err := pr.br.Discard(size)
		return p, err
	}
	head, err := pr.br.Peek(2)
	if err != nil {
		return p, err
	}
	soi := head[0] == 0xff && head[1] == 0xd8
	if _, err := pr.br.Discard(size - 2); err != nil {
		return p, err
	}
	if _, err := io.ReadFull(pr.br, pr.tail[:]); err != nil {
		return p, err
	}
	p.intact = soi && pr.tail[0] == 0xff && pr.tail[1] == 0xd9
	return p, nil
}

// parseTimestamp parses Unix seconds with an optional fraction, such as
// 1700000000.123456, exactly; it returns the zero time if v is not one.
func parseTimestamp(v string) time.Time {
	sec, frac, _ := strings.Cut(v, ".")
	s, err := strconv.ParseInt(sec, 10, 64)
	if err != nil || len(frac) > 9 {
		return time.Time{}
	}
	ns := int64(0)
	if frac != "" {
		f, err := strconv.ParseUint(frac, 10, 32)
		if err != nil {
			return time.Time{}
		}
		ns = int64(f)
		for range 9 - len(frac) {
			ns *= 10
		}
	}
	return time.Unix(s, ns)
}

func (pr *partReader) line() (string, error) {
	b, err := pr.br.ReadSlice('\n')
	if err == bufio.ErrBufferFull {
		return "", errors.New("header line too long")
	}
	if err != nil {
		if err == io.EOF && len(b) > 0 {
			err = io.ErrUnexpectedEOF
		}
		return "", err
	}
	return string(bytes.TrimRight(b, "\r\n")), nil
}

// histogram counts durations in 0.1 ms buckets up to 10 s, plus the max.
type histogram struct {
	buckets [100000]atomic.Uint32
	n       atomic.Uint64
	maxNs   atomic.Int64
}

func (h *histogram) add(d time.Duration) {
	d = max(d, 0)
	i := min(int(d/(100*time.Microsecond)), len(h.buckets)-1)
	h.buckets[i].Add(1)
	h.n.Add(1)
	for {
		m := h.maxNs.Load()
		if int64(d) <= m || h.maxNs.CompareAndSwap(m, int64(d)) {
			return
		}
	}
}

func (h *histogram) quantile(q float64) time.Duration {
	n := h.n.Load()
	if n == 0 {
		return 0
	}
	want := uint64(q*float64(n-1)) + 1
	var seen uint64
	for i := range h.buckets {
		seen += uint64(h.buckets[i].Load())
		if seen >= want {
			return time.Duration(i+1) * 100 * time.Microsecond
		}
	}
	return h.max()
}

func (h *histogram) max() time.Duration { return time.Duration(h.maxNs.Load()) }

// serverStats is what -serve-sim serves at /stats.
type serverStats struct {
	HeapInuse  uint64 `json:"heap_inuse"`
	HeapAlloc  uint64 `json:"heap_alloc"`
	Sys        uint64 `json:"sys"`
	NumGC      uint32 `json:"num_gc"`
	Goroutines int    `json:"goroutines"`
	Broadcast  any    `json:"broadcast"`
}

func fetchStats(ctx context.Context, c *http.Client, u string, gc bool) (*serverStats, error) {
	if gc {
		sep := "?"
		if strings.Contains(u, "?") {
			sep = "&"
		}
		u += sep + "gc=1"
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: %s", u, resp.Status)
	}
	var st serverStats
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return nil, fmt.Errorf("%s: %w", u, err)
	}
	return &st, nil
}
