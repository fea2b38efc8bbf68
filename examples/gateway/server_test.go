package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pikit/pikit/energy/siminverter"
)

func TestAPIReadOnlyRoutes(t *testing.T) {
	tg := newTestGateway(t, Settings{MQTTURL: "", HTTPURL: ""})
	waitFor(t, 10*time.Second, "a first reading", func() bool {
		d := tg.deviceState(t, "inv1")
		return d != nil && d["state"] == stateOK
	})

	code, doc := tg.call(t, "GET", "/api/crypto", nil, "")
	if code != 200 || doc["serial"] != tg.g.id.Serial() || doc["key_type"] != "sim" || !strings.Contains(fmt.Sprint(doc["public_key"]), "BEGIN PUBLIC KEY") {
		t.Errorf("/api/crypto: %d %v", code, doc)
	}
	publicKey(t, tg.srv.URL) // parses
	if code, doc := tg.call(t, "GET", "/api/name", nil, ""); code != 200 || doc["name"] == "" {
		t.Errorf("/api/name: %d %v", code, doc)
	}
	if code, doc := tg.call(t, "GET", "/api/version", nil, ""); code != 200 || !strings.HasPrefix(fmt.Sprint(doc["go"]), "go") {
		t.Errorf("/api/version: %d %v", code, doc)
	}
	if code, doc := tg.call(t, "GET", "/api/uptime", nil, ""); code != 200 || doc["uptime_s"] == nil {
		t.Errorf("/api/uptime: %d %v", code, doc)
	}
	code, doc = tg.call(t, "GET", "/api/state", nil, "")
	q, _ := doc["queue"].(map[string]any)
	if code != 200 || q == nil || num(q["depth"]) < 1 || doc["sinks"] == nil {
		t.Errorf("/api/state: %d %v", code, doc)
	}
	d := tg.deviceState(t, "inv1")
	if d["last_reading"] == nil || num(d["reads"]) < 1 || d["info"] == nil {
		t.Errorf("device state lacks the last reading: %v", d)
	}
	if code, doc := tg.call(t, "GET", "/api/devices", nil, ""); code != 200 || !strings.Contains(fmt.Sprint(doc["devices"]), "sim?seed=1") {
		t.Errorf("/api/devices: %d %v", code, doc)
	}
	code, doc = tg.call(t, "GET", "/api/readings/latest", nil, "")
	if rs, _ := doc["readings"].([]any); code != 200 || len(rs) != 1 {
		t.Errorf("/api/readings/latest: %d %v", code, doc)
	}
	code, doc = tg.call(t, "GET", "/api/readings?since=0&limit=1", nil, "")
	rs, _ := doc["readings"].([]any)
	if code != 200 || len(rs) != 1 || num(rs[0].(map[string]any)["seq"]) != 1 || num(doc["next"]) != 1 {
		t.Errorf("/api/readings?since=0: %d %v", code, doc)
	}
	if code, doc := tg.call(t, "GET", "/api/readings?since=1000000", nil, ""); code != 200 || len(doc["readings"].([]any)) != 0 {
		t.Errorf("/api/readings past the end: %d %v", code, doc)
	}
	if code, doc := tg.call(t, "GET", "/api/settings", nil, ""); code != 200 || doc["interval"] != "1s" {
		t.Errorf("/api/settings: %d %v", code, doc)
	}
	if code, doc := tg.call(t, "GET", "/healthz", nil, ""); code != 200 || doc["ok"] != true {
		t.Errorf("/healthz: %d %v", code, doc)
	}
	if code, doc := tg.call(t, "GET", "/nope", nil, ""); code != 404 || doc["error"] == nil {
		t.Errorf("/nope: %d %v", code, doc)
	}

	res, err := http.Get(tg.srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	for _, want := range []string{`gateway_readings_total{device="inv1"}`, "gateway_queue_depth ", "gateway_queue_dropped_total 0", `gateway_read_errors_total{device="inv1"} 0`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("/metrics lacks %q:\n%s", want, b)
		}
	}
	if res.Header.Get("X-Content-Type-Options") != "nosniff" || res.Header.Get("X-Frame-Options") != "DENY" {
		t.Errorf("security headers missing: %v", res.Header)
	}
}

func TestAPIAuth(t *testing.T) {
	tg := newTestGateway(t, Settings{})
	for _, r := range []struct{ method, path, body string }{
		{"POST", "/api/devices", `{"id":"x","spec":"sim"}`},
		{"DELETE", "/api/devices?id=inv1", ""},
		{"DELETE", "/api/devices/inv1", ""},
		{"POST", "/api/settings", `{"interval":"2s"}`},
		{"GET", "/api/devices/scan?hosts=127.0.0.1", ""},
		{"GET", "/api/modbus?device=inv1&address=40000", ""},
	} {
		for _, tok := range []string{"", "wrong", testToken + "x", strings.ToUpper(testToken)} {
			code, doc := tg.call(t, r.method, r.path, r.body, tok)
			if code != http.StatusUnauthorized || doc["error"] == nil {
				t.Errorf("%s %s with token %q: %d %v, want 401", r.method, r.path, tok, code, doc)
			}
		}
	}
	// Nothing changed.
	if s := tg.g.settings(); len(s.Devices) != 1 || s.Interval.D() != time.Second {
		t.Errorf("settings changed by unauthorized requests: %+v", s)
	}
	// "Basic" or a bare token is not a bearer token.
	req, _ := http.NewRequest("POST", tg.srv.URL+"/api/settings", strings.NewReader(`{}`))
	req.Header.Set("Authorization", testToken)
	if res, err := http.DefaultClient.Do(req); err != nil || res.StatusCode != 401 {
		t.Errorf("bare token accepted: %v %v", res, err)
	}
}

func TestAPIBadRequests(t *testing.T) {
	tg := newTestGateway(t, Settings{})
	for _, tc := range []struct {
		method, path, body string
		field              string
	}{
		{"POST", "/api/devices", `{"id":"a","spec":`, "body"},
		{"POST", "/api/devices", `not json`, "body"},
		{"POST", "/api/devices", ``, "body"},
		{"POST", "/api/devices", `{"id":"a","spec":"sim","colour":"red"}`, "colour"},
		{"POST", "/api/devices", `{"id":7,"spec":"sim"}`, "id"},
		{"POST", "/api/devices", `{"id":"a b","spec":"sim"}`, "id"},
		{"POST", "/api/devices", `{"id":"a","spec":""}`, "spec"},
		{"POST", "/api/devices", `{"id":"a","spec":"nosuchdriver:x"}`, "spec"},
		{"POST", "/api/devices", `{"id":"a","spec":"auto"}`, "spec"},
		{"POST", "/api/devices", `{"id":"a","spec":"sim","interval":"500ms"}`, "interval"},
		{"POST", "/api/devices", `{"id":"a","spec":"sim"} {"id":"b"}`, "body"},
		{"POST", "/api/devices", `[1,2]`, "body"},
		{"POST", "/api/settings", `{"interval":"0.5s"}`, "interval"},
		{"POST", "/api/settings", `{"interval":"soon"}`, "body"},
		{"POST", "/api/settings", `{"interval":true}`, "body"},
		{"POST", "/api/settings", `{"http_url":"ftp://x"}`, "http_url"},
		{"POST", "/api/settings", `{"http_url":"http://"}`, "http_url"},
		{"POST", "/api/settings", `{"mqtt_url":"http://broker"}`, "mqtt_url"},
		{"POST", "/api/settings", `{"mqtt_user":"u"}`, "mqtt_url"},
		{"POST", "/api/settings", `{"devices":[{"id":"a","spec":"sim"},{"id":"a","spec":"sim"}]}`, "devices[1].id"},
		{"POST", "/api/settings", `{"devices":[{"id":"a","spec":"bogus"}]}`, "devices[0].spec"},
		{"POST", "/api/settings", `{"name":7}`, "name"},
		{"POST", "/api/settings", `{"queue_max_records":-1}`, "queue_max_records"},
		{"POST", "/api/settings", `{"token":"x"}`, "token"},
		{"DELETE", "/api/devices", ``, "id"},
		{"GET", "/api/readings?since=abc", ``, "since"},
		{"GET", "/api/readings?since=-1", ``, "since"},
		{"GET", "/api/readings?limit=0", ``, "limit"},
		{"GET", "/api/readings?limit=5000", ``, "limit"},
		{"GET", "/api/modbus?address=1", ``, "device"},
		{"GET", "/api/modbus?device=inv1", ``, "address"},
		{"GET", "/api/modbus?device=inv1&address=70000", ``, "address"},
		{"GET", "/api/modbus?device=inv1&address=1&count=0", ``, "count"},
		{"GET", "/api/modbus?device=inv1&address=1&count=126", ``, "count"},
		{"GET", "/api/modbus?device=inv1&address=65535&count=2", ``, "count"},
		{"GET", "/api/modbus?device=inv1&address=1&type=coil", ``, "type"},
		{"GET", "/api/modbus?device=inv1&address=1&unit=300", ``, "unit"},
		{"GET", "/api/devices/scan?hosts=127.0.0.1&ports=0", ``, "ports"},
		{"GET", "/api/devices/scan?hosts=127.0.0.1&units=999", ``, "units"},
		{"GET", "/api/devices/scan?hosts=127.0.0.1&timeout=forever", ``, "timeout"},
		{"GET", "/api/devices/scan?hosts=10.0.0.0/8", ``, "hosts"},
		{"GET", "/api/devices/scan?hosts=127.0.0.1:502", ``, "hosts"},
	} {
		code, doc := tg.call(t, tc.method, tc.path, tc.body, testToken)
		if code != http.StatusBadRequest || doc["field"] != tc.field || doc["error"] == "" {
			t.Errorf("%s %s %s: %d %v, want 400 naming field %q", tc.method, tc.path, tc.body, code, doc, tc.field)
		}
	}
	// A body that is too large.
	big := `{"id":"a","spec":"sim","x":"` + strings.Repeat("a", maxBody) + `"}`
	if code, doc := tg.call(t, "POST", "/api/devices", big, testToken); code != 400 || doc["field"] != "body" {
		t.Errorf("huge body: %d %v", code, doc)
	}
	// The wrong content type.
	req, _ := http.NewRequest("POST", tg.srv.URL+"/api/devices", strings.NewReader(`{"id":"a","spec":"sim"}`))
	req.Header.Set("Authorization", "Bearer "+testToken)
	req.Header.Set("Content-Type", "text/plain")
	res, err := http.DefaultClient.Do(req)
	if err != nil || res.StatusCode != 400 {
		t.Errorf("text/plain body: %v %v", res, err)
	}
	if s := tg.g.settings(); len(s.Devices) != 1 || s.Interval.D() != time.Second || s.HTTPURL != "" {
		t.Errorf("settings changed by bad requests: %+v", s)
	}
}

func TestAPIDevices(t *testing.T) {
	tg := newTestGateway(t, Settings{})
	code, doc := tg.call(t, "POST", "/api/devices", map[string]any{"id": "roof", "spec": "sim?seed=7&profile=huawei", "interval": "2s"}, testToken)
	if code != http.StatusCreated || doc["id"] != "roof" || doc["interval"] != "2s" {
		t.Fatalf("POST /api/devices: %d %v", code, doc)
	}
	if code, doc := tg.call(t, "POST", "/api/devices", map[string]any{"id": "roof", "spec": "sim"}, testToken); code != http.StatusConflict || doc["field"] != "id" {
		t.Errorf("duplicate id: %d %v", code, doc)
	}
	code, doc = tg.call(t, "POST", "/api/devices", map[string]any{"spec": "sim?seed=8"}, testToken)
	if code != http.StatusCreated || doc["id"] == "" {
		t.Fatalf("POST without id: %d %v", code, doc)
	}
	auto := doc["id"].(string)
	waitFor(t, 15*time.Second, "the new devices to read", func() bool {
		a, b := tg.deviceState(t, "roof"), tg.deviceState(t, auto)
		return a != nil && b != nil && a["state"] == stateOK && b["state"] == stateOK
	})
	if info := tg.deviceState(t, "roof")["info"].(map[string]any); info["profile"] != "huawei" {
		t.Errorf("roof reads through %v, want the huawei profile", info["profile"])
	}
	// Persisted.
	s, _, err := loadSettings(tg.dir)
	if err != nil || len(s.Devices) != 3 || s.Devices[1].ID != "roof" || s.Devices[1].Interval.D() != 2*time.Second {
		t.Fatalf("settings file after POST: %+v %v", s, err)
	}
	if fi, err := os.Stat(filepath.Join(tg.dir, settingsFile)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("settings file mode: %v %v", fi, err)
	}

	if code, doc := tg.call(t, "DELETE", "/api/devices?id=roof", nil, testToken); code != 200 || doc["removed"] != "roof" {
		t.Errorf("DELETE ?id=roof: %d %v", code, doc)
	}
	if code, _ := tg.call(t, "DELETE", "/api/devices/"+auto, nil, testToken); code != 200 {
		t.Errorf("DELETE /api/devices/%s: %d", auto, code)
	}
	if code, doc := tg.call(t, "DELETE", "/api/devices", `{"id":"nope"}`, testToken); code != 404 || doc["field"] != "id" {
		t.Errorf("DELETE of a missing device: %d %v", code, doc)
	}
	if tg.deviceState(t, "roof") != nil {
		t.Error("removed device still in /api/state")
	}
	s, _, _ = loadSettings(tg.dir)
	if len(s.Devices) != 1 || s.Devices[0].ID != "inv1" {
		t.Errorf("settings file after DELETE: %+v", s.Devices)
	}
	_, doc = tg.call(t, "GET", "/api/devices", nil, "")
	if devs := doc["devices"].([]any); len(devs) != 1 {
		t.Errorf("GET /api/devices after DELETE: %v", devs)
	}
}

func TestAPISettings(t *testing.T) {
	rcv, rsrv := newReceiver(t)
	tg := newTestGateway(t, Settings{MQTTURL: "", Name: "garage"})
	rcv.setKey(publicKey(t, tg.srv.URL))
	if _, doc := tg.call(t, "GET", "/api/name", nil, ""); doc["name"] != "garage" {
		t.Errorf("name: %v", doc)
	}
	code, doc := tg.call(t, "POST", "/api/settings", map[string]any{"interval": "2s", "http_url": rsrv.URL, "name": "roof"}, testToken)
	if code != 200 || doc["restart_required"] != false {
		t.Fatalf("POST /api/settings: %d %v", code, doc)
	}
	if s := doc["settings"].(map[string]any); s["interval"] != "2s" || s["http_url"] != rsrv.URL {
		t.Errorf("settings answer: %v", s)
	}
	waitFor(t, 10*time.Second, "the device to run at 2s", func() bool {
		d := tg.deviceState(t, "inv1")
		return d != nil && d["interval"] == "2s" && d["state"] == stateOK
	})
	// The new HTTP sink delivers what was queued before it existed too.
	waitFor(t, 15*time.Second, "the new sink to deliver seq 1", func() bool { return rcv.has(1) })
	rcv.check(t, false)
	// Persisted, and the password is never shown.
	if code, _ := tg.call(t, "POST", "/api/settings", `{"mqtt_url":"mqtt://127.0.0.1:1","mqtt_password":"s3cret"}`, testToken); code != 200 {
		t.Fatalf("POST mqtt settings: %d", code)
	}
	_, doc = tg.call(t, "GET", "/api/settings", nil, "")
	if doc["mqtt_password"] != "********" {
		t.Errorf("GET /api/settings shows the password: %v", doc)
	}
	s, _, err := loadSettings(tg.dir)
	if err != nil || s.Interval.D() != 2*time.Second || s.HTTPURL != rsrv.URL || s.MQTTPassword != "s3cret" || s.Name != "roof" {
		t.Errorf("settings file: %+v %v", s, err)
	}
	_, st := tg.call(t, "GET", "/api/state", nil, "")
	if sinks := fmt.Sprint(st["sinks"]); !strings.Contains(sinks, "name:http") || !strings.Contains(sinks, "name:mqtt") {
		t.Errorf("sinks in /api/state: %s", sinks)
	}
	b, _ := json.Marshal(st)
	if strings.Contains(string(b), "s3cret") {
		t.Error("/api/state shows the MQTT password")
	}
}

func TestAPIModbus(t *testing.T) {
	tg := newTestGateway(t, Settings{Devices: []DeviceConfig{{ID: "ss", Spec: "sim?seed=3"}, {ID: "hw", Spec: "sim?seed=4&profile=huawei"}}})
	waitFor(t, 10*time.Second, "the devices to run", func() bool {
		return tg.g.harvester("ss").inverter() != nil && tg.g.harvester("hw").inverter() != nil
	})
	// The SunSpec marker "SunS" and the common model's id 1.
	code, doc := tg.call(t, "GET", "/api/modbus?device=ss&address=40000&count=3&type=holding", nil, testToken)
	if code != 200 || fmt.Sprint(doc["values"]) != "[21365 28243 1]" || fmt.Sprint(doc["hex"]) != "[0x5375 0x6e53 0x0001]" || num(doc["unit"]) != 1 {
		t.Errorf("SunSpec marker: %d %v", code, doc)
	}
	// The Huawei profile's registers equal what the simulator serves.
	sim, _ := siminverter.Sim(tg.g.harvester("hw").inverter())
	code, doc = tg.call(t, "GET", "/api/modbus?device=hw&address=30000&count=15", nil, testToken)
	if code != 200 || len(doc["values"].([]any)) != 15 {
		t.Errorf("huawei model registers: %d %v", code, doc)
	} else if num(doc["unit"]) != float64(sim.Unit()) {
		t.Errorf("unit %v, want the simulator's %d", doc["unit"], sim.Unit())
	}
	// A register the device does not have: the device's exception.
	code, doc = tg.call(t, "GET", "/api/modbus?device=ss&address=100&count=1", nil, testToken)
	if code != http.StatusUnprocessableEntity || !strings.Contains(fmt.Sprint(doc["error"]), "exception") {
		t.Errorf("undefined register: %d %v", code, doc)
	}
	if code, doc := tg.call(t, "GET", "/api/modbus?device=nope&address=1", nil, testToken); code != 404 || doc["field"] != "device" {
		t.Errorf("unknown device: %d %v", code, doc)
	}
}

func TestAPIScan(t *testing.T) {
	sim, err := siminverter.New(siminverter.Options{Seed: 9})
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	_, port, _ := strings.Cut(sim.Addr(), ":")
	tg := newTestGateway(t, Settings{})
	code, doc := tg.call(t, "GET", "/api/devices/scan?hosts=127.0.0.1&ports="+port+"&timeout=2s", nil, testToken)
	found, _ := doc["found"].([]any)
	if code != 200 || len(found) != 1 {
		t.Fatalf("scan: %d %v", code, doc)
	}
	f := found[0].(map[string]any)
	want := "sunspec+tcp://127.0.0.1:" + port + "?unit=1"
	if f["identified"] != true || f["spec"] != want {
		t.Errorf("scan found %v, want %s", f, want)
	}
	// The spec it found can be added as it is.
	if code, doc := tg.call(t, "POST", "/api/devices", map[string]any{"id": "found", "spec": want}, testToken); code != 201 {
		t.Fatalf("adding the scanned device: %d %v", code, doc)
	}
	waitFor(t, 10*time.Second, "the scanned device to read", func() bool {
		d := tg.deviceState(t, "found")
		return d != nil && d["state"] == stateOK
	})
	// Raw reads share the harvester's connection.
	if code, doc := tg.call(t, "GET", "/api/modbus?device=found&address=40000&count=2", nil, testToken); code != 200 || fmt.Sprint(doc["values"]) != "[21365 28243]" {
		t.Errorf("raw read of a tcp device: %d %v", code, doc)
	}
}
