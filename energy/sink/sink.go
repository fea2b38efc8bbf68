// Package sink delivers queued readings (energy/store) to their
// destinations: an HTTP endpoint that receives signed batches, and an MQTT
// broker (with Home Assistant discovery).
//
// A Forwarder drives one Sink: it reads the records the sink has not
// acknowledged from the queue, delivers them and acknowledges them in the
// queue only when Deliver reported success. Failures are retried with
// exponential backoff and full jitter, so delivery is at-least-once:
// a batch whose send was interrupted may arrive twice, and receivers
// de-duplicate by the records' sequence numbers.
package sink

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/pikit/pikit/energy/store"
)

// Sink is a destination for readings.
type Sink interface {
	// Name identifies the sink; it is the queue's cursor name
	// (store.Options.Sinks), so it must stay the same between runs.
	Name() string
	// Deliver sends recs (in sequence order). A nil error means every
	// record was received by the destination and may be acknowledged; an
	// error means none may be (some may still have arrived).
	Deliver(ctx context.Context, recs []store.Record) error
}

// RetryAfterError is returned by a sink whose destination asked it to wait
// (an HTTP 429 or 503 with Retry-After). The Forwarder waits at least After
// before the next attempt.
type RetryAfterError struct {
	After time.Duration
	Err   error
}

func (e *RetryAfterError) Error() string {
	return fmt.Sprintf("%v (retry after %v)", e.Err, e.After)
}

func (e *RetryAfterError) Unwrap() error { return e.Err }

// ErrTooLarge is wrapped by the error of a sink whose destination refused a
// batch as too large (HTTP 413); the Forwarder then halves its batch size.
var ErrTooLarge = errors.New("sink: batch too large")

// Batch is the default body of an HTTP delivery, and what a signed batch
// carries as its payload (see HTTPOptions.Sign).
type Batch struct {
	Records []BatchRecord `json:"records"`
}

// BatchRecord is one record of a Batch.
type BatchRecord struct {
	Seq     uint64          `json:"seq"`
	Time    time.Time       `json:"time"`
	Device  string          `json:"device"`
	Reading json.RawMessage `json:"reading"`
}

// NewBatch builds the Batch of recs. A record whose Data is not valid JSON
// is carried as a JSON string.
func NewBatch(recs []store.Record) Batch {
	b := Batch{Records: make([]BatchRecord, len(recs))}
	for i, r := range recs {
		data := json.RawMessage(r.Data)
		if !json.Valid(r.Data) {
			data, _ = json.Marshal(string(r.Data))
		}
		b.Records[i] = BatchRecord{Seq: r.Seq, Time: r.Time, Device: r.Device, Reading: data}
	}
	return b
}

// topicSegment makes s usable as one MQTT topic level (and as part of a
// Home Assistant discovery id when strict): wildcards, separators and
// control characters become '_', an empty string "unknown".
func topicSegment(s string, strict bool) string {
	if s == "" {
		return "unknown"
	}
	return strings.Map(func(r rune) rune {
		switch {
		case r == '/' || r == '+' || r == '#' || r < 0x20 || r == 0x7f:
			return '_'
		case strict && !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-'):
			return '_'
		}
		return r
	}, s)
}
