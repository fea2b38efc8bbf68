package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/pikit/pikit/energy"
	"github.com/pikit/pikit/internal/httpapi"
)

// maxBody bounds request bodies.
const maxBody = 64 << 10

// server is the gateway's REST API.
type server struct {
	g    *gateway
	auth *auth
	log  *slog.Logger
	// scanHosts returns the hosts GET /api/devices/scan probes when the
	// request names none.
	scanHosts func() []string
}

func newServer(g *gateway, a *auth, log *slog.Logger) *server {
	return &server{g: g, auth: a, log: log, scanHosts: localSubnets}
}

func (s *server) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", s.healthz)
	mux.HandleFunc("GET /metrics", s.metrics)
	mux.HandleFunc("GET /api/crypto", s.crypto)
	mux.HandleFunc("GET /api/name", s.name)
	mux.HandleFunc("GET /api/version", s.version)
	mux.HandleFunc("GET /api/uptime", s.uptime)
	mux.HandleFunc("GET /api/state", s.state)
	mux.HandleFunc("GET /api/devices", s.devices)
	mux.Handle("POST /api/devices", s.require(s.addDevice))
	mux.Handle("DELETE /api/devices", s.require(s.deleteDevice))
	mux.Handle("DELETE /api/devices/{id}", s.require(s.deleteDevice))
	// Scans and raw register reads make the gateway touch the network and
	// the bus on the caller's behalf: they need the token too.
	mux.Handle("GET /api/devices/scan", s.require(s.scan))
	mux.Handle("GET /api/modbus", s.require(s.modbus))
	mux.HandleFunc("GET /api/readings/latest", s.latest)
	mux.HandleFunc("GET /api/readings", s.readings)
	mux.HandleFunc("GET /api/settings", s.getSettings)
	mux.Handle("POST /api/settings", s.require(s.postSettings))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusNotFound, map[string]any{"error": "no such endpoint: " + r.Method + " " + r.URL.Path})
	})
	return httpapi.SecurityHeaders(mux)
}

// require lets requests with the bearer token through.
func (s *server) require(next http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.auth.ok(r) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="gateway"`)
			writeJSON(w, http.StatusUnauthorized, map[string]any{"error": "unauthorized: send Authorization: Bearer <token>"})
			return
		}
		next(w, r)
	})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// badRequest answers 400 with the error and the field it names.
func badRequest(w http.ResponseWriter, err error) {
	doc := map[string]any{"error": err.Error()}
	var fe *fieldError
	if errors.As(err, &fe) {
		doc["field"] = fe.Field
	}
	writeJSON(w, http.StatusBadRequest, doc)
}

// readJSON decodes the request body strictly into v.
func readJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(ct, "application/json") {
		badRequest(w, fieldErr("Content-Type", "want application/json, got %q", ct))
		return false
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxBody)
	if err := decodeStrict(r.Body, v); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			err = fieldErr("body", "larger than %d bytes", maxBody)
		}
		badRequest(w, err)
		return false
	}
	return true
}

func (s *server) healthz(w http.ResponseWriter, r *http.Request) {
	h := s.g.health()
	code := http.StatusOK
	if !h.OK {
		code = http.StatusServiceUnavailable
	}
	writeJSON(w, code, h)
}

func (s *server) crypto(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.g.cryptoDoc())
}

func (s *server) name(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"name": s.g.name()})
}

func (s *server) version(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, versionDoc())
}

func (s *server) uptime(w http.ResponseWriter, r *http.Request) {
	d := time.Since(s.g.started)
	writeJSON(w, http.StatusOK, map[string]any{"uptime_s": int64(d.Seconds()), "uptime": d.Round(time.Second).String(), "started": s.g.started})
}

func (s *server) state(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.g.stateDoc())
}

func (s *server) devices(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"devices": s.g.settings().Devices})
}

// decodeDevice reads the body of POST /api/devices.
func decodeDevice(r io.Reader) (DeviceConfig, error) {
	var d DeviceConfig
	if err := decodeStrict(r, &d); err != nil {
		return d, err
	}
	return d, nil
}

func (s *server) addDevice(w http.ResponseWriter, r *http.Request) {
	var d DeviceConfig
	if !readJSON(w, r, &d) {
		return
	}
	d, err := s.g.addDevice(d)
	switch {
	case errors.Is(err, errExists):
		writeJSON(w, http.StatusConflict, map[string]any{"error": err.Error(), "field": "id"})
	case err != nil:
		var fe *fieldError
		if errors.As(err, &fe) {
			badRequest(w, err)
			return
		}
		s.log.Error("adding a device", "err", err)
		writeJSON(w, http.StatusInternalServerError, map[string]any{"error": err.Error()})
	default:
		s.log.Info("device added", "device", d.ID, "spec", d.Spec)
		writeJSON(w, http.StatusCreated, d)
	}
}

func (s *server) deleteDevice(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if id == "" {
		id = r.URL.Query().Get("id")
	}
	if id == "" && r.ContentLength != 0 {
		var body struct {
			ID string `json:"id"`
		}
		if !readJSON(w, r, &body) {
			return
		}
		id = body.ID
	}
	if id == "" {
		badRequest(w, fieldErr("id", "name the device: DELETE /api/devices?id=ID"))
		return
	}
	err := s.g.removeDevice(id)
	switch {
	case errors.Is(err, errNotFound):
		writeJSON(w, http.StatusNotFound, map[string]any{"error": err.Error(), "field": "id"})
	case err != nil:
		s.log.Error("removing a device", "err", err)
		writeJSON(w, http.StatusInternalServerError, map[string]any{"error": err.Error()})
	default:
		s.log.Info("device removed", "device", id)
		writeJSON(w, http.StatusOK, map[string]any{"removed": id})
	}
}

// queryInt parses an integer query parameter in [lo, hi]; def when absent.
func queryInt(r *http.Request, name string, def, lo, hi int64) (int64, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		if def < lo {
			return 0, fieldErr(name, "required")
		}
		return def, nil
	}
	n, err := strconv.ParseInt(v, 0, 64)
	if err != nil || n < lo || n > hi {
		return 0, fieldErr(name, "want an integer from %d to %d, got %q", lo, hi, v)
	}
	return n, nil
}

func (s *server) scan(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	var hosts []string
	for _, h := range q["hosts"] {
		for _, p := range strings.Split(h, ",") {
			if p = strings.TrimSpace(p); p != "" {
				hosts = append(hosts, p)
			}
		}
	}
	if len(hosts) == 0 {
		hosts = s.scanHosts()
		if len(hosts) == 0 {
			badRequest(w, fieldErr("hosts", "no local network found: name hosts, e.g. ?hosts=192.168.1.0/24"))
			return
		}
	}
	var opts energy.ScanOptions
	if v := q.Get("ports"); v != "" {
		for _, p := range strings.Split(v, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(p))
			if err != nil || n < 1 || n > 65535 {
				badRequest(w, fieldErr("ports", "want comma-separated ports 1-65535, got %q", v))
				return
			}
			opts.Ports = append(opts.Ports, n)
		}
	}
	if v := q.Get("units"); v != "" {
		for _, p := range strings.Split(v, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(p))
			if err != nil || n < 0 || n > 247 {
				badRequest(w, fieldErr("units", "want comma-separated unit ids 0-247, got %q", v))
				return
			}
			opts.Units = append(opts.Units, uint8(n))
		}
	}
	timeout := 2 * time.Second
	if v := q.Get("timeout"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 || d > 30*time.Second {
			badRequest(w, fieldErr("timeout", "want a duration up to 30s, got %q", v))
			return
		}
		timeout = d
	}
	opts.Timeout = timeout
	opts.MaxHosts = 1024
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Minute)
	defer cancel()
	found, err := energy.Scan(ctx, hosts, opts)
	if err != nil && ctx.Err() == nil {
		badRequest(w, fieldErr("hosts", "%v", err))
		return
	}
	if found == nil {
		found = []energy.Found{}
	}
	doc := map[string]any{"hosts": hosts, "found": found}
	if err != nil {
		doc["error"] = err.Error()
	}
	writeJSON(w, http.StatusOK, doc)
}

func (s *server) modbus(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	dev := q.Get("device")
	if dev == "" {
		badRequest(w, fieldErr("device", "required: the id of a configured device"))
		return
	}
	addr, err := queryInt(r, "address", -1, 0, 65535)
	if err != nil {
		badRequest(w, err)
		return
	}
	count, err := queryInt(r, "count", 1, 1, energy.MaxRegisters)
	if err != nil {
		badRequest(w, err)
		return
	}
	if addr+count > 65536 {
		badRequest(w, fieldErr("count", "address+count passes the end of the register space"))
		return
	}
	var fc uint8
	switch t := strings.ToLower(q.Get("type")); t {
	case "", "holding", "3":
		fc = 3
	case "input", "4":
		fc = 4
	default:
		badRequest(w, fieldErr("type", `want "holding" (function 3) or "input" (function 4), got %q`, t))
		return
	}
	unit := -1
	if q.Get("unit") != "" {
		n, err := queryInt(r, "unit", 0, 0, 255)
		if err != nil {
			badRequest(w, err)
			return
		}
		unit = int(n)
	}
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	res, err := s.g.modbusRead(ctx, dev, unit, fc, uint16(addr), uint16(count))
	var fe *fieldError
	switch {
	case errors.Is(err, errNotFound):
		writeJSON(w, http.StatusNotFound, map[string]any{"error": err.Error(), "field": "device"})
	case errors.As(err, &fe):
		badRequest(w, err)
	case err != nil:
		code := http.StatusBadGateway
		if energy.IsException(err) {
			code = http.StatusUnprocessableEntity
		}
		writeJSON(w, code, map[string]any{"error": err.Error(), "device": dev})
	default:
		writeJSON(w, http.StatusOK, res)
	}
}

func (s *server) latest(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"readings": s.g.latestReadings()})
}

func (s *server) readings(w http.ResponseWriter, r *http.Request) {
	since, err := queryInt(r, "since", 0, 0, 1<<53)
	if err != nil {
		badRequest(w, err)
		return
	}
	limit, err := queryInt(r, "limit", 100, 1, 1000)
	if err != nil {
		badRequest(w, err)
		return
	}
	recs, err := s.g.readingsSince(uint64(since), int(limit))
	if err != nil {
		s.log.Error("reading the queue", "err", err)
		writeJSON(w, http.StatusInternalServerError, map[string]any{"error": err.Error()})
		return
	}
	doc := map[string]any{"readings": recs}
	if len(recs) > 0 {
		doc["next"] = recs[len(recs)-1].Seq
	}
	writeJSON(w, http.StatusOK, doc)
}

func (s *server) getSettings(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.g.settings().redacted())
}

func (s *server) postSettings(w http.ResponseWriter, r *http.Request) {
	var p settingsPatch
	if !readJSON(w, r, &p) {
		return
	}
	st, restart, err := s.g.updateSettings(p)
	if err != nil {
		var fe *fieldError
		if errors.As(err, &fe) {
			badRequest(w, err)
			return
		}
		s.log.Error("saving settings", "err", err)
		writeJSON(w, http.StatusInternalServerError, map[string]any{"error": err.Error()})
		return
	}
	s.log.Info("settings changed", "restart_required", restart)
	writeJSON(w, http.StatusOK, map[string]any{"settings": st.redacted(), "restart_required": restart})
}

func (s *server) metrics(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	io.WriteString(w, s.g.metricsText())
}

// metricWriter builds Prometheus text exposition.
type metricWriter struct{ b strings.Builder }

func (m *metricWriter) head(name, typ, help string) {
	fmt.Fprintf(&m.b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, typ)
}

func (m *metricWriter) sample(name string, labels []string, v float64) {
	m.b.WriteString(name)
	if len(labels) > 0 {
		m.b.WriteByte('{')
		for i := 0; i+1 < len(labels); i += 2 {
			if i > 0 {
				m.b.WriteByte(',')
			}
			fmt.Fprintf(&m.b, "%s=%q", labels[i], labels[i+1])
		}
		m.b.WriteByte('}')
	}
	m.b.WriteByte(' ')
	m.b.WriteString(strconv.FormatFloat(v, 'g', -1, 64))
	m.b.WriteByte('\n')
}
