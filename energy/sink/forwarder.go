package sink

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/pikit/pikit/energy/store"
)

// Defaults for ForwarderOptions.
const (
	DefaultBatch         = 100
	DefaultMinBackoff    = time.Second
	DefaultMaxBackoff    = 5 * time.Minute
	DefaultMaxRetryAfter = time.Hour
	DefaultDeliverTime   = 2 * time.Minute
)

// ForwarderOptions configures a Forwarder. The zero value is ready to use.
type ForwarderOptions struct {
	// Batch is the most records per Deliver (default DefaultBatch). It is
	// halved, down to 1, while the sink reports ErrTooLarge.
	Batch int
	// MinBackoff and MaxBackoff bound the wait after a failed delivery
	// (defaults DefaultMinBackoff, DefaultMaxBackoff). After the n-th
	// failure in a row the Forwarder waits a uniformly random time
	// between MinBackoff and min(MaxBackoff, MinBackoff·2ⁿ⁻¹) (full
	// jitter, floored at MinBackoff so a failing sink is never hammered).
	MinBackoff, MaxBackoff time.Duration
	// MaxRetryAfter caps the wait a sink's RetryAfterError may impose
	// (default DefaultMaxRetryAfter), so a bad header cannot stall
	// delivery for days.
	MaxRetryAfter time.Duration
	// DeliverTimeout bounds one Deliver call (default DefaultDeliverTime).
	DeliverTimeout time.Duration
	// Logger, if set, receives delivery failures (at warning level) and
	// recoveries.
	Logger *slog.Logger
	// Now returns the current time (default time.Now), for Status.
	Now func() time.Time
}

// SinkStatus is a snapshot of a Forwarder, for the gateway's REST API.
type SinkStatus struct {
	Name string `json:"name"`
	// LastOK is when a delivery last succeeded.
	LastOK time.Time `json:"last_ok,omitzero"`
	// LastErr is the error of the last failed delivery, cleared by a
	// success; LastErrTime when it happened.
	LastErr     string    `json:"last_err,omitempty"`
	LastErrTime time.Time `json:"last_err_time,omitzero"`
	// Failures counts the failed deliveries since the last success.
	Failures int `json:"failures"`
	// Backlog is the number of queued records the sink has not
	// acknowledged (-1 if the queue could not be read).
	Backlog int `json:"backlog"`
	// Acked is the sink's cursor: every record up to it was acknowledged.
	Acked uint64 `json:"acked"`
	// Delivered counts the records delivered since the Forwarder started
	// (re-deliveries included).
	Delivered uint64 `json:"delivered"`
	// NextRetry is when the next attempt is due while backing off.
	NextRetry time.Time `json:"next_retry,omitzero"`
}

// Forwarder moves records from a queue to one sink: Pending, Deliver,
// Ack, in a loop. Methods are safe for concurrent use.
type Forwarder struct {
	q    *store.Queue
	s    Sink
	opts ForwarderOptions
	log  *slog.Logger
	wake chan struct{}

	mu sync.Mutex
	st SinkStatus
}

// NewForwarder returns a Forwarder of q's records to s. s.Name() must be
// one of the queue's sinks (store.Options.Sinks).
func NewForwarder(q *store.Queue, s Sink, opts ForwarderOptions) *Forwarder {
	if opts.Batch <= 0 {
		opts.Batch = DefaultBatch
	}
	if opts.MinBackoff <= 0 {
		opts.MinBackoff = DefaultMinBackoff
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = DefaultMaxBackoff
	}
	opts.MaxBackoff = max(opts.MaxBackoff, opts.MinBackoff)
	if opts.MaxRetryAfter <= 0 {
		opts.MaxRetryAfter = DefaultMaxRetryAfter
	}
	if opts.DeliverTimeout <= 0 {
		opts.DeliverTimeout = DefaultDeliverTime
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Forwarder{
		q: q, s: s, opts: opts,
		log:  log.With("sink", s.Name()),
		wake: make(chan struct{}, 1),
		st:   SinkStatus{Name: s.Name()},
	}
}

// Name returns the sink's name.
func (f *Forwarder) Name() string { return f.s.Name() }

// Wake makes an idle Forwarder look for records now. Appends to the queue
// wake it by themselves (store.Queue.Changed); Wake does not cut a backoff
// short.
func (f *Forwarder) Wake() {
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

// Status returns a snapshot of the Forwarder.
func (f *Forwarder) Status() SinkStatus {
	f.mu.Lock()
	st := f.st
	f.mu.Unlock()
	st.Backlog = -1
	if n, err := f.q.Backlog(st.Name); err == nil {
		st.Backlog = n
	}
	if s, err := f.q.Stats(); err == nil {
		st.Acked = s.PerSink[st.Name]
	}
	return st
}

// Run forwards records until ctx is done, then returns ctx.Err(). It never
// polls: with nothing to send it waits for an Append or Wake. Queue errors
// are retried with the same backoff as delivery errors, so stop the
// Forwarders before closing the queue.
func (f *Forwarder) Run(ctx context.Context) error {
	batch := f.opts.Batch
	failures := 0
	for {
		changed := f.q.Changed() // before Pending, so no Append is missed
		recs, err := f.q.Pending(f.s.Name(), batch)
		if err == nil && len(recs) == 0 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-changed:
			case <-f.wake:
			}
			continue
		}
		if err == nil {
			err = f.deliver(ctx, recs)
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err == nil {
			if failures > 0 {
				f.log.Info("sink: delivering again", "after_failures", failures)
			}
			failures = 0
			continue
		}

		failures++
		if errors.Is(err, ErrTooLarge) && batch > 1 {
			batch = max(batch/2, 1)
		}
		delay := f.backoff(failures)
		var ra *RetryAfterError
		if errors.As(err, &ra) {
			delay = max(delay, min(ra.After, f.opts.MaxRetryAfter))
		}
		now := f.opts.Now()
		f.mu.Lock()
		f.st.Failures = failures
		f.st.LastErr = err.Error()
		f.st.LastErrTime = now
		f.st.NextRetry = now.Add(delay)
		f.mu.Unlock()
		f.log.Warn("sink: delivery failed", "err", err, "failures", failures, "retry_in", delay)
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

// deliver sends recs and acknowledges them in the queue.
func (f *Forwarder) deliver(ctx context.Context, recs []store.Record) error {
	dctx, cancel := context.WithTimeout(ctx, f.opts.DeliverTimeout)
	err := f.s.Deliver(dctx, recs)
	cancel()
	if err != nil {
		return err
	}
	if err := f.q.Ack(f.s.Name(), recs[len(recs)-1].Seq); err != nil {
		return err // delivered again later: at-least-once
	}
	f.mu.Lock()
	f.st.LastOK = f.opts.Now()
	f.st.LastErr = ""
	f.st.Failures = 0
	f.st.NextRetry = time.Time{}
	f.st.Delivered += uint64(len(recs))
	f.mu.Unlock()
	return nil
}

// backoff returns the wait after the n-th failure in a row.
func (f *Forwarder) backoff(n int) time.Duration {
	lo, hi := f.opts.MinBackoff, f.opts.MinBackoff
	for i := 1; i < n && hi < f.opts.MaxBackoff; i++ {
		hi *= 2
	}
	hi = min(hi, f.opts.MaxBackoff)
	if hi <= lo {
		return lo
	}
	return lo + rand.N(hi-lo+1)
}
