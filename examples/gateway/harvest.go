package main

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/pikit/pikit/energy"
)

// Device states shown in /api/state.
const (
	stateStarting = "starting" // no read finished yet
	stateOK       = "ok"       // the last read succeeded
	stateError    = "error"    // the last read (or open) failed; retrying with backoff
)

// defaultMaxBackoff bounds the wait between attempts on a failing device.
const defaultMaxBackoff = time.Minute

// deviceState is one device in /api/state.
type deviceState struct {
	ID       string       `json:"id"`
	Spec     string       `json:"spec"`
	Interval Duration     `json:"interval"`
	State    string       `json:"state"`
	Info     *energy.Info `json:"info,omitempty"`
	// Reads and Errors count successful and failed reads since start.
	Reads  uint64 `json:"reads"`
	Errors uint64 `json:"errors"`
	// StoreErrors counts readings that could not be written to the queue
	// (and are therefore lost): a full or broken disk.
	StoreErrors       uint64     `json:"store_errors"`
	ConsecutiveErrors int        `json:"consecutive_errors"`
	LastError         string     `json:"last_error,omitempty"`
	LastErrorAt       *time.Time `json:"last_error_at,omitempty"`
	LastReadingAt     *time.Time `json:"last_reading_at,omitempty"`
	LastSeq           uint64     `json:"last_seq,omitempty"`
	// SkippedTicks counts ticks not read because a read overran its
	// interval or the device was in backoff.
	SkippedTicks uint64    `json:"skipped_ticks"`
	NextReadAt   time.Time `json:"next_read_at"`
}

// harvester reads one device on a fixed schedule: reads are due at
// start + n*interval, so the schedule does not drift with the time reads
// take; a read that overruns skips the ticks it missed instead of bursting
// to catch up. Every device has its own goroutine, so one slow or dead
// device never delays another.
type harvester struct {
	cfg        DeviceConfig
	interval   time.Duration
	maxBackoff time.Duration
	open       func(spec string) (energy.Inverter, error)
	// deliver stores a reading; it returns its sequence number.
	deliver func(id string, r energy.Reading) (uint64, error)
	log     *slog.Logger

	cancel context.CancelFunc
	done   chan struct{}

	mu  sync.Mutex
	inv energy.Inverter
	st  deviceState
}

func newHarvester(cfg DeviceConfig, interval, maxBackoff time.Duration, open func(string) (energy.Inverter, error),
	deliver func(string, energy.Reading) (uint64, error), log *slog.Logger) *harvester {
	if cfg.Interval != 0 {
		interval = cfg.Interval.D()
	}
	if maxBackoff < interval {
		maxBackoff = interval
	}
	return &harvester{
		cfg: cfg, interval: interval, maxBackoff: maxBackoff, open: open, deliver: deliver,
		log:  log.With("device", cfg.ID),
		done: make(chan struct{}),
		st:   deviceState{ID: cfg.ID, Spec: cfg.Spec, Interval: Duration(interval), State: stateStarting},
	}
}

// start runs the harvester until stop.
func (h *harvester) start(ctx context.Context) {
	ctx, h.cancel = context.WithCancel(ctx)
	go h.run(ctx)
}

// stop ends the harvester, waits for it and closes the device.
func (h *harvester) stop() {
	h.cancel()
	<-h.done
}

// readTimeout bounds one read: shorter than the interval, so that a dead
// device cannot make reads pile up.
func (h *harvester) readTimeout() time.Duration {
	t := h.interval * 3 / 4
	return min(max(t, 500*time.Millisecond), 30*time.Second)
}

// backoff is the wait after n consecutive failures: the interval, doubling
// from the second failure on, up to maxBackoff.
func (h *harvester) backoff(n int) time.Duration {
	d := h.interval
	for i := 1; i < n && d < h.maxBackoff; i++ {
		d *= 2
	}
	return min(d, h.maxBackoff)
}

func (h *harvester) run(ctx context.Context) {
	defer close(h.done)
	defer func() {
		h.mu.Lock()
		inv := h.inv
		h.inv = nil
		h.mu.Unlock()
		if inv != nil {
			inv.Close()
		}
	}()
	start := time.Now()
	var tick int64          // index of the next tick
	var notBefore time.Time // backoff: no attempt before this
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		due := start.Add(time.Duration(tick) * h.interval)
		h.mu.Lock()
		h.st.NextReadAt = due
		h.mu.Unlock()
		timer.Reset(time.Until(due))
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		if time.Now().Before(notBefore) {
			h.mu.Lock()
			h.st.SkippedTicks++
			h.mu.Unlock()
		} else if fails := h.once(ctx, due); fails > 0 {
			// The first failure retries at the next tick; further ones
			// wait twice as long each time, up to maxBackoff.
			notBefore = due.Add(h.backoff(fails) - h.interval/10)
		} else {
			notBefore = time.Time{}
		}
		if ctx.Err() != nil {
			return
		}
		// The next tick is the first one still in the future.
		next := int64(time.Since(start)/h.interval) + 1
		if missed := next - tick - 1; missed > 0 {
			h.mu.Lock()
			h.st.SkippedTicks += uint64(missed)
			h.mu.Unlock()
		}
		tick = next
	}
}

// once opens the device if needed and reads it once. It returns the number
// of consecutive failures (0 after a success).
func (h *harvester) once(ctx context.Context, due time.Time) int {
	h.mu.Lock()
	inv := h.inv
	h.mu.Unlock()
	if inv == nil {
		var err error
		inv, err = h.open(h.cfg.Spec)
		if err != nil {
			return h.fail(ctx, "open", err)
		}
		h.mu.Lock()
		h.inv = inv
		h.mu.Unlock()
	}
	rctx, cancel := context.WithTimeout(ctx, h.readTimeout())
	r, err := inv.Read(rctx)
	cancel()
	if err != nil {
		return h.fail(ctx, "read", err)
	}
	if r.Time.IsZero() {
		r.Time = due
	}
	seq, err := h.deliver(h.cfg.ID, r)
	h.mu.Lock()
	defer h.mu.Unlock()
	if err != nil {
		// The device answered; the disk did not take the reading. Count
		// it apart from device errors, and do not back off the device.
		h.st.StoreErrors++
		h.log.Error("storing a reading failed; it is lost", "err", err)
		return 0
	}
	if h.st.State == stateError {
		h.log.Info("device recovered", "after_errors", h.st.ConsecutiveErrors)
	}
	info := r.Device
	t := r.Time
	h.st.State, h.st.Info, h.st.Reads, h.st.LastReadingAt, h.st.LastSeq = stateOK, &info, h.st.Reads+1, &t, seq
	h.st.ConsecutiveErrors = 0
	return 0
}

func (h *harvester) fail(ctx context.Context, op string, err error) int {
	if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
		return 0 // stopping, not a device error
	}
	now := time.Now()
	h.mu.Lock()
	defer h.mu.Unlock()
	h.st.Errors++
	h.st.ConsecutiveErrors++
	h.st.LastError, h.st.LastErrorAt = op+": "+err.Error(), &now
	if h.st.State != stateError || h.st.ConsecutiveErrors == 1 {
		h.log.Warn("device "+op+" failed", "err", err)
	}
	h.st.State = stateError
	return h.st.ConsecutiveErrors
}

// state returns a copy of the device's state.
func (h *harvester) state() deviceState {
	h.mu.Lock()
	defer h.mu.Unlock()
	st := h.st
	if st.Info != nil {
		info := *st.Info
		st.Info = &info
	}
	return st
}

// inverter returns the open device, or nil.
func (h *harvester) inverter() energy.Inverter {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.inv
}
