package main

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

// FuzzDevicesJSON feeds arbitrary bodies to POST /api/devices' decoding and
// validation: no panic, and whatever is accepted is a usable device that
// survives a JSON round trip unchanged.
func FuzzDevicesJSON(f *testing.F) {
	for _, s := range []string{
		`{"id":"inv1","spec":"sim"}`,
		`{"id":"roof","spec":"sunspec+tcp://192.168.1.20:502?unit=1","interval":"5s"}`,
		`{"id":"m","spec":"sdm630+rtu:///dev/ttyUSB0?baud=9600&unit=2","interval":30}`,
		`{"id":"s","spec":"solarman://10.0.0.9:8899?serial=1234567890&profile=deye"}`,
		`{"spec":"sim?seed=3&profile=huawei"}`,
		`{"id":"a","spec":"sim","colour":"red"}`,
		`{"id":"a","spec":"auto"}`,
		`{"id":"","spec":""}`,
		`{"id":"a","spec":"sim","interval":"-1s"}`,
		`{"id":"a","spec":"sim","interval":1e300}`,
		`{"id":"a","spec":"sim"} trailing`,
		`[]`, `null`, ``, `{`, "\x00",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := decodeDevice(bytes.NewReader(b))
		if err != nil {
			if !strings.Contains(err.Error(), ":") {
				t.Fatalf("error without a field: %v", err)
			}
			return
		}
		if d.ID == "" {
			d.ID = "dev1" // as addDevice does
		}
		if err := d.validate(""); err != nil {
			var fe *fieldError
			if !asFieldError(err, &fe) || fe.Field == "" {
				t.Fatalf("validation error without a field: %v", err)
			}
			return
		}
		if !validID(d.ID) || strings.TrimSpace(d.Spec) != d.Spec || d.Spec == "" {
			t.Fatalf("accepted an unusable device: %+v", d)
		}
		if d.Interval != 0 && (d.Interval.D() < minInterval || d.Interval.D() > maxInterval) {
			t.Fatalf("accepted interval %s", d.Interval.D())
		}
		j, err := json.Marshal(d)
		if err != nil {
			t.Fatal(err)
		}
		d2, err := decodeDevice(bytes.NewReader(j))
		if err != nil || d2 != d {
			t.Fatalf("round trip: %+v -> %s -> %+v, %v", d, j, d2, err)
		}
	})
}

// FuzzSettingsFile reads arbitrary settings files: no panic, and whatever
// is accepted validates, and writes and reads back to the same settings.
func FuzzSettingsFile(f *testing.F) {
	for _, s := range []string{
		`{}`,
		`{"interval":"10s","devices":[{"id":"inv1","spec":"sim"}]}`,
		`{"name":"garage","interval":"1s","devices":[{"id":"a","spec":"sim?seed=1"},{"id":"b","spec":"sunspec+tcp://10.0.0.5","interval":"1m"}],"http_url":"https://example.com/in","mqtt_url":"mqtts://broker:8883","mqtt_user":"u","mqtt_password":"p","mqtt_topic":"home/solar","mqtt_discovery":true,"queue_max_records":1000,"queue_max_age":"72h"}`,
		`{"interval":0.5}`,
		`{"interval":"1s","devices":[{"id":"a","spec":"sim"},{"id":"a","spec":"sim"}]}`,
		`{"mqtt_user":"u"}`,
		`{"http_url":"http://[::1]:99999/"}`,
		`{"devices":null,"interval":"24h"}`,
		`{"mqtt_url":"mqtt://b","mqtt_topic":"a/#"}`,
		`{"queue_max_age":"1m"}`,
		`{"interval":"1s"}{"interval":"2s"}`,
		`not json`, ``, "{\"name\":\"\\u0000\"}",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		// The same bytes as a POST /api/settings body.
		var p settingsPatch
		if err := decodeStrict(bytes.NewReader(b), &p); err == nil {
			base := defaultSettings()
			if next, err := p.apply(base); err == nil {
				if next.validate() != nil {
					t.Fatalf("patch result does not validate: %+v", next)
				}
			} else if fe := (*fieldError)(nil); !asFieldError(err, &fe) || fe.Field == "" {
				t.Fatalf("patch error without a field: %v", err)
			}
			if len(base.Devices) != 0 {
				t.Fatal("apply changed its argument")
			}
		}

		s, err := parseSettings(b)
		if err != nil {
			var fe *fieldError
			if !asFieldError(err, &fe) || fe.Field == "" {
				t.Fatalf("error without a field: %v", err)
			}
			return
		}
		if s.Interval.D() < minInterval || s.Devices == nil {
			t.Fatalf("accepted %+v", s)
		}
		j, err := json.MarshalIndent(s, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		s2, err := parseSettings(j)
		if err != nil {
			t.Fatalf("written settings do not read back: %v\n%s", err, j)
		}
		if !reflect.DeepEqual(s, s2) {
			t.Fatalf("round trip changed the settings:\n%+v\n%+v", s, s2)
		}
		// The API's view never shows the password.
		if r := s.redacted(); s.MQTTPassword != "" && r.MQTTPassword == s.MQTTPassword {
			t.Fatal("redacted settings show the password")
		}
	})
}
