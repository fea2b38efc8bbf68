package energy

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"testing"
)

func TestSunSpecDriversRegistered(t *testing.T) {
	have := map[string]string{}
	for _, d := range Drivers() {
		have[d.Name] = d.Usage
	}
	for _, n := range []string{"sunspec+tcp", "sunspec+rtu", "sunspec+rtuovertcp"} {
		if have[n] == "" {
			t.Errorf("driver %s not registered", n)
		}
	}
	if u := have["sunspec+rtu"]; u != "sunspec+rtu:///dev/DEVICE?baud=9600&parity=N&stop=1&unit=N" {
		t.Errorf("usage %q", u)
	}
}

func TestOpenSpecErrors(t *testing.T) {
	tests := map[string]string{
		"sunspec+tcp://127.0.0.1:1502?unit=x":           `bad unit "x"`,
		"sunspec+tcp://127.0.0.1:1502?unit=256":         `bad unit "256"`,
		"sunspec+tcp://127.0.0.1:1502?bogus=1":          `unknown option "bogus"`,
		"sunspec+tcp://127.0.0.1:1502?timeout=-1s":      `bad timeout "-1s"`,
		"sunspec+tcp://127.0.0.1:1502?baud=9600":        `option "baud" applies to rtu only`,
		"sunspec+tcp://127.0.0.1:1502?unit=1&unit=2":    `option "unit" given 2 times`,
		"sunspec+tcp:127.0.0.1:1502":                    "want tcp://",
		"sunspec+tcp://":                                "missing host",
		"sunspec+rtu:///dev/ttyUSB0?baud=fast":          `bad baud "fast"`,
		"sunspec+rtu:///dev/ttyUSB0?unit=0":             "bad unit 0 (want 1..247 on rtu)",
		"sunspec+rtu://ttyUSB0":                         "want rtu:///dev/DEVICE",
		"sunspec+rtuovertcp://10.0.0.1:8899?unit=248":   "bad unit 248",
		"sunspec+rtu:///dev/ttyUSB0?parity=Q&stop=1":    `bad parity "Q"`,
		"sunspec+tcp://127.0.0.1:1502?unit=1&mode=fast": `unknown option "mode"`,
	}
	for spec, want := range tests {
		_, err := Open(spec)
		if err == nil || !strings.Contains(err.Error(), want) || !strings.HasPrefix(err.Error(), "energy: ") {
			t.Errorf("Open(%q) = %v, want error containing %q", spec, err, want)
		}
	}
	sharedMu.Lock()
	n := len(sharedConns)
	sharedMu.Unlock()
	if n != 0 {
		t.Errorf("%d shared connections left after failed opens", n)
	}
}

// Open does no I/O: a spec for a device that is not there opens, and the
// first read reports the connection failure.
func TestOpenIsLazy(t *testing.T) {
	inv, err := Open("sunspec+tcp://127.0.0.1:1?unit=3&timeout=200ms")
	if err != nil {
		t.Fatal(err)
	}
	defer inv.Close()
	_, err = inv.Read(context.Background())
	if err == nil || !strings.Contains(err.Error(), "energy: modbus tcp://127.0.0.1:1") || !strings.Contains(err.Error(), "connect") {
		t.Errorf("err = %v", err)
	}
	rtu, err := Open("sunspec+rtu:///dev/pikit-no-such-tty?baud=19200&unit=2")
	if err != nil {
		t.Fatal(err)
	}
	defer rtu.Close()
	if _, err := rtu.Info(context.Background()); err == nil || !strings.Contains(err.Error(), "pikit-no-such-tty") {
		t.Errorf("err = %v", err)
	}
}

func TestOpenSharesConnections(t *testing.T) {
	dev := newFakeDevice()
	dev.set(1, 40000, threePhase(t))
	dev.set(2, 40000, threePhase(t))
	srv := startServer(t, dev, 0)
	a, err := Open(fmt.Sprintf("sunspec+tcp://%s?unit=1", srv.addr))
	if err != nil {
		t.Fatal(err)
	}
	b, err := Open(fmt.Sprintf("sunspec+tcp://%s?unit=2", srv.addr))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, inv := range []Inverter{a, b, a} {
		if _, err := inv.Read(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if n := dev.connections(); n != 1 {
		t.Errorf("%d connections, want 1 shared", n)
	}
	// Different settings for the same connection are refused.
	if _, err := Open(fmt.Sprintf("sunspec+tcp://%s?unit=3&timeout=9s", srv.addr)); err == nil || !strings.Contains(err.Error(), "already open") {
		t.Errorf("err = %v", err)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Read(ctx); err != nil {
		t.Fatalf("b after closing a: %v", err)
	}
	b.Close()
	sharedMu.Lock()
	n := len(sharedConns)
	sharedMu.Unlock()
	if n != 0 {
		t.Errorf("%d shared connections left", n)
	}
	if _, err := b.Read(ctx); !errors.Is(err, ErrClosed) {
		t.Errorf("after Close: %v", err)
	}
}

type testProfile struct {
	rr   RegisterReader
	unit uint8
	q    url.Values
}

func (p *testProfile) Read(context.Context) (Reading, error) { return Reading{}, nil }
func (p *testProfile) Info(context.Context) (Info, error)    { return Info{Profile: "testprof"}, nil }
func (p *testProfile) Close() error                          { return p.rr.Close() }

// testprofGot receives what the "testprof" open function was given; the
// drivers are registered once per process (tests may run with -count).
var (
	testprofOnce sync.Once
	testprofErr  error
	testprofGot  *testProfile
)

func TestRegisterTransportDrivers(t *testing.T) {
	testprofOnce.Do(func() {
		testprofErr = RegisterTransportDrivers("testprof", func(rr RegisterReader, unit uint8, q url.Values) (Inverter, error) {
			if q.Get("fail") != "" {
				return nil, errors.New("energy: testprof: refused")
			}
			testprofGot = &testProfile{rr, unit, q}
			return testprofGot, nil
		}, "&phases=N")
	})
	if testprofErr != nil {
		t.Fatal(testprofErr)
	}
	if err := RegisterTransportDrivers("testprof", func(RegisterReader, uint8, url.Values) (Inverter, error) { return nil, nil }, ""); err == nil {
		t.Error("duplicate registration accepted")
	}
	if err := RegisterTransportDrivers("nilprof", nil, ""); err == nil {
		t.Error("nil open accepted")
	}
	inv, err := Open("testprof+rtuovertcp://127.0.0.1:4196?unit=7&phases=3&timeout=1s")
	if err != nil {
		t.Fatal(err)
	}
	defer inv.Close()
	got := testprofGot
	if got.unit != 7 || got.q.Encode() != "phases=3" {
		t.Errorf("open got unit %d, query %q", got.unit, got.q.Encode())
	}
	if m := got.rr.(*sharedConn).m; m.URL() != "rtuovertcp://127.0.0.1:4196" || m.opts.Timeout.String() != "1s" {
		t.Errorf("transport %s %v", m.URL(), m.opts.Timeout)
	}
	usage := ""
	for _, d := range Drivers() {
		if d.Name == "testprof+tcp" {
			usage = d.Usage
		}
	}
	if usage != "testprof+tcp://HOST[:PORT]?unit=N&phases=N" {
		t.Errorf("usage %q", usage)
	}
	// A failing profile open releases the connection.
	if _, err := Open("testprof+tcp://127.0.0.1:4197?fail=1"); err == nil {
		t.Fatal("no error")
	}
	sharedMu.Lock()
	_, left := sharedConns["tcp://127.0.0.1:4197"]
	sharedMu.Unlock()
	if left {
		t.Error("connection of a failed open kept")
	}
}

func TestParseTransportSpec(t *testing.T) {
	ts, err := ParseTransportSpec("rtu", "///dev/ttyUSB0?baud=9600&parity=E&unit=12&model=x")
	if err != nil {
		t.Fatal(err)
	}
	if ts.URL != "rtu:///dev/ttyUSB0?baud=9600&parity=E" || ts.Unit != 12 || ts.Rest.Encode() != "model=x" {
		t.Errorf("%+v", ts)
	}
	ts, err = ParseTransportSpec("tcp", "//[::1]:1502")
	if err != nil || ts.URL != "tcp://[::1]:1502" || ts.Unit != 1 {
		t.Errorf("%+v %v", ts, err)
	}
	// sunspec is the only driver here that takes no extra options.
	if err := NoOptions("sunspec", url.Values{"b": {"1"}, "a": {"2"}}); err == nil || !strings.Contains(err.Error(), `unknown option "a"`) {
		t.Errorf("NoOptions: %v", err)
	}
}
