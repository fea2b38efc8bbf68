package energy

import (
	"context"
	"fmt"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Options every transport driver accepts in a spec, and those the RTU
// driver adds.
var (
	transportOptions = []string{"unit", "timeout"}
	serialOptions    = []string{"baud", "data", "parity", "stop"}
)

func init() {
	err := RegisterTransportDrivers("sunspec", func(rr RegisterReader, unit uint8, q url.Values) (Inverter, error) {
		if err := NoOptions("sunspec", q); err != nil {
			return nil, err
		}
		return NewSunSpec(rr, unit, SunSpecOptions{})
	}, "")
	if err != nil {
		panic(err)
	}
}

// RegisterTransportDrivers registers the drivers "<profile>+tcp",
// "<profile>+rtu" and "<profile>+rtuovertcp", whose specs are
//
//	<profile>+tcp://HOST[:PORT][?unit=N&timeout=D&...]
//	<profile>+rtuovertcp://HOST[:PORT][?unit=N&timeout=D&...]
//	<profile>+rtu:///dev/DEVICE[?baud=9600&data=8&parity=N&stop=1&unit=N&timeout=D&...]
//
// (PORT defaults to 502, unit to 1, timeout to DefaultModbusTimeout; see
// NewModbus for the serial options). The drivers parse and validate the
// transport part, get a connection, and call open with it, the unit ID and
// the query options the transport did not consume; open must reject
// options it does not know (NoOptions helps) and must not do I/O, so that
// opening works while the device is offline (inverters sleep at night).
//
// Specs naming the same connection (same host and port, or same serial
// device) share one connection, with requests serialised on it; the
// connection is closed when the last Inverter using it is closed. The
// Inverter open returns must close rr in its Close, and when open fails it
// must not close rr. usage, if not empty, is appended to each driver's
// usage line to show the profile's own options, e.g. "&battery=BOOL".
//
// Registering does no I/O; call it from an init function.
func RegisterTransportDrivers(profileName string, open func(rr RegisterReader, unit uint8, query url.Values) (Inverter, error), usage string) error {
	return RegisterTransportDriversUnit(profileName, 1, open, usage)
}

// RegisterTransportDriversUnit is RegisterTransportDrivers for devices whose
// usual Modbus unit ID is not 1 (SMA answers on 3, GoodWe on 247): a spec
// without "unit=" then addresses defaultUnit.
func RegisterTransportDriversUnit(profileName string, defaultUnit uint8, open func(rr RegisterReader, unit uint8, query url.Values) (Inverter, error), usage string) error {
	if open == nil {
		return fmt.Errorf("energy: RegisterTransportDrivers(%q): nil open function", profileName)
	}
	type form struct{ scheme, usage string }
	forms := []form{
		{"tcp", "//HOST[:PORT]?unit=N"},
		{"rtu", "///dev/DEVICE?baud=9600&parity=N&stop=1&unit=N"},
		{"rtuovertcp", "//HOST[:PORT]?unit=N"},
	}
	for _, f := range forms {
		name := profileName + "+" + f.scheme
		scheme := f.scheme
		err := Register(Driver{
			Name:  name,
			Usage: name + ":" + f.usage + usage,
			Open: func(arg string) (Inverter, error) {
				return openTransportSpec(scheme, arg, defaultUnit, open)
			},
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// NoOptions returns an error naming the first option in q, for profile
// open functions that take no options of their own.
func NoOptions(driver string, q url.Values) error {
	if len(q) == 0 {
		return nil
	}
	keys := make([]string, 0, len(q))
	for k := range q {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return fmt.Errorf("energy: %s: unknown option %q (accepted: %s; on rtu also %s)", driver, keys[0],
		strings.Join(transportOptions, ", "), strings.Join(serialOptions, ", "))
}

// TransportSpec is the transport part of a parsed driver argument.
type TransportSpec struct {
	URL     string // transport URL for NewModbus, e.g. "tcp://10.0.0.5:502"
	Unit    uint8
	UnitSet bool          // the spec gave "unit="; otherwise Unit is 1
	Timeout time.Duration // 0 for the default
	// Rest holds the query options the transport did not consume.
	Rest url.Values
}

// ParseTransportSpec parses the argument of a "<profile>+<scheme>" driver
// (everything after the first ':', e.g. "//10.0.0.5:502?unit=3") for scheme
// "tcp", "rtu" or "rtuovertcp". It validates the unit ID, timeout and serial
// options and leaves the other options in Rest. It does no I/O.
func ParseTransportSpec(scheme, arg string) (TransportSpec, error) {
	var ts TransportSpec
	if !strings.HasPrefix(arg, "//") {
		return ts, fmt.Errorf("energy: want %s://... after the driver name, got %q", scheme, arg)
	}
	target, query, _ := strings.Cut(arg, "?")
	q, err := url.ParseQuery(query)
	if err != nil {
		return ts, fmt.Errorf("energy: bad options %q: %w", query, err)
	}
	for k, v := range q {
		if len(v) != 1 {
			return ts, fmt.Errorf("energy: option %q given %d times", k, len(v))
		}
	}
	ts.Unit = 1
	if v, ok := q["unit"]; ok {
		n, err := strconv.ParseUint(v[0], 10, 8)
		if err != nil {
			return ts, fmt.Errorf("energy: bad unit %q (want 0..255 over TCP, 1..247 on RTU)", v[0])
		}
		ts.Unit, ts.UnitSet = uint8(n), true
		delete(q, "unit")
	}
	if v, ok := q["timeout"]; ok {
		d, err := time.ParseDuration(v[0])
		if err != nil || d <= 0 {
			return ts, fmt.Errorf("energy: bad timeout %q (want a duration such as 2s or 500ms)", v[0])
		}
		ts.Timeout = d
		delete(q, "timeout")
	}
	serial := url.Values{}
	for _, k := range serialOptions {
		if v, ok := q[k]; ok {
			if scheme != "rtu" {
				return ts, fmt.Errorf("energy: option %q applies to rtu only", k)
			}
			serial[k] = v
			delete(q, k)
		}
	}
	ts.URL = scheme + ":" + target
	if len(serial) > 0 {
		ts.URL += "?" + serial.Encode()
	}
	if scheme == "rtu" && !strings.HasPrefix(target, "///") {
		return ts, fmt.Errorf("energy: want rtu:///dev/DEVICE, got %q", "rtu:"+target)
	}
	if scheme != "tcp" && (ts.Unit < 1 || ts.Unit > 247) {
		return ts, fmt.Errorf("energy: bad unit %d (want 1..247 on %s)", ts.Unit, scheme)
	}
	ts.Rest = q
	return ts, nil
}

func openTransportSpec(scheme, arg string, defaultUnit uint8, open func(RegisterReader, uint8, url.Values) (Inverter, error)) (Inverter, error) {
	ts, err := ParseTransportSpec(scheme, arg)
	if err != nil {
		return nil, err
	}
	if !ts.UnitSet {
		ts.Unit = defaultUnit
	}
	rr, err := acquireShared(ts.URL, ModbusOptions{Timeout: ts.Timeout})
	if err != nil {
		return nil, err
	}
	inv, err := open(rr, ts.Unit, ts.Rest)
	if err != nil {
		rr.Close()
		return nil, err
	}
	return inv, nil
}

// shared connections opened from specs, by connection identity (host:port
// or serial device). The lock covers only the map, never I/O.
var (
	sharedMu    sync.Mutex
	sharedConns = map[string]*sharedEntry{}
)

type sharedEntry struct {
	m    *Modbus
	opts ModbusOptions
	refs int
}

// sharedConn is one user's handle on a shared connection.
type sharedConn struct {
	key  string
	m    *Modbus
	once sync.Once
}

func (s *sharedConn) ReadRegisters(ctx context.Context, unit, fc uint8, addr, count uint16) ([]uint16, error) {
	return s.m.ReadRegisters(ctx, unit, fc, addr, count)
}

// Close releases the handle; the last one closes the connection.
func (s *sharedConn) Close() error {
	var err error
	s.once.Do(func() {
		sharedMu.Lock()
		e := sharedConns[s.key]
		e.refs--
		last := e.refs == 0
		if last {
			delete(sharedConns, s.key)
		}
		sharedMu.Unlock()
		if last {
			err = s.m.Close()
		}
	})
	return err
}

func acquireShared(rawURL string, opts ModbusOptions) (RegisterReader, error) {
	m, err := NewModbus(rawURL, opts)
	if err != nil {
		return nil, err
	}
	key := m.url
	if m.kind == "rtu" {
		key = m.conf.URL // the device path: one owner per serial port
	}
	sharedMu.Lock()
	defer sharedMu.Unlock()
	if e, ok := sharedConns[key]; ok {
		if e.m.url != m.url || e.opts != opts {
			return nil, fmt.Errorf("energy: %s is already open as %s (timeout %s); specs sharing a connection must use the same settings",
				key, e.m.url, e.m.opts.Timeout)
		}
		e.refs++
		return &sharedConn{key: key, m: e.m}, nil
	}
	sharedConns[key] = &sharedEntry{m: m, opts: opts, refs: 1}
	return &sharedConn{key: key, m: m}, nil
}
