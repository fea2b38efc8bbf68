package main

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pikit/pikit/energy/sink"
	"github.com/pikit/pikit/energy/store"
)

// sinkCounters count deliveries per sink name across pipeline rebuilds.
type sinkCounters struct {
	ok, failed, records atomic.Uint64
}

// countingSink wraps a sink to count its deliveries for /metrics.
type countingSink struct {
	sink.Sink
	c *sinkCounters
}

func (s countingSink) Deliver(ctx context.Context, recs []store.Record) error {
	err := s.Sink.Deliver(ctx, recs)
	if err != nil {
		s.c.failed.Add(1)
	} else {
		s.c.ok.Add(1)
		s.c.records.Add(uint64(len(recs)))
	}
	return err
}

// counters returns the counters of a sink name.
func (g *gateway) counters(name string) *sinkCounters {
	g.sinkCountMu.Lock()
	defer g.sinkCountMu.Unlock()
	if g.sinkCount == nil {
		g.sinkCount = map[string]*sinkCounters{}
	}
	c := g.sinkCount[name]
	if c == nil {
		c = &sinkCounters{}
		g.sinkCount[name] = c
	}
	return c
}

type sinkCountMap struct {
	sinkCountMu sync.Mutex
	sinkCount   map[string]*sinkCounters
}

func unixSeconds(t time.Time) float64 {
	if t.IsZero() {
		return 0
	}
	return float64(t.UnixNano()) / 1e9
}

// metricsText is GET /metrics in the Prometheus text format.
func (g *gateway) metricsText() string {
	var m metricWriter
	devs := g.devicesState()
	perDev := func(name, typ, help string, v func(d deviceDoc) float64) {
		m.head(name, typ, help)
		for _, d := range devs {
			m.sample(name, []string{"device", d.ID}, v(d))
		}
	}
	perDev("gateway_readings_total", "counter", "Successful reads per device since start.", func(d deviceDoc) float64 { return float64(d.Reads) })
	perDev("gateway_read_errors_total", "counter", "Failed reads (and opens) per device since start.", func(d deviceDoc) float64 { return float64(d.Errors) })
	perDev("gateway_store_errors_total", "counter", "Readings lost because the queue did not take them.", func(d deviceDoc) float64 { return float64(d.StoreErrors) })
	perDev("gateway_skipped_ticks_total", "counter", "Scheduled reads skipped (overrun or backoff).", func(d deviceDoc) float64 { return float64(d.SkippedTicks) })
	perDev("gateway_device_up", "gauge", "1 when the last read of the device succeeded.", func(d deviceDoc) float64 {
		if d.State == stateOK {
			return 1
		}
		return 0
	})
	perDev("gateway_last_reading_timestamp_seconds", "gauge", "Unix time of the last successful reading.", func(d deviceDoc) float64 {
		if d.LastReadingAt == nil {
			return 0
		}
		return unixSeconds(*d.LastReadingAt)
	})

	q := g.queueState()
	m.head("gateway_queue_depth", "gauge", "Records in the durable queue (retained delivered ones included).")
	m.sample("gateway_queue_depth", nil, float64(q.Depth))
	m.head("gateway_queue_pending", "gauge", "Records not yet acknowledged by the sink.")
	for name, n := range q.Backlog {
		m.sample("gateway_queue_pending", []string{"sink", name}, float64(n))
	}
	m.head("gateway_queue_dropped_total", "counter", "Undelivered records dropped at a queue bound, ever.")
	m.sample("gateway_queue_dropped_total", nil, float64(q.Dropped))
	m.head("gateway_queue_last_seq", "gauge", "Sequence number of the last queued reading.")
	if q.NextSeq > 0 {
		m.sample("gateway_queue_last_seq", nil, float64(q.NextSeq-1))
	} else {
		m.sample("gateway_queue_last_seq", nil, 0)
	}

	sinks := g.sinkStatus()
	m.head("gateway_sink_deliveries_total", "counter", "Successful deliveries (batches) per sink since start.")
	for _, s := range sinks {
		m.sample("gateway_sink_deliveries_total", []string{"sink", s.Name}, float64(g.counters(s.Name).ok.Load()))
	}
	m.head("gateway_sink_records_delivered_total", "counter", "Records delivered per sink since start (re-deliveries included).")
	for _, s := range sinks {
		m.sample("gateway_sink_records_delivered_total", []string{"sink", s.Name}, float64(g.counters(s.Name).records.Load()))
	}
	m.head("gateway_sink_failures_total", "counter", "Failed deliveries per sink since start.")
	for _, s := range sinks {
		m.sample("gateway_sink_failures_total", []string{"sink", s.Name}, float64(g.counters(s.Name).failed.Load()))
	}
	m.head("gateway_sink_last_success_timestamp_seconds", "gauge", "Unix time of the last successful delivery.")
	for _, s := range sinks {
		m.sample("gateway_sink_last_success_timestamp_seconds", []string{"sink", s.Name}, unixSeconds(s.LastOK))
	}
	m.head("gateway_uptime_seconds", "gauge", "Seconds since the gateway started.")
	m.sample("gateway_uptime_seconds", nil, time.Since(g.started).Seconds())
	return m.b.String()
}
