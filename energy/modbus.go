package energy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/simonvetter/modbus"
)

// Defaults for ModbusOptions.
const (
	DefaultModbusTimeout = 3 * time.Second
	DefaultMinBackoff    = 500 * time.Millisecond
	DefaultMaxBackoff    = 30 * time.Second
	// DefaultModbusPort is the Modbus TCP port used when a URL has none.
	DefaultModbusPort = 502
)

// MaxRegisters is the largest count one Modbus read may ask for.
const MaxRegisters = 125

// ModbusOptions configures a Modbus transport. The zero value is ready to
// use.
type ModbusOptions struct {
	// Timeout bounds each request (default DefaultModbusTimeout).
	Timeout time.Duration
	// After a connection error or timeout the connection is closed and not
	// reopened before MinBackoff has passed (default DefaultMinBackoff);
	// the wait doubles with every further failure up to MaxBackoff
	// (default DefaultMaxBackoff) and resets after a successful request.
	MinBackoff, MaxBackoff time.Duration
	// Logger, if set, receives connection drops and reconnects.
	Logger *slog.Logger
}

// Modbus exception codes (the Code of a ModbusException).
const (
	ExceptionIllegalFunction         = 0x01
	ExceptionIllegalDataAddress      = 0x02
	ExceptionIllegalDataValue        = 0x03
	ExceptionServerDeviceFailure     = 0x04
	ExceptionAcknowledge             = 0x05
	ExceptionServerDeviceBusy        = 0x06
	ExceptionMemoryParityError       = 0x08
	ExceptionGatewayPathUnavailable  = 0x0A
	ExceptionGatewayTargetNoResponse = 0x0B
)

var exceptionNames = map[uint8]string{
	ExceptionIllegalFunction:         "illegal function",
	ExceptionIllegalDataAddress:      "illegal data address",
	ExceptionIllegalDataValue:        "illegal data value",
	ExceptionServerDeviceFailure:     "server device failure",
	ExceptionAcknowledge:             "acknowledge",
	ExceptionServerDeviceBusy:        "server device busy",
	ExceptionMemoryParityError:       "memory parity error",
	ExceptionGatewayPathUnavailable:  "gateway path unavailable",
	ExceptionGatewayTargetNoResponse: "gateway target device failed to respond",
}

// ModbusException is a Modbus exception response: the device understood
// the request and refused it. It is the device's answer, not a transport
// failure, so it does not drop the connection. Find it with errors.As.
type ModbusException struct {
	Function uint8 // function code of the request (3 or 4)
	Code     uint8 // exception code, e.g. ExceptionIllegalDataAddress
}

// Name returns the exception's name, e.g. "illegal data address".
func (e *ModbusException) Name() string {
	if n, ok := exceptionNames[e.Code]; ok {
		return n
	}
	return fmt.Sprintf("exception %d", e.Code)
}

func (e *ModbusException) Error() string {
	return fmt.Sprintf("energy: modbus exception %d (%s) to function %d", e.Code, e.Name(), e.Function)
}

// IsException reports whether err is (or wraps) a Modbus exception with one
// of the given codes, or any exception when no code is given.
func IsException(err error, codes ...uint8) bool {
	var e *ModbusException
	if !errors.As(err, &e) {
		return false
	}
	if len(codes) == 0 {
		return true
	}
	for _, c := range codes {
		if e.Code == c {
			return true
		}
	}
	return false
}

// libExceptions maps the library's exception errors back to their codes.
var libExceptions = map[error]uint8{
	modbus.ErrIllegalFunction:         ExceptionIllegalFunction,
	modbus.ErrIllegalDataAddress:      ExceptionIllegalDataAddress,
	modbus.ErrIllegalDataValue:        ExceptionIllegalDataValue,
	modbus.ErrServerDeviceFailure:     ExceptionServerDeviceFailure,
	modbus.ErrAcknowledge:             ExceptionAcknowledge,
	modbus.ErrServerDeviceBusy:        ExceptionServerDeviceBusy,
	modbus.ErrMemoryParityError:       ExceptionMemoryParityError,
	modbus.ErrGWPathUnavailable:       ExceptionGatewayPathUnavailable,
	modbus.ErrGWTargetFailedToRespond: ExceptionGatewayTargetNoResponse,
}

// asException converts the library's exception errors; it returns nil for
// any other error.
func asException(fc uint8, err error) *ModbusException {
	if me, ok := err.(modbus.Error); ok {
		if code, ok := libExceptions[me]; ok {
			return &ModbusException{Function: fc, Code: code}
		}
		return nil
	}
	// The library reports codes it does not know as
	// "unknown exception code (N)".
	var code uint8
	if _, e := fmt.Sscanf(err.Error(), "unknown exception code (%d)", &code); e == nil {
		return &ModbusException{Function: fc, Code: code}
	}
	return nil
}

// Modbus is a Modbus TCP, RTU or RTU-over-TCP connection to one device (or
// one RS-485 bus), implementing RegisterReader.
//
// The connection is opened on the first request and shared by everything
// reading through this Modbus value: requests are serialised on it, one at a
// time, because a Modbus link carries one transaction at a time (and the
// underlying client is not safe for concurrent use). Separate Modbus values
// never wait for each other. Methods are safe for concurrent use.
//
// Context: the underlying client has no context support. ReadRegisters
// checks ctx before each request and while waiting its turn; a request in
// flight is bounded by ModbusOptions.Timeout, and connecting by the
// library's own 5 s dial timeout. When ctx can end (ctx.Done is not nil),
// the request runs in a goroutine so that ReadRegisters can return ctx's
// error as soon as ctx ends; the abandoned request finishes (or times out)
// in the background before the next one starts. With a context that cannot
// end, the request runs in the caller's goroutine, which is cheaper.
//
// Errors: a Modbus exception is returned as *ModbusException and leaves the
// connection up. Any other failure (refused, reset, timeout, a garbled or
// mismatched response) closes the connection, so no stale bytes can be
// taken for a later answer, and it is reopened by a later request once the
// backoff has passed; until then requests fail at once with an error
// saying when the next attempt will be made. A connection that was idle and
// turns out to have been closed by the device is reopened at once, once.
type Modbus struct {
	url  string // canonical, for errors
	kind string // "tcp", "rtu" or "rtuovertcp"
	conf modbus.ClientConfiguration
	opts ModbusOptions
	log  *slog.Logger

	// sem is the connection's lock: a channel so that waiting for it can
	// be abandoned when ctx ends.
	sem       chan struct{}
	closed    chan struct{}
	closeOnce sync.Once

	// Guarded by sem.
	client  *modbus.ModbusClient
	unit    int // unit ID set on client, -1 for none
	served  int // requests served on the current connection
	backoff time.Duration
	retryAt time.Time
	lastErr error
	isShut  bool
}

// NewModbus returns a transport for a Modbus URL:
//
//	tcp://HOST[:PORT]                 Modbus TCP (port 502 by default)
//	rtuovertcp://HOST[:PORT]          RTU frames over TCP, e.g. an RS-485 gateway
//	rtu:///dev/ttyUSB0[?baud=9600&parity=N&stop=1&data=8]
//
// RTU options default to 9600 baud, 8 data bits, no parity, 1 stop bit;
// parity is N, E or O. Nothing is opened until the first request.
func NewModbus(rawURL string, opts ModbusOptions) (*Modbus, error) {
	if opts.Timeout < 0 || opts.MinBackoff < 0 || opts.MaxBackoff < 0 {
		return nil, fmt.Errorf("energy: modbus %s: negative timeout or backoff", rawURL)
	}
	if opts.Timeout == 0 {
		opts.Timeout = DefaultModbusTimeout
	}
	if opts.MinBackoff == 0 {
		opts.MinBackoff = DefaultMinBackoff
	}
	if opts.MaxBackoff == 0 {
		opts.MaxBackoff = DefaultMaxBackoff
	}
	if opts.MaxBackoff < opts.MinBackoff {
		opts.MaxBackoff = opts.MinBackoff
	}
	kind, canon, conf, err := parseModbusURL(rawURL)
	if err != nil {
		return nil, err
	}
	conf.Timeout = opts.Timeout
	// The library prints to stdout unless given a logger.
	conf.Logger = log.New(io.Discard, "", 0)
	m := &Modbus{
		url:    canon,
		kind:   kind,
		conf:   conf,
		opts:   opts,
		log:    opts.Logger,
		sem:    make(chan struct{}, 1),
		closed: make(chan struct{}),
		unit:   -1,
	}
	return m, nil
}

// parseModbusURL validates a transport URL and returns its kind, its
// canonical form and the client configuration.
func parseModbusURL(raw string) (kind, canon string, conf modbus.ClientConfiguration, err error) {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("energy: modbus %q: "+format+" (want tcp://HOST[:PORT], rtuovertcp://HOST[:PORT] or rtu:///dev/DEVICE?baud=9600&parity=N&stop=1)", append([]any{raw}, a...)...)
	}
	u, perr := url.Parse(raw)
	if perr != nil {
		return "", "", conf, bad("%v", perr)
	}
	switch u.Scheme {
	case "tcp", "rtuovertcp":
		if u.Path != "" || u.User != nil || u.Fragment != "" || u.Opaque != "" {
			return "", "", conf, bad("unexpected path or user")
		}
		if u.RawQuery != "" {
			return "", "", conf, bad("%s takes no options", u.Scheme)
		}
		hostport, err := hostPort(u.Host)
		if err != nil {
			return "", "", conf, bad("%v", err)
		}
		canon = u.Scheme + "://" + hostport
		conf.URL = canon
		return u.Scheme, canon, conf, nil
	case "rtu":
		if u.Host != "" || u.Path == "" {
			return "", "", conf, bad("want a device path after rtu://")
		}
		conf.Speed, conf.DataBits, conf.Parity, conf.StopBits = 9600, 8, modbus.PARITY_NONE, 1
		q, err := url.ParseQuery(u.RawQuery)
		if err != nil {
			return "", "", conf, bad("%v", err)
		}
		for k, v := range q {
			if len(v) != 1 {
				return "", "", conf, bad("option %q given %d times", k, len(v))
			}
			switch k {
			case "baud":
				n, err := strconv.ParseUint(v[0], 10, 32)
				if err != nil || n < 300 || n > 4000000 {
					return "", "", conf, bad("bad baud %q (want 300..4000000)", v[0])
				}
				conf.Speed = uint(n)
			case "data":
				n, err := strconv.ParseUint(v[0], 10, 8)
				if err != nil || n < 5 || n > 8 {
					return "", "", conf, bad("bad data bits %q (want 5..8)", v[0])
				}
				conf.DataBits = uint(n)
			case "stop":
				switch v[0] {
				case "1":
					conf.StopBits = 1
				case "2":
					conf.StopBits = 2
				default:
					return "", "", conf, bad("bad stop bits %q (want 1 or 2)", v[0])
				}
			case "parity":
				switch strings.ToUpper(v[0]) {
				case "N":
					conf.Parity = modbus.PARITY_NONE
				case "E":
					conf.Parity = modbus.PARITY_EVEN
				case "O":
					conf.Parity = modbus.PARITY_ODD
				default:
					return "", "", conf, bad("bad parity %q (want N, E or O)", v[0])
				}
			default:
				return "", "", conf, bad("unknown option %q (accepted: baud, data, parity, stop)", k)
			}
		}
		canon = fmt.Sprintf("rtu://%s?baud=%d&data=%d&parity=%s&stop=%d", u.Path, conf.Speed, conf.DataBits,
			[]string{"N", "E", "O"}[conf.Parity], conf.StopBits)
		conf.URL = "rtu://" + u.Path
		return "rtu", canon, conf, nil
	}
	return "", "", conf, bad("unknown scheme %q", u.Scheme)
}

// hostPort checks HOST[:PORT] and adds the default port.
func hostPort(s string) (string, error) {
	if s == "" {
		return "", errors.New("missing host")
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		// No port (or a bare IPv6 address in brackets).
		host, port = strings.TrimSuffix(strings.TrimPrefix(s, "["), "]"), strconv.Itoa(DefaultModbusPort)
		if strings.ContainsAny(host, "[]") || (strings.Contains(host, ":") && !strings.HasPrefix(s, "[")) {
			return "", fmt.Errorf("bad host %q (write IPv6 addresses in brackets)", s)
		}
	}
	if host == "" {
		return "", errors.New("missing host")
	}
	n, err := strconv.ParseUint(port, 10, 16)
	if err != nil || n == 0 {
		return "", fmt.Errorf("bad port %q", port)
	}
	return net.JoinHostPort(host, port), nil
}

// URL returns the transport's canonical URL, e.g. "tcp://10.0.0.5:502".
func (m *Modbus) URL() string { return m.url }

// ValidUnit reports whether unit is a usable unit ID on this transport: any
// value over Modbus TCP (gateways use 0 and 255 too), 1..247 on RTU lines
// where 0 is broadcast and gets no answer.
func (m *Modbus) ValidUnit(unit uint8) bool {
	if m.kind == "tcp" {
		return true
	}
	return unit >= 1 && unit <= 247
}

// ReadRegisters reads count (1..125) registers at PDU address addr from
// unit with function fc (3 holding, 4 input). See the type documentation
// for context, error and reconnect behaviour.
func (m *Modbus) ReadRegisters(ctx context.Context, unit uint8, fc uint8, addr, count uint16) ([]uint16, error) {
	if fc != 3 && fc != 4 {
		return nil, fmt.Errorf("energy: modbus %s: function %d not supported (want 3 or 4)", m.url, fc)
	}
	if count < 1 || count > MaxRegisters {
		return nil, fmt.Errorf("energy: modbus %s: bad register count %d (want 1..%d)", m.url, count, MaxRegisters)
	}
	if int(addr)+int(count) > 0x10000 {
		return nil, fmt.Errorf("energy: modbus %s: %d registers at %d run past address 65535", m.url, count, addr)
	}
	if !m.ValidUnit(unit) {
		return nil, fmt.Errorf("energy: modbus %s: bad unit ID %d (want 1..247)", m.url, unit)
	}
	if err := ctx.Err(); err != nil {
		return nil, m.wrapCtx(unit, fc, addr, count, err)
	}
	select {
	case m.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, m.wrapCtx(unit, fc, addr, count, ctx.Err())
	case <-m.closed:
		return nil, fmt.Errorf("energy: modbus %s: %w", m.url, ErrClosed)
	}
	if ctx.Done() == nil {
		// Nothing can cancel ctx: run in this goroutine, no handoff.
		defer func() { <-m.sem }()
		return m.do(unit, fc, addr, count)
	}
	type result struct {
		regs []uint16
		err  error
	}
	done := make(chan result, 1)
	go func() {
		defer func() { <-m.sem }()
		if err := ctx.Err(); err != nil {
			// Abandoned before it started: no point sending it.
			done <- result{nil, m.wrapCtx(unit, fc, addr, count, err)}
			return
		}
		regs, err := m.do(unit, fc, addr, count)
		done <- result{regs, err}
	}()
	select {
	case r := <-done:
		return r.regs, r.err
	case <-ctx.Done():
		return nil, m.wrapCtx(unit, fc, addr, count, ctx.Err())
	}
}

func (m *Modbus) wrapCtx(unit, fc uint8, addr, count uint16, err error) error {
	return fmt.Errorf("energy: modbus %s unit %d: read %d registers at %d (function %d): %w", m.url, unit, count, addr, fc, err)
}

// do performs one request; the caller holds sem.
func (m *Modbus) do(unit, fc uint8, addr, count uint16) ([]uint16, error) {
	if m.isShut {
		return nil, fmt.Errorf("energy: modbus %s: %w", m.url, ErrClosed)
	}
	for attempt := 0; ; attempt++ {
		if m.client == nil {
			if wait := time.Until(m.retryAt); wait > 0 {
				return nil, fmt.Errorf("energy: modbus %s: reconnecting in %s after: %w", m.url, roundWait(wait), m.lastErr)
			}
			if err := m.connect(); err != nil {
				m.fail(err)
				return nil, fmt.Errorf("energy: modbus %s: connect: %w", m.url, err)
			}
		}
		if m.unit != int(unit) {
			_ = m.client.SetUnitId(unit) // never fails
			m.unit = int(unit)
		}
		rt := modbus.HOLDING_REGISTER
		if fc == 4 {
			rt = modbus.INPUT_REGISTER
		}
		regs, err := m.client.ReadRegisters(addr, count, rt)
		if err == nil && len(regs) != int(count) {
			err = fmt.Errorf("got %d registers, want %d", len(regs), count)
		}
		if err == nil {
			m.served++
			m.backoff, m.lastErr = 0, nil
			return regs, nil
		}
		if ex := asException(fc, err); ex != nil {
			m.served++
			m.backoff, m.lastErr = 0, nil
			return nil, fmt.Errorf("energy: modbus %s unit %d: read %d registers at %d: %w", m.url, unit, count, addr, ex)
		}
		err = describe(err)
		reused := m.served > 0
		m.drop(err)
		if attempt == 0 && reused && connGone(err) {
			// The device closed an idle connection (many do after a
			// minute or so); that says nothing about its health, so try a
			// fresh connection at once rather than waiting out a backoff.
			continue
		}
		m.fail(err)
		return nil, fmt.Errorf("energy: modbus %s unit %d: read %d registers at %d: %w", m.url, unit, count, addr, err)
	}
}

// describe makes the library's terse errors say what happened.
func describe(err error) error {
	switch err {
	case modbus.ErrRequestTimedOut:
		return fmt.Errorf("no response (timeout): %w", err)
	case modbus.ErrBadUnitId, modbus.ErrBadTransactionId, modbus.ErrProtocolError, modbus.ErrBadCRC, modbus.ErrShortFrame:
		return fmt.Errorf("garbled or mismatched response: %w", err)
	}
	return err
}

// connGone reports whether err says the peer closed the connection.
func connGone(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) || errors.Is(err, net.ErrClosed)
}

func roundWait(d time.Duration) time.Duration {
	if d >= time.Second {
		return d.Round(100 * time.Millisecond)
	}
	return d.Round(time.Millisecond)
}

func (m *Modbus) connect() error {
	c, err := modbus.NewClient(&m.conf)
	if err != nil {
		return err
	}
	if err := c.Open(); err != nil {
		return err
	}
	m.client, m.unit, m.served = c, -1, 0
	if m.log != nil && m.lastErr != nil {
		m.log.Info("modbus reconnected", "url", m.url)
	}
	return nil
}

// drop closes the connection after a failure.
func (m *Modbus) drop(err error) {
	if m.client != nil {
		_ = m.client.Close()
		m.client = nil
		if m.log != nil {
			m.log.Warn("modbus connection dropped", "url", m.url, "err", err)
		}
	}
}

// fail records a failure and schedules the next attempt.
func (m *Modbus) fail(err error) {
	if m.backoff == 0 {
		m.backoff = m.opts.MinBackoff
	} else {
		m.backoff = min(2*m.backoff, m.opts.MaxBackoff)
	}
	m.retryAt = time.Now().Add(m.backoff)
	m.lastErr = err
}

// Close closes the connection. Requests waiting for their turn fail with
// ErrClosed; a request in flight finishes first. Close is idempotent.
func (m *Modbus) Close() error {
	first := false
	m.closeOnce.Do(func() { close(m.closed); first = true })
	if !first {
		return nil
	}
	m.sem <- struct{}{}
	defer func() { <-m.sem }()
	m.isShut = true
	if m.client != nil {
		err := m.client.Close()
		m.client = nil
		return err
	}
	return nil
}
