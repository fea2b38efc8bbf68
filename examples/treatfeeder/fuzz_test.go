package main

import (
	"bytes"
	"crypto/rand"
	"strings"
	"testing"
	"time"
)

// FuzzSession feeds arbitrary cookie values to the session check under a
// fresh random key each time: no panic, and nothing but the one value that
// key signed is ever accepted.
func FuzzSession(f *testing.F) {
	seed := newAuth(testPassword, testToken, []byte("0123456789abcdef0123456789abcdef"), false, time.Now).newSession()
	for _, s := range []string{seed, seed + "x", strings.Replace(seed, ".", "", 1), "", ".", "a.b", strings.Repeat("A", 300),
		"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		key := make([]byte, 32)
		rand.Read(key)
		a := newAuth(testPassword, testToken, key, false, time.Now)
		good := a.newSession()
		if _, ok := a.session(good); !ok {
			t.Fatal("the session just issued is refused")
		}
		if _, ok := a.session(v); ok && v != good {
			t.Fatalf("accepted a session the server never issued: %q", v)
		}
	})
}

// FuzzEventLog reads arbitrary log files: no panic, every event returned
// is complete, and the good-prefix offset never exceeds the input.
func FuzzEventLog(f *testing.F) {
	f.Add([]byte(`{"type":"open","time":"2026-11-22T08:59:00Z","dispense":7,"who":"token"}` + "\n"))
	f.Add([]byte(`{"type":"open","time":"2026-11-22T08:59:00Z","dispense":7}` + "\n" + `{"type":"clo`))
	f.Add([]byte("garbage\n\n{}\n{\"type\":\"close\"}\n"))
	f.Add([]byte(`{"type":"close","time":"not a time"}` + "\n"))
	f.Add([]byte{0xff, 0xfe, '\n'})
	f.Fuzz(func(t *testing.T, b []byte) {
		events, _, good, err := readEvents(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("readEvents error on in-memory input: %v", err)
		}
		if good > int64(len(b)) || good < 0 {
			t.Fatalf("good offset %d outside input of %d bytes", good, len(b))
		}
		if good > 0 && b[good-1] != '\n' {
			t.Fatalf("good offset %d does not end a line", good)
		}
		for _, e := range events {
			if e.Type == "" || e.Time.IsZero() {
				t.Fatalf("incomplete event accepted: %+v", e)
			}
		}
	})
}
