package main

import (
	"context"
	"encoding/json"
	"path/filepath"
	"testing"

	"github.com/pikit/pikit/energy"
	_ "github.com/pikit/pikit/energy/siminverter"
	"github.com/pikit/pikit/energy/store"
)

// simReading is one real reading of a simulated Huawei inverter (raw
// registers included), as the harvester queues it.
func simReading(b *testing.B) []byte {
	inv, err := energy.Open("sim?seed=1&profile=huawei")
	if err != nil {
		b.Fatal(err)
	}
	defer inv.Close()
	r, err := inv.Read(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	data, err := json.Marshal(r)
	if err != nil {
		b.Fatal(err)
	}
	return data
}

// BenchmarkQueueAppend is the gateway's write path: one fsync'd Append per
// reading, as the harvesters do. Run on the target's storage:
//
//	go test -run XXX -bench QueueAppend ./examples/gateway
func BenchmarkQueueAppend(b *testing.B) {
	for _, bc := range []struct {
		name   string
		noSync bool
	}{{"fsync", false}, {"nosync", true}} {
		b.Run(bc.name, func(b *testing.B) {
			data := simReading(b)
			q, err := store.Open(filepath.Join(b.TempDir(), queueFile), store.Options{Sinks: []string{"http"}, NoSync: bc.noSync})
			if err != nil {
				b.Fatal(err)
			}
			defer q.Close()
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if _, err := q.Append(store.Record{Device: "inv1", Data: data}); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "readings/s")
		})
	}
}

// BenchmarkSignBatch signs a batch of 100 readings of 2 devices (two JWTs).
func BenchmarkSignBatch(b *testing.B) {
	data := simReading(b)
	recs := make([]store.Record, 100)
	for i := range recs {
		recs[i] = store.Record{Seq: uint64(i + 1), Device: []string{"a", "b"}[i%2], Data: data}
	}
	id := benchIdentity(b)
	b.ResetTimer()
	for b.Loop() {
		if _, _, err := signBatch(id, recs); err != nil {
			b.Fatal(err)
		}
	}
}
