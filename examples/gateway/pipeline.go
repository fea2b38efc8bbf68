package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/pikit/pikit/energy/identity"
	"github.com/pikit/pikit/energy/sink"
	"github.com/pikit/pikit/energy/store"
)

// pipeline is the durable queue and the forwarders that drain it, one per
// configured sink. It is rebuilt when the sink settings change.
type pipeline struct {
	q      *store.Queue
	fwds   []*sink.Forwarder
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// openPipeline opens the queue with the sinks s configures and starts a
// forwarder per sink.
func (g *gateway) openPipeline(s Settings) (*pipeline, error) {
	ctx, cancel := context.WithCancel(g.ctx)
	var sinks []sink.Sink
	if s.HTTPURL != "" {
		hs, err := sink.NewHTTP(sink.HTTPOptions{
			URL:     s.HTTPURL,
			Sign:    func(recs []store.Record) ([]byte, string, error) { return signBatch(g.id, recs) },
			Client:  &http.Client{Transport: &http.Transport{Proxy: http.ProxyFromEnvironment, MaxIdleConnsPerHost: 2, IdleConnTimeout: 90 * time.Second}},
			Timeout: 30 * time.Second,
		})
		if err != nil {
			cancel()
			return nil, fieldErr("http_url", "%v", err)
		}
		sinks = append(sinks, hs)
	}
	if s.MQTTURL != "" {
		ms, err := g.newMQTT(ctx, s)
		if err != nil {
			closeSinks(sinks)
			cancel()
			return nil, err
		}
		sinks = append(sinks, ms)
	}
	names := make([]string, len(sinks))
	for i, sk := range sinks {
		names[i] = sk.Name()
	}
	maxRecords, maxAge := s.QueueMaxRecords, s.QueueMaxAge.D()
	if maxRecords == 0 {
		maxRecords = defaultMaxRecords
	}
	q, err := store.Open(g.queuePath(), store.Options{
		Sinks:      names,
		MaxRecords: maxRecords,
		MaxAge:     maxAge,
		NoSync:     g.cfg.NoSync,
		Logger:     g.log,
	})
	if err != nil {
		closeSinks(sinks)
		cancel()
		return nil, err
	}
	p := &pipeline{q: q, cancel: cancel}
	for _, sk := range sinks {
		f := sink.NewForwarder(q, countingSink{sk, g.counters(sk.Name())}, sink.ForwarderOptions{
			MinBackoff: g.cfg.MinRetry,
			MaxBackoff: g.cfg.MaxRetry,
			Logger:     g.log,
		})
		p.fwds = append(p.fwds, f)
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			f.Run(ctx)
			closeSinks([]sink.Sink{sk})
		}()
	}
	return p, nil
}

// closeSinks closes the sinks that hold a connection (MQTT), waiting a
// little for a clean disconnect.
func closeSinks(sinks []sink.Sink) {
	for _, sk := range sinks {
		if c, ok := sk.(interface{ Close(context.Context) error }); ok {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			c.Close(ctx)
			cancel()
		}
	}
}

// wake tells the forwarders there is something new (the queue does that
// too; waking is cheap and keeps the contract explicit).
func (p *pipeline) wake() {
	for _, f := range p.fwds {
		f.Wake()
	}
}

// close stops the forwarders (a delivery in flight is cancelled and will be
// repeated at the next start: at-least-once) and closes the queue.
func (p *pipeline) close() error {
	if p == nil {
		return nil
	}
	p.cancel()
	p.wg.Wait()
	return p.q.Close()
}

// sinkStatus is the sinks in /api/state.
func (g *gateway) sinkStatus() []sink.SinkStatus {
	g.pipeMu.RLock()
	defer g.pipeMu.RUnlock()
	out := []sink.SinkStatus{}
	if g.pipe == nil {
		return out
	}
	for _, f := range g.pipe.fwds {
		out = append(out, f.Status())
	}
	return out
}

// signedBatch is the body of an HTTP delivery: one JWT per device batch.
//
//	{"gateway": "<device serial>", "jwts": ["<header>.<payload>.<signature>", ...]}
//
// Each JWT is ES256, signed by the gateway's identity, with the header of
// identity.ReadingHeader (device = gateway serial, model = the device's
// profile, dtype = "reading", sn = the inverter's serial) and the payload
//
//	{"device": "<gateway device id>", "readings": [{"seq": 17, "time": "...", "reading": {...energy.Reading...}}, ...]}
//
// Receivers verify with the public key of GET /api/crypto and de-duplicate
// by seq: delivery is at-least-once.
type signedBatch struct {
	Gateway string   `json:"gateway"`
	JWTs    []string `json:"jwts"`
}

// jwtPayload is the payload of one signed device batch.
type jwtPayload struct {
	Device   string       `json:"device"`
	Readings []jwtReading `json:"readings"`
}

type jwtReading struct {
	Seq     uint64          `json:"seq"`
	Time    time.Time       `json:"time"`
	Reading json.RawMessage `json:"reading"`
}

// readingDevice is the part of a stored reading the JWT header needs.
type readingDevice struct {
	Device struct {
		Serial  string `json:"serial"`
		Profile string `json:"profile"`
	} `json:"device"`
}

// signBatch signs recs as one JWT per run of records of the same device
// (and the same inverter serial and profile, which only change when a
// device is replaced). It signs only what the gateway itself read and
// queued: no caller-supplied data reaches the key.
func signBatch(id identity.Identity, recs []store.Record) ([]byte, string, error) {
	if id == nil {
		return nil, "", errors.New("no identity")
	}
	type group struct {
		dev, profile, serial string
		rs                   []jwtReading
	}
	var groups []*group
	index := map[[3]string]*group{}
	for _, r := range recs {
		var rd readingDevice
		data := json.RawMessage(r.Data)
		if err := json.Unmarshal(r.Data, &rd); err != nil {
			// Not JSON: never written by this gateway, but deliver it
			// rather than block the queue, as a string.
			data, _ = json.Marshal(string(r.Data))
		}
		k := [3]string{r.Device, rd.Device.Profile, rd.Device.Serial}
		gr := index[k]
		if gr == nil {
			gr = &group{dev: r.Device, profile: rd.Device.Profile, serial: rd.Device.Serial}
			index[k] = gr
			groups = append(groups, gr)
		}
		gr.rs = append(gr.rs, jwtReading{Seq: r.Seq, Time: r.Time, Reading: data})
	}
	body := signedBatch{Gateway: id.Serial(), JWTs: make([]string, 0, len(groups))}
	for _, gr := range groups {
		h := identity.ReadingHeader(id.Serial(), gr.profile, "reading", gr.serial)
		tok, err := identity.SignJWT(id, h, jwtPayload{Device: gr.dev, Readings: gr.rs})
		if err != nil {
			return nil, "", fmt.Errorf("signing: %w", err)
		}
		body.JWTs = append(body.JWTs, tok)
	}
	b, err := json.Marshal(body)
	return b, "application/json", err
}
