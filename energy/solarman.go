package energy

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pikit/pikit/internal/devspec"
)

// Solarman V5 constants.
const (
	SolarmanStart     = 0xA5
	SolarmanEnd       = 0x15
	SolarmanRequest   = 0x4510
	SolarmanResponse  = 0x1510
	SolarmanHeartbeat = 0x4710
	// SolarmanPort is the TCP port of the loggers.
	SolarmanPort = 8899
	// DefaultSolarmanTimeout bounds one request: the loggers relay to the
	// inverter over a slow RS485 link and answer in about a second.
	DefaultSolarmanTimeout = 5 * time.Second

	solarmanHeaderLen  = 11
	solarmanPayloadPad = 15 // request payload bytes before the RTU frame
	solarmanRespPad    = 14 // response payload bytes before the RTU frame
	solarmanMaxPayload = 1024
)

// Errors of Solarman frames.
var (
	// ErrSolarmanShort is returned by ParseSolarmanFrame when more bytes
	// are needed.
	ErrSolarmanShort = errors.New("energy: solarman: frame incomplete")
	// ErrSolarmanFrame is wrapped by errors about malformed frames.
	ErrSolarmanFrame = errors.New("energy: solarman: bad frame")
)

// SolarmanFrame is one Solarman V5 frame.
//
// Solarman (IGEN Tech) Wi-Fi/LAN data-logger sticks, sold with Deye, Sofar,
// Solis, Afore and other inverters, accept Modbus RTU requests wrapped in
// their own "V5" frames on TCP port 8899. A V5 frame is
//
//	offset size
//	0      1    start, 0xA5
//	1      2    payload length, little-endian
//	3      2    control code, little-endian: 0x4510 request, 0x1510 response
//	             (0x4710 is the logger's heartbeat)
//	5      2    sequence number, little-endian; a response echoes the
//	             request's low byte at offset 5
//	7      4    logger serial number, little-endian
//	11     n    payload
//	11+n   1    checksum: sum of the bytes from offset 1 to the end of the
//	             payload, modulo 256
//	12+n   1    end, 0x15
//
// A request's payload is frame type 0x02, sensor type (2 bytes, 0), total
// working time, power-on time and offset time (4 bytes each, 0), then the
// Modbus RTU frame (unit, function, data, CRC-16/MODBUS low byte first). A
// response's payload is frame type 0x02, a status byte, the three times, then
// the RTU response.
type SolarmanFrame struct {
	Control  uint16
	Sequence uint16
	Serial   uint32 // logger serial number
	Payload  []byte
}

// Encode returns the frame's bytes, checksum included.
func (f SolarmanFrame) Encode() []byte {
	b := make([]byte, 0, solarmanHeaderLen+len(f.Payload)+2)
	b = append(b, SolarmanStart)
	b = binary.LittleEndian.AppendUint16(b, uint16(len(f.Payload)))
	b = binary.LittleEndian.AppendUint16(b, f.Control)
	b = binary.LittleEndian.AppendUint16(b, f.Sequence)
	b = binary.LittleEndian.AppendUint32(b, f.Serial)
	b = append(b, f.Payload...)
	b = append(b, solarmanChecksum(b[1:]), SolarmanEnd)
	return b
}

func solarmanChecksum(b []byte) byte {
	var s byte
	for _, c := range b {
		s += c
	}
	return s
}

// ParseSolarmanFrame parses the frame at the start of b and returns it with
// the number of bytes it occupies. It returns ErrSolarmanShort when b holds
// only the beginning of a frame, and an error wrapping ErrSolarmanFrame for a
// bad start byte, end byte, checksum or an implausible length. The payload
// aliases b.
func ParseSolarmanFrame(b []byte) (SolarmanFrame, int, error) {
	if len(b) == 0 {
		return SolarmanFrame{}, 0, ErrSolarmanShort
	}
	if b[0] != SolarmanStart {
		return SolarmanFrame{}, 0, fmt.Errorf("%w: start byte 0x%02X, want 0xA5", ErrSolarmanFrame, b[0])
	}
	if len(b) < 3 {
		return SolarmanFrame{}, 0, ErrSolarmanShort
	}
	n := int(binary.LittleEndian.Uint16(b[1:3]))
	if n > solarmanMaxPayload {
		return SolarmanFrame{}, 0, fmt.Errorf("%w: payload length %d", ErrSolarmanFrame, n)
	}
	total := solarmanHeaderLen + n + 2
	if len(b) < total {
		return SolarmanFrame{}, 0, ErrSolarmanShort
	}
	if b[total-1] != SolarmanEnd {
		return SolarmanFrame{}, 0, fmt.Errorf("%w: end byte 0x%02X, want 0x15", ErrSolarmanFrame, b[total-1])
	}
	if sum := solarmanChecksum(b[1 : total-2]); sum != b[total-2] {
		return SolarmanFrame{}, 0, fmt.Errorf("%w: checksum 0x%02X, computed 0x%02X", ErrSolarmanFrame, b[total-2], sum)
	}
	return SolarmanFrame{
		Control:  binary.LittleEndian.Uint16(b[3:5]),
		Sequence: binary.LittleEndian.Uint16(b[5:7]),
		Serial:   binary.LittleEndian.Uint32(b[7:11]),
		Payload:  b[solarmanHeaderLen : solarmanHeaderLen+n],
	}, total, nil
}

// SolarmanRequestPayload wraps a Modbus RTU frame in a request payload.
func SolarmanRequestPayload(rtu []byte) []byte {
	p := make([]byte, solarmanPayloadPad, solarmanPayloadPad+len(rtu))
	p[0] = 0x02 // frame type; sensor type and the three times stay 0
	return append(p, rtu...)
}

// SolarmanResponsePayload wraps a Modbus RTU response in a response
// payload (status 1), as a logger does; for simulators and tests.
func SolarmanResponsePayload(rtu []byte) []byte {
	p := make([]byte, solarmanRespPad, solarmanRespPad+len(rtu))
	p[0], p[1] = 0x02, 0x01
	return append(p, rtu...)
}

// CRC16Modbus returns the CRC-16/MODBUS of b (polynomial 0xA001 reflected,
// initial value 0xFFFF), sent low byte first.
func CRC16Modbus(b []byte) uint16 {
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

// RTUReadRequest returns the Modbus RTU frame reading count registers at
// addr of unit with function fc.
func RTUReadRequest(unit, fc uint8, addr, count uint16) []byte {
	b := []byte{unit, fc, byte(addr >> 8), byte(addr), byte(count >> 8), byte(count)}
	return binary.LittleEndian.AppendUint16(b, CRC16Modbus(b))
}

// ParseRTUReadResponse checks a Modbus RTU response to a read of count
// registers of unit with function fc and returns the registers. An
// exception response is returned as *ModbusException.
func ParseRTUReadResponse(b []byte, unit, fc uint8, count uint16) ([]uint16, error) {
	if len(b) < 5 {
		return nil, fmt.Errorf("%w: RTU response of %d bytes", ErrSolarmanFrame, len(b))
	}
	// Some loggers pad the RTU frame; the CRC covers what the unit sent, so
	// find the frame's own length first.
	n := 5
	if b[1] == fc {
		n = 3 + int(b[2]) + 2
	}
	if len(b) < n {
		return nil, fmt.Errorf("%w: RTU response truncated (%d of %d bytes)", ErrSolarmanFrame, len(b), n)
	}
	b = b[:n]
	if crc := CRC16Modbus(b[:n-2]); crc != binary.LittleEndian.Uint16(b[n-2:]) {
		return nil, fmt.Errorf("%w: RTU CRC 0x%04X, computed 0x%04X", ErrSolarmanFrame, binary.LittleEndian.Uint16(b[n-2:]), crc)
	}
	if b[0] != unit {
		return nil, fmt.Errorf("%w: RTU response from unit %d, want %d", ErrSolarmanFrame, b[0], unit)
	}
	switch b[1] {
	case fc | 0x80:
		return nil, &ModbusException{Function: fc, Code: b[2]}
	case fc:
	default:
		return nil, fmt.Errorf("%w: RTU response function %d, want %d", ErrSolarmanFrame, b[1], fc)
	}
	if int(b[2]) != 2*int(count) {
		return nil, fmt.Errorf("%w: RTU response has %d bytes, want %d", ErrSolarmanFrame, b[2], 2*count)
	}
	regs := make([]uint16, count)
	for i := range regs {
		regs[i] = binary.BigEndian.Uint16(b[3+2*i:])
	}
	return regs, nil
}

// SolarmanOptions configures a Solarman transport. The zero value is ready
// to use.
type SolarmanOptions struct {
	// Timeout bounds each request (default DefaultSolarmanTimeout).
	Timeout time.Duration
	// Dialer dials the logger (default a net.Dialer).
	Dialer interface {
		DialContext(ctx context.Context, network, addr string) (net.Conn, error)
	}
	// Logger, if set, receives reconnects and skipped frames at debug level.
	Logger *slog.Logger
}

// Solarman is a RegisterReader that talks to a Solarman V5 data logger over
// one TCP connection. Requests are serialised; each carries a new sequence
// number and only the response echoing it is accepted (late answers to
// abandoned requests and heartbeats are skipped). After a transport or
// framing error the connection is closed and redialled by the next request.
// Its methods are safe for concurrent use.
type Solarman struct {
	addr   string
	serial uint32
	opts   SolarmanOptions
	log    *slog.Logger

	sem    chan struct{} // the connection's lock; a channel so waiting can be abandoned
	closed chan struct{}
	once   sync.Once

	// Guarded by sem.
	conn net.Conn
	rd   *bufio.Reader
	seq  uint16
}

// NewSolarman returns a transport to the logger at addr ("host" or
// "host:port", port 8899 by default) whose serial number (printed on the
// stick) is serial. Nothing is dialled before the first request.
func NewSolarman(addr string, serial uint32, opts SolarmanOptions) (*Solarman, error) {
	if opts.Timeout < 0 {
		return nil, fmt.Errorf("energy: solarman %s: negative timeout", addr)
	}
	if serial == 0 {
		return nil, fmt.Errorf("energy: solarman %s: logger serial number missing", addr)
	}
	if opts.Timeout == 0 {
		opts.Timeout = DefaultSolarmanTimeout
	}
	if opts.Dialer == nil {
		opts.Dialer = &net.Dialer{}
	}
	hp, err := withDefaultPort(addr, SolarmanPort)
	if err != nil {
		return nil, fmt.Errorf("energy: solarman: %w", err)
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Solarman{
		addr: hp, serial: serial, opts: opts, log: log,
		sem: make(chan struct{}, 1), closed: make(chan struct{}),
		seq: uint16(time.Now().UnixNano()), // a new connection's first answers cannot be taken for a previous process's
	}, nil
}

func withDefaultPort(addr string, port int) (string, error) {
	if addr == "" {
		return "", errors.New("empty address")
	}
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		// No port (or an IPv6 literal without brackets).
		if strings.Count(addr, ":") > 1 && !strings.HasPrefix(addr, "[") {
			return net.JoinHostPort(addr, strconv.Itoa(port)), nil
		}
		if strings.Contains(addr, ":") {
			return "", fmt.Errorf("bad address %q", addr)
		}
		return net.JoinHostPort(addr, strconv.Itoa(port)), nil
	}
	if host == "" {
		return "", fmt.Errorf("bad address %q: no host", addr)
	}
	if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
		return "", fmt.Errorf("bad port in %q", addr)
	}
	return addr, nil
}

// Addr returns the logger's address.
func (s *Solarman) Addr() string { return s.addr }

// ReadRegisters implements RegisterReader.
func (s *Solarman) ReadRegisters(ctx context.Context, unit uint8, fc uint8, addr, count uint16) ([]uint16, error) {
	if fc != 3 && fc != 4 {
		return nil, fmt.Errorf("energy: solarman %s: function %d not supported (3 or 4)", s.addr, fc)
	}
	if count == 0 || count > MaxRegisters || int(addr)+int(count) > 1<<16 {
		return nil, fmt.Errorf("energy: solarman %s: bad read of %d registers at %d", s.addr, count, addr)
	}
	select {
	case s.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-s.closed:
		return nil, ErrClosed
	}
	defer func() { <-s.sem }()
	select {
	case <-s.closed:
		return nil, ErrClosed
	default:
	}
	regs, err := s.do(ctx, unit, fc, addr, count)
	if err != nil {
		if cerr := ctxErr(ctx); cerr != nil && !IsException(err) {
			err = cerr
		}
		return nil, fmt.Errorf("energy: solarman %s: read fc%d %d+%d: %w", s.addr, fc, addr, count, err)
	}
	return regs, nil
}

func (s *Solarman) do(ctx context.Context, unit, fc uint8, addr, count uint16) ([]uint16, error) {
	if s.conn == nil {
		dctx, cancel := context.WithTimeout(ctx, s.opts.Timeout)
		c, err := s.opts.Dialer.DialContext(dctx, "tcp", s.addr)
		cancel()
		if err != nil {
			return nil, err
		}
		s.conn, s.rd = c, bufio.NewReader(c)
		s.log.Debug("energy: solarman connected", "addr", s.addr)
	}
	deadline := time.Now().Add(s.opts.Timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	conn := s.conn
	_ = conn.SetDeadline(deadline)
	// Unblock the read at once when ctx ends.
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	s.seq++
	req := SolarmanFrame{Control: SolarmanRequest, Sequence: s.seq, Serial: s.serial,
		Payload: SolarmanRequestPayload(RTUReadRequest(unit, fc, addr, count))}
	if _, err := conn.Write(req.Encode()); err != nil {
		s.drop(err)
		return nil, err
	}
	for {
		f, err := s.readFrame()
		if err != nil {
			s.drop(err)
			return nil, err
		}
		switch {
		case f.Control != SolarmanResponse:
			s.log.Debug("energy: solarman skipped frame", "control", f.Control)
			continue
		case byte(f.Sequence) != byte(s.seq):
			// A late answer to an abandoned request.
			s.log.Debug("energy: solarman skipped stale response", "seq", f.Sequence, "want", s.seq)
			continue
		case f.Serial != s.serial:
			err := fmt.Errorf("%w: response from logger serial %d, want %d (check the serial number on the stick)", ErrSolarmanFrame, f.Serial, s.serial)
			s.drop(err)
			return nil, err
		case len(f.Payload) < solarmanRespPad || f.Payload[0] != 0x02:
			err := fmt.Errorf("%w: response payload of %d bytes without frame type 2", ErrSolarmanFrame, len(f.Payload))
			s.drop(err)
			return nil, err
		}
		regs, err := ParseRTUReadResponse(f.Payload[solarmanRespPad:], unit, fc, count)
		if err != nil && !IsException(err) {
			s.drop(err)
		}
		return regs, err
	}
}

// readFrame reads one V5 frame, resynchronising on the start byte after
// garbage.
func (s *Solarman) readFrame() (SolarmanFrame, error) {
	for {
		b, err := s.rd.ReadByte()
		if err != nil {
			return SolarmanFrame{}, err
		}
		if b != SolarmanStart {
			continue
		}
		hdr := make([]byte, solarmanHeaderLen)
		hdr[0] = b
		if _, err := io.ReadFull(s.rd, hdr[1:]); err != nil {
			return SolarmanFrame{}, unexpected(err)
		}
		n := int(binary.LittleEndian.Uint16(hdr[1:3]))
		if n > solarmanMaxPayload {
			return SolarmanFrame{}, fmt.Errorf("%w: payload length %d", ErrSolarmanFrame, n)
		}
		buf := make([]byte, solarmanHeaderLen+n+2)
		copy(buf, hdr)
		if _, err := io.ReadFull(s.rd, buf[solarmanHeaderLen:]); err != nil {
			return SolarmanFrame{}, unexpected(err)
		}
		f, _, err := ParseSolarmanFrame(buf)
		return f, err
	}
}

// ctxErr is ctx.Err(), also when the connection's deadline (set to ctx's)
// fired a moment before ctx's own timer.
func ctxErr(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if d, ok := ctx.Deadline(); ok && !time.Now().Before(d) {
		return context.DeadlineExceeded
	}
	return nil
}

func unexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// drop closes the connection after an error, so that no stale bytes are
// taken for a later answer; the next request redials.
func (s *Solarman) drop(err error) {
	if s.conn == nil {
		return
	}
	s.log.Debug("energy: solarman connection dropped", "addr", s.addr, "err", err)
	s.conn.Close()
	s.conn, s.rd = nil, nil
}

// Close closes the connection; requests waiting or made later fail with
// ErrClosed.
func (s *Solarman) Close() error {
	first := false
	s.once.Do(func() { close(s.closed); first = true })
	if !first {
		return ErrClosed
	}
	// Wait for a request in flight (bounded by its timeout) to release the
	// connection.
	s.sem <- struct{}{}
	defer func() { <-s.sem }()
	if s.conn != nil {
		err := s.conn.Close()
		s.conn = nil
		return err
	}
	return nil
}

// openSolarman opens "solarman://HOST[:PORT]?serial=N&profile=NAME&unit=N&timeout=D".
func openSolarman(arg string) (Inverter, error) {
	target, opts, err := devspec.ParseArg(arg, "serial", "profile", "unit", "timeout")
	if err != nil {
		return nil, fmt.Errorf("energy: solarman: %w", err)
	}
	host, ok := strings.CutPrefix(target, "//")
	if !ok || host == "" {
		return nil, fmt.Errorf("energy: solarman: want solarman://HOST[:8899]?serial=N, got %q", "solarman:"+arg)
	}
	sv, ok := opts["serial"]
	if !ok {
		return nil, errors.New("energy: solarman: option serial=N (the logger's serial number) is required")
	}
	serial, err := strconv.ParseUint(sv, 10, 32)
	if err != nil || serial == 0 {
		return nil, fmt.Errorf("energy: solarman: bad serial %q (want the logger's decimal serial number)", sv)
	}
	name := "deye"
	if v, ok := opts["profile"]; ok {
		name = v
	}
	p, err := LookupProfile(name)
	if err != nil {
		return nil, err
	}
	unit := p.Unit
	if v, ok := opts["unit"]; ok {
		n, err := strconv.ParseUint(v, 10, 8)
		if err != nil || n > 247 {
			return nil, fmt.Errorf("energy: solarman: bad unit %q (want 0-247)", v)
		}
		unit = uint8(n)
	}
	var so SolarmanOptions
	if v, ok := opts["timeout"]; ok {
		if so.Timeout, err = time.ParseDuration(v); err != nil || so.Timeout <= 0 {
			return nil, fmt.Errorf("energy: solarman: bad timeout %q (want a duration such as 5s)", v)
		}
	}
	sm, err := NewSolarman(host, uint32(serial), so)
	if err != nil {
		return nil, err
	}
	return NewProfileDevice(sm, unit, p, ProfileOptions{})
}

func init() {
	if err := Register(Driver{
		Name:  "solarman",
		Usage: "solarman://HOST[:8899]?serial=N[&profile=deye&unit=1&timeout=5s]",
		Open:  openSolarman,
	}); err != nil {
		panic(err)
	}
}
