package energy

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// stickFault is how the fake stick misbehaves on its next answers.
type stickFault int

const (
	stickOK          stickFault = iota
	stickBadChecksum            // flips the checksum
	stickWrongSerial            // answers as another logger
	stickStaleFirst             // sends an answer with another sequence number first
	stickWrongSeq               // only answers with another sequence number
	stickTruncate               // sends half a frame and closes
	stickHeartbeat              // sends a heartbeat before the answer
	stickGarbage                // sends junk bytes before the answer
	stickException              // answers with Modbus exception 2
	stickBadCRC                 // corrupts the RTU CRC
)

// fakeStick is a Solarman logger on 127.0.0.1: it unwraps V5 requests,
// checks them and answers Modbus RTU reads from a register map.
type fakeStick struct {
	t      *testing.T
	ln     net.Listener
	serial uint32
	regs   RegisterMap

	mu       sync.Mutex
	fault    stickFault
	requests int
	conns    int
	badReqs  []string
}

func newFakeStick(t *testing.T, serial uint32, regs RegisterMap) *fakeStick {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &fakeStick{t: t, ln: ln, serial: serial, regs: regs}
	go s.serve()
	t.Cleanup(func() { ln.Close() })
	return s
}

func (s *fakeStick) setFault(f stickFault) {
	s.mu.Lock()
	s.fault = f
	s.mu.Unlock()
}

func (s *fakeStick) serve() {
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		s.conns++
		s.mu.Unlock()
		go s.handle(c)
	}
}

func (s *fakeStick) handle(c net.Conn) {
	defer c.Close()
	var buf []byte
	tmp := make([]byte, 512)
	for {
		f, n, err := ParseSolarmanFrame(buf)
		if errors.Is(err, ErrSolarmanShort) {
			m, err := c.Read(tmp)
			if err != nil {
				return
			}
			buf = append(buf, tmp[:m]...)
			continue
		}
		if err != nil {
			s.bad("unparsable request: " + err.Error())
			return
		}
		buf = buf[n:]
		if !s.answer(c, f) {
			return
		}
	}
}

func (s *fakeStick) bad(why string) {
	s.mu.Lock()
	s.badReqs = append(s.badReqs, why)
	s.mu.Unlock()
}

func (s *fakeStick) answer(c net.Conn, req SolarmanFrame) bool {
	s.mu.Lock()
	s.requests++
	fault := s.fault
	s.mu.Unlock()
	p := req.Payload
	if req.Control != SolarmanRequest || req.Serial != s.serial || len(p) < 15+8 || p[0] != 2 {
		s.bad("bad V5 request")
		return false
	}
	rtu := p[15:]
	if CRC16Modbus(rtu[:6]) != binary.LittleEndian.Uint16(rtu[6:8]) {
		s.bad("bad RTU CRC in request")
		return false
	}
	unit, fc := rtu[0], rtu[1]
	addr, count := binary.BigEndian.Uint16(rtu[2:]), binary.BigEndian.Uint16(rtu[4:])
	var resp []byte
	if fault == stickException {
		resp = []byte{unit, fc | 0x80, 2}
	} else {
		resp = []byte{unit, fc, byte(2 * count)}
		for _, v := range s.regs.Read(fc, addr, count) {
			resp = binary.BigEndian.AppendUint16(resp, v)
		}
	}
	resp = binary.LittleEndian.AppendUint16(resp, CRC16Modbus(resp))
	if fault == stickBadCRC {
		resp[len(resp)-1] ^= 0xFF
	}
	out := SolarmanFrame{Control: SolarmanResponse, Sequence: req.Sequence&0xFF | 0x4200, Serial: s.serial,
		Payload: SolarmanResponsePayload(resp)}
	var wire []byte
	switch fault {
	case stickWrongSerial:
		out.Serial++
	case stickStaleFirst:
		stale := out
		stale.Sequence = req.Sequence - 1
		wire = stale.Encode()
	case stickWrongSeq:
		out.Sequence = req.Sequence + 7
	case stickHeartbeat:
		wire = SolarmanFrame{Control: SolarmanHeartbeat, Sequence: 1, Serial: s.serial, Payload: []byte{0}}.Encode()
	case stickGarbage:
		wire = []byte{0x00, 0x15, 0xFF, 0x13}
	}
	frame := out.Encode()
	switch fault {
	case stickBadChecksum:
		frame[len(frame)-2] ^= 0x5A
	case stickTruncate:
		c.Write(frame[:len(frame)/2])
		return false
	}
	c.Write(append(wire, frame...))
	return true
}

func newTestSolarman(t *testing.T, s *fakeStick, timeout time.Duration) *Solarman {
	sm, err := NewSolarman(s.ln.Addr().String(), s.serial, SolarmanOptions{Timeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sm.Close() })
	return sm
}

func TestSolarmanRead(t *testing.T) {
	regs := RegisterMap{}
	regs.Set(3, 100, 1, 2, 3, 0xFFFF)
	stick := newFakeStick(t, 2712345678, regs)
	sm := newTestSolarman(t, stick, time.Second)
	ctx := context.Background()
	got, err := sm.ReadRegisters(ctx, 1, 3, 100, 4)
	if err != nil {
		t.Fatal(err)
	}
	if !equalRegs(got, []uint16{1, 2, 3, 0xFFFF}) {
		t.Errorf("got %v", got)
	}

	// Faults the client must recover from on its own.
	for _, f := range []stickFault{stickStaleFirst, stickHeartbeat, stickGarbage} {
		stick.setFault(f)
		got, err := sm.ReadRegisters(ctx, 1, 3, 100, 2)
		if err != nil || !equalRegs(got, []uint16{1, 2}) {
			t.Errorf("fault %d: %v, %v", f, got, err)
		}
	}

	// Faults that fail the request; the next request works again.
	for _, c := range []struct {
		f    stickFault
		want string
	}{
		{stickBadChecksum, "checksum"},
		{stickWrongSerial, "serial"},
		{stickWrongSeq, "timeout"},
		{stickTruncate, "EOF"},
		{stickBadCRC, "CRC"},
	} {
		stick.setFault(c.f)
		_, err := sm.ReadRegisters(ctx, 1, 3, 100, 2)
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.HasPrefix(err.Error(), "energy: solarman") {
			t.Errorf("fault %d: error %v, want one mentioning %q", c.f, err, c.want)
		}
		stick.setFault(stickOK)
		if got, err := sm.ReadRegisters(ctx, 1, 3, 100, 2); err != nil || !equalRegs(got, []uint16{1, 2}) {
			t.Errorf("after fault %d: %v, %v", c.f, got, err)
		}
	}

	// An exception is the device's answer: returned as such, connection kept.
	stick.mu.Lock()
	conns := stick.conns
	stick.mu.Unlock()
	stick.setFault(stickException)
	if _, err := sm.ReadRegisters(ctx, 1, 3, 100, 2); !IsException(err, ExceptionIllegalDataAddress) {
		t.Errorf("exception: %v", err)
	}
	stick.setFault(stickOK)
	if _, err := sm.ReadRegisters(ctx, 1, 3, 100, 2); err != nil {
		t.Error(err)
	}
	stick.mu.Lock()
	if stick.conns != conns {
		t.Errorf("exception reconnected (%d -> %d connections)", conns, stick.conns)
	}
	if len(stick.badReqs) > 0 {
		t.Errorf("stick saw bad requests: %v", stick.badReqs)
	}
	stick.mu.Unlock()

	// Context cancellation ends a request at once.
	stick.setFault(stickWrongSeq)
	cctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	start := time.Now()
	_, err = sm.ReadRegisters(cctx, 1, 3, 100, 2)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 500*time.Millisecond {
		t.Errorf("cancelled read: %v after %v", err, time.Since(start))
	}

	if err := sm.Close(); err != nil {
		t.Error(err)
	}
	if _, err := sm.ReadRegisters(ctx, 1, 3, 100, 2); !errors.Is(err, ErrClosed) {
		t.Errorf("after Close: %v", err)
	}
}

func TestSolarmanValidation(t *testing.T) {
	if _, err := NewSolarman("10.0.0.1", 0, SolarmanOptions{}); err == nil {
		t.Error("serial 0 accepted")
	}
	sm, err := NewSolarman("127.0.0.1", 1, SolarmanOptions{})
	if err != nil || sm.Addr() != "127.0.0.1:8899" {
		t.Errorf("default port: %v, %v", sm, err)
	}
	if _, err := sm.ReadRegisters(context.Background(), 1, 6, 0, 1); err == nil {
		t.Error("function 6 accepted")
	}
	if _, err := sm.ReadRegisters(context.Background(), 1, 3, 0, 126); err == nil {
		t.Error("126 registers accepted")
	}
	for _, spec := range []string{
		"solarman://127.0.0.1",                       // no serial
		"solarman://127.0.0.1?serial=x",              // bad serial
		"solarman://127.0.0.1?serial=1&profile=nope", // unknown profile
		"solarman://127.0.0.1?serial=1&unit=300",
		"solarman://127.0.0.1?serial=1&colour=red",
		"solarman:127.0.0.1?serial=1",
	} {
		if _, err := Open(spec); err == nil {
			t.Errorf("Open(%q) accepted", spec)
		}
	}
}

// TestSolarmanSpec reads a Deye through the "solarman" driver end to end.
func TestSolarmanSpec(t *testing.T) {
	p, _ := LookupProfile("deye")
	want := p.Restrict(sampleFor(p))
	want.Device.Serial = "2305123456"
	regs, err := p.Encode(want)
	if err != nil {
		t.Fatal(err)
	}
	stick := newFakeStick(t, 3012345678, regs)
	inv, err := Open("solarman://" + stick.ln.Addr().String() + "?serial=3012345678&profile=deye&unit=1&timeout=2s")
	if err != nil {
		t.Fatal(err)
	}
	defer inv.Close()
	r, err := inv.Read(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if d := diffReadings(r, want); d != "" {
		t.Error(d)
	}
	if r.Device.Serial != "2305123456" || r.Device.Profile != "deye" || len(r.Raw) == 0 {
		t.Errorf("device %+v, %d raw blocks", r.Device, len(r.Raw))
	}
}

func TestCRC16Modbus(t *testing.T) {
	// The classic example: read 1 holding register at 0 of unit 1.
	req := RTUReadRequest(1, 3, 0, 1)
	if !bytes.Equal(req, []byte{0x01, 0x03, 0x00, 0x00, 0x00, 0x01, 0x84, 0x0A}) {
		t.Errorf("request % X", req)
	}
	if CRC16Modbus([]byte("123456789")) != 0x4B37 {
		t.Errorf("check value %04X", CRC16Modbus([]byte("123456789")))
	}
}

func TestSolarmanFrameLayout(t *testing.T) {
	f := SolarmanFrame{Control: SolarmanRequest, Sequence: 0x0102, Serial: 0x0A0B0C0D,
		Payload: SolarmanRequestPayload(RTUReadRequest(1, 3, 0, 1))}
	b := f.Encode()
	want := []byte{0xA5, 23, 0, 0x10, 0x45, 0x02, 0x01, 0x0D, 0x0C, 0x0B, 0x0A,
		0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
		0x01, 0x03, 0x00, 0x00, 0x00, 0x01, 0x84, 0x0A}
	var sum byte
	for _, c := range want[1:] {
		sum += c
	}
	want = append(want, sum, 0x15)
	if !bytes.Equal(b, want) {
		t.Fatalf("frame\n% X\nwant\n% X", b, want)
	}
	for n := range len(b) {
		if _, _, err := ParseSolarmanFrame(b[:n]); !errors.Is(err, ErrSolarmanShort) {
			t.Errorf("prefix of %d bytes: %v", n, err)
		}
	}
	g, n, err := ParseSolarmanFrame(append(b, 0xA5))
	if err != nil || n != len(b) || g.Serial != f.Serial || g.Sequence != f.Sequence || !bytes.Equal(g.Payload, f.Payload) {
		t.Errorf("parse: %+v %d %v", g, n, err)
	}
	b[len(b)-2]++
	if _, _, err := ParseSolarmanFrame(b); !errors.Is(err, ErrSolarmanFrame) {
		t.Errorf("bad checksum: %v", err)
	}
}

func FuzzSolarmanFrame(f *testing.F) {
	f.Add([]byte{0xA5, 0, 0, 0x10, 0x15, 0, 0, 0, 0, 0, 0, 0x25, 0x15}, uint16(1), uint32(2), []byte{1})
	f.Add(SolarmanFrame{Control: SolarmanRequest, Serial: 1, Payload: SolarmanRequestPayload(RTUReadRequest(1, 3, 0, 1))}.Encode(), uint16(0), uint32(0), []byte{})
	f.Fuzz(func(t *testing.T, data []byte, seq uint16, serial uint32, payload []byte) {
		// Arbitrary bytes: no panic; what parses re-encodes identically.
		fr, n, err := ParseSolarmanFrame(data)
		if err == nil {
			if !bytes.Equal(fr.Encode(), data[:n]) {
				t.Fatalf("re-encode differs: % X vs % X", fr.Encode(), data[:n])
			}
		}
		_, _ = ParseRTUReadResponse(data, 1, 3, uint16(len(data)/2))
		// Round trip of a built frame.
		if len(payload) > solarmanMaxPayload {
			payload = payload[:solarmanMaxPayload]
		}
		in := SolarmanFrame{Control: seq ^ 0x5555, Sequence: seq, Serial: serial, Payload: payload}
		out, n, err := ParseSolarmanFrame(in.Encode())
		if err != nil || n != len(in.Encode()) || out.Control != in.Control || out.Sequence != in.Sequence ||
			out.Serial != in.Serial || !bytes.Equal(out.Payload, in.Payload) {
			t.Fatalf("round trip %+v -> %+v, %v", in, out, err)
		}
		// And through a stream reader, with garbage before it.
		s := &Solarman{rd: bufio.NewReader(io.MultiReader(bytes.NewReader([]byte{0, 1, 2}), bytes.NewReader(in.Encode())))}
		got, err := s.readFrame()
		if err != nil || !bytes.Equal(got.Payload, in.Payload) {
			t.Fatalf("stream read %+v, %v", got, err)
		}
	})
}
