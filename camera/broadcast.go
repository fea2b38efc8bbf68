package camera

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults for BroadcastOptions.
const (
	DefaultIdle           = 5 * time.Second
	DefaultRestartBackoff = 500 * time.Millisecond
	DefaultMaxBackoff     = 30 * time.Second
	DefaultSnapshotWait   = 3 * time.Second
	DefaultWriteTimeout   = 10 * time.Second
)

// ErrFailed is wrapped by the error viewers get when a Broadcaster gives up
// on a source that failed MaxFailures times in a row.
var ErrFailed = errors.New("camera: source failed")

// BroadcastOptions configures a Broadcaster. The zero value is ready to use.
type BroadcastOptions struct {
	// Idle is how long capture keeps running after the last viewer leaves,
	// so that a page reload does not restart the camera (default
	// DefaultIdle). A negative Idle keeps capture running once started.
	Idle time.Duration
	// RestartBackoff is the delay before reopening a source that failed
	// (default DefaultRestartBackoff). It doubles with every further
	// consecutive failure, up to MaxBackoff (default DefaultMaxBackoff),
	// and is jittered by up to -50% so that several cameras do not retry in
	// lockstep.
	RestartBackoff time.Duration
	MaxBackoff     time.Duration
	// MaxFailures is how many failures in a row (open errors, and sources
	// whose ReadFrame fails or returns io.EOF) the Broadcaster tolerates
	// before it gives up: viewers then get an error wrapping ErrFailed and
	// new viewers are refused. A source that yielded frames before it
	// stopped counts as the first failure of a new row. Zero retries
	// forever, which suits a long-running device whose camera may be
	// replugged.
	MaxFailures int
	// StopOnEOF ends the broadcast for good when a source returns io.EOF
	// (viewers get io.EOF), which suits a recording that is played once. By
	// default io.EOF is treated like any other end of a source: it is
	// reopened, so a capture program that exits is restarted.
	StopOnEOF bool
	// SnapshotWait bounds how long SnapshotHandler waits for a frame,
	// including the time to start an idle camera (default
	// DefaultSnapshotWait).
	SnapshotWait time.Duration
	// WriteTimeout is how long MJPEGHandler gives a viewer to accept one
	// frame before dropping it as stuck (default DefaultWriteTimeout). It
	// replaces the http.Server's WriteTimeout for the stream, which would
	// otherwise cut every stream after that time.
	WriteTimeout time.Duration
	// Logger, if set, receives source failures, restarts and capture
	// starts and stops.
	Logger *slog.Logger
}

// BroadcastStats is a snapshot of a Broadcaster's counters. Counts are
// totals since the Broadcaster was created.
type BroadcastStats struct {
	// Viewers is the number of current viewers (snapshot requests
	// included).
	Viewers int
	// Capturing reports whether a source is open or being (re)opened.
	Capturing bool
	// Captured counts the frames read from sources.
	Captured uint64
	// Delivered counts the frames handed to viewers, summed over viewers.
	Delivered uint64
	// Skipped counts the frames viewers missed because a newer frame was
	// published before they were ready, summed over viewers.
	Skipped uint64
	// Restarts counts the times a source was reopened after failing or
	// ending (not the starts caused by viewers arriving).
	Restarts uint64
	// LatestAge is the age of the most recent frame (from Frame.Time), or
	// 0 if no frame was ever captured. It keeps growing while the camera
	// is stopped or failing, which makes it a good health metric.
	LatestAge time.Duration
}

// Broadcaster shares the frames of one Source with any number of viewers.
//
// The source is opened when the first viewer arrives and closed Idle after
// the last one leaves. One goroutine reads it and publishes each frame as
// the latest; viewers take the latest frame whenever they are ready for
// one, so a slow viewer skips frames without delaying the camera or the
// other viewers. Frames are shared, never copied or queued: memory holds at
// most the latest frame plus the older ones viewers are still sending.
//
// A source that fails is closed and reopened with exponential backoff;
// viewers simply wait for the next frame (Frame.Seq starts again from 1).
// MJPEGHandler and SnapshotHandler serve the frames over HTTP. Methods are
// safe for concurrent use.
type Broadcaster struct {
	open     func(context.Context) (Source, error)
	opts     BroadcastOptions
	log      *slog.Logger
	boundary string
	trailer  []byte // closing delimiter of the MJPEG body

	// state is replaced, never modified, on every change, so viewers read
	// it without locking.
	state atomic.Pointer[bstate]

	mu      sync.Mutex // serializes state changes and guards the fields below
	viewers int
	seq     uint64   // publish counter, continued across sources
	sess    *session // running capture, nil when idle or ended
	last    *session // newest session, possibly still shutting down
	idle    *time.Timer
	idleGen uint64 // invalidates idle timers that fired too late

	captured, delivered, skipped, restarts atomic.Uint64
	latest                                 atomic.Int64 // Frame.Time of the newest frame, Unix ns
}

// bstate is what viewers see: the latest frame and a channel closed when
// the state is replaced, which wakes every waiting viewer at once without a
// per-viewer allocation or goroutine.
type bstate struct {
	p    *part
	wake chan struct{}
	end  error // non-nil once the Broadcaster has ended; wake is closed
	// stale marks p as the last frame of a failed source, which new
	// viewers do not get.
	stale bool
}

// part is a published frame with the delimiter and headers that precede
// it in an MJPEG stream, built once for all viewers. The JPEG itself is
// the source's Data, shared and not copied.
type part struct {
	Frame
	n   uint64 // publish number
	hdr []byte // "\r\n--boundary\r\n" + part headers + "\r\n\r\n", in buf
	buf [128]byte
}

// session is one run of the capture goroutine, from opening a source until
// capture stops.
type session struct {
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}
}

var closedChan = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

// NewBroadcaster returns a Broadcaster that calls open to start capture
// whenever a viewer arrives at an idle Broadcaster, and again to restart a
// failed source. Nothing is opened until the first viewer subscribes.
func NewBroadcaster(open func(ctx context.Context) (Source, error), opts BroadcastOptions) (*Broadcaster, error) {
	if open == nil {
		return nil, errors.New("camera: broadcaster: nil open function")
	}
	if opts.Idle == 0 {
		opts.Idle = DefaultIdle
	}
	for _, d := range []struct {
		name string
		v    *time.Duration
		def  time.Duration
	}{
		{"RestartBackoff", &opts.RestartBackoff, DefaultRestartBackoff},
		{"SnapshotWait", &opts.SnapshotWait, DefaultSnapshotWait},
		{"WriteTimeout", &opts.WriteTimeout, DefaultWriteTimeout},
	} {
		if *d.v < 0 {
			return nil, fmt.Errorf("camera: broadcaster: negative %s %s", d.name, *d.v)
		}
		if *d.v == 0 {
			*d.v = d.def
		}
	}
	switch {
	case opts.MaxBackoff < 0:
		return nil, fmt.Errorf("camera: broadcaster: negative MaxBackoff %s", opts.MaxBackoff)
	case opts.MaxBackoff == 0:
		opts.MaxBackoff = max(DefaultMaxBackoff, opts.RestartBackoff)
	case opts.MaxBackoff < opts.RestartBackoff:
		return nil, fmt.Errorf("camera: broadcaster: MaxBackoff %s is less than RestartBackoff %s", opts.MaxBackoff, opts.RestartBackoff)
	}
	if opts.MaxFailures < 0 {
		return nil, fmt.Errorf("camera: broadcaster: negative MaxFailures %d", opts.MaxFailures)
	}
	b := &Broadcaster{open: open, opts: opts, log: opts.Logger, boundary: newBoundary()}
	if b.log == nil {
		b.log = slog.New(slog.DiscardHandler)
	}
	b.trailer = []byte("\r\n--" + b.boundary + "--\r\n")
	b.state.Store(&bstate{wake: make(chan struct{})})
	return b, nil
}

// NewBroadcasterSpec returns a Broadcaster over the source that Open(spec)
// opens. The spec is checked now; it is opened, and "auto" re-detected, each
// time capture starts.
func NewBroadcasterSpec(spec string, opts BroadcastOptions) (*Broadcaster, error) {
	if _, err := Resolve(spec); err != nil {
		return nil, err
	}
	return NewBroadcaster(func(context.Context) (Source, error) { return Open(spec) }, opts)
}

// newBoundary returns a multipart boundary unlikely to occur in a JPEG.
// Viewers that use Content-Length never search for it; the others would
// cut a frame that contained it.
func newBoundary() string {
	return "pikit-" + strconv.FormatUint(rand.Uint64()|1<<63, 36)
}

// Viewer receives the frames of a Broadcaster; see Broadcaster.Subscribe.
// A Viewer is meant for one goroutine: to stop a Next that is waiting,
// cancel its context.
type Viewer struct {
	b      *Broadcaster
	last   uint64 // publish number of the last frame returned
	closed atomic.Bool
}

// Subscribe adds a viewer, starting capture if it was idle. The viewer must
// be closed when done, or capture never stops. It fails once the
// Broadcaster has been closed or has given up.
func (b *Broadcaster) Subscribe() (*Viewer, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if st := b.state.Load(); st.end != nil {
		return nil, st.end
	}
	b.viewers++
	if b.idle != nil {
		b.idle.Stop()
		b.idle = nil
		b.idleGen++
	}
	if b.sess == nil {
		b.startLocked()
	}
	return &Viewer{b: b}, nil
}

// Next returns the latest frame if the viewer has not had it yet, and
// otherwise waits for the next one. Frames the viewer was too slow for are
// skipped (Frame.Seq has a gap). Next returns ctx's error when ctx is done,
// ErrClosed after the viewer or the Broadcaster was closed, and the reason
// when the Broadcaster gave up (an error wrapping ErrFailed, or io.EOF with
// StopOnEOF). The returned Data is shared and must not be modified.
func (v *Viewer) Next(ctx context.Context) (Frame, error) {
	p, err := v.next(ctx)
	if err != nil {
		return Frame{}, err
	}
	return p.Frame, nil
}

func (v *Viewer) next(ctx context.Context) (*part, error) {
	b := v.b
	if v.closed.Load() {
		return nil, ErrClosed
	}
	for {
		st := b.state.Load()
		if p := st.p; p != nil && p.n > v.last && (v.last != 0 || !st.stale) {
			if v.last != 0 && p.n > v.last+1 {
				b.skipped.Add(p.n - v.last - 1)
			}
			v.last = p.n
			b.delivered.Add(1)
			return p, nil
		}
		if st.end != nil {
			return nil, st.end
		}
		select {
		case <-st.wake:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// Close removes the viewer. When it was the last one, capture stops after
// the Idle grace period. Close is idempotent and always returns nil.
func (v *Viewer) Close() error {
	b := v.b
	b.mu.Lock()
	defer b.mu.Unlock()
	if v.closed.Swap(true) {
		return nil
	}
	b.viewers--
	if b.viewers == 0 && b.sess != nil && b.opts.Idle > 0 {
		b.idleGen++
		gen, s := b.idleGen, b.sess
		b.idle = time.AfterFunc(b.opts.Idle, func() { b.idleExpired(gen, s) })
	}
	return nil
}

func (b *Broadcaster) idleExpired(gen uint64, s *session) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if gen != b.idleGen || b.viewers != 0 || b.sess != s {
		return
	}
	b.idle = nil
	b.log.Debug("camera: no viewers, stopping capture", "idle", b.opts.Idle)
	b.stopLocked()
}

// Snapshot returns the latest frame, starting capture and waiting for a
// frame if there is none (the camera is idle or restarting). It waits until
// ctx is done.
func (b *Broadcaster) Snapshot(ctx context.Context) (Frame, error) {
	v, err := b.Subscribe()
	if err != nil {
		return Frame{}, err
	}
	defer v.Close()
	return v.Next(ctx)
}

// Stats returns the current counters.
func (b *Broadcaster) Stats() BroadcastStats {
	b.mu.Lock()
	s := BroadcastStats{Viewers: b.viewers, Capturing: b.sess != nil}
	b.mu.Unlock()
	s.Captured = b.captured.Load()
	s.Delivered = b.delivered.Load()
	s.Skipped = b.skipped.Load()
	s.Restarts = b.restarts.Load()
	if t := b.latest.Load(); t != 0 {
		s.LatestAge = max(time.Since(time.Unix(0, t)), 0)
	}
	return s
}

// Close stops capture, closing the source, and ends every viewer: their
// Next returns ErrClosed and MJPEG streams end with the closing boundary.
// It returns once the source is closed. Close is idempotent.
func (b *Broadcaster) Close() error {
	b.mu.Lock()
	if b.state.Load().end == nil {
		b.endLocked(ErrClosed, nil)
	}
	if b.idle != nil {
		b.idle.Stop()
		b.idle = nil
	}
	b.idleGen++
	last := b.last
	b.mu.Unlock()
	if last != nil {
		<-last.done
	}
	return nil
}

// err returns why the Broadcaster ended, or nil.
func (b *Broadcaster) err() error { return b.state.Load().end }

// setLocked replaces the state; b.mu must be held. Closing the old wake
// channel wakes every viewer waiting on it.
func (b *Broadcaster) setLocked(st *bstate) {
	old := b.state.Swap(st)
	if old.end == nil {
		close(old.wake)
	}
}

func (b *Broadcaster) startLocked() {
	ctx, cancel := context.WithCancel(context.Background())
	s := &session{ctx: ctx, cancel: cancel, done: make(chan struct{})}
	prev := b.last
	b.sess, b.last = s, s
	b.log.Debug("camera: starting capture")
	go b.run(s, prev)
}

// stopLocked stops the running capture and forgets its frame, which would
// be stale by the time capture restarts.
func (b *Broadcaster) stopLocked() {
	if b.sess == nil {
		return
	}
	b.sess.cancel()
	b.sess = nil
	b.setLocked(&bstate{wake: make(chan struct{})})
}

// endLocked ends the Broadcaster for good; viewers that have not had p yet
// get it before err.
func (b *Broadcaster) endLocked(err error, p *part) {
	if b.sess != nil {
		b.sess.cancel()
		b.sess = nil
	}
	b.setLocked(&bstate{p: p, wake: closedChan, end: err})
}

// run is the capture goroutine of one session: it opens the source, reads
// and publishes frames, and reopens the source when it fails, until the
// session is cancelled or the Broadcaster gives up.
func (b *Broadcaster) run(s *session, prev *session) {
	defer close(s.done)
	if prev != nil {
		// A camera is usually exclusive: let the previous source close
		// before opening it again.
		<-prev.done
	}
	failures := 0
	for {
		got, err := b.capture(s)
		if s.ctx.Err() != nil {
			return
		}
		if got {
			failures = 0
		}
		var end error
		switch {
		case errors.Is(err, io.EOF) && b.opts.StopOnEOF:
			end = io.EOF
			b.log.Info("camera: source ended")
		default:
			failures++
			if b.opts.MaxFailures > 0 && failures >= b.opts.MaxFailures {
				end = fmt.Errorf("%w %d times in a row, giving up: %w", ErrFailed, failures, err)
				b.log.Error("camera: giving up on source", "failures", failures, "err", err)
			}
		}
		b.mu.Lock()
		if b.sess == s {
			switch {
			case end == io.EOF:
				// Viewers still get the last frame of a recording.
				b.endLocked(end, b.state.Load().p)
			case end != nil:
				b.endLocked(end, nil)
			default:
				// Viewers that have not had the last frame still get it,
				// but it is getting stale: new viewers and snapshots wait
				// for the restarted source instead.
				b.setLocked(&bstate{p: b.state.Load().p, wake: make(chan struct{}), stale: true})
			}
		}
		b.mu.Unlock()
		if end != nil {
			return
		}
		d := b.backoff(failures)
		b.log.Warn("camera: source stopped, restarting", "err", err, "failures", failures, "delay", d)
		t := time.NewTimer(d)
		select {
		case <-s.ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		b.restarts.Add(1)
	}
}

// backoff returns the delay before the next attempt after n consecutive
// failures: RestartBackoff doubled n-1 times, capped at MaxBackoff, minus
// up to half of it at random.
func (b *Broadcaster) backoff(n int) time.Duration {
	d := b.opts.RestartBackoff
	for i := 1; i < n && d < b.opts.MaxBackoff; i++ {
		d *= 2
	}
	d = min(d, b.opts.MaxBackoff)
	return d - rand.N(d/2+1)
}

// capture opens a source and publishes its frames until it fails or the
// session is cancelled. got reports whether any frame was read.
func (b *Broadcaster) capture(s *session) (got bool, err error) {
	src, err := b.open(s.ctx)
	if err != nil {
		return false, fmt.Errorf("camera: open: %w", err)
	}
	if src == nil {
		return false, errors.New("camera: open returned no source")
	}
	var once sync.Once
	closeSrc := func() {
		once.Do(func() {
			if err := src.Close(); err != nil {
				b.log.Warn("camera: closing source", "err", err)
			}
		})
	}
	// Closing is the documented way to interrupt ReadFrame, for sources
	// that do not watch ctx.
	stop := context.AfterFunc(s.ctx, closeSrc)
	defer func() {
		stop()
		closeSrc()
	}()
	for {
		f, err := src.ReadFrame(s.ctx)
		if err != nil {
			return got, err
		}
		got = true
		b.publish(s, f)
	}
}

func (b *Broadcaster) publish(s *session, f Frame) {
	if f.Time.IsZero() {
		f.Time = time.Now()
	}
	p := &part{Frame: f}
	p.hdr = appendPartHeader(p.buf[:0], b.boundary, f)
	b.captured.Add(1)
	b.latest.Store(f.Time.UnixNano())
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.sess != s {
		return // capture was stopped while this frame was read
	}
	b.seq++
	p.n = b.seq
	b.setLocked(&bstate{p: p, wake: make(chan struct{})})
}

// appendPartHeader appends the delimiter and headers that precede a JPEG in
// the MJPEG stream. It starts with the CRLF that ends the previous part; the
// first part of a stream is sent without it.
func appendPartHeader(dst []byte, boundary string, f Frame) []byte {
	dst = append(dst, "\r\n--"...)
	dst = append(dst, boundary...)
	dst = append(dst, "\r\nContent-Type: image/jpeg\r\nContent-Length: "...)
	dst = strconv.AppendInt(dst, int64(len(f.Data)), 10)
	dst = append(dst, "\r\nX-Timestamp: "...)
	dst = appendTimestamp(dst, f.Time)
	return append(dst, "\r\n\r\n"...)
}

// appendTimestamp appends t as Unix seconds with microseconds,
// e.g. 1700000000.123456.
func appendTimestamp(dst []byte, t time.Time) []byte {
	us := t.UnixMicro()
	sec, frac := us/1e6, us%1e6
	if frac < 0 {
		sec, frac = sec-1, frac+1e6
	}
	dst = strconv.AppendInt(dst, sec, 10)
	dst = append(dst, '.')
	for d := int64(100000); d > 0; d /= 10 {
		dst = append(dst, byte('0'+frac/d%10))
	}
	return dst
}
