package store

import (
	"path/filepath"
	"testing"
)

// A reading's JSON is a few hundred bytes (more with raw registers).
var benchData = []byte(`{"time":"2025-06-01T12:00:00Z","device":{"manufacturer":"Fronius","model":"Symo 10.0-3-M","serial":"12345678","profile":"sunspec","kind":"inverter"},"ac_power_w":4321.5,"dc_power_w":4500,"energy_total_wh":12345678,"frequency_hz":50.01,"phases":[{"voltage_v":230.1,"current_a":6.2,"power_w":1440},{"voltage_v":231.4,"current_a":6.3,"power_w":1441},{"voltage_v":229.8,"current_a":6.1,"power_w":1440}],"temperature_c":41.5,"state":"mppt"}`)

func benchAppend(b *testing.B, noSync bool) {
	q, err := Open(filepath.Join(b.TempDir(), "q.db"), Options{Sinks: []string{"a"}, NoSync: noSync})
	if err != nil {
		b.Fatal(err)
	}
	defer q.Close()
	r := Record{Device: "sunspec+tcp://192.168.1.20:502?unit=1", Data: benchData}
	b.SetBytes(int64(len(benchData)))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := q.Append(r); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "appends/s")
}

// BenchmarkAppend appends one reading per fsync'd commit, as the gateway
// does.
func BenchmarkAppend(b *testing.B) { benchAppend(b, false) }

// BenchmarkAppendNoSync measures the queue without the disk flush.
func BenchmarkAppendNoSync(b *testing.B) { benchAppend(b, true) }

// BenchmarkForwardCycle is one delivery cycle without fsync: Pending of a
// batch of 100 and its Ack (which deletes the batch).
func BenchmarkForwardCycle(b *testing.B) {
	q, err := Open(filepath.Join(b.TempDir(), "q.db"), Options{Sinks: []string{"a"}, NoSync: true, Retain: -1})
	if err != nil {
		b.Fatal(err)
	}
	defer q.Close()
	batch := make([]Record, 100)
	for i := range batch {
		batch[i] = Record{Device: "sim", Data: benchData}
	}
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		if _, err := q.AppendBatch(batch); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		recs, err := q.Pending("a", 100)
		if err != nil || len(recs) != 100 {
			b.Fatal(err, len(recs))
		}
		if err := q.Ack("a", recs[99].Seq); err != nil {
			b.Fatal(err)
		}
	}
}
