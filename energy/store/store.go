// Package store is the gateway's durable reading queue: every reading gets
// a gateway-unique, monotonically increasing sequence number and is written
// to disk (go.etcd.io/bbolt, fsync'd on every commit) before anything else
// happens to it.
//
// Delivery to sinks (see energy/sink) is at-least-once: each configured sink
// has an acknowledgement cursor, a sink reads the records after its cursor
// with Pending and moves the cursor with Ack once the receiver confirmed
// them. A record leaves the queue only after every configured sink
// acknowledged it (and, see Options.Retain, once it is no longer among the
// most recent records kept for local reads). Receivers de-duplicate by
// sequence number.
//
// The queue is bounded by number of records and by age (Options.MaxRecords,
// Options.MaxAge). When a bound is hit the oldest records are dropped; that
// is counted (Stats.Dropped, kept forever), logged at warning level when a
// Logger is set, and reported to Options.OnDrop: never silent.
//
// Records always occupy one contiguous range of sequence numbers: they are
// appended at the end and only ever removed from the front.
package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sort"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Defaults for Options.
const (
	DefaultMaxRecords = 1_000_000
	DefaultMaxAge     = 30 * 24 * time.Hour
	DefaultRetain     = 10_000
	// DefaultMax is the number of records Pending and Since return when
	// called with max <= 0.
	DefaultMax = 1000
)

// Options configures a Queue. The zero value is ready to use: no sinks
// (records are kept up to the bounds so the local API can serve them),
// DefaultMaxRecords, DefaultMaxAge, DefaultRetain, fsync on every commit.
type Options struct {
	// Sinks names the configured sinks. A record is deleted once every
	// one of them acknowledged it. A sink that was not configured when the
	// queue was last open starts at the current oldest record; the cursor
	// of a sink no longer configured is dropped (and records only it had
	// not acknowledged become deletable). With no sinks, nothing is ever
	// acknowledged and records stay until a bound removes them.
	Sinks []string
	// MaxRecords bounds the number of records (default DefaultMaxRecords).
	MaxRecords int
	// MaxAge bounds the age of records, by Record.Time (default
	// DefaultMaxAge).
	MaxAge time.Duration
	// Retain is how many of the most recent records are kept after every
	// sink acknowledged them, so that Since can serve recent readings to
	// the local API while sinks are healthy (default DefaultRetain; a
	// negative value keeps none). It only matters when sinks are
	// configured: without sinks every record is kept up to the bounds.
	Retain int
	// NoSync disables fsync. For tests and benchmarks only: a crash may
	// lose or corrupt the queue.
	NoSync bool
	// Logger, if set, receives a warning whenever records are dropped at a
	// bound, and sink set changes at Open.
	Logger *slog.Logger
	// OnDrop, if set, is called (synchronously, after the commit, with the
	// queue unlocked) whenever Append or Open dropped records at a bound.
	OnDrop func(Drop)
	// Now returns the current time (default time.Now); for tests of the
	// age bound.
	Now func() time.Time
}

// Drop reports records removed at a bound before every sink acknowledged
// them.
type Drop struct {
	// Count is how many records were dropped, FirstSeq..LastSeq their
	// sequence numbers (a contiguous range).
	Count             uint64
	FirstSeq, LastSeq uint64
	// Reason is "max-records" or "max-age".
	Reason string
	// Total is Stats.Dropped after this drop.
	Total uint64
}

// Record is one queued reading.
type Record struct {
	// Seq is assigned by Append: gateway-unique, increasing, never reused.
	Seq uint64 `json:"seq"`
	// Time is when the reading was taken (Append sets it to now when zero).
	Time time.Time `json:"time"`
	// Device is the inverter's spec or serial.
	Device string `json:"device"`
	// Data is the JSON of the energy.Reading.
	Data []byte `json:"data"`
}

// Stats is a snapshot of a Queue.
type Stats struct {
	// Depth is the number of records in the queue, the retained recent
	// ones included.
	Depth int `json:"depth"`
	// OldestSeq is the sequence number of the oldest record (0 when
	// empty); NextSeq the one the next Append assigns.
	OldestSeq uint64 `json:"oldest_seq"`
	NextSeq   uint64 `json:"next_seq"`
	// OldestTime is the Time of the oldest record (zero when empty).
	OldestTime time.Time `json:"oldest_time,omitzero"`
	// Dropped counts the records ever dropped at a bound before every sink
	// acknowledged them. It is persisted and never reset.
	Dropped uint64 `json:"dropped"`
	// PerSink maps each configured sink to its cursor: the highest
	// sequence number it acknowledged (every record up to it counts as
	// acknowledged).
	PerSink map[string]uint64 `json:"per_sink"`
}

// ErrUnknownSink is returned for a sink that is not in Options.Sinks.
var ErrUnknownSink = errors.New("store: unknown sink")

var (
	bucketMeta    = []byte("meta")
	bucketRecords = []byte("records")
	bucketAcks    = []byte("acks")

	keyNext    = []byte("next")
	keyDropped = []byte("dropped")
)

const recordVersion = 1

// Queue is a durable, bounded queue of readings. Methods are safe for
// concurrent use.
type Queue struct {
	db    *bolt.DB
	opts  Options
	sinks []string // sorted, deduplicated
	now   func() time.Time
	log   *slog.Logger

	mu      sync.Mutex // serialises writes and guards changed
	changed chan struct{}
}

// Open opens (creating if needed) the queue file at path. Only one Queue
// may have a file open at a time; Open fails after a second if another
// process holds it.
func Open(path string, opts Options) (*Queue, error) {
	if opts.MaxRecords <= 0 {
		opts.MaxRecords = DefaultMaxRecords
	}
	if opts.MaxAge <= 0 {
		opts.MaxAge = DefaultMaxAge
	}
	if opts.Retain == 0 {
		opts.Retain = DefaultRetain
	} else if opts.Retain < 0 {
		opts.Retain = 0
	}
	q := &Queue{opts: opts, now: opts.Now, log: opts.Logger, changed: make(chan struct{})}
	if q.now == nil {
		q.now = time.Now
	}
	seen := map[string]bool{}
	for _, s := range opts.Sinks {
		if s == "" {
			return nil, errors.New("store: empty sink name")
		}
		if !seen[s] {
			seen[s] = true
			q.sinks = append(q.sinks, s)
		}
	}
	sort.Strings(q.sinks)

	db, err := bolt.Open(path, 0o600, &bolt.Options{
		Timeout:      time.Second,
		NoSync:       opts.NoSync,
		FreelistType: bolt.FreelistMapType,
	})
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	q.db = db

	var drops []Drop
	err = db.Update(func(tx *bolt.Tx) error {
		for _, name := range [][]byte{bucketMeta, bucketRecords, bucketAcks} {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return err
			}
		}
		meta := tx.Bucket(bucketMeta)
		if meta.Get(keyNext) == nil {
			if err := meta.Put(keyNext, u64(1)); err != nil {
				return err
			}
		}
		// Reconcile the sink set.
		acks := tx.Bucket(bucketAcks)
		var stale [][]byte
		if err := acks.ForEach(func(k, _ []byte) error {
			if !seen[string(k)] {
				stale = append(stale, bytes.Clone(k))
			}
			return nil
		}); err != nil {
			return err
		}
		for _, k := range stale {
			if err := acks.Delete(k); err != nil {
				return err
			}
			q.logInfo("store: sink removed, its cursor is dropped", "sink", string(k))
		}
		// First delete what the remaining sinks all acknowledged, then
		// start new sinks at the oldest record left.
		var kept, added []string
		for _, s := range q.sinks {
			if acks.Get([]byte(s)) == nil {
				added = append(added, s)
			} else {
				kept = append(kept, s)
			}
		}
		if len(kept) > 0 && len(added) > 0 {
			if _, err := q.trimAcked(tx, kept); err != nil {
				return err
			}
		}
		oldest, _ := bounds(tx)
		start := getU64(meta.Get(keyNext)) - 1
		if oldest != 0 {
			start = oldest - 1
		}
		for _, s := range added {
			if err := acks.Put([]byte(s), u64(start)); err != nil {
				return err
			}
			q.logInfo("store: new sink starts at the oldest record", "sink", s, "seq", start+1)
		}
		drops, err = q.trim(tx)
		return err
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	q.reportDrops(drops)
	return q, nil
}

// Close closes the queue file. Other methods fail after Close.
func (q *Queue) Close() error {
	return q.db.Close()
}

// Path returns the queue file's path.
func (q *Queue) Path() string { return q.db.Path() }

// Sinks returns the configured sink names, sorted.
func (q *Queue) Sinks() []string { return append([]string(nil), q.sinks...) }

// Changed returns a channel that is closed by the next successful Append.
// To wait for new records without missing any, call Changed before
// checking for records (Pending), then wait on the channel.
func (q *Queue) Changed() <-chan struct{} {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.changed
}

// Append assigns r the next sequence number and writes it, returning after
// the commit is fsync'd. Records beyond a bound are dropped in the same
// transaction (see Options.OnDrop).
func (q *Queue) Append(r Record) (uint64, error) {
	return q.AppendBatch([]Record{r})
}

// AppendBatch appends several records in one transaction (one fsync),
// with consecutive sequence numbers; it returns the first one (0 when recs
// is empty).
func (q *Queue) AppendBatch(recs []Record) (first uint64, err error) {
	if len(recs) == 0 {
		return 0, nil
	}
	now := q.now()
	q.mu.Lock()
	var drops []Drop
	err = q.db.Update(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		b := tx.Bucket(bucketRecords)
		next := getU64(meta.Get(keyNext))
		first = next
		for _, r := range recs {
			if r.Time.IsZero() {
				r.Time = now
			}
			if err := b.Put(u64(next), encode(r)); err != nil {
				return err
			}
			next++
		}
		if err := meta.Put(keyNext, u64(next)); err != nil {
			return err
		}
		var err error
		drops, err = q.trim(tx)
		return err
	})
	if err == nil {
		close(q.changed)
		q.changed = make(chan struct{})
	}
	q.mu.Unlock()
	if err != nil {
		return 0, fmt.Errorf("store: append: %w", err)
	}
	q.reportDrops(drops)
	return first, nil
}

// Pending returns up to max (DefaultMax when max <= 0) records that sink
// has not acknowledged yet, in sequence order.
func (q *Queue) Pending(sink string, max int) ([]Record, error) {
	var out []Record
	err := q.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketAcks).Get([]byte(sink))
		if v == nil {
			return fmt.Errorf("%w %q", ErrUnknownSink, sink)
		}
		var err error
		out, err = scan(tx, getU64(v), max)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("store: pending: %w", err)
	}
	return out, nil
}

// Since returns up to max (DefaultMax when max <= 0) records with a
// sequence number greater than seq, in order. Only records still in the
// queue are returned: a gap between seq and the first record returned
// means records were deleted (delivered beyond Options.Retain, or dropped).
func (q *Queue) Since(seq uint64, max int) ([]Record, error) {
	var out []Record
	err := q.db.View(func(tx *bolt.Tx) error {
		var err error
		out, err = scan(tx, seq, max)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("store: since: %w", err)
	}
	return out, nil
}

// Ack records that sink received every record up to and including upTo.
// Cursors never move backwards: acknowledging less than before is a no-op.
// Records every sink acknowledged are deleted in the same transaction
// (except the Options.Retain most recent ones).
func (q *Queue) Ack(sink string, upTo uint64) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	err := q.db.Update(func(tx *bolt.Tx) error {
		acks := tx.Bucket(bucketAcks)
		v := acks.Get([]byte(sink))
		if v == nil {
			return fmt.Errorf("%w %q", ErrUnknownSink, sink)
		}
		if upTo <= getU64(v) {
			return nil
		}
		if next := getU64(tx.Bucket(bucketMeta).Get(keyNext)); upTo >= next {
			return fmt.Errorf("ack of seq %d beyond the last assigned %d", upTo, next-1)
		}
		if err := acks.Put([]byte(sink), u64(upTo)); err != nil {
			return err
		}
		_, err := q.trimAcked(tx, q.sinks)
		return err
	})
	if err != nil {
		return fmt.Errorf("store: ack %s: %w", sink, err)
	}
	return nil
}

// Backlog returns how many records in the queue sink has not acknowledged.
func (q *Queue) Backlog(sink string) (int, error) {
	var n uint64
	err := q.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketAcks).Get([]byte(sink))
		if v == nil {
			return fmt.Errorf("%w %q", ErrUnknownSink, sink)
		}
		oldest, last := bounds(tx)
		if oldest == 0 {
			return nil
		}
		cur := max(getU64(v), oldest-1)
		if last > cur {
			n = last - cur
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("store: backlog: %w", err)
	}
	return int(min(n, math.MaxInt)), nil
}

// Stats returns a snapshot of the queue.
func (q *Queue) Stats() (Stats, error) {
	st := Stats{PerSink: map[string]uint64{}}
	err := q.db.View(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		st.NextSeq = getU64(meta.Get(keyNext))
		st.Dropped = getU64(meta.Get(keyDropped))
		oldest, last := bounds(tx)
		if oldest != 0 {
			st.OldestSeq = oldest
			st.Depth = int(min(last-oldest+1, math.MaxInt))
			r, err := decode(oldest, tx.Bucket(bucketRecords).Get(u64(oldest)))
			if err != nil {
				return err
			}
			st.OldestTime = r.Time
		}
		return tx.Bucket(bucketAcks).ForEach(func(k, v []byte) error {
			st.PerSink[string(k)] = getU64(v)
			return nil
		})
	})
	if err != nil {
		return Stats{}, fmt.Errorf("store: stats: %w", err)
	}
	return st, nil
}

// trim deletes what Ack would, then enforces the bounds.
func (q *Queue) trim(tx *bolt.Tx) ([]Drop, error) {
	minAck, err := q.trimAcked(tx, q.sinks)
	if err != nil {
		return nil, err
	}
	b := tx.Bucket(bucketRecords)
	meta := tx.Bucket(bucketMeta)
	dropped := getU64(meta.Get(keyDropped))
	var drops []Drop
	note := func(seq uint64, reason string) {
		if seq <= minAck {
			return // delivered everywhere: a retained record, not a loss
		}
		dropped++
		if n := len(drops); n > 0 && drops[n-1].Reason == reason && drops[n-1].LastSeq+1 == seq {
			drops[n-1].LastSeq = seq
			drops[n-1].Count++
			return
		}
		drops = append(drops, Drop{Count: 1, FirstSeq: seq, LastSeq: seq, Reason: reason})
	}

	oldest, last := bounds(tx)
	if oldest != 0 && last-oldest+1 > uint64(q.opts.MaxRecords) {
		cut := last - uint64(q.opts.MaxRecords) // delete oldest..cut
		for s := oldest; s <= cut; s++ {
			if err := b.Delete(u64(s)); err != nil {
				return nil, err
			}
			note(s, "max-records")
		}
	}
	cutoff := q.now().Add(-q.opts.MaxAge)
	for {
		k, v := b.Cursor().First()
		if k == nil {
			break
		}
		seq := getU64(k)
		r, err := decode(seq, v)
		if err != nil {
			return nil, err
		}
		if !r.Time.Before(cutoff) {
			break
		}
		if err := b.Delete(k); err != nil {
			return nil, err
		}
		note(seq, "max-age")
	}
	if len(drops) > 0 {
		if err := meta.Put(keyDropped, u64(dropped)); err != nil {
			return nil, err
		}
		total := dropped
		for i := len(drops) - 1; i >= 0; i-- {
			drops[i].Total = total
			total -= drops[i].Count
		}
	}
	return drops, nil
}

// trimAcked deletes the records every one of sinks acknowledged, except
// the Retain most recent ones. It returns the lowest cursor (0 without
// sinks).
func (q *Queue) trimAcked(tx *bolt.Tx, sinks []string) (uint64, error) {
	if len(sinks) == 0 {
		return 0, nil
	}
	acks := tx.Bucket(bucketAcks)
	minAck := uint64(math.MaxUint64)
	for _, s := range sinks {
		minAck = min(minAck, getU64(acks.Get([]byte(s))))
	}
	oldest, last := bounds(tx)
	if oldest == 0 || last <= uint64(q.opts.Retain) {
		return minAck, nil
	}
	limit := min(minAck, last-uint64(q.opts.Retain))
	b := tx.Bucket(bucketRecords)
	for s := oldest; s <= limit; s++ {
		if err := b.Delete(u64(s)); err != nil {
			return 0, err
		}
	}
	return minAck, nil
}

func (q *Queue) reportDrops(drops []Drop) {
	for _, d := range drops {
		if q.log != nil {
			q.log.Warn("store: queue bound reached, oldest undelivered readings dropped",
				"count", d.Count, "first_seq", d.FirstSeq, "last_seq", d.LastSeq,
				"reason", d.Reason, "dropped_total", d.Total)
		}
		if q.opts.OnDrop != nil {
			q.opts.OnDrop(d)
		}
	}
}

func (q *Queue) logInfo(msg string, args ...any) {
	if q.log != nil {
		q.log.Info(msg, args...)
	}
}

// bounds returns the first and last sequence numbers in the queue, (0, 0)
// when it is empty.
func bounds(tx *bolt.Tx) (oldest, last uint64) {
	c := tx.Bucket(bucketRecords).Cursor()
	k, _ := c.First()
	if k == nil {
		return 0, 0
	}
	oldest = getU64(k)
	k, _ = c.Last()
	return oldest, getU64(k)
}

// scan returns up to max records after seq.
func scan(tx *bolt.Tx, seq uint64, max int) ([]Record, error) {
	if max <= 0 {
		max = DefaultMax
	}
	if seq == math.MaxUint64 {
		return nil, nil
	}
	var out []Record
	c := tx.Bucket(bucketRecords).Cursor()
	for k, v := c.Seek(u64(seq + 1)); k != nil && len(out) < max; k, v = c.Next() {
		r, err := decode(getU64(k), v)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

// Record encoding: version byte, Time as Unix nanoseconds (int64 big
// endian), uvarint length of Device, Device, Data.
func encode(r Record) []byte {
	b := make([]byte, 0, 1+8+binary.MaxVarintLen64+len(r.Device)+len(r.Data))
	b = append(b, recordVersion)
	b = binary.BigEndian.AppendUint64(b, uint64(r.Time.UnixNano()))
	b = binary.AppendUvarint(b, uint64(len(r.Device)))
	b = append(b, r.Device...)
	return append(b, r.Data...)
}

// decode copies: bbolt's values are only valid inside the transaction.
func decode(seq uint64, v []byte) (Record, error) {
	if len(v) < 9 || v[0] != recordVersion {
		return Record{}, fmt.Errorf("store: record %d: bad encoding", seq)
	}
	r := Record{Seq: seq, Time: time.Unix(0, int64(binary.BigEndian.Uint64(v[1:9])))}
	n, w := binary.Uvarint(v[9:])
	if w <= 0 || uint64(len(v)-9-w) < n {
		return Record{}, fmt.Errorf("store: record %d: bad encoding", seq)
	}
	p := 9 + w
	r.Device = string(v[p : p+int(n)])
	r.Data = bytes.Clone(v[p+int(n):])
	return r, nil
}

func u64(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

func getU64(b []byte) uint64 {
	if len(b) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(b)
}
