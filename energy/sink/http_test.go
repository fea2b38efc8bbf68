package sink

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/pikit/pikit/energy/store"
)

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func openQueue(t *testing.T, sinks ...string) *store.Queue {
	t.Helper()
	q, err := store.Open(filepath.Join(t.TempDir(), "q.db"), store.Options{Sinks: sinks, NoSync: true, Retain: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	return q
}

func appendRecords(t *testing.T, q *store.Queue, n int) {
	t.Helper()
	for i := range n {
		if _, err := q.Append(store.Record{Device: "sim", Data: fmt.Appendf(nil, `{"ac_power_w":%d}`, i)}); err != nil {
			t.Fatal(err)
		}
	}
}

// runForwarder runs f until the test ends.
func runForwarder(t *testing.T, f *Forwarder) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("Run returned %v, want context.Canceled", err)
		}
	})
}

// receiver is an HTTP endpoint that records the batches it got.
type receiver struct {
	mu       sync.Mutex
	reqs     []request
	respond  func(n int, b Batch) (status int, header http.Header) // n counts requests from 0
	accepted map[uint64]int                                        // seq -> times kept
}

// storedButLost added to a status makes the receiver keep the batch and
// still answer with the status, as when the response is lost.
const storedButLost = 1000

type request struct {
	seqs   []uint64
	status int
	at     time.Time
	ct     string
}

func newReceiver(t *testing.T, respond func(n int, b Batch) (int, http.Header)) (*receiver, *httptest.Server) {
	r := &receiver{respond: respond, accepted: map[uint64]int{}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		var b Batch
		if err := json.NewDecoder(req.Body).Decode(&b); err != nil {
			t.Errorf("bad body: %v", err)
			w.WriteHeader(400)
			return
		}
		r.mu.Lock()
		n := len(r.reqs)
		r.mu.Unlock()
		status, h := 200, http.Header(nil)
		if r.respond != nil {
			status, h = r.respond(n, b)
		}
		var seqs []uint64
		for _, rec := range b.Records {
			seqs = append(seqs, rec.Seq)
		}
		stored := status/100 == 2
		if status >= storedButLost {
			stored, status = true, status-storedButLost
		}
		r.mu.Lock()
		r.reqs = append(r.reqs, request{seqs: seqs, status: status, at: time.Now(), ct: req.Header.Get("Content-Type")})
		if stored {
			for _, s := range seqs {
				r.accepted[s]++
			}
		}
		r.mu.Unlock()
		for k, v := range h {
			w.Header()[k] = v
		}
		w.WriteHeader(status)
		fmt.Fprintln(w, http.StatusText(status))
	}))
	t.Cleanup(srv.Close)
	return r, srv
}

func (r *receiver) hasAll(n int) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for s := uint64(1); s <= uint64(n); s++ {
		if r.accepted[s] == 0 {
			return false
		}
	}
	return true
}

func (r *receiver) requests() []request {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.reqs)
}

func newHTTP(t *testing.T, opts HTTPOptions) *HTTP {
	t.Helper()
	h, err := NewHTTP(opts)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestHTTPAcks(t *testing.T) {
	rcv, srv := newReceiver(t, nil)
	q := openQueue(t, "http")
	f := NewForwarder(q, newHTTP(t, HTTPOptions{URL: srv.URL}), ForwarderOptions{Batch: 40})
	runForwarder(t, f)
	appendRecords(t, q, 250)
	waitFor(t, "every record at the receiver", 30*time.Second, func() bool { return rcv.hasAll(250) })
	waitFor(t, "empty backlog", 10*time.Second, func() bool { return f.Status().Backlog == 0 })

	reqs := rcv.requests()
	var all []uint64
	for _, r := range reqs {
		if len(r.seqs) > 40 {
			t.Errorf("batch of %d records, want at most 40", len(r.seqs))
		}
		if r.ct != "application/json" {
			t.Errorf("content type %q", r.ct)
		}
		all = append(all, r.seqs...)
	}
	// Without failures every record is sent exactly once, in order.
	for i, s := range all {
		if s != uint64(i+1) {
			t.Fatalf("received seqs out of order or duplicated at %d: %v", i, all)
		}
	}
	st := f.Status()
	if st.Name != "http" || st.LastOK.IsZero() || st.LastErr != "" || st.Failures != 0 || st.Acked != 250 || st.Delivered != 250 {
		t.Fatalf("status %+v", st)
	}
	qs, _ := q.Stats()
	if qs.Depth != 0 || qs.NextSeq != 251 {
		t.Fatalf("queue %+v", qs)
	}
}

func TestHTTPFailThenRecover(t *testing.T) {
	// Requests 0-2 fail: 0 and 2 before the receiver keeps anything, 1
	// after it stored the batch (the response is lost, as when a
	// connection breaks), so only request 1's records may arrive twice.
	rcv, srv := newReceiver(t, func(n int, b Batch) (int, http.Header) {
		if n == 1 {
			return storedButLost + 500, nil
		}
		if n < 3 {
			return 500, nil
		}
		return 200, nil
	})
	q := openQueue(t, "http")
	f := NewForwarder(q, newHTTP(t, HTTPOptions{URL: srv.URL}), ForwarderOptions{Batch: 10, MinBackoff: time.Millisecond, MaxBackoff: 20 * time.Millisecond})
	appendRecords(t, q, 35)
	runForwarder(t, f)
	waitFor(t, "first failure in status", 10*time.Second, func() bool {
		st := f.Status()
		return st.Failures > 0 || !st.LastOK.IsZero()
	})
	appendRecords(t, q, 15)
	waitFor(t, "every record at the receiver", 30*time.Second, func() bool { return rcv.hasAll(50) })
	waitFor(t, "empty backlog", 10*time.Second, func() bool { return f.Status().Backlog == 0 })

	reqs := rcv.requests()
	if len(reqs) < 4 || reqs[0].status != 500 || reqs[3].status != 200 {
		t.Fatalf("requests %+v", reqs)
	}
	// Every failed batch was sent again, unchanged (the queue is the
	// single source of what is pending).
	if !slices.Equal(reqs[0].seqs, reqs[1].seqs) || !slices.Equal(reqs[1].seqs, reqs[3].seqs) {
		t.Fatalf("retried batches differ: %v %v %v", reqs[0].seqs, reqs[1].seqs, reqs[3].seqs)
	}
	rcv.mu.Lock()
	for s, n := range rcv.accepted {
		want := 1
		if slices.Contains(reqs[1].seqs, s) {
			want = 2 // the interrupted send
		}
		if n != want {
			t.Errorf("seq %d kept %d times, want %d", s, n, want)
		}
	}
	rcv.mu.Unlock()
	st := f.Status()
	if st.Failures != 0 || st.LastErr != "" {
		t.Fatalf("status after recovery %+v", st)
	}
}

func TestHTTPRetryAfterSeconds(t *testing.T) {
	rcv, srv := newReceiver(t, func(n int, b Batch) (int, http.Header) {
		if n == 0 {
			return 503, http.Header{"Retry-After": {"1"}}
		}
		if n == 1 {
			return 429, http.Header{"Retry-After": {"1"}}
		}
		return 204, nil
	})
	q := openQueue(t, "http")
	f := NewForwarder(q, newHTTP(t, HTTPOptions{URL: srv.URL}), ForwarderOptions{MinBackoff: time.Millisecond, MaxBackoff: 2 * time.Millisecond})
	appendRecords(t, q, 5)
	runForwarder(t, f)
	waitFor(t, "every record at the receiver", 30*time.Second, func() bool { return rcv.hasAll(5) })
	reqs := rcv.requests()
	for i := 1; i < 3; i++ {
		if gap := reqs[i].at.Sub(reqs[i-1].at); gap < time.Second {
			t.Errorf("request %d came %v after a Retry-After of 1s", i, gap)
		}
	}
}

func TestHTTPRetryAfterDate(t *testing.T) {
	now := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	_, srv := newReceiver(t, func(n int, b Batch) (int, http.Header) {
		return 503, http.Header{"Retry-After": {now.Add(90 * time.Second).Format(http.TimeFormat)}}
	})
	h := newHTTP(t, HTTPOptions{URL: srv.URL, Now: func() time.Time { return now }})
	err := h.Deliver(context.Background(), []store.Record{{Seq: 1, Data: []byte(`{}`)}})
	var ra *RetryAfterError
	if !errors.As(err, &ra) || ra.After != 90*time.Second {
		t.Fatalf("Deliver = %v, want a RetryAfterError of 90s", err)
	}

	// Through a Forwarder, against the real clock: a date 2s ahead (1s
	// resolution) makes it wait at least a second.
	var first time.Time
	rcv, srv := newReceiver(t, func(n int, b Batch) (int, http.Header) {
		if n == 0 {
			first = time.Now()
			return 503, http.Header{"Retry-After": {first.Add(2 * time.Second).UTC().Format(http.TimeFormat)}}
		}
		return 200, nil
	})
	q := openQueue(t, "http")
	f := NewForwarder(q, newHTTP(t, HTTPOptions{URL: srv.URL}), ForwarderOptions{MinBackoff: time.Millisecond, MaxBackoff: 2 * time.Millisecond})
	appendRecords(t, q, 1)
	runForwarder(t, f)
	waitFor(t, "the record at the receiver", 30*time.Second, func() bool { return rcv.hasAll(1) })
	if reqs := rcv.requests(); reqs[1].at.Sub(reqs[0].at) < time.Second {
		t.Errorf("retried %v after a Retry-After date 2s ahead", reqs[1].at.Sub(reqs[0].at))
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"120", 2 * time.Minute, true},
		{" 0 ", 0, true},
		{"Sun, 01 Jun 2025 12:00:30 GMT", 30 * time.Second, true},
		{"Sunday, 01-Jun-25 12:01:00 GMT", time.Minute, true},
		{"Sun, 01 Jun 2025 11:00:00 GMT", 0, true}, // in the past
		{"", 0, false},
		{"-5", 0, false},
		{"soon", 0, false},
		{"99999999999999999999", 0, false},
		{"9999999999999", time.Duration(1<<63-1) / time.Second * time.Second, true},
	} {
		got, ok := parseRetryAfter(tc.in, now)
		if got != tc.want || ok != tc.ok {
			t.Errorf("parseRetryAfter(%q) = %v, %v; want %v, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

func TestHTTPBackoff(t *testing.T) {
	rcv, srv := newReceiver(t, func(n int, b Batch) (int, http.Header) { return 500, nil })
	q := openQueue(t, "http")
	const minB = 20 * time.Millisecond
	f := NewForwarder(q, newHTTP(t, HTTPOptions{URL: srv.URL}), ForwarderOptions{MinBackoff: minB, MaxBackoff: 80 * time.Millisecond})
	appendRecords(t, q, 3)
	runForwarder(t, f)
	waitFor(t, "6 attempts", 30*time.Second, func() bool { return len(rcv.requests()) >= 6 })
	reqs := rcv.requests()
	for i := 1; i < len(reqs); i++ {
		if gap := reqs[i].at.Sub(reqs[i-1].at); gap < minB {
			t.Errorf("attempt %d only %v after the previous one (MinBackoff %v)", i, gap, minB)
		}
	}
	waitFor(t, "failures in status", 10*time.Second, func() bool {
		st := f.Status()
		return st.Failures >= 6 && st.LastErr != "" && st.Backlog == 3 && !st.NextRetry.IsZero() && st.LastOK.IsZero()
	})
	if qs, _ := q.Stats(); qs.Depth != 3 {
		t.Fatalf("failed records left the queue: %+v", qs)
	}
}

func TestBackoffRange(t *testing.T) {
	f := NewForwarder(nil, &funcSink{name: "x"}, ForwarderOptions{MinBackoff: 10 * time.Millisecond, MaxBackoff: 100 * time.Millisecond})
	for n := 1; n < 20; n++ {
		hi := min(10*time.Millisecond<<(n-1), 100*time.Millisecond)
		for range 50 {
			if d := f.backoff(n); d < 10*time.Millisecond || d > hi {
				t.Fatalf("backoff(%d) = %v, want in [10ms, %v]", n, d, hi)
			}
		}
	}
}

func TestHTTPTooLarge(t *testing.T) {
	rcv, srv := newReceiver(t, func(n int, b Batch) (int, http.Header) {
		if len(b.Records) > 10 {
			return http.StatusRequestEntityTooLarge, nil
		}
		return 200, nil
	})
	q := openQueue(t, "http")
	f := NewForwarder(q, newHTTP(t, HTTPOptions{URL: srv.URL}), ForwarderOptions{Batch: 64, MinBackoff: time.Millisecond, MaxBackoff: 2 * time.Millisecond})
	appendRecords(t, q, 100)
	runForwarder(t, f)
	waitFor(t, "every record at the receiver", 30*time.Second, func() bool { return rcv.hasAll(100) })
}

func TestHTTPSignAndHeaders(t *testing.T) {
	got := make(chan *http.Request, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- r.Clone(context.Background())
	}))
	defer srv.Close()
	h := newHTTP(t, HTTPOptions{
		Name: "cloud", URL: srv.URL, Header: http.Header{"Authorization": {"Bearer k"}},
		Sign: func(recs []store.Record) ([]byte, string, error) {
			return []byte("a.b.c"), "application/jwt", nil
		},
	})
	if h.Name() != "cloud" {
		t.Fatalf("name %q", h.Name())
	}
	if err := h.Deliver(context.Background(), []store.Record{{Seq: 7}, {Seq: 9}}); err != nil {
		t.Fatal(err)
	}
	r := <-got
	if r.Method != "POST" || r.Header.Get("Content-Type") != "application/jwt" || r.Header.Get("Authorization") != "Bearer k" ||
		r.Header.Get("Pikit-Seq-First") != "7" || r.Header.Get("Pikit-Seq-Last") != "9" {
		t.Fatalf("request %s %v", r.Method, r.Header)
	}
	// A signing failure is an error, nothing is sent.
	h = newHTTP(t, HTTPOptions{URL: srv.URL, Sign: func([]store.Record) ([]byte, string, error) { return nil, "", errors.New("no key") }})
	if err := h.Deliver(context.Background(), []store.Record{{Seq: 1}}); err == nil {
		t.Fatal("Deliver succeeded although Sign failed")
	}
}

func TestHTTPTimeout(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	h := newHTTP(t, HTTPOptions{URL: srv.URL, Timeout: 50 * time.Millisecond})
	if err := h.Deliver(context.Background(), []store.Record{{Seq: 1}}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Deliver = %v, want a deadline error", err)
	}
}

func TestNewHTTPBadURL(t *testing.T) {
	for _, u := range []string{"", "example.com/x", "ftp://example.com/", "http://"} {
		if _, err := NewHTTP(HTTPOptions{URL: u}); err == nil {
			t.Errorf("NewHTTP(%q) succeeded", u)
		}
	}
}

// funcSink is a Sink made of a function.
type funcSink struct {
	name    string
	deliver func(ctx context.Context, recs []store.Record) error
}

func (s *funcSink) Name() string { return s.name }
func (s *funcSink) Deliver(ctx context.Context, recs []store.Record) error {
	return s.deliver(ctx, recs)
}

func TestForwarderIdleWaitsForAppend(t *testing.T) {
	q := openQueue(t, "f")
	var mu sync.Mutex
	var calls [][]uint64
	s := &funcSink{name: "f", deliver: func(ctx context.Context, recs []store.Record) error {
		mu.Lock()
		defer mu.Unlock()
		var seqs []uint64
		for _, r := range recs {
			seqs = append(seqs, r.Seq)
		}
		calls = append(calls, seqs)
		return nil
	}}
	f := NewForwarder(q, s, ForwarderOptions{})
	runForwarder(t, f)
	f.Wake() // nothing to send: no Deliver
	for i := 1; i <= 5; i++ {
		appendRecords(t, q, 1)
		waitFor(t, "delivery of the new record", 10*time.Second, func() bool {
			st := f.Status()
			return st.Acked == uint64(i)
		})
	}
	mu.Lock()
	defer mu.Unlock()
	var all []uint64
	for _, c := range calls {
		if len(c) == 0 {
			t.Fatal("Deliver called with no records")
		}
		all = append(all, c...)
	}
	if fmt.Sprint(all) != "[1 2 3 4 5]" {
		t.Fatalf("delivered %v", all)
	}
}

func TestNewBatch(t *testing.T) {
	b := NewBatch([]store.Record{
		{Seq: 1, Device: "a", Data: []byte(`{"x":1}`)},
		{Seq: 2, Device: "b", Data: []byte(`not json`)},
	})
	out, err := json.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	var back struct {
		Records []struct {
			Seq     uint64
			Reading any
		}
	}
	if err := json.Unmarshal(out, &back); err != nil {
		t.Fatal(err)
	}
	if back.Records[0].Seq != 1 || fmt.Sprint(back.Records[0].Reading) != "map[x:1]" || back.Records[1].Reading != "not json" {
		t.Fatalf("%s", out)
	}
}
