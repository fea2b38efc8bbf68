package sink

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"

	"github.com/pikit/pikit/energy"
	"github.com/pikit/pikit/energy/store"
	"github.com/pikit/pikit/internal/realprog"
)

// mosquitto is a real broker run by a test, on a loopback port, with
// persistence in a temporary directory.
type mosquitto struct {
	t    *testing.T
	bin  string
	conf string
	port int
	out  *syncBuffer
	cmd  *exec.Cmd
	done chan struct{}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func startMosquitto(t *testing.T) *mosquitto {
	t.Helper()
	bin := realprog.Require(t, "mosquitto", "mosquitto")
	dir := t.TempDir()
	m := &mosquitto{t: t, bin: bin, port: freePort(t), out: &syncBuffer{}, conf: filepath.Join(dir, "mosquitto.conf")}
	conf := fmt.Sprintf("listener %d 127.0.0.1\nallow_anonymous true\npersistence true\npersistence_location %s/\nlog_dest stderr\nlog_type all\n", m.port, dir)
	if u, err := user.Current(); err == nil {
		// As root, mosquitto would switch to the "mosquitto" user, who
		// cannot write the test's directory.
		conf += "user " + u.Username + "\n"
	}
	if err := os.WriteFile(m.conf, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	m.start()
	t.Cleanup(func() {
		m.stop()
		if t.Failed() {
			t.Logf("mosquitto output:\n%s", m.out.String())
		}
	})
	return m
}

func (m *mosquitto) url() string { return "mqtt://127.0.0.1:" + strconv.Itoa(m.port) }

func (m *mosquitto) start() {
	m.t.Helper()
	cmd := exec.Command(m.bin, "-c", m.conf)
	cmd.Stdout, cmd.Stderr = m.out, m.out
	if err := cmd.Start(); err != nil {
		m.t.Fatal(err)
	}
	m.cmd, m.done = cmd, make(chan struct{})
	go func(done chan struct{}) { cmd.Wait(); close(done) }(m.done)
	waitFor(m.t, "mosquitto to listen", 20*time.Second, func() bool {
		select {
		case <-m.done:
			m.t.Fatalf("mosquitto exited: %s", m.out.String())
		default:
		}
		c, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(m.port))
		if err != nil {
			return false
		}
		c.Close()
		return true
	})
}

// stop ends the broker cleanly (SIGTERM: it saves its persistence file).
func (m *mosquitto) stop() {
	if m.cmd == nil {
		return
	}
	m.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-m.done:
	case <-time.After(20 * time.Second):
		m.cmd.Process.Kill()
		<-m.done
	}
	m.cmd = nil
}

// subscriber is a test MQTT client that records what it receives.
type subscriber struct {
	cm *autopaho.ConnectionManager

	mu   sync.Mutex
	msgs []received
}

type received struct {
	topic   string
	payload []byte
	qos     byte
	retain  bool
}

// subscribe connects a client to url and subscribes to filter at QoS 1.
// With a persistent session, the broker keeps the subscription and queues
// messages while the client is away (across broker restarts, given
// persistence).
func subscribe(t *testing.T, brokerURL, clientID, filter string, persistent bool) *subscriber {
	t.Helper()
	u, _ := url.Parse(brokerURL)
	s := &subscriber{}
	subscribed := make(chan struct{}, 1)
	cfg := autopaho.ClientConfig{
		ServerUrls:                    []*url.URL{u},
		KeepAlive:                     10,
		CleanStartOnInitialConnection: !persistent,
		ReconnectBackoff:              autopaho.NewConstantBackoff(50 * time.Millisecond),
		OnConnectionUp: func(cm *autopaho.ConnectionManager, _ *paho.Connack) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if _, err := cm.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: filter, QoS: 1}}}); err != nil {
				t.Logf("subscribe: %v", err)
				return
			}
			select {
			case subscribed <- struct{}{}:
			default:
			}
		},
		ClientConfig: paho.ClientConfig{
			ClientID: clientID,
			OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(pr paho.PublishReceived) (bool, error) {
				s.mu.Lock()
				s.msgs = append(s.msgs, received{pr.Packet.Topic, bytes.Clone(pr.Packet.Payload), pr.Packet.QoS, pr.Packet.Retain})
				s.mu.Unlock()
				return true, nil
			}},
		},
	}
	if persistent {
		cfg.SessionExpiryInterval = 3600
	}
	ctx, cancel := context.WithCancel(context.Background())
	cm, err := autopaho.NewConnection(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	s.cm = cm
	t.Cleanup(func() {
		dctx, dcancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer dcancel()
		cm.Disconnect(dctx)
		cancel()
	})
	select {
	case <-subscribed:
	case <-time.After(20 * time.Second):
		t.Fatal("subscriber did not subscribe")
	}
	return s
}

func (s *subscriber) messages() []received {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]received(nil), s.msgs...)
}

// seqs returns how often each seq arrived on topics with the given suffix.
func (s *subscriber) seqs(t *testing.T) map[uint64]int {
	out := map[uint64]int{}
	for _, m := range s.messages() {
		if !strings.HasSuffix(m.topic, "/reading") {
			continue
		}
		var v struct {
			Seq uint64 `json:"seq"`
		}
		if err := json.Unmarshal(m.payload, &v); err != nil {
			t.Errorf("payload on %s: %v: %s", m.topic, err, m.payload)
			continue
		}
		out[v.Seq]++
	}
	return out
}

func hasSeqs(got map[uint64]int, n int) bool {
	for s := uint64(1); s <= uint64(n); s++ {
		if got[s] == 0 {
			return false
		}
	}
	return true
}

func reading(serial string, i int) []byte {
	r := energy.Reading{
		Time:        time.Now().UTC(),
		Device:      energy.Info{Manufacturer: "Fronius", Model: "Symo 10.0-3-M", Serial: serial, Profile: "sunspec", Kind: "inverter"},
		ACPower:     energy.Some(float64(1000 + i)),
		EnergyTotal: energy.Some(float64(5_000_000 + i)),
		Frequency:   energy.Some(50),
		Phases: []energy.Phase{
			{Voltage: energy.Some(230), Current: energy.Some(1.5), Power: energy.Some(345)},
		},
		State: "mppt",
	}
	b, err := json.Marshal(r)
	if err != nil {
		panic(err)
	}
	return b
}

func appendReadings(t *testing.T, q *store.Queue, serials []string, n int) {
	t.Helper()
	for i := range n {
		serial := serials[i%len(serials)]
		if _, err := q.Append(store.Record{Device: "sunspec+tcp://" + serial, Data: reading(serial, i)}); err != nil {
			t.Fatal(err)
		}
	}
}

func newMQTT(t *testing.T, opts MQTTOptions) *MQTT {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	m, err := NewMQTT(ctx, opts)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cctx, ccancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer ccancel()
		m.Close(cctx)
		cancel()
	})
	return m
}

func TestMQTTMosquitto(t *testing.T) {
	b := startMosquitto(t)
	sub := subscribe(t, b.url(), "test-readings", "pikit/#", false)

	q := openQueue(t, "mqtt")
	m := newMQTT(t, MQTTOptions{URL: b.url(), Device: "GW123", Discovery: true, MaxReconnect: 2 * time.Second})
	f := NewForwarder(q, m, ForwarderOptions{Batch: 7, MinBackoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond})
	runForwarder(t, f)

	serials := []string{"INV1", "INV/2"}
	appendReadings(t, q, serials, 30)
	waitFor(t, "every reading at the subscriber", 60*time.Second, func() bool { return hasSeqs(sub.seqs(t), 30) })
	waitFor(t, "empty backlog", 10*time.Second, func() bool { return f.Status().Backlog == 0 })

	perTopic := map[string][]uint64{}
	for _, msg := range sub.messages() {
		if !strings.HasSuffix(msg.topic, "/reading") {
			continue
		}
		if msg.qos != 1 {
			t.Errorf("reading on %s at QoS %d, want 1", msg.topic, msg.qos)
		}
		var v struct {
			Seq     uint64  `json:"seq"`
			ACPower float64 `json:"ac_power_w"`
			Device  struct{ Serial string }
		}
		if err := json.Unmarshal(msg.payload, &v); err != nil {
			t.Fatal(err)
		}
		if v.ACPower != float64(1000+int(v.Seq)-1) {
			t.Errorf("seq %d carries ac_power_w %v", v.Seq, v.ACPower)
		}
		perTopic[msg.topic] = append(perTopic[msg.topic], v.Seq)
	}
	if len(perTopic) != 2 || len(perTopic["pikit/GW123/INV1/reading"]) == 0 || len(perTopic["pikit/GW123/INV_2/reading"]) == 0 {
		t.Fatalf("topics %v", perTopic)
	}
	for topic, seqs := range perTopic {
		for i := 1; i < len(seqs); i++ {
			if seqs[i] <= seqs[i-1] {
				t.Errorf("%s: readings out of order: %v", topic, seqs)
			}
		}
	}

	// A late subscriber still gets the retained discovery configs and
	// the availability.
	late := subscribe(t, b.url(), "test-late", "homeassistant/#", false)
	configs := map[string]map[string]any{}
	waitFor(t, "retained discovery configs", 20*time.Second, func() bool {
		for _, msg := range late.messages() {
			var c map[string]any
			if err := json.Unmarshal(msg.payload, &c); err != nil {
				t.Fatalf("config on %s: %v", msg.topic, err)
			}
			if !msg.retain {
				t.Errorf("config on %s not retained", msg.topic)
			}
			configs[msg.topic] = c
		}
		// 2 inverters × (ac power, energy, frequency, 3 phase values, state)
		return len(configs) == 14
	})
	ac := configs["homeassistant/sensor/pikit_GW123_INV1/ac_power_w/config"]
	if ac == nil {
		t.Fatalf("no ac_power_w config; got %v", keys(configs))
	}
	want := map[string]any{
		"name": "AC power", "unique_id": "pikit_GW123_INV1_ac_power_w", "state_topic": "pikit/GW123/INV1/reading",
		"value_template": "{{ value_json.ac_power_w }}", "unit_of_measurement": "W", "device_class": "power",
		"state_class": "measurement", "availability_topic": "pikit/GW123/status",
	}
	for k, v := range want {
		if ac[k] != v {
			t.Errorf("ac_power_w config %s = %v, want %v", k, ac[k], v)
		}
	}
	dev, _ := ac["device"].(map[string]any)
	if fmt.Sprint(dev["identifiers"]) != "[pikit_INV1]" || dev["manufacturer"] != "Fronius" || dev["model"] != "Symo 10.0-3-M" || dev["name"] != "Fronius Symo 10.0-3-M INV1" {
		t.Errorf("device %v", dev)
	}
	en := configs["homeassistant/sensor/pikit_GW123_INV_2/energy_total_wh/config"]
	if en["state_class"] != "total_increasing" || en["device_class"] != "energy" || en["unit_of_measurement"] != "Wh" || en["state_topic"] != "pikit/GW123/INV_2/reading" {
		t.Errorf("energy config %v (configs %v)", en, keys(configs))
	}
	ph := configs["homeassistant/sensor/pikit_GW123_INV1/phase1_voltage_v/config"]
	if ph["value_template"] != "{{ value_json.phases[0].voltage_v }}" || ph["device_class"] != "voltage" {
		t.Errorf("phase config %v", ph)
	}

	status := subscribe(t, b.url(), "test-status", "pikit/GW123/status", false)
	waitFor(t, "retained online status", 20*time.Second, func() bool {
		msgs := status.messages()
		return len(msgs) > 0 && string(msgs[len(msgs)-1].payload) == "online"
	})
	cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := m.Close(cctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "offline status after Close", 20*time.Second, func() bool {
		msgs := status.messages()
		return len(msgs) > 0 && string(msgs[len(msgs)-1].payload) == "offline"
	})
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func TestMQTTBrokerRestart(t *testing.T) {
	b := startMosquitto(t)
	// A persistent session: the broker keeps the subscription and the
	// undelivered messages across its restart.
	sub := subscribe(t, b.url(), "test-restart", "pikit/+/+/reading", true)

	q := openQueue(t, "mqtt")
	m := newMQTT(t, MQTTOptions{URL: b.url(), Device: "GW9", Discovery: true, ConnectWait: 200 * time.Millisecond, MaxReconnect: 2 * time.Second})
	f := NewForwarder(q, m, ForwarderOptions{Batch: 5, MinBackoff: 20 * time.Millisecond, MaxBackoff: 300 * time.Millisecond})
	runForwarder(t, f)

	serials := []string{"A1", "B2", "C3"}
	appendReadings(t, q, serials, 20)
	// Stop the broker while the forwarder is still busy with these.
	waitFor(t, "the first readings at the subscriber", 60*time.Second, func() bool { return len(sub.seqs(t)) >= 3 })
	b.stop()
	// Readings taken while the broker is down stay queued.
	for i := 20; i < 40; i++ {
		if _, err := q.Append(store.Record{Device: "x", Data: reading(serials[i%3], i)}); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "delivery failures", 30*time.Second, func() bool { st := f.Status(); return st.Failures > 0 && st.LastErr != "" })
	if n, _ := q.Backlog("mqtt"); n == 0 {
		t.Fatal("backlog empty while the broker is down")
	}

	b.start()
	waitFor(t, "every reading at the subscriber after the restart", 90*time.Second, func() bool { return hasSeqs(sub.seqs(t), 40) })
	waitFor(t, "empty backlog", 30*time.Second, func() bool { return f.Status().Backlog == 0 })
	if st := f.Status(); st.Failures != 0 || st.LastOK.IsZero() {
		t.Fatalf("status after recovery %+v", st)
	}
	dups := 0
	for _, n := range sub.seqs(t) {
		dups += n - 1
	}
	t.Logf("40 readings, %d duplicates at the subscriber", dups)
}

func TestMQTTNotConnected(t *testing.T) {
	m := newMQTT(t, MQTTOptions{URL: "mqtt://127.0.0.1:" + strconv.Itoa(freePort(t)), Device: "GW", ConnectWait: 100 * time.Millisecond})
	if m.Connected() {
		t.Fatal("connected to nothing")
	}
	err := m.Deliver(context.Background(), []store.Record{{Seq: 1, Data: []byte(`{}`)}})
	if err == nil || !strings.Contains(err.Error(), "not connected") {
		t.Fatalf("Deliver = %v, want a not-connected error", err)
	}
}

func TestNewMQTTErrors(t *testing.T) {
	for _, o := range []MQTTOptions{
		{URL: "mqtt://127.0.0.1:1883"}, // no device
		{URL: "http://127.0.0.1", Device: "d"},
		{URL: "mqtt://", Device: "d"},
		{URL: "mqtt://127.0.0.1", Device: "d", TLS: &tls.Config{}}, // TLS without mqtts://
	} {
		if _, err := NewMQTT(context.Background(), o); err == nil {
			t.Errorf("NewMQTT(%+v) succeeded", o)
		}
	}
}

func TestWithSeq(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`{"a":1}`, `{"seq":7,"a":1}`},
		{` { "a" : 1 } `, `{"seq":7,"a" : 1 }`},
		{`{}`, `{"seq":7}`},
		{`[1]`, `{"seq":7,"data":[1]}`},
		{`oops`, `{"seq":7,"data":"oops"}`},
		{``, `{"seq":7,"data":""}`},
	} {
		got := string(withSeq([]byte(tc.in), 7))
		if got != tc.want {
			t.Errorf("withSeq(%q) = %s, want %s", tc.in, got, tc.want)
		}
		if !json.Valid([]byte(got)) {
			t.Errorf("withSeq(%q) = %s: invalid JSON", tc.in, got)
		}
	}
}

func TestSensors(t *testing.T) {
	r := energy.Reading{
		ACPower: energy.Some(1), EnergyTotal: energy.Some(2), Temperature: energy.Some(40),
		DC: []energy.DCInput{{Voltage: energy.Some(400)}},
	}
	var objs []string
	for _, s := range Sensors(r) {
		objs = append(objs, s.Object+"="+s.Path)
	}
	want := "[ac_power_w=ac_power_w energy_total_wh=energy_total_wh temperature_c=temperature_c dc1_voltage_v=dc[0].voltage_v]"
	if fmt.Sprint(objs) != want {
		t.Fatalf("sensors %v, want %s", objs, want)
	}
}

func TestTopicSegment(t *testing.T) {
	for in, want := range map[string][2]string{
		"":          {"unknown", "unknown"},
		"AB-12_x":   {"AB-12_x", "AB-12_x"},
		"a/b+c#d":   {"a_b_c_d", "a_b_c_d"},
		"a b.c\x00": {"a b.c_", "a_b_c_"},
	} {
		if got := topicSegment(in, false); got != want[0] {
			t.Errorf("topicSegment(%q, false) = %q, want %q", in, got, want[0])
		}
		if got := topicSegment(in, true); got != want[1] {
			t.Errorf("topicSegment(%q, true) = %q, want %q", in, got, want[1])
		}
	}
}
