package identity

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"sync"

	"github.com/pikit/pikit/internal/devspec"
	"periph.io/x/conn/v3/i2c"
	"periph.io/x/conn/v3/physic"
)

func init() {
	registry.MustRegister(devspec.Driver[Identity]{
		Name:  "sim",
		Usage: "sim (simulated ATECC608, new key every start)",
		Open: func(arg string) (Identity, error) {
			if arg != "" {
				return nil, fmt.Errorf("identity: sim: takes no argument, got %q", arg)
			}
			a, err := OpenSim()
			if err != nil {
				return nil, err
			}
			return a, nil
		},
	})
}

// OpenSim returns an ATECC608 identity on a simulated chip with a fresh
// random key: the whole protocol path (wake-up, packets, CRCs, polling)
// runs, in process. Its serial has the shape of a real chip's: 01 23, six
// bytes derived from the key, EE.
func OpenSim() (*ATECC608, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("identity: sim: %w", err)
	}
	xy, err := publicXY(&key.PublicKey)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(xy)
	var sn [9]byte
	sn[0], sn[1], sn[8] = 0x01, 0x23, 0xEE
	copy(sn[2:8], sum[:6])
	return newATECC(context.Background(), NewSimBus(key, sn), ATECCDefaultAddr, ATECCOptions{}, KeyTypeSim, nil, nil)
}

// errSimNACK is the error of a transfer the simulated chip does not
// acknowledge (asleep, busy, or another address), like the EREMOTEIO of
// Linux.
var errSimNACK = errors.New("identity: sim: I²C address not acknowledged")

// SimBus is an i2c.Bus with a simulated ATECC608 on it, holding a software
// key in slot 0. It implements the protocol NewATECC608 speaks: sleep and
// wake-up (a write to address 0x00), idle and sleep word addresses, command
// packets with CRC checks (status 0xFF on a bad CRC, 0x03 on a malformed
// packet) and the commands Info, Read (config zone block 0), Random, Nonce
// (pass-through, to TempKey or the message digest buffer), GenKey (public
// key of slot 0) and Sign (external message from TempKey or the message
// digest buffer). Faults can be injected to test error paths.
//
// It is safe for concurrent use.
type SimBus struct {
	key    *ecdsa.PrivateKey
	serial [9]byte

	mu        sync.Mutex
	addr      uint16
	awake     bool
	out       []byte // response being read
	outPos    int
	busy      int // NACKs left before the current response is ready
	tempKey   []byte
	msgDigBuf []byte
	failWakes int
	corrupt   int
	failOp    map[byte]byte
	busyPolls int
	commands  []byte
	wakes     int
}

var _ i2c.Bus = (*SimBus)(nil)

// NewSimBus returns a bus with a simulated, sleeping ATECC608A at address
// 0x60 whose slot 0 holds key (P-256) and whose serial number is serial.
func NewSimBus(key *ecdsa.PrivateKey, serial [9]byte) *SimBus {
	return &SimBus{key: key, serial: serial, addr: ATECCDefaultAddr, failOp: map[byte]byte{}}
}

// String implements i2c.Bus.
func (s *SimBus) String() string { return "sim-i2c" }

// SetSpeed implements i2c.Bus; the simulation has no speed.
func (s *SimBus) SetSpeed(physic.Frequency) error { return nil }

// SetAddr moves the chip to another 7-bit address.
func (s *SimBus) SetAddr(addr uint16) {
	s.mu.Lock()
	s.addr = addr
	s.mu.Unlock()
}

// FailWakes makes the chip ignore the next n wake-up pulses.
func (s *SimBus) FailWakes(n int) {
	s.mu.Lock()
	s.failWakes = n
	s.mu.Unlock()
}

// CorruptResponses flips a bit of the CRC of the next n responses to
// commands.
func (s *SimBus) CorruptResponses(n int) {
	s.mu.Lock()
	s.corrupt = n
	s.mu.Unlock()
}

// FailCommand makes the next command with opcode op answer the status
// packet code instead of executing (e.g. 0x41, 0x0F: the next Sign fails
// with an execution error).
func (s *SimBus) FailCommand(op, code byte) {
	s.mu.Lock()
	s.failOp[op] = code
	s.mu.Unlock()
}

// BusyPolls makes the chip NACK the first n reads after every command, as
// a real one does while it executes.
func (s *SimBus) BusyPolls(n int) {
	s.mu.Lock()
	s.busyPolls = n
	s.mu.Unlock()
}

// Commands returns the opcodes of the commands the chip received, in order.
func (s *SimBus) Commands() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]byte(nil), s.commands...)
}

// Wakes returns how many times the chip woke up.
func (s *SimBus) Wakes() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.wakes
}

// Tx implements i2c.Bus: the write (if any) is done first, then the read.
func (s *SimBus) Tx(addr uint16, w, r []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if addr == 0x00 {
		// General call: SDA held low during the address byte wakes the
		// chip. Nobody acknowledges it.
		if !s.awake {
			if s.failWakes > 0 {
				s.failWakes--
			} else {
				s.awake = true
				s.wakes++
				s.setOut(wakeReply, false)
			}
		}
		return errSimNACK
	}
	if addr != s.addr || !s.awake {
		return errSimNACK
	}
	if len(w) > 0 {
		s.write(w)
	}
	if len(r) > 0 {
		if s.busy > 0 {
			s.busy--
			return errSimNACK
		}
		for i := range r {
			if s.outPos < len(s.out) {
				r[i] = s.out[s.outPos]
				s.outPos++
			} else {
				r[i] = 0xFF
			}
		}
	}
	return nil
}

// setOut sets the response to be read.
func (s *SimBus) setOut(p []byte, command bool) {
	s.out = append(s.out[:0], p...)
	s.outPos = 0
	s.busy = 0
	if command {
		s.busy = s.busyPolls
		if s.corrupt > 0 {
			s.corrupt--
			s.out[len(s.out)-1] ^= 0x01
		}
	}
}

func (s *SimBus) write(w []byte) {
	switch w[0] {
	case wordReset:
		s.outPos = 0
	case wordSleep:
		s.awake = false
		s.tempKey, s.msgDigBuf = nil, nil
	case wordIdle:
		s.awake = false // idle keeps TempKey and the message digest buffer
	case wordCommand:
		s.setOut(s.execute(w[1:]), true)
	}
}

// simResponse builds a response packet around data.
func simResponse(data []byte) []byte {
	p := append([]byte{byte(len(data) + 3)}, data...)
	crc := crc16(p)
	return append(p, byte(crc), byte(crc>>8))
}

func simStatus(code byte) []byte { return simResponse([]byte{code}) }

// execute runs a command packet (without its word address) and returns the
// response packet.
func (s *SimBus) execute(p []byte) []byte {
	if len(p) < 7 || int(p[0]) != len(p) {
		return simStatus(StatusParseError)
	}
	n := len(p)
	crc := crc16(p[:n-2])
	if p[n-2] != byte(crc) || p[n-1] != byte(crc>>8) {
		return simStatus(StatusCommsError)
	}
	op, p1, p2, data := p[1], p[2], uint16(p[3])|uint16(p[4])<<8, p[5:n-2]
	s.commands = append(s.commands, op)
	if code, ok := s.failOp[op]; ok {
		delete(s.failOp, op)
		return simStatus(code)
	}
	switch op {
	case opInfo:
		if p1 != 0x00 || len(data) != 0 {
			return simStatus(StatusParseError)
		}
		return simResponse([]byte{0x00, 0x00, 0x60, 0x02})
	case opRead:
		if p1 != readZoneConfig32 || p2 != 0 || len(data) != 0 {
			return simStatus(StatusParseError)
		}
		return simResponse(s.configBlock0())
	case opRandom:
		if p1 != randomSeedUpdate || len(data) != 0 {
			return simStatus(StatusParseError)
		}
		b := make([]byte, 32)
		if _, err := rand.Read(b); err != nil {
			return simStatus(StatusHealthTest)
		}
		return simResponse(b)
	case opNonce:
		if p1&0x3F != 0x03 || len(data) != 32 {
			return simStatus(StatusParseError) // only pass-through of 32 bytes
		}
		switch p1 >> 6 {
		case 0:
			s.tempKey = append([]byte(nil), data...)
		case 1:
			s.msgDigBuf = append([]byte(nil), data...)
		default:
			return simStatus(StatusParseError)
		}
		return simStatus(StatusSuccess)
	case opGenKey:
		if p1 != genKeyPublic || len(data) != 0 {
			return simStatus(StatusParseError)
		}
		if p2 != keySlot {
			return simStatus(StatusExecution) // no key in that slot
		}
		xy, err := publicXY(&s.key.PublicKey)
		if err != nil {
			return simStatus(StatusExecution)
		}
		return simResponse(xy)
	case opSign:
		if p1&0x80 == 0 || p1&^0xA0 != 0 || len(data) != 0 {
			return simStatus(StatusParseError) // external messages only
		}
		if p2 != keySlot {
			return simStatus(StatusExecution)
		}
		src := &s.tempKey
		if p1&0x20 != 0 {
			src = &s.msgDigBuf
		}
		if *src == nil {
			return simStatus(StatusExecution) // no valid nonce
		}
		digest := *src
		*src = nil
		der, err := ecdsa.SignASN1(rand.Reader, s.key, digest)
		if err != nil {
			return simStatus(StatusECCFault)
		}
		rs, err := derToRS(der)
		if err != nil {
			return simStatus(StatusECCFault)
		}
		return simResponse(rs[:])
	}
	return simStatus(StatusParseError)
}

// configBlock0 returns the first 32 bytes of the configuration zone: the
// serial number in bytes 0-3 and 8-12, the revision in 4-7, I2C_Enable 14,
// I2C_Address (8-bit form) 16, ChipMode 19 (clock divider M0), and the
// first slot configurations.
func (s *SimBus) configBlock0() []byte {
	b := make([]byte, 32)
	copy(b[0:4], s.serial[:4])
	copy(b[4:8], []byte{0x00, 0x00, 0x60, 0x02})
	copy(b[8:13], s.serial[4:])
	b[13] = 0x01
	b[14] = 0x01
	b[16] = byte(s.addr << 1)
	b[19] = 0x00
	copy(b[20:32], []byte{0x83, 0x20, 0x87, 0x20, 0x8F, 0x20, 0xC4, 0x8F, 0x8F, 0x8F, 0x8F, 0x8F})
	return b
}
