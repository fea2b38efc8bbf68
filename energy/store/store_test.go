package store

import (
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

func open(t *testing.T, path string, opts Options) *Queue {
	t.Helper()
	q, err := Open(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	return q
}

func rec(i int) Record {
	return Record{Device: "sim", Data: fmt.Appendf(nil, `{"i":%d}`, i)}
}

func appendN(t *testing.T, q *Queue, n int) []uint64 {
	t.Helper()
	var seqs []uint64
	for i := range n {
		s, err := q.Append(rec(i))
		if err != nil {
			t.Fatal(err)
		}
		seqs = append(seqs, s)
	}
	return seqs
}

func seqsOf(recs []Record) []uint64 {
	var out []uint64
	for _, r := range recs {
		out = append(out, r.Seq)
	}
	return out
}

func stats(t *testing.T, q *Queue) Stats {
	t.Helper()
	st, err := q.Stats()
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func TestAppendRoundTrip(t *testing.T) {
	q := open(t, filepath.Join(t.TempDir(), "q.db"), Options{})
	when := time.Now().Add(-time.Hour).Round(0).UTC()
	seq, err := q.Append(Record{Time: when, Device: "sunspec+tcp://10.0.0.1:502", Data: []byte(`{"ac_power_w":1}`)})
	if err != nil {
		t.Fatal(err)
	}
	if seq != 1 {
		t.Fatalf("first seq = %d, want 1", seq)
	}
	recs, err := q.Since(0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 1 {
		t.Fatalf("Since(0) = %d records, want 1", len(recs))
	}
	r := recs[0]
	if r.Seq != 1 || !r.Time.Equal(when) || r.Device != "sunspec+tcp://10.0.0.1:502" || string(r.Data) != `{"ac_power_w":1}` {
		t.Fatalf("got %+v", r)
	}
	// A zero Time is set to now.
	before := time.Now()
	if _, err := q.Append(Record{Device: "x"}); err != nil {
		t.Fatal(err)
	}
	recs, _ = q.Since(1, 0)
	if len(recs) != 1 || recs[0].Time.Before(before.Add(-time.Second)) || len(recs[0].Data) != 0 {
		t.Fatalf("got %+v", recs)
	}
}

func TestSeqMonotonicAcrossReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "q.db")
	q, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	got := appendN(t, q, 3)
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	// Durable after close: another handle sees everything.
	q = open(t, path, Options{})
	got = append(got, appendN(t, q, 3)...)
	for i, s := range got {
		if s != uint64(i+1) {
			t.Fatalf("seqs = %v, want 1..6", got)
		}
	}
	recs, err := q.Since(0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 6 {
		t.Fatalf("after reopen %d records, want 6", len(recs))
	}
	for i, r := range recs {
		if want := fmt.Sprintf(`{"i":%d}`, i%3); string(r.Data) != want {
			t.Fatalf("record %d data %s, want %s", r.Seq, r.Data, want)
		}
	}
}

func TestSeqNeverReusedAfterDelivery(t *testing.T) {
	path := filepath.Join(t.TempDir(), "q.db")
	q, err := Open(path, Options{Sinks: []string{"a"}, Retain: -1})
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, q, 5)
	if err := q.Ack("a", 5); err != nil {
		t.Fatal(err)
	}
	if st := stats(t, q); st.Depth != 0 || st.OldestSeq != 0 || st.NextSeq != 6 {
		t.Fatalf("after full delivery: %+v", st)
	}
	q.Close()
	q = open(t, path, Options{Sinks: []string{"a"}, Retain: -1})
	if s := appendN(t, q, 1)[0]; s != 6 {
		t.Fatalf("seq after delivery, deletion and reopen = %d, want 6", s)
	}
	// The sink resumes after its cursor.
	recs, err := q.Pending("a", 0)
	if err != nil {
		t.Fatal(err)
	}
	if got := seqsOf(recs); len(got) != 1 || got[0] != 6 {
		t.Fatalf("pending = %v, want [6]", got)
	}
}

func TestAcksPerSink(t *testing.T) {
	q := open(t, filepath.Join(t.TempDir(), "q.db"), Options{Sinks: []string{"http", "mqtt"}, Retain: -1})
	appendN(t, q, 10)

	p, err := q.Pending("http", 4)
	if err != nil {
		t.Fatal(err)
	}
	if got := seqsOf(p); fmt.Sprint(got) != "[1 2 3 4]" {
		t.Fatalf("pending http = %v", got)
	}
	if err := q.Ack("http", 7); err != nil {
		t.Fatal(err)
	}
	// mqtt has acked nothing: nothing is deleted.
	if st := stats(t, q); st.Depth != 10 || st.PerSink["http"] != 7 || st.PerSink["mqtt"] != 0 {
		t.Fatalf("stats %+v", st)
	}
	p, _ = q.Pending("http", 0)
	if got := seqsOf(p); fmt.Sprint(got) != "[8 9 10]" {
		t.Fatalf("pending http after ack = %v", got)
	}
	if err := q.Ack("mqtt", 5); err != nil {
		t.Fatal(err)
	}
	if st := stats(t, q); st.Depth != 5 || st.OldestSeq != 6 {
		t.Fatalf("after both acked 5: %+v", st)
	}
	// Cursors never go back.
	if err := q.Ack("http", 2); err != nil {
		t.Fatal(err)
	}
	if st := stats(t, q); st.PerSink["http"] != 7 {
		t.Fatalf("cursor went back: %+v", st)
	}
	if n, _ := q.Backlog("http"); n != 3 {
		t.Fatalf("backlog http = %d, want 3", n)
	}
	if n, _ := q.Backlog("mqtt"); n != 5 {
		t.Fatalf("backlog mqtt = %d, want 5", n)
	}
	// Errors.
	if err := q.Ack("nope", 1); !errors.Is(err, ErrUnknownSink) {
		t.Fatalf("ack unknown sink: %v", err)
	}
	if _, err := q.Pending("nope", 1); !errors.Is(err, ErrUnknownSink) {
		t.Fatalf("pending unknown sink: %v", err)
	}
	if err := q.Ack("http", 11); err == nil {
		t.Fatal("ack beyond the last seq succeeded")
	}
	if err := q.Ack("mqtt", 10); err != nil {
		t.Fatal(err)
	}
	if err := q.Ack("http", 10); err != nil {
		t.Fatal(err)
	}
	if st := stats(t, q); st.Depth != 0 || st.Dropped != 0 {
		t.Fatalf("after all acked: %+v", st)
	}
}

func TestRetain(t *testing.T) {
	q := open(t, filepath.Join(t.TempDir(), "q.db"), Options{Sinks: []string{"a"}, Retain: 3})
	appendN(t, q, 10)
	if err := q.Ack("a", 10); err != nil {
		t.Fatal(err)
	}
	recs, _ := q.Since(0, 0)
	if got := seqsOf(recs); fmt.Sprint(got) != "[8 9 10]" {
		t.Fatalf("retained = %v, want [8 9 10]", got)
	}
	if n, _ := q.Backlog("a"); n != 0 {
		t.Fatalf("backlog = %d", n)
	}
	appendN(t, q, 1)
	recs, _ = q.Since(0, 0)
	if got := seqsOf(recs); fmt.Sprint(got) != "[9 10 11]" {
		t.Fatalf("retained after append = %v, want [9 10 11]", got)
	}
	if p, _ := q.Pending("a", 0); fmt.Sprint(seqsOf(p)) != "[11]" {
		t.Fatalf("pending = %v", seqsOf(p))
	}
	if st := stats(t, q); st.Dropped != 0 {
		t.Fatalf("retained records counted as dropped: %+v", st)
	}
}

func TestNoSinksKeepsUpToBounds(t *testing.T) {
	var drops []Drop
	q := open(t, filepath.Join(t.TempDir(), "q.db"), Options{MaxRecords: 5, OnDrop: func(d Drop) { drops = append(drops, d) }})
	appendN(t, q, 5)
	if st := stats(t, q); st.Depth != 5 || len(st.PerSink) != 0 {
		t.Fatalf("%+v", st)
	}
	appendN(t, q, 2)
	recs, _ := q.Since(0, 0)
	if got := seqsOf(recs); fmt.Sprint(got) != "[3 4 5 6 7]" {
		t.Fatalf("records = %v", got)
	}
	st := stats(t, q)
	if st.Dropped != 2 {
		t.Fatalf("dropped = %d, want 2", st.Dropped)
	}
	if len(drops) != 2 || drops[0] != (Drop{Count: 1, FirstSeq: 1, LastSeq: 1, Reason: "max-records", Total: 1}) ||
		drops[1] != (Drop{Count: 1, FirstSeq: 2, LastSeq: 2, Reason: "max-records", Total: 2}) {
		t.Fatalf("drops = %+v", drops)
	}
}

func TestMaxRecordsDropsOldestUndelivered(t *testing.T) {
	path := filepath.Join(t.TempDir(), "q.db")
	var drops []Drop
	opts := Options{Sinks: []string{"a", "b"}, MaxRecords: 4, Retain: -1, OnDrop: func(d Drop) { drops = append(drops, d) }}
	q, err := Open(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := q.AppendBatch([]Record{rec(0), rec(1), rec(2), rec(3), rec(4), rec(5), rec(6)}); err != nil {
		t.Fatal(err)
	}
	if len(drops) != 1 || drops[0] != (Drop{Count: 3, FirstSeq: 1, LastSeq: 3, Reason: "max-records", Total: 3}) {
		t.Fatalf("drops = %+v", drops)
	}
	p, _ := q.Pending("a", 0)
	if got := seqsOf(p); fmt.Sprint(got) != "[4 5 6 7]" {
		t.Fatalf("pending = %v", got)
	}
	q.Close()
	// The count is persisted.
	q = open(t, path, Options{Sinks: []string{"a", "b"}, MaxRecords: 4, Retain: -1})
	if st := stats(t, q); st.Dropped != 3 || st.Depth != 4 {
		t.Fatalf("after reopen %+v", st)
	}
	// Records acked by every sink but kept (none here) are not losses;
	// once b acked up to 5 and a up to 7, only 6, 7 remain.
	if err := q.Ack("a", 7); err != nil {
		t.Fatal(err)
	}
	if err := q.Ack("b", 5); err != nil {
		t.Fatal(err)
	}
	if st := stats(t, q); st.Depth != 2 || st.OldestSeq != 6 {
		t.Fatalf("%+v", st)
	}
}

func TestMaxAge(t *testing.T) {
	now := time.Date(2025, 1, 10, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	var drops []Drop
	q := open(t, filepath.Join(t.TempDir(), "q.db"), Options{
		Sinks: []string{"a"}, MaxAge: 48 * time.Hour, Now: clock,
		OnDrop: func(d Drop) { drops = append(drops, d) },
	})
	for i := range 5 {
		if _, err := q.Append(Record{Time: now.Add(time.Duration(i-4) * 24 * time.Hour), Device: "d"}); err != nil {
			t.Fatal(err)
		}
	}
	// Days -4 and -3 are beyond the bound: each is dropped by its own
	// append.
	recs, _ := q.Since(0, 0)
	if got := seqsOf(recs); fmt.Sprint(got) != "[3 4 5]" {
		t.Fatalf("records = %v, want [3 4 5]", got)
	}
	if st := stats(t, q); st.Dropped != 2 || !st.OldestTime.Equal(now.Add(-48*time.Hour)) {
		t.Fatalf("%+v", st)
	}
	now = now.Add(25 * time.Hour)
	appendN(t, q, 1)
	recs, _ = q.Since(0, 0)
	if got := seqsOf(recs); fmt.Sprint(got) != "[5 6]" {
		t.Fatalf("records = %v, want [5 6]", got)
	}
	if len(drops) != 3 || drops[2] != (Drop{Count: 2, FirstSeq: 3, LastSeq: 4, Reason: "max-age", Total: 4}) {
		t.Fatalf("drops = %+v", drops)
	}
}

func TestSinkSetChanges(t *testing.T) {
	path := filepath.Join(t.TempDir(), "q.db")
	q, err := Open(path, Options{Sinks: []string{"a", "b"}, Retain: -1})
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, q, 6)
	q.Ack("a", 4)
	q.Ack("b", 2)
	q.Close()

	// b removed, c added: records 1..4 (acked by a, the only old sink
	// left) go; c starts at the oldest remaining record.
	q, err = Open(path, Options{Sinks: []string{"a", "c"}, Retain: -1})
	if err != nil {
		t.Fatal(err)
	}
	st := stats(t, q)
	if _, ok := st.PerSink["b"]; ok || st.PerSink["a"] != 4 || st.PerSink["c"] != 4 || st.OldestSeq != 5 || st.Depth != 2 {
		t.Fatalf("after sink change %+v", st)
	}
	p, _ := q.Pending("c", 0)
	if got := seqsOf(p); fmt.Sprint(got) != "[5 6]" {
		t.Fatalf("new sink pending = %v", got)
	}
	if _, err := q.Pending("b", 0); !errors.Is(err, ErrUnknownSink) {
		t.Fatalf("removed sink: %v", err)
	}
	q.Ack("a", 6)
	q.Ack("c", 6)
	q.Close()

	// All delivered, queue empty: a new sink starts at the next record.
	q = open(t, path, Options{Sinks: []string{"a", "c", "d"}, Retain: -1})
	if st := stats(t, q); st.PerSink["d"] != 6 || st.Depth != 0 {
		t.Fatalf("%+v", st)
	}
	appendN(t, q, 1)
	p, _ = q.Pending("d", 0)
	if got := seqsOf(p); fmt.Sprint(got) != "[7]" {
		t.Fatalf("pending d = %v", got)
	}
}

func TestSinceAndMax(t *testing.T) {
	q := open(t, filepath.Join(t.TempDir(), "q.db"), Options{})
	appendN(t, q, 20)
	recs, _ := q.Since(15, 0)
	if got := seqsOf(recs); fmt.Sprint(got) != "[16 17 18 19 20]" {
		t.Fatalf("Since(15) = %v", got)
	}
	recs, _ = q.Since(0, 3)
	if got := seqsOf(recs); fmt.Sprint(got) != "[1 2 3]" {
		t.Fatalf("Since(0, 3) = %v", got)
	}
	if recs, _ := q.Since(20, 0); len(recs) != 0 {
		t.Fatalf("Since(20) = %v", seqsOf(recs))
	}
	if recs, _ := q.Since(^uint64(0), 0); len(recs) != 0 {
		t.Fatalf("Since(max) = %v", seqsOf(recs))
	}
}

func TestChanged(t *testing.T) {
	q := open(t, filepath.Join(t.TempDir(), "q.db"), Options{})
	ch := q.Changed()
	select {
	case <-ch:
		t.Fatal("Changed closed before any append")
	default:
	}
	appendN(t, q, 1)
	select {
	case <-ch:
	default:
		t.Fatal("Changed not closed by Append")
	}
	select {
	case <-q.Changed():
		t.Fatal("new Changed channel already closed")
	default:
	}
}

func TestConcurrent(t *testing.T) {
	q := open(t, filepath.Join(t.TempDir(), "q.db"), Options{Sinks: []string{"a"}, NoSync: true, Retain: -1})
	const writers, each = 8, 50
	var wg sync.WaitGroup
	seqs := make(chan uint64, writers*each)
	for range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				s, err := q.Append(rec(i))
				if err != nil {
					t.Error(err)
					return
				}
				seqs <- s
			}
		}()
	}
	// A concurrent consumer acking what it sees.
	done := make(chan struct{})
	var consumed []uint64
	go func() {
		defer close(done)
		for len(consumed) < writers*each {
			// Take the change channel before looking, as the forwarder
			// does: an Append between the look and the wait must still
			// wake us.
			changed := q.Changed()
			p, err := q.Pending("a", 17)
			if err != nil {
				t.Error(err)
				return
			}
			if len(p) == 0 {
				<-changed
				continue
			}
			consumed = append(consumed, seqsOf(p)...)
			if err := q.Ack("a", p[len(p)-1].Seq); err != nil {
				t.Error(err)
				return
			}
			q.Stats()
			q.Since(0, 5)
		}
	}()
	wg.Wait()
	close(seqs)
	seen := map[uint64]bool{}
	for s := range seqs {
		if seen[s] {
			t.Fatalf("seq %d assigned twice", s)
		}
		seen[s] = true
	}
	for i := 1; i <= writers*each; i++ {
		if !seen[uint64(i)] {
			t.Fatalf("seq %d never assigned", i)
		}
	}
	select {
	case <-done:
	case <-time.After(time.Minute):
		t.Fatal("consumer stuck")
	}
	for i, s := range consumed {
		if s != uint64(i+1) {
			t.Fatalf("consumer saw %v out of order at %d", s, i)
		}
	}
	if st := stats(t, q); st.Depth != 0 {
		t.Fatalf("%+v", st)
	}
}

func TestOpenLocked(t *testing.T) {
	path := filepath.Join(t.TempDir(), "q.db")
	open(t, path, Options{})
	if q, err := Open(path, Options{}); err == nil {
		q.Close()
		t.Fatal("second Open of a held file succeeded")
	}
}

func TestEmptySinkName(t *testing.T) {
	if _, err := Open(filepath.Join(t.TempDir(), "q.db"), Options{Sinks: []string{""}}); err == nil {
		t.Fatal("empty sink name accepted")
	}
}
