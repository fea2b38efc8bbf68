package sink_test

import (
	"context"
	"encoding/json"
	"log"
	"log/slog"
	"time"

	"github.com/pikit/pikit/energy"
	"github.com/pikit/pikit/energy/sink"
	"github.com/pikit/pikit/energy/store"
)

// A gateway queues every reading durably, then forwards the queue to an
// HTTP endpoint and an MQTT broker; each sink acknowledges independently
// and a reading leaves the queue once both have it.
func Example() {
	ctx := context.Background()
	q, err := store.Open("/var/lib/pikit/readings.db", store.Options{
		Sinks:  []string{"http", "mqtt"},
		Logger: slog.Default(), // drops at the bounds are logged
	})
	if err != nil {
		log.Fatal(err)
	}
	defer q.Close()

	h, err := sink.NewHTTP(sink.HTTPOptions{
		URL: "https://collector.example.com/api/readings",
		// The gateway signs a JWT over sink.NewBatch(recs) with its
		// identity; unsigned JSON here.
		Sign: func(recs []store.Record) ([]byte, string, error) {
			b, err := json.Marshal(sink.NewBatch(recs))
			return b, "application/json", err
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	m, err := sink.NewMQTT(ctx, sink.MQTTOptions{
		URL:       "mqtt://homeassistant.local",
		Username:  "pikit",
		Password:  "secret",
		Device:    "PK-0001",
		Discovery: true,
	})
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close(ctx)

	for _, s := range []sink.Sink{h, m} {
		f := sink.NewForwarder(q, s, sink.ForwarderOptions{Logger: slog.Default()})
		go f.Run(ctx)
	}

	// Each reading is written and fsync'd before anything else happens
	// to it; the forwarders wake up by themselves.
	r := energy.Reading{Time: time.Now(), ACPower: energy.Some(1234)}
	data, _ := json.Marshal(r)
	if _, err := q.Append(store.Record{Time: r.Time, Device: "sunspec+tcp://192.168.1.20:502", Data: data}); err != nil {
		log.Fatal(err)
	}
}
