package siminverter

import (
	"encoding/binary"
	"errors"
	"io"
	"net"
	"sync"
	"time"
)

// proxy sits between clients and the Modbus server. It reads whole Modbus
// TCP requests (MBAP header + PDU), and for each one either forwards it and
// relays the answer, or injects the fault the simulator's Faults draw:
// delays, dropped connections, garbage bytes and exception responses. One
// request is in flight per client connection, as Modbus TCP clients send.
type proxy struct {
	ln      net.Listener
	backend string
	sim     *Inverter

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
	done   chan struct{}
	wg     sync.WaitGroup
}

func newProxy(ln net.Listener, backend string, sim *Inverter) *proxy {
	return &proxy{ln: ln, backend: backend, sim: sim, conns: map[net.Conn]struct{}{}, done: make(chan struct{})}
}

func (p *proxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			p.sim.log.Debug("siminverter: accept", "err", err)
			time.Sleep(10 * time.Millisecond)
			continue
		}
		if !p.track(c) {
			c.Close()
			return
		}
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			defer p.untrack(c)
			p.handle(c)
		}()
	}
}

func (p *proxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *proxy) untrack(c net.Conn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
	c.Close()
}

func (p *proxy) close() {
	p.mu.Lock()
	p.closed = true
	close(p.done)
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.ln.Close()
	p.wg.Wait()
}

// fault kinds drawn per request.
type fault int

const (
	faultNone fault = iota
	faultDrop
	faultGarbage
	faultException
)

// draw picks the fault for the next request.
func (s *Inverter) draw() (fault, Faults) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f := s.faults
	switch {
	case f.DropRate > 0 && s.rng.Float64() < f.DropRate:
		return faultDrop, f
	case f.GarbageRate > 0 && s.rng.Float64() < f.GarbageRate:
		return faultGarbage, f
	case f.ExceptionRate > 0 && s.rng.Float64() < f.ExceptionRate:
		return faultException, f
	}
	return faultNone, f
}

// garbage returns bytes no Modbus client can take for a response: a
// wrong protocol identifier in an otherwise plausible header, then noise.
func (s *Inverter) garbage() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := make([]byte, 8+s.rng.IntN(24))
	for i := range b {
		b[i] = byte(s.rng.Uint32())
	}
	b[2], b[3] = 0xDE, 0xAD
	return b
}

// maxADU is the largest Modbus TCP frame: a 7-byte MBAP header and a PDU of
// at most 253 bytes.
const maxADU = 7 + 253

func readADU(r io.Reader) ([]byte, error) {
	hdr := make([]byte, 7, maxADU)
	if _, err := io.ReadFull(r, hdr); err != nil {
		return nil, err
	}
	n := int(binary.BigEndian.Uint16(hdr[4:6]))
	if n < 2 || 6+n > maxADU {
		return nil, errors.New("bad MBAP length")
	}
	adu := hdr[:6+n]
	if _, err := io.ReadFull(r, adu[7:]); err != nil {
		return nil, err
	}
	return adu, nil
}

func (p *proxy) handle(c net.Conn) {
	var back net.Conn
	defer func() {
		if back != nil {
			back.Close()
		}
	}()
	for {
		req, err := readADU(c)
		if err != nil {
			return
		}
		kind, f := p.sim.draw()
		if f.Delay > 0 {
			select {
			case <-time.After(f.Delay):
			case <-p.done:
				return
			}
		}
		switch kind {
		case faultDrop:
			return
		case faultGarbage:
			if _, err := c.Write(p.sim.garbage()); err != nil {
				return
			}
			continue
		case faultException:
			code := f.ExceptionCode
			if code == 0 {
				code = 0x06
			}
			resp := append([]byte(nil), req[:4]...) // transaction and protocol IDs
			resp = append(resp, 0, 3, req[6], req[7]|0x80, code)
			if _, err := c.Write(resp); err != nil {
				return
			}
			continue
		}
		if back == nil {
			back, err = net.DialTimeout("tcp", p.backend, 5*time.Second)
			if err != nil {
				p.sim.log.Debug("siminverter: backend", "err", err)
				return
			}
			p.mu.Lock()
			if p.closed {
				p.mu.Unlock()
				return
			}
			p.conns[back] = struct{}{}
			p.mu.Unlock()
			defer p.untrack(back)
		}
		if _, err := back.Write(req); err != nil {
			return
		}
		_ = back.SetReadDeadline(time.Now().Add(10 * time.Second))
		resp, err := readADU(back)
		if err != nil {
			return
		}
		if _, err := c.Write(resp); err != nil {
			return
		}
	}
}
