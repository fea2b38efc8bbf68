package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/pikit/pikit/energy"
)

// Limits on settings.
const (
	minInterval     = time.Second
	maxInterval     = 24 * time.Hour
	defaultInterval = 10 * time.Second
	maxDevices      = 64
	maxSettingsSize = 1 << 20
	// defaultMaxRecords bounds the queue: about 700 MB of readings at
	// their typical 1.4 KB, 58 days of one device read every 10 s.
	defaultMaxRecords = 500_000
	maxQueueRecords   = 100_000_000
	settingsFile      = "settings.json"
)

// Duration is a time.Duration that reads and writes JSON as a Go duration
// string ("10s", "1m30s"); a plain number is read as seconds.
type Duration time.Duration

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// MarshalJSON writes d as a duration string.
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

// UnmarshalJSON reads "10s" or 10 (seconds).
func (d *Duration) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		v, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("want a duration such as \"10s\", got %q", s)
		}
		*d = Duration(v)
		return nil
	}
	var f float64
	if err := json.Unmarshal(b, &f); err != nil {
		return errors.New("want a duration such as \"10s\" or a number of seconds")
	}
	if math.IsNaN(f) || math.Abs(f) > float64(math.MaxInt64/int64(time.Second)) {
		return fmt.Errorf("duration %v s is out of range", f)
	}
	*d = Duration(f * float64(time.Second))
	return nil
}

// DeviceConfig is one inverter or meter the gateway reads.
type DeviceConfig struct {
	// ID names the device in the API, the queue and the sinks: 1 to 32
	// letters, digits, '-' or '_'.
	ID string `json:"id"`
	// Spec opens it with energy.Open, e.g. "sunspec+tcp://192.168.1.20:502?unit=1".
	Spec string `json:"spec"`
	// Interval overrides the gateway's interval for this device (0: inherit).
	Interval Duration `json:"interval,omitempty"`
}

// Settings is the gateway's configuration, kept as JSON in the data dir
// (settings.json). Flags and GATEWAY_* variables given at start override
// the file and are written back to it; the API changes it at run time.
type Settings struct {
	// Name is the gateway's name (GET /api/name); default the host name.
	Name string `json:"name,omitempty"`
	// Interval between reads of each device (1s to 24h).
	Interval Duration       `json:"interval"`
	Devices  []DeviceConfig `json:"devices"`
	// HTTPURL, if set, receives signed JWT batches by POST.
	HTTPURL string `json:"http_url,omitempty"`
	// MQTTURL (mqtt://HOST[:1883] or mqtts://HOST[:8883]), if set,
	// receives readings at QoS 1.
	MQTTURL      string `json:"mqtt_url,omitempty"`
	MQTTUser     string `json:"mqtt_user,omitempty"`
	MQTTPassword string `json:"mqtt_password,omitempty"`
	// MQTTTopic is the topic prefix (default "pikit/gateway/<serial>").
	MQTTTopic string `json:"mqtt_topic,omitempty"`
	// MQTTDiscovery publishes Home Assistant discovery messages.
	MQTTDiscovery bool `json:"mqtt_discovery,omitempty"`
	// QueueMaxRecords and QueueMaxAge bound the durable queue (0: the
	// defaults, 500000 records and 30 days); at a bound the oldest
	// undelivered readings are dropped, counted and logged.
	QueueMaxRecords int      `json:"queue_max_records,omitempty"`
	QueueMaxAge     Duration `json:"queue_max_age,omitempty"`
}

// defaultSettings is what a fresh data dir starts with.
func defaultSettings() Settings {
	return Settings{Interval: Duration(defaultInterval), Devices: []DeviceConfig{}}
}

// fieldError is a validation error naming the offending JSON field, so that
// API clients get {"error": ..., "field": ...}.
type fieldError struct {
	Field string
	Err   error
}

func (e *fieldError) Error() string { return e.Field + ": " + e.Err.Error() }
func (e *fieldError) Unwrap() error { return e.Err }

func fieldErr(field, format string, a ...any) error {
	return &fieldError{Field: field, Err: fmt.Errorf(format, a...)}
}

// validID reports whether s is a usable device ID.
func validID(s string) bool {
	if len(s) == 0 || len(s) > 32 {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// validate checks one device; prefix is the JSON path for errors, e.g.
// "devices[2]".
func (d *DeviceConfig) validate(prefix string) error {
	join := func(f string) string {
		if prefix == "" {
			return f
		}
		return prefix + "." + f
	}
	if !validID(d.ID) {
		return fieldErr(join("id"), "want 1 to 32 letters, digits, '-' or '_', got %q", d.ID)
	}
	spec := strings.TrimSpace(d.Spec)
	if spec == "" {
		return fieldErr(join("spec"), "empty device spec")
	}
	if len(spec) > 512 {
		return fieldErr(join("spec"), "spec longer than 512 bytes")
	}
	if spec == "auto" || strings.HasPrefix(spec, "auto:") || strings.HasPrefix(spec, "auto?") {
		return fieldErr(join("spec"), `"auto" is not allowed for a gateway device: name the device (see "scan")`)
	}
	if strings.ContainsFunc(spec, unicode.IsControl) {
		return fieldErr(join("spec"), "spec contains control characters")
	}
	if _, err := energy.Resolve(spec); err != nil {
		return fieldErr(join("spec"), "%v", err)
	}
	d.Spec = spec
	if d.Interval != 0 && (d.Interval.D() < minInterval || d.Interval.D() > maxInterval) {
		return fieldErr(join("interval"), "want 0 (the gateway's interval) or between %s and %s, got %s", minInterval, maxInterval, d.Interval.D())
	}
	return nil
}

// validate checks s and normalises it (trimmed spaces, a nil device list
// made empty).
func (s *Settings) validate() error {
	if len(s.Name) > 64 || strings.ContainsFunc(s.Name, unicode.IsControl) {
		return fieldErr("name", "want at most 64 printable characters")
	}
	s.Name = strings.TrimSpace(s.Name)
	if s.Interval.D() < minInterval || s.Interval.D() > maxInterval {
		return fieldErr("interval", "want between %s and %s, got %s", minInterval, maxInterval, s.Interval.D())
	}
	if s.Devices == nil {
		s.Devices = []DeviceConfig{}
	}
	if len(s.Devices) > maxDevices {
		return fieldErr("devices", "at most %d devices, got %d", maxDevices, len(s.Devices))
	}
	seen := map[string]bool{}
	for i := range s.Devices {
		d := &s.Devices[i]
		if err := d.validate(fmt.Sprintf("devices[%d]", i)); err != nil {
			return err
		}
		if seen[d.ID] {
			return fieldErr(fmt.Sprintf("devices[%d].id", i), "duplicate device id %q", d.ID)
		}
		seen[d.ID] = true
	}
	if err := checkURL("http_url", s.HTTPURL, "http", "https"); err != nil {
		return err
	}
	if err := checkURL("mqtt_url", s.MQTTURL, "mqtt", "mqtts"); err != nil {
		return err
	}
	for _, f := range []struct{ name, v string }{{"mqtt_user", s.MQTTUser}, {"mqtt_password", s.MQTTPassword}, {"mqtt_topic", s.MQTTTopic}} {
		if len(f.v) > 256 || strings.ContainsFunc(f.v, unicode.IsControl) {
			return fieldErr(f.name, "want at most 256 printable characters")
		}
	}
	if strings.ContainsAny(s.MQTTTopic, "+#") || strings.HasPrefix(s.MQTTTopic, "/") || strings.HasSuffix(s.MQTTTopic, "/") {
		return fieldErr("mqtt_topic", "a topic prefix has no wildcards (+, #) and no leading or trailing '/'")
	}
	if s.QueueMaxRecords < 0 || s.QueueMaxRecords > maxQueueRecords {
		return fieldErr("queue_max_records", "want 0 (default) to %d, got %d", maxQueueRecords, s.QueueMaxRecords)
	}
	if s.QueueMaxAge != 0 && (s.QueueMaxAge.D() < time.Hour || s.QueueMaxAge.D() > 10*365*24*time.Hour) {
		return fieldErr("queue_max_age", "want 0 (default) or between 1h and 10 years, got %s", s.QueueMaxAge.D())
	}
	if (s.MQTTUser != "" || s.MQTTPassword != "" || s.MQTTTopic != "" || s.MQTTDiscovery) && s.MQTTURL == "" {
		return fieldErr("mqtt_url", "MQTT settings are given but mqtt_url is empty")
	}
	return nil
}

// checkURL accepts "" or an absolute URL with one of the schemes and a host.
func checkURL(field, raw string, schemes ...string) error {
	if raw == "" {
		return nil
	}
	if len(raw) > 2048 || strings.ContainsFunc(raw, unicode.IsControl) {
		return fieldErr(field, "not a usable URL")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return fieldErr(field, "%v", err)
	}
	ok := false
	for _, s := range schemes {
		ok = ok || u.Scheme == s
	}
	if !ok {
		return fieldErr(field, "want a %s:// URL, got %q", strings.Join(schemes, ":// or "), raw)
	}
	if u.Host == "" || u.Hostname() == "" {
		return fieldErr(field, "URL %q has no host", raw)
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return fieldErr(field, "bad port %q", p)
		}
	}
	return nil
}

// decodeStrict decodes exactly one JSON value into v, refusing unknown
// fields and trailing data; errors name the field where the decoder knows it.
func decodeStrict(r io.Reader, v any) error {
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return jsonFieldError(err)
	}
	if dec.More() {
		return fieldErr("body", "trailing data after the JSON value")
	}
	if _, err := dec.Token(); err != io.EOF {
		return fieldErr("body", "trailing data after the JSON value")
	}
	return nil
}

// jsonFieldError turns a decoding error into a fieldError.
func jsonFieldError(err error) error {
	var te *json.UnmarshalTypeError
	var se *json.SyntaxError
	switch {
	case errors.As(err, &te):
		f := te.Field
		if f == "" {
			f = "body"
		}
		return fieldErr(f, "want %s, got JSON %s", te.Type, te.Value)
	case errors.As(err, &se):
		return fieldErr("body", "bad JSON at byte %d: %v", se.Offset, err)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return fieldErr("body", "empty or truncated JSON")
	}
	msg := err.Error()
	if f, ok := strings.CutPrefix(msg, `json: unknown field "`); ok {
		if f = strings.TrimSuffix(f, `"`); f == "" {
			return fieldErr("body", `unknown field ""`)
		}
		return fieldErr(f, "unknown field")
	}
	// Errors from UnmarshalJSON methods (Duration) do not carry the field;
	// the decoder's message names the Go type, which is all there is.
	var fe *fieldError
	if errors.As(err, &fe) {
		return fe
	}
	return fieldErr("body", "%s", strings.TrimPrefix(msg, "json: "))
}

// parseSettings reads and validates a settings file's contents. Fields the
// file leaves out keep their defaults.
func parseSettings(b []byte) (Settings, error) {
	s := defaultSettings()
	if len(b) > maxSettingsSize {
		return s, fieldErr("body", "settings larger than %d bytes", maxSettingsSize)
	}
	if err := decodeStrict(bytes.NewReader(b), &s); err != nil {
		return s, err
	}
	if err := s.validate(); err != nil {
		return s, err
	}
	return s, nil
}

// loadSettings reads the settings file; a missing file gives the defaults
// and exists=false.
func loadSettings(dir string) (s Settings, exists bool, err error) {
	b, err := os.ReadFile(filepath.Join(dir, settingsFile))
	if errors.Is(err, os.ErrNotExist) {
		return defaultSettings(), false, nil
	}
	if err != nil {
		return Settings{}, false, err
	}
	s, err = parseSettings(b)
	if err != nil {
		return Settings{}, true, fmt.Errorf("%s: %w", filepath.Join(dir, settingsFile), err)
	}
	return s, true, nil
}

// saveSettings writes the settings file atomically (temp file, fsync,
// rename, fsync of the directory), mode 0600: it may hold the MQTT
// password.
func saveSettings(dir string, s Settings) error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(dir, settingsFile), append(b, '\n'), 0o600)
}

// writeFileAtomic replaces path with data so that a crash leaves either the
// old or the new contents, never a mix.
func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // after a successful rename this fails harmlessly
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync() // best effort: not every file system syncs directories
		d.Close()
	}
	return nil
}

// redacted returns s with secrets replaced, for the API.
func (s Settings) redacted() Settings {
	if s.MQTTPassword != "" {
		s.MQTTPassword = "********"
	}
	s.Devices = append([]DeviceConfig(nil), s.Devices...)
	return s
}

// settingsPatch is the body of POST /api/settings: fields left out keep
// their value; "devices", if given, replaces the whole device list.
type settingsPatch struct {
	Name            *string         `json:"name"`
	Interval        *Duration       `json:"interval"`
	Devices         *[]DeviceConfig `json:"devices"`
	HTTPURL         *string         `json:"http_url"`
	MQTTURL         *string         `json:"mqtt_url"`
	MQTTUser        *string         `json:"mqtt_user"`
	MQTTPassword    *string         `json:"mqtt_password"`
	MQTTTopic       *string         `json:"mqtt_topic"`
	MQTTDiscovery   *bool           `json:"mqtt_discovery"`
	QueueMaxRecords *int            `json:"queue_max_records"`
	QueueMaxAge     *Duration       `json:"queue_max_age"`
}

// apply returns s with the patch applied, validated.
func (p settingsPatch) apply(s Settings) (Settings, error) {
	s.Devices = append([]DeviceConfig(nil), s.Devices...)
	set := func(dst *string, v *string) {
		if v != nil {
			*dst = strings.TrimSpace(*v)
		}
	}
	set(&s.Name, p.Name)
	set(&s.HTTPURL, p.HTTPURL)
	set(&s.MQTTURL, p.MQTTURL)
	set(&s.MQTTUser, p.MQTTUser)
	set(&s.MQTTTopic, p.MQTTTopic)
	if p.MQTTPassword != nil {
		s.MQTTPassword = *p.MQTTPassword
	}
	if p.Interval != nil {
		s.Interval = *p.Interval
	}
	if p.MQTTDiscovery != nil {
		s.MQTTDiscovery = *p.MQTTDiscovery
	}
	if p.QueueMaxRecords != nil {
		s.QueueMaxRecords = *p.QueueMaxRecords
	}
	if p.QueueMaxAge != nil {
		s.QueueMaxAge = *p.QueueMaxAge
	}
	if p.Devices != nil {
		s.Devices = append([]DeviceConfig{}, *p.Devices...)
	}
	if err := s.validate(); err != nil {
		return s, err
	}
	return s, nil
}

// sinksEqual reports whether a and b configure the same sinks.
func sinksEqual(a, b Settings) bool {
	return a.HTTPURL == b.HTTPURL && a.MQTTURL == b.MQTTURL && a.MQTTUser == b.MQTTUser &&
		a.MQTTPassword == b.MQTTPassword && a.MQTTTopic == b.MQTTTopic && a.MQTTDiscovery == b.MQTTDiscovery &&
		a.QueueMaxRecords == b.QueueMaxRecords && a.QueueMaxAge == b.QueueMaxAge
}

// asFieldError is errors.As for *fieldError.
func asFieldError(err error, fe **fieldError) bool { return errors.As(err, fe) }
