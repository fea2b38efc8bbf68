package octopus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults for WatchOptions.
const (
	DefaultInterval   = 10 * time.Second
	DefaultMaxBackoff = 2 * time.Minute
)

// Target is a project in an environment to watch, each given by name or ID.
type Target struct {
	Project     string
	Environment string
}

// String returns "project → environment".
func (t Target) String() string { return t.Project + " → " + t.Environment }

// Update is the status of one target.
type Update struct {
	Target Target
	// The target resolved; empty until it is.
	ProjectID, ProjectName         string
	EnvironmentID, EnvironmentName string
	Status                         Status
	// Failures counts the consecutive polls that could not read this
	// target's state (the dashboard request failed, or the target could not
	// be resolved); 0 once one succeeds. Failing to read only the step or
	// the interruption sets Status.Err but does not count: the state is
	// fresh. A program can show an error colour after a few failures and
	// the last known state before that.
	Failures int
}

func (u Update) equal(o Update) bool {
	return u.Target == o.Target && u.ProjectID == o.ProjectID && u.ProjectName == o.ProjectName &&
		u.EnvironmentID == o.EnvironmentID && u.EnvironmentName == o.EnvironmentName &&
		u.Failures == o.Failures && u.Status.Equal(o.Status)
}

// WatchOptions configures a Watcher. The zero value is ready to use.
type WatchOptions struct {
	// Interval is the time between polls (default DefaultInterval).
	Interval time.Duration
	// MaxBackoff caps the delay between polls while they fail (default
	// DefaultMaxBackoff, or Interval if that is longer). The delay starts
	// at Interval and doubles with each consecutive failure, less up to a
	// quarter of jitter.
	MaxBackoff time.Duration
	// Logger, if set, receives poll failures, resolutions and changes.
	Logger *slog.Logger
	// StatusOptions configures how activity logs are read.
	StatusOptions StatusOptions
}

// errNotPolled is the Err of a target's status before its first poll.
var errNotPolled = errors.New("octopus: not polled yet")

// Watcher polls the status of several targets and reports changes.
//
// Each poll costs one dashboard request for all targets, plus one activity
// log request per executing deployment and one interruptions request per
// deployment waiting for someone. Targets are resolved to IDs on the first
// poll (one listing of projects and one of environments); a target given by
// name whose project disappears from the dashboard is resolved again, so a
// project deleted and re-created under the same name is found.
//
// On errors the Watcher backs off (see WatchOptions.MaxBackoff) and keeps
// each target's last known status, with Status.Err set and Update.Failures
// counting. Trigger polls at once, e.g. when a webhook arrives.
//
// Methods are safe for concurrent use. Run may be called once.
type Watcher struct {
	c       *Client
	targets []Target
	opts    WatchOptions
	log     *slog.Logger

	ch      chan Update
	trigger chan struct{}
	wake    chan struct{} // tells the delivery goroutine that an update is dirty
	started atomic.Bool

	pollMu sync.Mutex // serializes polls and guards the fields below
	ids    []resolvedTarget
	streak int // consecutive polls that failed in a way worth backing off from

	mu    sync.Mutex // guards cur and dirty
	cur   []Update
	dirty []bool
}

type resolvedTarget struct {
	ok                             bool
	ever                           bool // resolved once: later errors are not fatal
	projectID, projectName         string
	environmentID, environmentName string
}

// NewWatcher returns a Watcher for the targets. Nothing is requested until
// Run or Poll.
func NewWatcher(c *Client, targets []Target, opts WatchOptions) (*Watcher, error) {
	if c == nil {
		return nil, errors.New("octopus: watcher: nil client")
	}
	if len(targets) == 0 {
		return nil, errors.New("octopus: watcher: no targets")
	}
	ts := make([]Target, len(targets))
	for i, t := range targets {
		t.Project, t.Environment = strings.TrimSpace(t.Project), strings.TrimSpace(t.Environment)
		if t.Project == "" || t.Environment == "" {
			return nil, fmt.Errorf("octopus: watcher: target %d needs both a project and an environment", i+1)
		}
		ts[i] = t
	}
	switch {
	case opts.Interval < 0:
		return nil, fmt.Errorf("octopus: watcher: negative Interval %s", opts.Interval)
	case opts.Interval == 0:
		opts.Interval = DefaultInterval
	}
	switch {
	case opts.MaxBackoff < 0:
		return nil, fmt.Errorf("octopus: watcher: negative MaxBackoff %s", opts.MaxBackoff)
	case opts.MaxBackoff == 0:
		opts.MaxBackoff = max(DefaultMaxBackoff, opts.Interval)
	case opts.MaxBackoff < opts.Interval:
		return nil, fmt.Errorf("octopus: watcher: MaxBackoff %s is less than Interval %s", opts.MaxBackoff, opts.Interval)
	}
	w := &Watcher{
		c:       c,
		targets: ts,
		opts:    opts,
		log:     opts.Logger,
		ch:      make(chan Update),
		trigger: make(chan struct{}, 1),
		wake:    make(chan struct{}, 1),
		ids:     make([]resolvedTarget, len(ts)),
		cur:     make([]Update, len(ts)),
		dirty:   make([]bool, len(ts)),
	}
	if w.log == nil {
		w.log = slog.New(slog.DiscardHandler)
	}
	for i, t := range ts {
		w.cur[i] = Update{Target: t, Status: Status{Err: errNotPolled}}
	}
	return w, nil
}

// Changes returns the channel on which Run delivers an Update whenever a
// target's status changes, including its first status. Delivery never
// holds up polling: if the receiver is slow, intermediate statuses of a
// target are skipped, never the latest one. The channel is closed when Run
// returns.
func (w *Watcher) Changes() <-chan Update { return w.ch }

// Trigger makes Run poll at once rather than at the next interval (or
// after the backoff delay), e.g. when an Octopus webhook arrives. It never
// blocks; triggers during a poll cause one more poll.
func (w *Watcher) Trigger() {
	select {
	case w.trigger <- struct{}{}:
	default:
	}
}

// Snapshot returns the current status of every target, in the order given
// to NewWatcher. Before a target's first poll its State is Unknown.
func (w *Watcher) Snapshot() []Update {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]Update(nil), w.cur...)
}

// Poll polls once now and returns the poll's error, if any (the same error
// is in the affected targets' Status.Err). Changes are recorded for
// Snapshot and, while Run runs, delivered on Changes. Poll waits for a
// poll in progress to finish first.
func (w *Watcher) Poll(ctx context.Context) error {
	_, err := w.poll(ctx)
	return err
}

// Run polls until ctx is done and then returns ctx's error. It returns
// early with an error if, on the first attempt, a target cannot be
// resolved for good: a name that matches nothing (the error lists close
// matches), or an API key that is refused. Transient errors, such as the
// server being unreachable at boot, are retried with backoff instead.
func (w *Watcher) Run(ctx context.Context) error {
	if !w.started.CompareAndSwap(false, true) {
		return errors.New("octopus: watcher: Run called twice")
	}
	dctx, stop := context.WithCancel(ctx)
	delivered := make(chan struct{})
	go func() {
		defer close(delivered)
		w.deliver(dctx)
	}()
	defer func() {
		stop()
		<-delivered
		close(w.ch)
	}()

	for {
		fatal, err := w.poll(ctx)
		if fatal {
			return err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		delay := w.opts.Interval
		w.pollMu.Lock()
		n := w.streak
		w.pollMu.Unlock()
		if n > 0 {
			delay = backoff(w.opts.Interval, w.opts.MaxBackoff, n, rand.Float64())
		}
		if err != nil {
			w.log.Warn("octopus: poll failed", "err", err, "failures", n, "retry_in", delay)
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-w.trigger:
			t.Stop()
		case <-t.C:
		}
	}
}

// backoff returns the delay after n consecutive failures: interval doubled
// n-1 times, capped at limit, less up to a quarter of it (jitter in [0,1))
// so that several lamps do not retry in lockstep.
func backoff(interval, limit time.Duration, n int, jitter float64) time.Duration {
	d := interval
	for i := 1; i < n && d < limit; i++ {
		d *= 2
	}
	d = min(d, limit)
	return d - time.Duration(jitter*float64(d)/4)
}

// poll resolves what is unresolved and reads the status of what is
// resolved. fatal reports an error Run must return.
func (w *Watcher) poll(ctx context.Context) (fatal bool, err error) {
	w.pollMu.Lock()
	defer w.pollMu.Unlock()

	fatal, pollErr := w.resolve(ctx)
	if fatal {
		return true, pollErr
	}

	var idx []int
	var pairs []pair
	var prev []Status
	snap := w.Snapshot()
	for i, id := range w.ids {
		if id.ok {
			idx = append(idx, i)
			pairs = append(pairs, pair{id.projectID, id.environmentID})
			prev = append(prev, snap[i].Status)
		}
	}
	if len(pairs) > 0 {
		sts, err := w.c.fetchStatuses(ctx, pairs, prev, w.opts.StatusOptions)
		if err != nil && ctx.Err() != nil {
			return false, err // shutting down: keep the statuses as they were
		}
		if err != nil {
			for _, i := range idx {
				w.failed(i, snap[i], err)
			}
			pollErr = err
		} else {
			for k, i := range idx {
				u := snap[i]
				u.Status, u.Failures = sts[k], 0
				w.publish(i, u)
				var missing *missingProjectError
				if errors.As(u.Status.Err, &missing) && !isID(w.targets[i].Project, "Projects-") {
					w.ids[i].ok = false // resolve the name again on the next poll
					w.log.Info("octopus: project no longer on the dashboard; resolving it again", "target", w.targets[i].String())
				}
			}
		}
	}
	// Only errors that may go away count for backoff: a target whose name
	// no longer resolves must not slow down the others.
	if pollErr != nil && !permanent(pollErr) {
		w.streak++
	} else {
		w.streak = 0
	}
	return false, pollErr
}

// resolve resolves the targets not resolved yet. An error that retrying
// will not fix is fatal for a target never resolved; after any other error
// the remaining targets are not tried, since they would fail the same way.
func (w *Watcher) resolve(ctx context.Context) (fatal bool, err error) {
	r := &resolver{c: w.c}
	var firstErr error
	for i, t := range w.targets {
		if w.ids[i].ok {
			continue
		}
		if firstErr != nil && !permanent(firstErr) {
			w.failed(i, w.Snapshot()[i], firstErr)
			continue
		}
		p, e, err := r.target(ctx, t)
		if err != nil && ctx.Err() != nil {
			return false, err
		}
		if err != nil {
			err = fmt.Errorf("octopus: watch %s: %w", t, err)
			if !w.ids[i].ever && permanent(err) {
				return true, err
			}
			w.failed(i, w.Snapshot()[i], err)
			if firstErr == nil || permanent(firstErr) {
				firstErr = err
			}
			continue
		}
		w.ids[i] = resolvedTarget{ok: true, ever: true, projectID: p.ID, projectName: p.Name, environmentID: e.ID, environmentName: e.Name}
		w.log.Info("octopus: watching", "target", t.String(), "project", p.ID, "environment", e.ID)
		w.mu.Lock()
		u := w.cur[i]
		u.ProjectID, u.ProjectName, u.EnvironmentID, u.EnvironmentName = p.ID, p.Name, e.ID, e.Name
		w.cur[i] = u
		w.mu.Unlock()
	}
	return false, firstErr
}

func (r *resolver) target(ctx context.Context, t Target) (*Project, *Environment, error) {
	p, err := r.project(ctx, t.Project)
	if err != nil {
		return nil, nil, err
	}
	e, err := r.environment(ctx, t.Environment)
	if err != nil {
		return nil, nil, err
	}
	return p, e, nil
}

// permanent reports errors that retrying will not fix: a name that matches
// nothing or too much, a space or server path that does not exist, a key
// that is refused.
func permanent(err error) bool {
	return errors.Is(err, ErrNotFound) || errors.Is(err, ErrUnauthorized) || errors.Is(err, ErrForbidden) ||
		errors.Is(err, errAmbiguous)
}

// failed annotates target i's last known status with err.
func (w *Watcher) failed(i int, u Update, err error) {
	u.Status.Err = err
	u.Failures++
	w.publish(i, u)
}

// publish records u as target i's status and, if it changed, queues it for
// delivery.
func (w *Watcher) publish(i int, u Update) {
	w.mu.Lock()
	changed := !w.cur[i].equal(u)
	w.cur[i] = u
	if changed {
		w.dirty[i] = true
	}
	w.mu.Unlock()
	if !changed {
		return
	}
	w.log.Debug("octopus: status changed", "target", u.Target.String(), "status", u.Status.String(), "failures", u.Failures)
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// deliver sends dirty updates on the channel, the latest of each target,
// taking targets in turn so that a busy target cannot starve the others.
func (w *Watcher) deliver(ctx context.Context) {
	next := 0
	for {
		u, ok := w.takeDirty(&next)
		if !ok {
			select {
			case <-w.wake:
				continue
			case <-ctx.Done():
				return
			}
		}
		select {
		case w.ch <- u:
		case <-ctx.Done():
			return
		}
	}
}

func (w *Watcher) takeDirty(next *int) (Update, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := len(w.dirty)
	for k := range n {
		i := (*next + k) % n
		if w.dirty[i] {
			w.dirty[i] = false
			*next = i + 1
			return w.cur[i], true
		}
	}
	return Update{}, false
}
