package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/pikit/pikit/servo"
	"periph.io/x/conn/v3/physic"
)

// Reasons a dispense is refused; they label the rejections metric.
const (
	reasonBusy       = "busy"
	reasonDailyLimit = "daily_limit"
	reasonInterval   = "min_interval"
	reasonFault      = "hopper_fault"
	reasonStopping   = "shutting_down"
)

var (
	errBusy     = errors.New("busy")
	errStopping = errors.New("shutting down")
)

// limitError refuses a dispense that the daily limit or minimum interval
// forbids, and says when to try again.
type limitError struct {
	Reason     string
	Message    string
	RetryAfter time.Duration
}

func (e *limitError) Error() string { return e.Message }

// faultError refuses dispenses while the hopper could not be closed.
type faultError struct{ err error }

func (e *faultError) Error() string {
	return "the hopper could not be closed (" + e.err.Error() + "); dispensing is disabled until it closes"
}
func (e *faultError) Unwrap() error { return e.err }

// feederConfig is the dispensing policy.
type feederConfig struct {
	OpenAngle, ClosedAngle physic.Angle
	OpenTime               time.Duration // how long the hopper stays open
	Speed                  physic.Angle  // sweep speed per second; 0 = servo.DefaultSpeed
	DailyLimit             int           // treats per local calendar day
	MinInterval            time.Duration // between treats; 0 disables
	Location               *time.Location
	Now                    func() time.Time
	CloseAttempts          int           // tries per close before reporting a fault (default 3)
	RetryEvery             time.Duration // how often a faulted hopper is retried (default 2s)
}

// Dispense is one treat: when the hopper opened and closed, and who asked.
type Dispense struct {
	N        int64      `json:"n"`
	Who      string     `json:"who"`
	OpenedAt time.Time  `json:"opened_at"`
	ClosedAt *time.Time `json:"closed_at,omitempty"`
	Error    string     `json:"error,omitempty"`
}

const recentMax = 10

// feeder owns the hopper servo and enforces the safety rules: one dispense at
// a time, daily limit and minimum interval (persisted through the event log,
// so a restart resets nothing), and a close that always happens: after
// errors (retried, then retried in the background), on a cancelled request
// and on shutdown.
type feeder struct {
	cfg   feederConfig
	servo servo.Device
	log   *eventLog

	sem chan struct{} // one dispense or move at a time

	mu          sync.Mutex
	today       []time.Time // open times of treats on the current local day
	last        time.Time   // last treat, any day
	n           int64       // dispenses ever
	recent      []Dispense  // newest last
	hopperOpen  bool
	fault       error // close failed; dispensing disabled until a close succeeds
	stopping    bool
	dispenses   int64
	rejections  map[string]int64
	servoErrors int64
	changed     chan struct{} // closed and replaced on every state change

	stopRetry chan struct{}
	retryDone chan struct{}
}

// newFeeder replays the event log, then drives the hopper closed before
// anything else: whatever state a crash left it in, it starts closed.
func newFeeder(cfg feederConfig, dev servo.Device, log *eventLog, history []Event) (*feeder, error) {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Location == nil {
		cfg.Location = time.Local
	}
	if cfg.CloseAttempts <= 0 {
		cfg.CloseAttempts = 3
	}
	if cfg.RetryEvery <= 0 {
		cfg.RetryEvery = 2 * time.Second
	}
	if cfg.DailyLimit < 0 || cfg.MinInterval < 0 || cfg.OpenTime < 0 {
		return nil, errors.New("negative limit, interval or open time")
	}
	f := &feeder{cfg: cfg, servo: dev, log: log, sem: make(chan struct{}, 1),
		rejections: map[string]int64{}, changed: make(chan struct{})}
	unclosed := f.replay(history)

	note := "hopper driven closed at start-up"
	if unclosed != 0 {
		note = fmt.Sprintf("dispense %d had no close in the log (unclean stop); hopper driven closed at start-up", unclosed)
	}
	err := f.closeHopper()
	ev := Event{Type: "startup_close", Time: cfg.Now(), Note: note, Dispense: unclosed}
	if err != nil {
		ev.Error = err.Error()
	}
	if lerr := log.Append(ev); lerr != nil {
		return nil, lerr
	}
	if err != nil {
		f.startRetry()
	}
	return f, nil
}

// replay rebuilds the counters from the log and returns the number of a
// dispense that opened but never logged a close (0 if none).
func (f *feeder) replay(events []Event) (unclosed int64) {
	for _, e := range events {
		switch e.Type {
		case "open":
			f.n = max(f.n, e.Dispense)
			f.countTreat(e.Time)
			f.addRecent(Dispense{N: e.Dispense, Who: e.Who, OpenedAt: e.Time})
			unclosed = e.Dispense
		case "close", "startup_close":
			if e.Dispense != 0 {
				f.markClosed(e.Dispense, e.Time, e.Error)
				if e.Dispense == unclosed {
					unclosed = 0
				}
			}
		}
	}
	return unclosed
}

func (f *feeder) countTreat(t time.Time) {
	if !sameDay(t, f.cfg.Now(), f.cfg.Location) {
		if t.After(f.last) {
			f.last = t
		}
		return
	}
	f.today = append(f.today, t)
	if t.After(f.last) {
		f.last = t
	}
}

func (f *feeder) addRecent(d Dispense) {
	f.recent = append(f.recent, d)
	if len(f.recent) > recentMax {
		f.recent = append(f.recent[:0], f.recent[len(f.recent)-recentMax:]...)
	}
}

func (f *feeder) markClosed(n int64, t time.Time, errText string) {
	for i := range f.recent {
		if f.recent[i].N == n {
			tc := t
			f.recent[i].ClosedAt = &tc
			if errText != "" {
				f.recent[i].Error = errText
			}
		}
	}
}

func sameDay(a, b time.Time, loc *time.Location) bool {
	ay, am, ad := a.In(loc).Date()
	by, bm, bd := b.In(loc).Date()
	return ay == by && am == bm && ad == bd
}

// rollDay forgets treats from earlier days. Called with f.mu held.
func (f *feeder) rollDay(now time.Time) {
	i := 0
	for i < len(f.today) && !sameDay(f.today[i], now, f.cfg.Location) {
		i++
	}
	f.today = f.today[i:]
}

// check returns why a dispense is not allowed now, if it is not.
// Called with f.mu held.
func (f *feeder) check(now time.Time) error {
	if f.stopping {
		return errStopping
	}
	if f.fault != nil {
		return &faultError{f.fault}
	}
	f.rollDay(now)
	if len(f.today) >= f.cfg.DailyLimit {
		y, m, d := now.In(f.cfg.Location).Date()
		midnight := time.Date(y, m, d+1, 0, 0, 0, 0, f.cfg.Location)
		return &limitError{Reason: reasonDailyLimit, RetryAfter: midnight.Sub(now),
			Message: fmt.Sprintf("daily limit of %d treats reached", f.cfg.DailyLimit)}
	}
	if f.cfg.MinInterval > 0 && !f.last.IsZero() {
		if wait := f.last.Add(f.cfg.MinInterval).Sub(now); wait > 0 {
			return &limitError{Reason: reasonInterval, RetryAfter: wait,
				Message: fmt.Sprintf("at most one treat every %s", f.cfg.MinInterval)}
		}
	}
	return nil
}

// nextAllowed is when the next treat may be given (zero if now).
// Called with f.mu held.
func (f *feeder) nextAllowed(now time.Time) time.Time {
	var le *limitError
	if err := f.check(now); errors.As(err, &le) {
		return now.Add(le.RetryAfter)
	}
	return time.Time{}
}

func (f *feeder) reject(err error) error {
	reason := reasonBusy
	var le *limitError
	var fe *faultError
	switch {
	case errors.As(err, &le):
		reason = le.Reason
	case errors.As(err, &fe):
		reason = reasonFault
	case errors.Is(err, errStopping):
		reason = reasonStopping
	}
	f.mu.Lock()
	f.rejections[reason]++
	f.mu.Unlock()
	return err
}

// Dispense gives one treat: open, hold, close. It returns after the hopper
// has closed again. A cancelled ctx cuts the hold short but never the close.
func (f *feeder) Dispense(ctx context.Context, who string) (Dispense, error) {
	select {
	case f.sem <- struct{}{}:
	default:
		return Dispense{}, f.reject(errBusy)
	}
	defer func() { <-f.sem }()

	now := f.cfg.Now()
	f.mu.Lock()
	if err := f.check(now); err != nil {
		f.mu.Unlock()
		return Dispense{}, f.reject(err)
	}
	f.n++
	d := Dispense{N: f.n, Who: who, OpenedAt: now}
	f.mu.Unlock()

	// The open is logged (durably) before the servo moves, so the limits
	// hold even if the process dies with the hopper open, and the next
	// start knows to close it.
	if err := f.log.Append(Event{Type: "open", Time: now, Dispense: d.N, Who: who}); err != nil {
		f.mu.Lock()
		f.n--
		f.mu.Unlock()
		return Dispense{}, fmt.Errorf("not dispensing: %w", err)
	}
	f.mu.Lock()
	f.countTreat(now)
	f.addRecent(d)
	f.hopperOpen = true
	f.dispenses++
	f.notifyLocked()
	f.mu.Unlock()

	openErr := servo.Move(ctx, f.servo, f.cfg.OpenAngle, f.cfg.Speed)
	if openErr == nil {
		t := time.NewTimer(f.cfg.OpenTime)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			openErr = ctx.Err()
		}
	} else if !errors.Is(openErr, context.Canceled) && !errors.Is(openErr, context.DeadlineExceeded) {
		f.mu.Lock()
		f.servoErrors++
		f.mu.Unlock()
	}

	closeErr := f.closeHopper()
	closed := f.cfg.Now()
	ev := Event{Type: "close", Time: closed, Dispense: d.N}
	switch {
	case closeErr != nil:
		ev.Error = closeErr.Error()
	case openErr != nil:
		ev.Note = "opening interrupted: " + openErr.Error()
	}
	logErr := f.log.Append(ev)

	f.mu.Lock()
	if closeErr == nil {
		d.ClosedAt = &closed
		f.markClosed(d.N, closed, "")
	} else {
		d.Error = closeErr.Error()
		f.markClosed(d.N, closed, d.Error)
	}
	f.notifyLocked()
	f.mu.Unlock()

	if closeErr != nil {
		f.startRetry()
		return d, closeErr
	}
	if openErr != nil && ctx.Err() == nil {
		return d, fmt.Errorf("opening the hopper: %w (it was closed again)", openErr)
	}
	return d, logErr
}

// closeHopper drives the hopper closed, retrying a failing servo. It uses
// its own context on purpose: nothing may cancel a close.
func (f *feeder) closeHopper() error {
	var err error
	backoff := 50 * time.Millisecond
	for attempt := 0; attempt < f.cfg.CloseAttempts; attempt++ {
		if attempt > 0 {
			time.Sleep(backoff)
			backoff *= 2
		}
		if err = servo.Move(context.Background(), f.servo, f.cfg.ClosedAngle, f.cfg.Speed); err == nil {
			f.mu.Lock()
			f.hopperOpen, f.fault = false, nil
			f.notifyLocked()
			f.mu.Unlock()
			return nil
		}
		f.mu.Lock()
		f.servoErrors++
		f.mu.Unlock()
	}
	f.mu.Lock()
	f.hopperOpen = true // unknown: assume the worst
	f.fault = err
	f.notifyLocked()
	f.mu.Unlock()
	return fmt.Errorf("closing the hopper failed %d times: %w", f.cfg.CloseAttempts, err)
}

// startRetry keeps trying to close a faulted hopper in the background, so a
// servo that recovers (a loose wire reseated) closes it without a restart.
func (f *feeder) startRetry() {
	f.mu.Lock()
	if f.stopRetry != nil {
		f.mu.Unlock()
		return
	}
	stop, done := make(chan struct{}), make(chan struct{})
	f.stopRetry, f.retryDone = stop, done
	f.mu.Unlock()
	go func() {
		defer close(done)
		t := time.NewTicker(f.cfg.RetryEvery)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
			}
			f.sem <- struct{}{}
			err := f.closeHopper()
			<-f.sem
			if err == nil {
				_ = f.log.Append(Event{Type: "close", Time: f.cfg.Now(), Note: "hopper closed by background retry"})
				f.mu.Lock()
				f.stopRetry = nil
				f.mu.Unlock()
				return
			}
		}
	}()
}

// Shutdown refuses new dispenses, waits for one in progress to close the
// hopper (a dispense never leaves it open), closes it once more for good
// measure, and releases the servo. The event log stays open for its owner
// to close.
func (f *feeder) Shutdown() error {
	f.mu.Lock()
	f.stopping = true
	stop, done := f.stopRetry, f.retryDone
	f.notifyLocked()
	f.mu.Unlock()
	if stop != nil {
		close(stop)
		<-done
	}
	f.sem <- struct{}{} // wait for a dispense in progress
	defer func() { <-f.sem }()
	err := f.closeHopper()
	ev := Event{Type: "close", Time: f.cfg.Now(), Note: "hopper closed at shutdown"}
	if err != nil {
		ev.Error = err.Error()
	}
	if lerr := f.log.Append(ev); err == nil {
		err = lerr
	}
	if rerr := f.servo.Release(); err == nil {
		err = rerr
	}
	return err
}

// notifyLocked wakes everyone waiting in Changed. Called with f.mu held.
func (f *feeder) notifyLocked() {
	close(f.changed)
	f.changed = make(chan struct{})
}

// Changed returns a channel closed at the next state change.
func (f *feeder) Changed() <-chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.changed
}

// feederStatus is the dispensing part of /api/status.
type feederStatus struct {
	TreatsToday   int        `json:"treats_today"`
	DailyLimit    int        `json:"daily_limit"`
	MinIntervalS  float64    `json:"min_interval_s"`
	NextAllowedAt *time.Time `json:"next_allowed_at"`
	Allowed       bool       `json:"allowed"`
	Reason        string     `json:"reason,omitempty"`
	Hopper        string     `json:"hopper"`
	ServoAngleDeg *float64   `json:"servo_angle_deg"`
	LastTreatAt   *time.Time `json:"last_treat_at"`
	Busy          bool       `json:"busy"`
	Fault         string     `json:"fault,omitempty"`
	Recent        []Dispense `json:"recent"`
}

func (f *feeder) Status() feederStatus {
	now := f.cfg.Now()
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rollDay(now)
	s := feederStatus{TreatsToday: len(f.today), DailyLimit: f.cfg.DailyLimit,
		MinIntervalS: f.cfg.MinInterval.Seconds(), Hopper: "closed", Busy: len(f.sem) > 0}
	if f.hopperOpen {
		s.Hopper = "open"
	}
	if err := f.check(now); err != nil {
		s.Reason = err.Error()
	} else {
		s.Allowed = true
	}
	if t := f.nextAllowed(now); !t.IsZero() {
		s.NextAllowedAt = &t
	}
	if !f.last.IsZero() {
		t := f.last
		s.LastTreatAt = &t
	}
	if f.fault != nil {
		s.Fault = f.fault.Error()
	}
	if a, holding := f.servo.Angle(); holding {
		d := float64(a) / float64(physic.Degree)
		s.ServoAngleDeg = &d
	}
	s.Recent = make([]Dispense, len(f.recent))
	for i := range f.recent { // newest first for display
		s.Recent[i] = f.recent[len(f.recent)-1-i]
	}
	return s
}

// feederCounters are the dispensing metrics.
type feederCounters struct {
	Dispenses   int64
	Rejections  map[string]int64
	ServoErrors int64
}

func (f *feeder) Counters() feederCounters {
	f.mu.Lock()
	defer f.mu.Unlock()
	r := make(map[string]int64, len(f.rejections))
	for k, v := range f.rejections {
		r[k] = v
	}
	return feederCounters{Dispenses: f.dispenses, Rejections: r, ServoErrors: f.servoErrors}
}
