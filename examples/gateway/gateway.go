package main

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pikit/pikit/energy"
	"github.com/pikit/pikit/energy/identity"
	"github.com/pikit/pikit/energy/store"
)

var (
	errExists   = errors.New("a device with this id exists")
	errNotFound = errors.New("no such device")
)

// queueFile is the durable queue's file in the data dir.
const queueFile = "queue.db"

// gatewayConfig is what a gateway is built from.
type gatewayConfig struct {
	DataDir  string
	Settings Settings
	ID       identity.Identity
	Log      *slog.Logger
	// Open opens a device (default energy.Open).
	Open func(spec string) (energy.Inverter, error)
	// MaxBackoff bounds the wait between attempts on a failing device
	// (default defaultMaxBackoff).
	MaxBackoff time.Duration
	// NoSync disables the queue's fsync, for tests.
	NoSync bool
	// Forwarder tuning, for tests (sink defaults when zero).
	MinRetry, MaxRetry time.Duration
}

// gateway ties the parts together: a harvester per device appends readings
// to the durable queue; forwarders deliver the queue to the sinks.
type gateway struct {
	cfg     gatewayConfig
	log     *slog.Logger
	id      identity.Identity
	started time.Time
	ctx     context.Context // harvesters and forwarders run under it

	// mu guards the settings, the harvesters and the pipeline pointer.
	// Harvesters never take it: they deliver through append, which takes
	// pipeMu for reading.
	mu         sync.Mutex
	set        Settings
	harvesters map[string]*harvester

	pipeMu sync.RWMutex
	pipe   *pipeline

	latestMu sync.Mutex
	latest   map[string]latestReading

	storeErrors atomic.Uint64
	lastStoreOK atomic.Bool

	sinkCountMap
}

// latestReading is the last reading of a device.
type latestReading struct {
	Seq     uint64          `json:"seq"`
	Time    time.Time       `json:"time"`
	Device  string          `json:"device"`
	Reading json.RawMessage `json:"reading"`
}

// newGateway opens the queue and the sinks; start starts the harvesters.
func newGateway(ctx context.Context, cfg gatewayConfig) (*gateway, error) {
	if cfg.Open == nil {
		cfg.Open = energy.Open
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = defaultMaxBackoff
	}
	g := &gateway{
		cfg: cfg, log: cfg.Log, id: cfg.ID, started: time.Now(), ctx: ctx,
		set: cfg.Settings, harvesters: map[string]*harvester{}, latest: map[string]latestReading{},
	}
	g.lastStoreOK.Store(true)
	p, err := g.openPipeline(cfg.Settings)
	if err != nil {
		return nil, err
	}
	g.pipe = p
	g.loadLatest()
	return g, nil
}

// start starts a harvester per configured device.
func (g *gateway) start() {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, d := range g.set.Devices {
		g.startHarvester(d)
	}
}

// startHarvester starts one device; g.mu must be held.
func (g *gateway) startHarvester(d DeviceConfig) {
	h := newHarvester(d, g.set.Interval.D(), g.cfg.MaxBackoff, g.cfg.Open, g.append, g.log)
	g.harvesters[d.ID] = h
	h.start(g.ctx)
}

// close stops the harvesters, then the forwarders, then closes the queue.
func (g *gateway) close() error {
	g.mu.Lock()
	hs := make([]*harvester, 0, len(g.harvesters))
	for _, h := range g.harvesters {
		hs = append(hs, h)
	}
	g.harvesters = map[string]*harvester{}
	g.mu.Unlock()
	var wg sync.WaitGroup
	for _, h := range hs {
		wg.Add(1)
		go func() { defer wg.Done(); h.stop() }()
	}
	wg.Wait()
	g.pipeMu.Lock()
	defer g.pipeMu.Unlock()
	err := g.pipe.close()
	g.pipe = nil
	return err
}

// append is the harvesters' delivery: the reading is written to the queue
// (fsync'd) before anything else happens to it; then the forwarders are
// woken.
func (g *gateway) append(dev string, r energy.Reading) (uint64, error) {
	data, err := json.Marshal(r)
	if err != nil {
		return 0, err
	}
	g.pipeMu.RLock()
	p := g.pipe
	if p == nil {
		g.pipeMu.RUnlock()
		return 0, errors.New("gateway stopping")
	}
	seq, err := p.q.Append(store.Record{Time: r.Time, Device: dev, Data: data})
	if err != nil {
		g.pipeMu.RUnlock()
		g.storeErrors.Add(1)
		g.lastStoreOK.Store(false)
		return 0, err
	}
	p.wake()
	g.pipeMu.RUnlock()
	g.lastStoreOK.Store(true)
	g.latestMu.Lock()
	g.latest[dev] = latestReading{Seq: seq, Time: r.Time, Device: dev, Reading: data}
	g.latestMu.Unlock()
	return seq, nil
}

// loadLatest fills the latest readings from the end of the queue, so that
// they survive a restart.
func (g *gateway) loadLatest() {
	st, err := g.pipe.q.Stats()
	if err != nil || st.NextSeq <= 1 {
		return
	}
	from := uint64(0)
	if st.NextSeq > 2001 {
		from = st.NextSeq - 2001
	}
	recs, err := g.pipe.q.Since(from, 2000)
	if err != nil {
		return
	}
	g.latestMu.Lock()
	defer g.latestMu.Unlock()
	for _, r := range recs {
		g.latest[r.Device] = latestReading{Seq: r.Seq, Time: r.Time, Device: r.Device, Reading: r.Data}
	}
}

func (g *gateway) settings() Settings {
	g.mu.Lock()
	defer g.mu.Unlock()
	s := g.set
	s.Devices = append([]DeviceConfig{}, s.Devices...)
	return s
}

func (g *gateway) name() string {
	g.mu.Lock()
	n := g.set.Name
	g.mu.Unlock()
	if n != "" {
		return n
	}
	if h, err := os.Hostname(); err == nil && h != "" {
		return h
	}
	return "gateway-" + g.id.Serial()
}

// addDevice validates, persists and starts a device. An empty ID gets
// "dev<N>".
func (g *gateway) addDevice(d DeviceConfig) (DeviceConfig, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if d.ID == "" {
		for n := len(g.set.Devices) + 1; ; n++ {
			id := fmt.Sprintf("dev%d", n)
			if _, ok := g.harvesters[id]; !ok && !g.hasDevice(id) {
				d.ID = id
				break
			}
		}
	}
	if err := d.validate(""); err != nil {
		return d, err
	}
	if g.hasDevice(d.ID) {
		return d, fmt.Errorf("%w: %q", errExists, d.ID)
	}
	next := g.set
	next.Devices = append(append([]DeviceConfig{}, g.set.Devices...), d)
	if err := next.validate(); err != nil {
		return d, err
	}
	if err := saveSettings(g.cfg.DataDir, next); err != nil {
		return d, err
	}
	g.set = next
	g.startHarvester(d)
	return d, nil
}

func (g *gateway) hasDevice(id string) bool {
	for _, d := range g.set.Devices {
		if d.ID == id {
			return true
		}
	}
	return false
}

// removeDevice persists the removal and stops the device. Its queued
// readings stay queued and are delivered.
func (g *gateway) removeDevice(id string) error {
	g.mu.Lock()
	if !g.hasDevice(id) {
		g.mu.Unlock()
		return fmt.Errorf("%w: %q", errNotFound, id)
	}
	next := g.set
	next.Devices = nil
	for _, d := range g.set.Devices {
		if d.ID != id {
			next.Devices = append(next.Devices, d)
		}
	}
	if next.Devices == nil {
		next.Devices = []DeviceConfig{}
	}
	if err := saveSettings(g.cfg.DataDir, next); err != nil {
		g.mu.Unlock()
		return err
	}
	g.set = next
	h := g.harvesters[id]
	delete(g.harvesters, id)
	g.mu.Unlock()
	if h != nil {
		h.stop()
	}
	return nil
}

// updateSettings applies a patch: persisted first, then applied. Device and
// interval changes restart the affected harvesters; sink changes rebuild
// the pipeline (the queue keeps everything not yet delivered).
func (g *gateway) updateSettings(p settingsPatch) (Settings, bool, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	next, err := p.apply(g.set)
	if err != nil {
		return g.set, false, err
	}
	if err := saveSettings(g.cfg.DataDir, next); err != nil {
		return g.set, false, err
	}
	prev := g.set
	g.set = next
	// Harvesters: stop the removed and changed ones, start the new.
	want := map[string]DeviceConfig{}
	for _, d := range next.Devices {
		want[d.ID] = d
	}
	var stopping []*harvester
	for id, h := range g.harvesters {
		d, ok := want[id]
		if !ok || d != h.cfg || (d.Interval == 0 && prev.Interval != next.Interval) {
			stopping = append(stopping, h)
			delete(g.harvesters, id)
		}
	}
	for _, h := range stopping {
		h.stop()
	}
	for _, d := range next.Devices {
		if _, ok := g.harvesters[d.ID]; !ok {
			g.startHarvester(d)
		}
	}
	if !sinksEqual(prev, next) {
		if err := g.rebuildPipeline(next, prev); err != nil {
			// The new sinks do not work: keep the old ones, in the
			// file too, and tell the caller why.
			// Device and interval changes stay applied.
			g.set = prev
			g.set.Devices, g.set.Interval, g.set.Name = next.Devices, next.Interval, next.Name
			if serr := saveSettings(g.cfg.DataDir, g.set); serr != nil {
				g.log.Error("restoring the settings file", "err", serr)
				return g.set, true, nil
			}
			return g.set, false, err
		}
	}
	return next, false, nil
}

// rebuildPipeline replaces the forwarders (and reopens the queue with the
// new sink set); if the new sinks cannot be set up it goes back to the old
// ones. Harvesters wait on pipeMu meanwhile.
func (g *gateway) rebuildPipeline(next, prev Settings) error {
	g.pipeMu.Lock()
	defer g.pipeMu.Unlock()
	if err := g.pipe.close(); err != nil {
		g.log.Warn("closing the pipeline", "err", err)
	}
	g.pipe = nil
	p, err := g.openPipeline(next)
	if err == nil {
		g.pipe = p
		return nil
	}
	p, perr := g.openPipeline(prev)
	if perr != nil {
		g.log.Error("reopening the queue failed; readings cannot be stored", "err", perr)
		return err
	}
	g.pipe = p
	return err
}

// cryptoDoc is GET /api/crypto.
func (g *gateway) cryptoDoc() map[string]any {
	doc := map[string]any{"serial": g.id.Serial(), "key_type": g.id.KeyType(), "algorithm": "ES256"}
	if der, err := x509.MarshalPKIXPublicKey(g.id.Public()); err == nil {
		doc["public_key"] = string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
	}
	return doc
}

func versionDoc() map[string]any {
	doc := map[string]any{"go": runtime.Version(), "os": runtime.GOOS, "arch": runtime.GOARCH, "version": "(devel)"}
	if bi, ok := debug.ReadBuildInfo(); ok {
		if bi.Main.Version != "" {
			doc["version"] = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				doc["revision"] = s.Value
			case "vcs.time":
				doc["revision_time"] = s.Value
			case "vcs.modified":
				doc["modified"] = s.Value == "true"
			}
		}
	}
	return doc
}

// deviceDoc is a device in /api/state: its state and its last reading.
type deviceDoc struct {
	deviceState
	LastReading *latestReading `json:"last_reading,omitempty"`
}

// queueDoc is the queue in /api/state.
type queueDoc struct {
	store.Stats
	// Pending is the number of records not yet delivered to every sink
	// (the largest backlog); Depth also counts retained delivered ones.
	Pending int            `json:"pending"`
	Backlog map[string]int `json:"backlog"`
	Path    string         `json:"path"`
	Error   string         `json:"error,omitempty"`
}

func (g *gateway) devicesState() []deviceDoc {
	g.mu.Lock()
	hs := make([]*harvester, 0, len(g.harvesters))
	for _, h := range g.harvesters {
		hs = append(hs, h)
	}
	g.mu.Unlock()
	sort.Slice(hs, func(i, j int) bool { return hs[i].cfg.ID < hs[j].cfg.ID })
	out := make([]deviceDoc, 0, len(hs))
	g.latestMu.Lock()
	defer g.latestMu.Unlock()
	for _, h := range hs {
		d := deviceDoc{deviceState: h.state()}
		if l, ok := g.latest[h.cfg.ID]; ok {
			d.LastReading = &l
		}
		out = append(out, d)
	}
	return out
}

func (g *gateway) queueState() queueDoc {
	g.pipeMu.RLock()
	defer g.pipeMu.RUnlock()
	doc := queueDoc{Backlog: map[string]int{}}
	if g.pipe == nil {
		doc.Error = "closed"
		return doc
	}
	doc.Path = g.pipe.q.Path()
	st, err := g.pipe.q.Stats()
	if err != nil {
		doc.Error = err.Error()
		return doc
	}
	doc.Stats = st
	for _, s := range g.pipe.q.Sinks() {
		n, err := g.pipe.q.Backlog(s)
		if err == nil {
			doc.Backlog[s] = n
			doc.Pending = max(doc.Pending, n)
		}
	}
	return doc
}

// stateDoc is GET /api/state.
func (g *gateway) stateDoc() map[string]any {
	return map[string]any{
		"name":         g.name(),
		"serial":       g.id.Serial(),
		"uptime_s":     int64(time.Since(g.started).Seconds()),
		"devices":      g.devicesState(),
		"queue":        g.queueState(),
		"sinks":        g.sinkStatus(),
		"store_errors": g.storeErrors.Load(),
	}
}

// healthDoc is GET /healthz.
type healthDoc struct {
	OK        bool   `json:"ok"`
	Devices   int    `json:"devices"`
	DevicesOK int    `json:"devices_ok"`
	Pending   int    `json:"pending"`
	Error     string `json:"error,omitempty"`
}

// health is unhealthy only when the gateway cannot do its job: the queue
// does not take readings. Devices that are down (night, network) are
// reported, not unhealthy.
func (g *gateway) health() healthDoc {
	h := healthDoc{OK: true}
	for _, d := range g.devicesState() {
		h.Devices++
		if d.State == stateOK {
			h.DevicesOK++
		}
	}
	q := g.queueState()
	h.Pending = q.Pending
	if q.Error != "" {
		h.OK, h.Error = false, "queue: "+q.Error
	}
	if !g.lastStoreOK.Load() {
		h.OK, h.Error = false, "the last reading could not be written to the queue"
	}
	return h
}

func (g *gateway) latestReadings() []latestReading {
	g.latestMu.Lock()
	defer g.latestMu.Unlock()
	out := make([]latestReading, 0, len(g.latest))
	for _, l := range g.latest {
		out = append(out, l)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Device < out[j].Device })
	return out
}

// readingsSince returns queued readings after seq.
func (g *gateway) readingsSince(seq uint64, limit int) ([]latestReading, error) {
	g.pipeMu.RLock()
	defer g.pipeMu.RUnlock()
	if g.pipe == nil {
		return nil, errors.New("gateway stopping")
	}
	recs, err := g.pipe.q.Since(seq, limit)
	if err != nil {
		return nil, err
	}
	out := make([]latestReading, len(recs))
	for i, r := range recs {
		data := json.RawMessage(r.Data)
		if !json.Valid(data) {
			data, _ = json.Marshal(string(r.Data))
		}
		out[i] = latestReading{Seq: r.Seq, Time: r.Time, Device: r.Device, Reading: data}
	}
	return out, nil
}

// harvester returns a running device by id.
func (g *gateway) harvester(id string) *harvester {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.harvesters[id]
}

// queuePath is where the queue lives.
func (g *gateway) queuePath() string { return filepath.Join(g.cfg.DataDir, queueFile) }
