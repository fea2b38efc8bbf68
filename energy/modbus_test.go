package energy

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/simonvetter/modbus"
)

// fakeDevice answers Modbus register reads from per-unit register images.
// Its methods are called by the simonvetter server, one goroutine per
// client connection.
type fakeDevice struct {
	mu     sync.Mutex
	images map[uint8]image
	// hook, if set, runs before each read; a non-nil error (for example
	// modbus.ErrIllegalDataAddress) is sent back as the answer.
	hook     func(unit uint8, fc uint8, addr, qty uint16) error
	clients  map[string]bool // client addresses seen: one per connection
	requests atomic.Int64
}

type image struct {
	base uint16
	regs []uint16
}

func newFakeDevice() *fakeDevice {
	return &fakeDevice{images: map[uint8]image{}, clients: map[string]bool{}}
}

func (d *fakeDevice) set(unit uint8, base uint16, regs []uint16) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.images[unit] = image{base, regs}
}

func (d *fakeDevice) setHook(h func(unit uint8, fc uint8, addr, qty uint16) error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.hook = h
}

func (d *fakeDevice) connections() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.clients)
}

func (d *fakeDevice) read(client string, unit, fc uint8, addr, qty uint16) ([]uint16, error) {
	d.requests.Add(1)
	d.mu.Lock()
	d.clients[client] = true
	hook := d.hook
	img, ok := d.images[unit]
	d.mu.Unlock()
	if hook != nil {
		if err := hook(unit, fc, addr, qty); err != nil {
			return nil, err
		}
	}
	if !ok {
		return nil, modbus.ErrGWTargetFailedToRespond
	}
	if int(addr) < int(img.base) || int(addr)+int(qty) > int(img.base)+len(img.regs) {
		return nil, modbus.ErrIllegalDataAddress
	}
	off := int(addr) - int(img.base)
	return append([]uint16(nil), img.regs[off:off+int(qty)]...), nil
}

func (d *fakeDevice) HandleCoils(*modbus.CoilsRequest) ([]bool, error) {
	return nil, modbus.ErrIllegalFunction
}

func (d *fakeDevice) HandleDiscreteInputs(*modbus.DiscreteInputsRequest) ([]bool, error) {
	return nil, modbus.ErrIllegalFunction
}

func (d *fakeDevice) HandleHoldingRegisters(r *modbus.HoldingRegistersRequest) ([]uint16, error) {
	if r.IsWrite {
		return nil, modbus.ErrIllegalFunction
	}
	return d.read(r.ClientAddr, r.UnitId, 3, r.Addr, r.Quantity)
}

func (d *fakeDevice) HandleInputRegisters(r *modbus.InputRegistersRequest) ([]uint16, error) {
	return d.read(r.ClientAddr, r.UnitId, 4, r.Addr, r.Quantity)
}

// testServer is a simonvetter Modbus TCP server on 127.0.0.1.
type testServer struct {
	t    testing.TB
	dev  *fakeDevice
	addr string // 127.0.0.1:PORT
	idle time.Duration
	srv  *modbus.ModbusServer
}

// startServer starts a server for dev on a free loopback port. The library
// wants a URL rather than a listener, so a free port is found first and
// the start retried should another process take it in between.
func startServer(t testing.TB, dev *fakeDevice, idle time.Duration) *testServer {
	t.Helper()
	s := &testServer{t: t, dev: dev, idle: idle}
	var err error
	for range 10 {
		var l net.Listener
		l, err = net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		s.addr = l.Addr().String()
		l.Close()
		if err = s.start(); err == nil {
			t.Cleanup(func() { s.stop() })
			return s
		}
	}
	t.Fatalf("start server: %v", err)
	return nil
}

func (s *testServer) start() error {
	srv, err := modbus.NewServer(&modbus.ServerConfiguration{
		URL: "tcp://" + s.addr, Timeout: s.idle, MaxClients: 64,
		Logger: log.New(io.Discard, "", 0),
	}, s.dev)
	if err != nil {
		return err
	}
	if err := srv.Start(); err != nil {
		return err
	}
	s.srv = srv
	return nil
}

func (s *testServer) stop() {
	if s.srv != nil {
		s.srv.Stop()
		s.srv = nil
	}
}

func (s *testServer) port() int {
	_, p, _ := net.SplitHostPort(s.addr)
	n, _ := strconv.Atoi(p)
	return n
}

func (s *testServer) url() string { return "tcp://" + s.addr }

func seq(base, n int) []uint16 {
	r := make([]uint16, n)
	for i := range r {
		r[i] = uint16(base + i)
	}
	return r
}

func newTestModbus(t testing.TB, url string, opts ModbusOptions) *Modbus {
	t.Helper()
	m, err := NewModbus(url, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

func TestModbusRead(t *testing.T) {
	dev := newFakeDevice()
	dev.set(1, 100, seq(1000, 300))
	srv := startServer(t, dev, 0)
	m := newTestModbus(t, srv.url(), ModbusOptions{})
	ctx := context.Background()
	for _, fc := range []uint8{3, 4} {
		got, err := m.ReadRegisters(ctx, 1, fc, 110, 125)
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(got) != fmt.Sprint(seq(1010, 125)) {
			t.Errorf("fc %d: got %v", fc, got)
		}
	}
	// With a cancellable context (the goroutine path).
	cctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	got, err := m.ReadRegisters(cctx, 1, 3, 399, 1)
	if err != nil || got[0] != 1299 {
		t.Fatalf("got %v %v", got, err)
	}
	if n := dev.connections(); n != 1 {
		t.Errorf("%d connections, want 1", n)
	}
	if m.URL() != srv.url() {
		t.Errorf("URL %q", m.URL())
	}
}

func TestModbusValidation(t *testing.T) {
	m := newTestModbus(t, "tcp://127.0.0.1:1", ModbusOptions{})
	ctx := context.Background()
	for _, tt := range []struct {
		fc          uint8
		addr, count uint16
		want        string
	}{
		{3, 0, 0, "bad register count 0"},
		{3, 0, 126, "bad register count 126"},
		{5, 0, 1, "function 5 not supported"},
		{3, 65500, 100, "run past address 65535"},
	} {
		_, err := m.ReadRegisters(ctx, 1, tt.fc, tt.addr, tt.count)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ReadRegisters(fc %d, %d, %d) = %v, want %q", tt.fc, tt.addr, tt.count, err, tt.want)
		}
	}
	// TCP takes any unit ID; RTU lines 1..247.
	if !m.ValidUnit(0) || !m.ValidUnit(255) {
		t.Error("tcp should accept units 0 and 255")
	}
	r := newTestModbus(t, "rtuovertcp://127.0.0.1:1", ModbusOptions{})
	for _, u := range []uint8{0, 248} {
		if _, err := r.ReadRegisters(ctx, u, 3, 0, 1); err == nil || !strings.Contains(err.Error(), "bad unit ID") {
			t.Errorf("unit %d: %v", u, err)
		}
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := m.ReadRegisters(cctx, 1, 3, 0, 1); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled ctx: %v", err)
	}
}

func TestNewModbusURLs(t *testing.T) {
	good := map[string]string{
		"tcp://127.0.0.1":            "tcp://127.0.0.1:502",
		"tcp://inverter.local:1502":  "tcp://inverter.local:1502",
		"tcp://[::1]:503":            "tcp://[::1]:503",
		"tcp://[::1]":                "tcp://[::1]:502",
		"rtuovertcp://10.0.0.9:8899": "rtuovertcp://10.0.0.9:8899",
		"rtu:///dev/ttyUSB0":         "rtu:///dev/ttyUSB0?baud=9600&data=8&parity=N&stop=1",
		"rtu:///dev/ttyAMA0?baud=19200&parity=e&stop=2&data=7": "rtu:///dev/ttyAMA0?baud=19200&data=7&parity=E&stop=2",
	}
	for in, want := range good {
		m, err := NewModbus(in, ModbusOptions{})
		if err != nil {
			t.Errorf("NewModbus(%q): %v", in, err)
			continue
		}
		if m.URL() != want {
			t.Errorf("NewModbus(%q).URL() = %q, want %q", in, m.URL(), want)
		}
	}
	bad := map[string]string{
		"udp://1.2.3.4":                    "unknown scheme",
		"tcp://":                           "missing host",
		"tcp://h:0":                        "bad port",
		"tcp://h:99999":                    "bad port",
		"tcp://h:502/x":                    "unexpected path",
		"tcp://h?baud=9600":                "takes no options",
		"tcp://::1":                        "brackets",
		"rtu://dev/ttyUSB0":                "device path",
		"rtu:///dev/ttyUSB0?baud=fast":     "bad baud",
		"rtu:///dev/ttyUSB0?baud=10":       "bad baud",
		"rtu:///dev/ttyUSB0?parity=X":      "bad parity",
		"rtu:///dev/ttyUSB0?stop=3":        "bad stop bits",
		"rtu:///dev/ttyUSB0?data=9":        "bad data bits",
		"rtu:///dev/ttyUSB0?speed=9600":    `unknown option "speed"`,
		"rtu:///dev/ttyUSB0?baud=1&baud=2": "given 2 times",
	}
	for in, want := range bad {
		_, err := NewModbus(in, ModbusOptions{})
		if err == nil || !strings.Contains(err.Error(), want) || !strings.HasPrefix(err.Error(), "energy: ") {
			t.Errorf("NewModbus(%q) = %v, want error containing %q", in, err, want)
		}
	}
	if _, err := NewModbus("tcp://h", ModbusOptions{Timeout: -1}); err == nil {
		t.Error("negative timeout accepted")
	}
}

func TestModbusException(t *testing.T) {
	dev := newFakeDevice()
	dev.set(1, 0, seq(0, 10))
	srv := startServer(t, dev, 0)
	m := newTestModbus(t, srv.url(), ModbusOptions{})
	ctx := context.Background()
	_, err := m.ReadRegisters(ctx, 1, 3, 40000, 2)
	var ex *ModbusException
	if !errors.As(err, &ex) || ex.Code != ExceptionIllegalDataAddress || ex.Function != 3 || ex.Name() != "illegal data address" {
		t.Fatalf("err = %v (%#v)", err, ex)
	}
	if !strings.Contains(err.Error(), "illegal data address") || !IsException(err, ExceptionIllegalDataAddress) || IsException(err, ExceptionServerDeviceBusy) {
		t.Errorf("err = %v", err)
	}
	dev.setHook(func(uint8, uint8, uint16, uint16) error { return modbus.ErrServerDeviceBusy })
	_, err = m.ReadRegisters(ctx, 1, 4, 0, 2)
	if !errors.As(err, &ex) || ex.Code != ExceptionServerDeviceBusy || ex.Function != 4 {
		t.Fatalf("err = %v", err)
	}
	dev.setHook(nil)
	// An exception is an answer: no reconnect, no backoff.
	if _, err := m.ReadRegisters(ctx, 1, 3, 0, 2); err != nil {
		t.Fatal(err)
	}
	if n := dev.connections(); n != 1 {
		t.Errorf("%d connections after exceptions, want 1", n)
	}
	if (&ModbusException{Code: 0x42}).Name() != "exception 66" {
		t.Error("unknown exception name")
	}
}

func TestModbusTimeoutBackoff(t *testing.T) {
	dev := newFakeDevice()
	dev.set(1, 0, seq(0, 10))
	var slow atomic.Bool
	slow.Store(true)
	dev.setHook(func(uint8, uint8, uint16, uint16) error {
		if slow.Load() {
			time.Sleep(400 * time.Millisecond)
		}
		return nil
	})
	srv := startServer(t, dev, 0)
	m := newTestModbus(t, srv.url(), ModbusOptions{Timeout: 100 * time.Millisecond, MinBackoff: 200 * time.Millisecond, MaxBackoff: 300 * time.Millisecond})
	ctx := context.Background()
	start := time.Now()
	_, err := m.ReadRegisters(ctx, 1, 3, 0, 2)
	if err == nil || !strings.Contains(err.Error(), "timeout") {
		t.Fatalf("err = %v", err)
	}
	if el := time.Since(start); el > 300*time.Millisecond {
		t.Errorf("timed out after %v, want about 100ms", el)
	}
	slow.Store(false)
	_, err = m.ReadRegisters(ctx, 1, 3, 0, 2)
	want := "energy: modbus " + srv.url() + ": reconnecting in "
	if err == nil || !strings.HasPrefix(err.Error(), want) || !strings.Contains(err.Error(), "after: no response (timeout)") {
		t.Fatalf("err = %v, want %q...", err, want)
	}
	if !errors.Is(err, modbus.ErrRequestTimedOut) {
		t.Errorf("backoff error does not wrap the cause: %v", err)
	}
	time.Sleep(250 * time.Millisecond)
	if _, err := m.ReadRegisters(ctx, 1, 3, 0, 2); err != nil {
		t.Fatalf("after backoff: %v", err)
	}
	if n := dev.connections(); n != 2 {
		t.Errorf("%d connections, want 2 (the timed-out one dropped)", n)
	}
}

func TestModbusContextDeadline(t *testing.T) {
	dev := newFakeDevice()
	dev.set(1, 0, seq(0, 10))
	release := make(chan struct{})
	dev.setHook(func(uint8, uint8, uint16, uint16) error {
		<-release
		return nil
	})
	srv := startServer(t, dev, 0)
	m := newTestModbus(t, srv.url(), ModbusOptions{Timeout: 5 * time.Second})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := m.ReadRegisters(ctx, 1, 3, 0, 2)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v", err)
	}
	if el := time.Since(start); el > time.Second {
		t.Errorf("returned after %v, want about 100ms", el)
	}
	// A second caller waits for the abandoned request, honouring its ctx.
	ctx2, cancel2 := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel2()
	if _, err := m.ReadRegisters(ctx2, 1, 3, 0, 2); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("queued err = %v", err)
	}
	close(release)
	// Once the abandoned request completes, the connection serves again.
	got, err := m.ReadRegisters(context.Background(), 1, 3, 2, 2)
	if err != nil || got[0] != 2 {
		t.Fatalf("got %v %v", got, err)
	}
}

func TestModbusReconnectAfterRestart(t *testing.T) {
	dev := newFakeDevice()
	dev.set(1, 0, seq(0, 10))
	srv := startServer(t, dev, 0)
	m := newTestModbus(t, srv.url(), ModbusOptions{Timeout: 500 * time.Millisecond, MinBackoff: 100 * time.Millisecond})
	ctx := context.Background()
	if _, err := m.ReadRegisters(ctx, 1, 3, 0, 1); err != nil {
		t.Fatal(err)
	}
	srv.stop()
	_, err := m.ReadRegisters(ctx, 1, 3, 0, 1)
	if err == nil || !strings.Contains(err.Error(), "connect") {
		t.Fatalf("server down: %v", err)
	}
	if _, err := m.ReadRegisters(ctx, 1, 3, 0, 1); err == nil || !strings.Contains(err.Error(), "reconnecting in") {
		t.Fatalf("during backoff: %v", err)
	}
	if err := srv.start(); err != nil {
		t.Skipf("port taken meanwhile: %v", err)
	}
	deadline := time.Now().Add(3 * time.Second)
	for {
		_, err = m.ReadRegisters(ctx, 1, 3, 0, 1)
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("after restart: %v", err)
	}
}

// A device that closes idle connections is reconnected at once, without
// an error or a backoff.
func TestModbusIdleClose(t *testing.T) {
	dev := newFakeDevice()
	dev.set(1, 0, seq(0, 10))
	srv := startServer(t, dev, 100*time.Millisecond)
	m := newTestModbus(t, srv.url(), ModbusOptions{})
	ctx := context.Background()
	for i := range 3 {
		if _, err := m.ReadRegisters(ctx, 1, 3, 0, 1); err != nil {
			t.Fatalf("read %d: %v", i, err)
		}
		time.Sleep(250 * time.Millisecond)
	}
	if n := dev.connections(); n != 3 {
		t.Errorf("%d connections, want 3", n)
	}
}

func TestModbusConcurrent(t *testing.T) {
	dev := newFakeDevice()
	dev.set(1, 0, seq(1000, 200))
	dev.set(2, 0, seq(2000, 200))
	srv := startServer(t, dev, 0)
	m := newTestModbus(t, srv.url(), ModbusOptions{})
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for g := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			unit := uint8(1 + g%2)
			for i := range 50 {
				addr := uint16((g*7 + i) % 100)
				ctx := context.Background()
				if i%2 == 0 {
					var cancel context.CancelFunc
					ctx, cancel = context.WithTimeout(ctx, 5*time.Second)
					defer cancel()
				}
				got, err := m.ReadRegisters(ctx, unit, 3, addr, 10)
				if err != nil {
					errs <- err
					return
				}
				if want := uint16(int(unit)*1000 + int(addr)); got[0] != want || got[9] != want+9 {
					errs <- fmt.Errorf("unit %d addr %d: got %v", unit, addr, got)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := dev.connections(); n != 1 {
		t.Errorf("%d connections, want 1 shared", n)
	}
}

// Separate devices do not wait for each other.
func TestModbusNoGlobalLock(t *testing.T) {
	slowDev, fastDev := newFakeDevice(), newFakeDevice()
	slowDev.set(1, 0, seq(0, 10))
	fastDev.set(1, 0, seq(0, 10))
	release := make(chan struct{})
	slowDev.setHook(func(uint8, uint8, uint16, uint16) error { <-release; return nil })
	slow := newTestModbus(t, startServer(t, slowDev, 0).url(), ModbusOptions{})
	fast := newTestModbus(t, startServer(t, fastDev, 0).url(), ModbusOptions{})
	done := make(chan error, 1)
	go func() {
		_, err := slow.ReadRegisters(context.Background(), 1, 3, 0, 1)
		done <- err
	}()
	for slowDev.requests.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	start := time.Now()
	if _, err := fast.ReadRegisters(context.Background(), 1, 3, 0, 1); err != nil {
		t.Fatal(err)
	}
	if el := time.Since(start); el > 500*time.Millisecond {
		t.Errorf("fast device took %v while the slow one was busy", el)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestModbusClose(t *testing.T) {
	dev := newFakeDevice()
	dev.set(1, 0, seq(0, 10))
	release := make(chan struct{})
	dev.setHook(func(uint8, uint8, uint16, uint16) error { <-release; return nil })
	srv := startServer(t, dev, 0)
	m, err := NewModbus(srv.url(), ModbusOptions{})
	if err != nil {
		t.Fatal(err)
	}
	first := make(chan error, 1)
	go func() {
		_, err := m.ReadRegisters(context.Background(), 1, 3, 0, 1)
		first <- err
	}()
	for dev.requests.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	waiting := make(chan error, 1)
	go func() {
		_, err := m.ReadRegisters(context.Background(), 1, 3, 0, 1)
		waiting <- err
	}()
	time.Sleep(20 * time.Millisecond)
	closed := make(chan error, 1)
	go func() { closed <- m.Close() }()
	if err := <-waiting; !errors.Is(err, ErrClosed) {
		t.Errorf("waiting request: %v", err)
	}
	close(release)
	if err := <-first; err != nil {
		t.Errorf("in-flight request: %v", err)
	}
	if err := <-closed; err != nil {
		t.Errorf("Close: %v", err)
	}
	if _, err := m.ReadRegisters(context.Background(), 1, 3, 0, 1); !errors.Is(err, ErrClosed) {
		t.Errorf("after Close: %v", err)
	}
	if err := m.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// rawServer accepts TCP connections on 127.0.0.1 and hands each to serve
// with its sequence number (0 for the first connection).
func rawServer(t *testing.T, serve func(c net.Conn, n int)) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { l.Close(); wg.Wait() })
	go func() {
		for n := 0; ; n++ {
			c, err := l.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				serve(c, n)
			}()
		}
	}()
	return l.Addr().String()
}

// readMBAP reads a Modbus TCP read request and returns its transaction ID,
// unit, function, address and quantity.
func readMBAP(c net.Conn) (txn uint16, unit, fc uint8, addr, qty uint16, err error) {
	var b [12]byte
	if _, err = io.ReadFull(c, b[:]); err != nil {
		return
	}
	return binary.BigEndian.Uint16(b[0:]), b[6], b[7], binary.BigEndian.Uint16(b[8:]), binary.BigEndian.Uint16(b[10:]), nil
}

// mbapResponse builds a read response with registers addr, addr+1, ...
func mbapResponse(txn uint16, unit, fc uint8, addr, qty uint16) []byte {
	b := binary.BigEndian.AppendUint16(nil, txn)
	b = append(b, 0, 0)
	b = binary.BigEndian.AppendUint16(b, 3+2*qty)
	b = append(b, unit, fc, byte(2*qty))
	for i := range qty {
		b = binary.BigEndian.AppendUint16(b, addr+i)
	}
	return b
}

func TestModbusGarbage(t *testing.T) {
	addr := rawServer(t, func(c net.Conn, n int) {
		for {
			txn, unit, fc, a, q, err := readMBAP(c)
			if err != nil {
				return
			}
			if n == 0 {
				// An MBAP header with length 0, then noise.
				c.Write([]byte{0, 1, 0, 0, 0, 0, 0xde, 0xad, 0xbe, 0xef})
				continue
			}
			c.Write(mbapResponse(txn, unit, fc, a, q))
		}
	})
	m := newTestModbus(t, "tcp://"+addr, ModbusOptions{Timeout: 300 * time.Millisecond, MinBackoff: 50 * time.Millisecond})
	ctx := context.Background()
	_, err := m.ReadRegisters(ctx, 1, 3, 7, 2)
	if err == nil || !strings.Contains(err.Error(), "garbled or mismatched response") {
		t.Fatalf("err = %v", err)
	}
	time.Sleep(60 * time.Millisecond)
	got, err := m.ReadRegisters(ctx, 1, 3, 7, 2)
	if err != nil || fmt.Sprint(got) != "[7 8]" {
		t.Fatalf("after reconnect: %v %v", got, err)
	}
}

// A response with another transaction ID is never taken for the answer:
// a stale one is skipped, and a connection that only answers with wrong
// IDs times out and is replaced.
func TestModbusTransactionMismatch(t *testing.T) {
	addr := rawServer(t, func(c net.Conn, n int) {
		for {
			txn, unit, fc, a, q, err := readMBAP(c)
			if err != nil {
				return
			}
			switch n {
			case 0: // only wrong IDs
				c.Write(mbapResponse(txn+100, unit, fc, a+1000, q))
			default: // a stale answer first, then the right one
				c.Write(mbapResponse(txn-1, unit, fc, a+1000, q))
				c.Write(mbapResponse(txn, unit, fc, a, q))
			}
		}
	})
	m := newTestModbus(t, "tcp://"+addr, ModbusOptions{Timeout: 200 * time.Millisecond, MinBackoff: 50 * time.Millisecond})
	ctx := context.Background()
	if _, err := m.ReadRegisters(ctx, 1, 3, 5, 3); err == nil || !strings.Contains(err.Error(), "timeout") {
		t.Fatalf("err = %v", err)
	}
	time.Sleep(60 * time.Millisecond)
	for range 3 {
		got, err := m.ReadRegisters(ctx, 1, 3, 5, 3)
		if err != nil || fmt.Sprint(got) != "[5 6 7]" {
			t.Fatalf("got %v %v", got, err)
		}
	}
}

// crc16 is the Modbus RTU CRC.
func crc16(b []byte) uint16 {
	crc := uint16(0xFFFF)
	for _, c := range b {
		crc ^= uint16(c)
		for range 8 {
			if crc&1 != 0 {
				crc = crc>>1 ^ 0xA001
			} else {
				crc >>= 1
			}
		}
	}
	return crc
}

func TestModbusRTUOverTCP(t *testing.T) {
	addr := rawServer(t, func(c net.Conn, n int) {
		for {
			var req [8]byte
			if _, err := io.ReadFull(c, req[:]); err != nil {
				return
			}
			if crc16(req[:6]) != binary.LittleEndian.Uint16(req[6:]) {
				return
			}
			unit, fc := req[0], req[1]
			a, q := binary.BigEndian.Uint16(req[2:]), binary.BigEndian.Uint16(req[4:])
			var res []byte
			if a >= 1000 {
				res = []byte{unit, fc | 0x80, ExceptionIllegalDataAddress}
			} else {
				res = []byte{unit, fc, byte(2 * q)}
				for i := range q {
					res = binary.BigEndian.AppendUint16(res, a+i+uint16(unit)*10000)
				}
			}
			c.Write(binary.LittleEndian.AppendUint16(res, crc16(res)))
		}
	})
	m := newTestModbus(t, "rtuovertcp://"+addr, ModbusOptions{Timeout: time.Second})
	ctx := context.Background()
	got, err := m.ReadRegisters(ctx, 2, 4, 10, 3)
	if err != nil || fmt.Sprint(got) != "[20010 20011 20012]" {
		t.Fatalf("got %v %v", got, err)
	}
	_, err = m.ReadRegisters(ctx, 2, 3, 1000, 3)
	if !IsException(err, ExceptionIllegalDataAddress) {
		t.Fatalf("err = %v", err)
	}
	if got, err := m.ReadRegisters(ctx, 3, 3, 0, 125); err != nil || got[124] != 30124 {
		t.Fatalf("got %v %v", got, err)
	}
}

func TestModbusRTUSerialMissing(t *testing.T) {
	m := newTestModbus(t, "rtu:///dev/pikit-no-such-tty", ModbusOptions{MinBackoff: time.Hour})
	_, err := m.ReadRegisters(context.Background(), 1, 3, 0, 1)
	if err == nil || !strings.Contains(err.Error(), "connect") || !strings.Contains(err.Error(), "pikit-no-such-tty") {
		t.Fatalf("err = %v", err)
	}
	_, err = m.ReadRegisters(context.Background(), 1, 3, 0, 1)
	if err == nil || !strings.Contains(err.Error(), "reconnecting in 1h0m0s") {
		t.Fatalf("err = %v", err)
	}
}
