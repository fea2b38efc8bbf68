package sink

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"

	"github.com/pikit/pikit/energy"
	"github.com/pikit/pikit/energy/store"
)

var errConnectionLost = errors.New("connection to the broker lost")

// Defaults for MQTTOptions.
const (
	DefaultMQTTName        = "mqtt"
	DefaultDiscoveryPrefix = "homeassistant"
	DefaultKeepAlive       = 30 * time.Second
	DefaultConnectWait     = 5 * time.Second
	DefaultPublishTimeout  = 30 * time.Second
	DefaultMaxReconnect    = time.Minute
)

// MQTTOptions configures an MQTT sink.
type MQTTOptions struct {
	// Name is the sink's name (default DefaultMQTTName).
	Name string
	// URL is the broker: mqtt://host[:1883] or, with TLS,
	// mqtts://host[:8883]. ws:// and wss:// (MQTT over WebSocket) work too.
	URL string
	// Username and Password authenticate to the broker (optional).
	Username, Password string
	// TLS configures mqtts:// and wss:// connections (default: system
	// roots, server name from the URL). Setting it with a plain mqtt:// URL
	// is an error, so that a forgotten "s" cannot send credentials in the
	// clear.
	TLS *tls.Config
	// ClientID is the MQTT client identifier (default "pikit-" + Device).
	ClientID string
	// Device is the gateway's serial, the second level of the default
	// topics (required).
	Device string
	// Discovery publishes Home Assistant MQTT discovery configs (retained)
	// for each inverter's sensors, so they appear in Home Assistant by
	// themselves. Configs are sent before an inverter's first reading on
	// every connection, and when a reading carries a value not announced
	// yet.
	Discovery bool
	// DiscoveryPrefix is Home Assistant's discovery prefix (default
	// DefaultDiscoveryPrefix).
	DiscoveryPrefix string
	// Topic returns a record's topic (default
	// pikit/<Device>/<inverter serial>/reading, the serial taken from the
	// reading, else Record.Device). Discovery configs point at it.
	Topic func(rec store.Record) string
	// KeepAlive is the MQTT keep-alive (default DefaultKeepAlive).
	KeepAlive time.Duration
	// ConnectWait is how long Deliver waits for a connection to come up
	// before failing (default DefaultConnectWait).
	ConnectWait time.Duration
	// PublishTimeout bounds the wait for one PUBACK (default
	// DefaultPublishTimeout).
	PublishTimeout time.Duration
	// MaxReconnect caps the exponential backoff between connection
	// attempts (default DefaultMaxReconnect; the first retry comes after
	// about a second).
	MaxReconnect time.Duration
	// Logger, if set, receives connection changes and errors.
	Logger *slog.Logger
}

// MQTT is a sink that publishes each reading to an MQTT broker at QoS 1.
//
// The reading's JSON is published with its sequence number added as
// "seq" (so subscribers can de-duplicate), not retained. Deliver returns
// only once the broker acknowledged (PUBACK) every record; while the
// broker is unreachable it fails, and the Forwarder sends the records
// again later: at-least-once. Readings of one inverter are published in
// order, different inverters concurrently.
//
// The availability topic pikit/<Device>/status is "online" (retained)
// while connected and "offline" (the retained last will) otherwise.
type MQTT struct {
	opts   MQTTOptions
	log    *slog.Logger
	cm     *autopaho.ConnectionManager
	status string // availability topic

	mu        sync.Mutex
	gen       uint64                // connection generation, bumped on every connection
	connected bool                  // as last reported by autopaho's callbacks
	up        chan struct{}         // closed while connected
	down      chan struct{}         // closed while not connected
	connErr   error                 // last connection error
	announced map[string]*announced // by discovery node id
}

type announced struct {
	gen     uint64
	objects map[string]bool
}

// NewMQTT starts connecting to the broker in the background and returns
// the sink. The connection is kept up (reconnecting as needed) until ctx
// is done or Close is called.
func NewMQTT(ctx context.Context, opts MQTTOptions) (*MQTT, error) {
	if opts.Device == "" {
		return nil, errors.New("sink: mqtt: Device (the gateway serial) is required")
	}
	u, err := url.Parse(opts.URL)
	if err != nil {
		return nil, fmt.Errorf("sink: mqtt: bad URL: %w", err)
	}
	tlsScheme := false
	switch strings.ToLower(u.Scheme) {
	case "mqtt", "tcp", "ws":
	case "mqtts", "ssl", "tls", "wss":
		tlsScheme = true
	default:
		return nil, fmt.Errorf("sink: mqtt: URL %q: scheme must be mqtt:// or mqtts://", redact(opts.URL))
	}
	if u.Hostname() == "" {
		return nil, fmt.Errorf("sink: mqtt: URL %q has no host", redact(opts.URL))
	}
	if opts.TLS != nil && !tlsScheme {
		return nil, fmt.Errorf("sink: mqtt: TLS configured but URL %q is not mqtts://", redact(opts.URL))
	}
	if u.Port() == "" {
		port := "1883"
		switch strings.ToLower(u.Scheme) {
		case "mqtts", "ssl", "tls":
			port = "8883"
		case "ws":
			port = "80"
		case "wss":
			port = "443"
		}
		u.Host = net.JoinHostPort(u.Hostname(), port)
	}
	if u.User != nil { // credentials in the URL, unless given explicitly
		if opts.Username == "" {
			opts.Username = u.User.Username()
		}
		if p, ok := u.User.Password(); ok && opts.Password == "" {
			opts.Password = p
		}
		u.User = nil
	}
	if opts.Name == "" {
		opts.Name = DefaultMQTTName
	}
	if opts.ClientID == "" {
		opts.ClientID = "pikit-" + opts.Device
	}
	if opts.DiscoveryPrefix == "" {
		opts.DiscoveryPrefix = DefaultDiscoveryPrefix
	}
	if opts.KeepAlive <= 0 {
		opts.KeepAlive = DefaultKeepAlive
	}
	if opts.ConnectWait <= 0 {
		opts.ConnectWait = DefaultConnectWait
	}
	if opts.PublishTimeout <= 0 {
		opts.PublishTimeout = DefaultPublishTimeout
	}
	if opts.MaxReconnect <= 0 {
		opts.MaxReconnect = DefaultMaxReconnect
	}
	opts.MaxReconnect = max(opts.MaxReconnect, 2*time.Second)
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m := &MQTT{
		opts:      opts,
		log:       log.With("sink", opts.Name),
		status:    "pikit/" + topicSegment(opts.Device, false) + "/status",
		announced: map[string]*announced{},
		up:        make(chan struct{}),
		down:      make(chan struct{}),
	}
	close(m.down)
	if m.opts.Topic == nil {
		m.opts.Topic = m.defaultTopic
	}

	cfg := autopaho.ClientConfig{
		ServerUrls:                    []*url.URL{u},
		TlsCfg:                        opts.TLS,
		KeepAlive:                     uint16(min(opts.KeepAlive/time.Second, 65535)),
		CleanStartOnInitialConnection: true, // the queue, not the MQTT session, holds what is unacknowledged
		SessionExpiryInterval:         0,
		ReconnectBackoff:              autopaho.NewExponentialBackoff(500*time.Millisecond, opts.MaxReconnect, time.Second, 2),
		ConnectTimeout:                opts.ConnectWait * 2,
		ConnectUsername:               opts.Username,
		ConnectPassword:               []byte(opts.Password),
		WillMessage: &paho.WillMessage{
			Retain: true, QoS: 1, Topic: m.status, Payload: []byte("offline"),
		},
		OnConnectionUp: m.connectionUp,
		OnConnectError: func(err error) {
			m.mu.Lock()
			m.connErr = err
			m.mu.Unlock()
			m.log.Warn("sink: mqtt connection attempt failed", "err", err)
		},
		Errors:     slogPrinter{m.log},
		PahoErrors: slogPrinter{m.log},
		ClientConfig: paho.ClientConfig{
			ClientID:      opts.ClientID,
			PacketTimeout: opts.PublishTimeout,
			OnClientError: func(err error) {
				m.connectionLost()
				m.log.Warn("sink: mqtt connection lost", "err", err)
			},
			OnServerDisconnect: func(d *paho.Disconnect) {
				m.connectionLost()
				m.log.Warn("sink: mqtt broker disconnected", "reason", d.ReasonCode)
			},
		},
	}
	if opts.Username == "" {
		cfg.ConnectUsername, cfg.ConnectPassword = "", nil
	}
	cm, err := autopaho.NewConnection(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("sink: mqtt: %w", err)
	}
	m.cm = cm
	return m, nil
}

// connectionUp is called by autopaho (in its connection loop) once a
// connection is established.
func (m *MQTT) connectionUp(cm *autopaho.ConnectionManager, _ *paho.Connack) {
	m.mu.Lock()
	m.gen++
	m.connErr = nil
	if !m.connected {
		m.connected = true
		close(m.up)
		m.down = make(chan struct{})
	}
	m.mu.Unlock()
	m.log.Info("sink: mqtt connected", "url", redact(m.opts.URL))
	go func() { // not in autopaho's loop: it would wait for the PUBACK
		ctx, cancel := context.WithTimeout(context.Background(), m.opts.PublishTimeout)
		defer cancel()
		if _, err := cm.Publish(ctx, &paho.Publish{QoS: 1, Retain: true, Topic: m.status, Payload: []byte("online")}); err != nil {
			m.log.Warn("sink: mqtt availability not published", "err", err)
		}
	}()
}

// connectionLost is called when the connection drops. paho does not end
// the Publish calls waiting for a PUBACK that will never come (with a
// clean session it forgets them), so Deliver cancels them when m.down is
// closed.
func (m *MQTT) connectionLost() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.connected {
		m.connected = false
		close(m.down)
		m.up = make(chan struct{})
	}
}

// Name implements Sink.
func (m *MQTT) Name() string { return m.opts.Name }

// Close publishes "offline" on the availability topic (if connected) and
// disconnects from the broker.
func (m *MQTT) Close(ctx context.Context) error {
	if m.Connected() {
		pctx, cancel := context.WithTimeout(ctx, m.opts.PublishTimeout)
		_, _ = m.cm.Publish(pctx, &paho.Publish{QoS: 1, Retain: true, Topic: m.status, Payload: []byte("offline")})
		cancel()
	}
	m.connectionLost()
	return m.cm.Disconnect(ctx)
}

// Connected reports whether the connection to the broker is up.
func (m *MQTT) Connected() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.connected
}

// Deliver implements Sink: it publishes every record at QoS 1 and returns
// once all were acknowledged.
func (m *MQTT) Deliver(ctx context.Context, recs []store.Record) error {
	if len(recs) == 0 {
		return nil
	}
	m.mu.Lock()
	up := m.up
	m.mu.Unlock()
	t := time.NewTimer(m.opts.ConnectWait)
	select {
	case <-up:
		t.Stop()
	case <-ctx.Done():
		t.Stop()
		return ctx.Err()
	case <-t.C:
		m.mu.Lock()
		cerr := m.connErr
		m.mu.Unlock()
		if cerr != nil {
			return fmt.Errorf("sink: %s: not connected to the broker: %w", m.opts.Name, cerr)
		}
		return fmt.Errorf("sink: %s: not connected to the broker", m.opts.Name)
	}
	m.mu.Lock()
	down := m.down
	m.mu.Unlock()

	// Group by topic, keeping order within each.
	type group struct {
		topic string
		msgs  []message
	}
	var groups []*group
	byTopic := map[string]*group{}
	for _, r := range recs {
		msg := m.message(r)
		g := byTopic[msg.topic]
		if g == nil {
			g = &group{topic: msg.topic}
			byTopic[msg.topic] = g
			groups = append(groups, g)
		}
		g.msgs = append(g.msgs, msg)
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	go func() { // end waits for PUBACKs when the connection drops
		select {
		case <-down:
			cancel(errConnectionLost)
		case <-ctx.Done():
		}
	}()
	errs := make(chan error, len(groups))
	for _, g := range groups {
		go func() {
			for _, msg := range g.msgs {
				if err := m.publishOne(ctx, msg); err != nil {
					if c := context.Cause(ctx); c == errConnectionLost {
						err = fmt.Errorf("%w (%w)", err, c)
					}
					errs <- err
					cancel(err) // no point continuing: the batch is sent again
					return
				}
			}
			errs <- nil
		}()
	}
	var first error
	for range groups {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	return first
}

// message is one record prepared for publishing.
type message struct {
	seq     uint64
	topic   string
	payload []byte
	reading *energy.Reading // nil if Data is not a Reading
	serial  string          // inverter serial (or Record.Device)
}

func (m *MQTT) message(r store.Record) message {
	msg := message{seq: r.Seq, serial: r.Device}
	var rd energy.Reading
	if err := json.Unmarshal(r.Data, &rd); err == nil {
		msg.reading = &rd
		if rd.Device.Serial != "" {
			msg.serial = rd.Device.Serial
		}
	}
	msg.topic = m.opts.Topic(r)
	msg.payload = withSeq(r.Data, r.Seq)
	return msg
}

func (m *MQTT) defaultTopic(r store.Record) string {
	serial := r.Device
	var rd struct {
		Device struct {
			Serial string `json:"serial"`
		} `json:"device"`
	}
	if json.Unmarshal(r.Data, &rd) == nil && rd.Device.Serial != "" {
		serial = rd.Device.Serial
	}
	return "pikit/" + topicSegment(m.opts.Device, false) + "/" + topicSegment(serial, false) + "/reading"
}

// withSeq returns data (a JSON object) with "seq" added as its first
// member; data that is not an object is wrapped as {"seq":N,"data":...}.
func withSeq(data []byte, seq uint64) []byte {
	trimmed := strings.TrimSpace(string(data))
	out := []byte(`{"seq":`)
	out = strconv.AppendUint(out, seq, 10)
	if strings.HasPrefix(trimmed, "{") && json.Valid(data) {
		rest := strings.TrimSpace(trimmed[1:])
		if rest != "}" {
			out = append(out, ',')
		}
		return append(out, rest...)
	}
	if !json.Valid(data) {
		data, _ = json.Marshal(string(data))
	}
	out = append(out, `,"data":`...)
	out = append(out, data...)
	return append(out, '}')
}

func (m *MQTT) publishOne(ctx context.Context, msg message) error {
	if m.opts.Discovery && msg.reading != nil {
		if err := m.announce(ctx, msg); err != nil {
			return err
		}
	}
	return m.publish(ctx, &paho.Publish{QoS: 1, Topic: msg.topic, Payload: msg.payload})
}

func (m *MQTT) publish(ctx context.Context, p *paho.Publish) error {
	ctx, cancel := context.WithTimeout(ctx, m.opts.PublishTimeout)
	defer cancel()
	resp, err := m.cm.Publish(ctx, p)
	if err != nil {
		return fmt.Errorf("sink: %s: publish %s: %w", m.opts.Name, p.Topic, err)
	}
	if resp != nil && resp.ReasonCode >= 0x80 {
		return fmt.Errorf("sink: %s: publish %s: broker refused (reason code %#x)", m.opts.Name, p.Topic, resp.ReasonCode)
	}
	return nil
}

// announce publishes the discovery configs of msg's sensors that were not
// published on the current connection yet.
func (m *MQTT) announce(ctx context.Context, msg message) error {
	node := topicSegment("pikit_"+m.opts.Device+"_"+msg.serial, true)
	sensors := Sensors(*msg.reading)
	m.mu.Lock()
	gen := m.gen
	a := m.announced[node]
	if a == nil || a.gen != gen {
		a = &announced{gen: gen, objects: map[string]bool{}}
		m.announced[node] = a
	}
	var todo []Sensor
	for _, s := range sensors {
		if !a.objects[s.Object] {
			todo = append(todo, s)
		}
	}
	m.mu.Unlock()
	if len(todo) == 0 {
		return nil
	}
	dev := discoveryDevice{
		Identifiers:  []string{topicSegment("pikit_"+msg.serial, true)},
		Manufacturer: msg.reading.Device.Manufacturer,
		Model:        msg.reading.Device.Model,
		Name:         deviceName(msg.reading.Device, msg.serial),
		SerialNumber: msg.serial,
		SWVersion:    msg.reading.Device.Version,
	}
	for _, s := range todo {
		cfg := discoveryConfig{
			Name:                s.Name,
			UniqueID:            node + "_" + s.Object,
			StateTopic:          msg.topic,
			ValueTemplate:       "{{ value_json." + s.Path + " }}",
			Unit:                s.Unit,
			DeviceClass:         s.DeviceClass,
			StateClass:          s.StateClass,
			AvailabilityTopic:   m.status,
			PayloadAvailable:    "online",
			PayloadNotAvailable: "offline",
			Device:              dev,
		}
		payload, err := json.Marshal(cfg)
		if err != nil {
			return err
		}
		topic := m.opts.DiscoveryPrefix + "/sensor/" + node + "/" + s.Object + "/config"
		if err := m.publish(ctx, &paho.Publish{QoS: 1, Retain: true, Topic: topic, Payload: payload}); err != nil {
			return err
		}
	}
	m.mu.Lock()
	if a.gen == m.gen {
		for _, s := range todo {
			a.objects[s.Object] = true
		}
	}
	m.mu.Unlock()
	return nil
}

func deviceName(info energy.Info, serial string) string {
	name := strings.TrimSpace(info.Manufacturer + " " + info.Model)
	if name == "" {
		name = "Inverter"
		if info.Kind == "meter" {
			name = "Meter"
		}
	}
	return name + " " + serial
}

// discoveryConfig is a Home Assistant MQTT sensor discovery payload.
type discoveryConfig struct {
	Name                string          `json:"name"`
	UniqueID            string          `json:"unique_id"`
	StateTopic          string          `json:"state_topic"`
	ValueTemplate       string          `json:"value_template"`
	Unit                string          `json:"unit_of_measurement,omitempty"`
	DeviceClass         string          `json:"device_class,omitempty"`
	StateClass          string          `json:"state_class,omitempty"`
	AvailabilityTopic   string          `json:"availability_topic"`
	PayloadAvailable    string          `json:"payload_available"`
	PayloadNotAvailable string          `json:"payload_not_available"`
	Device              discoveryDevice `json:"device"`
}

type discoveryDevice struct {
	Identifiers  []string `json:"identifiers"`
	Manufacturer string   `json:"manufacturer,omitempty"`
	Model        string   `json:"model,omitempty"`
	Name         string   `json:"name"`
	SerialNumber string   `json:"serial_number,omitempty"`
	SWVersion    string   `json:"sw_version,omitempty"`
}

// Sensor describes one Home Assistant sensor of a reading.
type Sensor struct {
	// Object is the discovery object id ("ac_power_w", "phase1_voltage_v").
	Object string
	// Name is the sensor's name within its device ("AC power").
	Name string
	// Path locates the value in the reading's JSON ("ac_power_w",
	// "phases[0].voltage_v"); the value template is
	// {{ value_json.<Path> }}.
	Path                          string
	Unit, DeviceClass, StateClass string
}

// Sensors returns the Home Assistant sensors for the values r carries
// (missing values get no sensor).
func Sensors(r energy.Reading) []Sensor {
	var out []Sensor
	add := func(v energy.Value, object, name, path, unit, class, state string) {
		if v.OK {
			out = append(out, Sensor{Object: object, Name: name, Path: path, Unit: unit, DeviceClass: class, StateClass: state})
		}
	}
	add(r.ACPower, "ac_power_w", "AC power", "ac_power_w", "W", "power", "measurement")
	add(r.DCPower, "dc_power_w", "DC power", "dc_power_w", "W", "power", "measurement")
	add(r.EnergyTotal, "energy_total_wh", "Energy total", "energy_total_wh", "Wh", "energy", "total_increasing")
	add(r.Frequency, "frequency_hz", "Frequency", "frequency_hz", "Hz", "frequency", "measurement")
	add(r.Temperature, "temperature_c", "Temperature", "temperature_c", "°C", "temperature", "measurement")
	for i, p := range r.Phases {
		n := strconv.Itoa(i + 1)
		path := "phases[" + strconv.Itoa(i) + "]."
		add(p.Voltage, "phase"+n+"_voltage_v", "Phase L"+n+" voltage", path+"voltage_v", "V", "voltage", "measurement")
		add(p.Current, "phase"+n+"_current_a", "Phase L"+n+" current", path+"current_a", "A", "current", "measurement")
		add(p.Power, "phase"+n+"_power_w", "Phase L"+n+" power", path+"power_w", "W", "power", "measurement")
	}
	for i, d := range r.DC {
		n := strconv.Itoa(i + 1)
		path := "dc[" + strconv.Itoa(i) + "]."
		add(d.Voltage, "dc"+n+"_voltage_v", "DC "+n+" voltage", path+"voltage_v", "V", "voltage", "measurement")
		add(d.Current, "dc"+n+"_current_a", "DC "+n+" current", path+"current_a", "A", "current", "measurement")
		add(d.Power, "dc"+n+"_power_w", "DC "+n+" power", path+"power_w", "W", "power", "measurement")
	}
	if r.State != "" {
		out = append(out, Sensor{Object: "state", Name: "State", Path: "state"})
	}
	return out
}

// slogPrinter adapts a slog.Logger to paho's logger.
type slogPrinter struct{ l *slog.Logger }

func (p slogPrinter) Println(v ...any) {
	p.l.Debug(strings.TrimSuffix(fmt.Sprintln(v...), "\n"), "lib", "paho")
}

func (p slogPrinter) Printf(format string, v ...any) {
	p.l.Debug(fmt.Sprintf(format, v...), "lib", "paho")
}

var _ Sink = (*MQTT)(nil)
