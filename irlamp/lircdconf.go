package irlamp

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"math/bits"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Limits of ParseLircdConf. The duration limits are the kernel's: /dev/lirc
// refuses more than 1024 values or more than 500 ms in one write.
const (
	maxConfSize     = 4 << 20
	maxConfLine     = 64 << 10
	maxRemotes      = 64
	maxKeys         = 1024 // per remote
	maxDurations    = 1023 // per key; odd
	maxTransmission = 500000
	maxNameLen      = 128
	minFrequency    = 20000
	maxFrequency    = 500000
	defaultGap      = 40 * time.Millisecond
)

// ParseLircdConf reads remotes from a lircd.conf file, in file order.
//
// It understands the two forms lircd's irrecord writes and lirc's remote
// database holds: raw codes (begin raw_codes, each key a list of mark and
// space durations) and space-encoded codes (flags SPACE_ENC, with header,
// one, zero, ptrail, plead, pre and post pairs, pre_data, post_data, foot,
// gap, frequency, and the REVERSE and CONST_LENGTH flags), which covers NEC
// and most other pulse-distance protocols. Keys of space-encoded remotes
// whose signal is an NEC frame also have an NECX scancode. Other encodings
// (RC5, RC6, SHIFT_ENC, ...), include directives and several codes for one
// key are refused; parameters that only matter to lircd's receiving side
// (eps, aeps, toggle_bit_mask, min_repeat, ...) are accepted and ignored.
// When a key appears twice in a remote, the first wins, as in lircd.
//
// Errors carry the line number ("irlamp: lircd.conf:12: ..."). Absurd input
// is refused rather than trusted: files over 4 MiB, more than 64 remotes or
// 1024 keys per remote, a key whose signal has more than 1023 durations or
// lasts over 500 ms, a carrier outside 20–500 kHz.
func ParseLircdConf(r io.Reader) ([]*Remote, error) {
	data, err := io.ReadAll(io.LimitReader(r, maxConfSize+1))
	if err != nil {
		return nil, fmt.Errorf("irlamp: lircd.conf: %w", err)
	}
	if len(data) > maxConfSize {
		return nil, fmt.Errorf("irlamp: lircd.conf: larger than %d bytes", maxConfSize)
	}
	p := confParser{names: map[string]bool{}}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), maxConfLine)
	for sc.Scan() {
		p.line++
		if err := p.parseLine(fields(sc.Text())); err != nil {
			line := p.line
			if le, ok := err.(*lineError); ok {
				line = le.line
			}
			return nil, fmt.Errorf("irlamp: lircd.conf:%d: %w", line, err)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("irlamp: lircd.conf:%d: %w", p.line+1, err)
	}
	if p.cur != nil {
		return nil, fmt.Errorf("irlamp: lircd.conf:%d: remote begun here is not ended", p.cur.line)
	}
	if len(p.remotes) == 0 {
		return nil, fmt.Errorf("irlamp: lircd.conf: no remote found")
	}
	return p.remotes, nil
}

// fields splits a line into words, dropping a comment: a word starting with
// '#' and everything after it.
func fields(line string) []string {
	f := strings.Fields(line)
	for i, w := range f {
		if strings.HasPrefix(w, "#") {
			return f[:i]
		}
	}
	return f
}

type confSection int

const (
	inRemote confSection = iota
	inCodes
	inRawCodes
)

type confParser struct {
	line    int
	remotes []*Remote
	names   map[string]bool
	cur     *confRemote
	section confSection
}

// confRemote collects one remote's parameters until "end remote".
type confRemote struct {
	line  int            // of "begin remote"
	lines map[string]int // where each parameter was set, for errors

	name                           string
	bits, preBits, postBits        int
	preData, postData              uint64
	raw, spaceEnc, reverse, constL bool
	header, one, zero, pre, post   [2]uint32
	foot                           [2]uint32
	plead, ptrail                  uint32
	gap                            uint32
	freq                           int

	keys      []string
	seen      map[string]bool
	codes     []confCode // encoded remotes
	rawCodes  [][]uint32 // raw remotes, parallel to keys
	rawLines  []int
	hadCodes  bool
	hadRaw    bool
	ignoreRaw bool // the raw key being read is a duplicate
}

type confCode struct {
	value uint64
	line  int
}

func (p *confParser) parseLine(f []string) error {
	if len(f) == 0 {
		return nil
	}
	if p.cur == nil {
		switch {
		case len(f) == 2 && f[0] == "begin" && f[1] == "remote":
			if len(p.remotes) == maxRemotes {
				return fmt.Errorf("more than %d remotes", maxRemotes)
			}
			p.cur = &confRemote{line: p.line, lines: map[string]int{}, seen: map[string]bool{}}
			p.section = inRemote
			return nil
		case f[0] == "include":
			return fmt.Errorf("include directives are not supported")
		}
		return fmt.Errorf("want \"begin remote\", got %q", strings.Join(f, " "))
	}
	c := p.cur
	switch p.section {
	case inCodes:
		if len(f) == 2 && f[0] == "end" && f[1] == "codes" {
			p.section = inRemote
			return nil
		}
		return c.code(f, p.line)
	case inRawCodes:
		if len(f) == 2 && f[0] == "end" && f[1] == "raw_codes" {
			p.section = inRemote
			return nil
		}
		return c.rawLine(f, p.line)
	}
	if len(f) == 2 && f[0] == "end" && f[1] == "remote" {
		r, err := c.build()
		if err != nil {
			return err
		}
		if p.names[r.name] {
			return fmt.Errorf("remote %q defined twice", r.name)
		}
		p.names[r.name] = true
		p.remotes = append(p.remotes, r)
		p.cur = nil
		return nil
	}
	if len(f) == 2 && f[0] == "begin" {
		switch f[1] {
		case "codes":
			if c.hadRaw {
				return fmt.Errorf("remote has both codes and raw_codes")
			}
			c.hadCodes = true
			p.section = inCodes
			return nil
		case "raw_codes":
			if c.hadCodes {
				return fmt.Errorf("remote has both codes and raw_codes")
			}
			c.hadRaw, c.raw = true, true
			p.section = inRawCodes
			return nil
		}
	}
	return c.param(f, p.line)
}

// Parameters lircd uses only to receive, or that change nothing sent.
var ignoredParams = map[string]bool{
	"driver": true, "eps": true, "aeps": true, "repeat_gap": true,
	"min_repeat": true, "min_code_repeat": true, "duty_cycle": true,
	"toggle_bit": true, "toggle_bit_mask": true, "toggle_mask": true,
	"rc6_mask": true, "ignore_mask": true, "repeat_mask": true,
	"suppress_repeat": true, "manual_sort": true, "serial_mode": true,
	"baud": true,
}

// Flags that select an encoding this parser does not implement.
var unsupportedEncodings = map[string]bool{
	"RC5": true, "RC6": true, "SHIFT_ENC": true, "RCMM": true,
	"SPACE_FIRST": true, "GOLDSTAR": true, "GRUNDIG": true, "BO": true,
	"SERIAL": true, "XMP": true,
}

func (c *confRemote) param(f []string, line int) error {
	key, vals := f[0], f[1:]
	if _, dup := c.lines[key]; dup && key != "flags" {
		return fmt.Errorf("%s given twice", key)
	}
	c.lines[key] = line
	want := func(n int) error {
		if len(vals) != n {
			return fmt.Errorf("%s takes %d value(s), got %d", key, n, len(vals))
		}
		return nil
	}
	var err error
	switch key {
	case "name":
		if err := want(1); err != nil {
			return err
		}
		if err := checkName("remote name", vals[0]); err != nil {
			return err
		}
		c.name = vals[0]
	case "flags":
		if len(vals) == 0 {
			return fmt.Errorf("flags takes a value")
		}
		for _, fl := range strings.Split(strings.Join(vals, ""), "|") {
			switch {
			case fl == "RAW_CODES":
				c.raw = true
			case fl == "SPACE_ENC":
				c.spaceEnc = true
			case fl == "REVERSE":
				c.reverse = true
			case fl == "CONST_LENGTH":
				c.constL = true
			case fl == "NO_HEAD_REP", fl == "NO_FOOT_REP", fl == "REPEAT_HEADER":
				// They shape repeats, and full codes are always sent.
			case unsupportedEncodings[fl]:
				return fmt.Errorf("encoding %s is not supported (only RAW_CODES and SPACE_ENC)", fl)
			default:
				return fmt.Errorf("unknown flag %q", fl)
			}
		}
	case "bits", "pre_data_bits", "post_data_bits":
		if err := want(1); err != nil {
			return err
		}
		n, err := parseNum(vals[0], 64)
		if err != nil {
			return fmt.Errorf("%s: %w", key, err)
		}
		switch key {
		case "bits":
			c.bits = int(n)
		case "pre_data_bits":
			c.preBits = int(n)
		default:
			c.postBits = int(n)
		}
	case "pre_data", "post_data":
		if err := want(1); err != nil {
			return err
		}
		n, err := parseNum(vals[0], 1<<64-1)
		if err != nil {
			return fmt.Errorf("%s: %w", key, err)
		}
		if key == "pre_data" {
			c.preData = n
		} else {
			c.postData = n
		}
	case "header", "one", "zero", "pre", "post", "foot", "repeat":
		if err := want(2); err != nil {
			return err
		}
		var pair [2]uint32
		for i, v := range vals {
			if pair[i], err = parseDuration(v); err != nil {
				return fmt.Errorf("%s: %w", key, err)
			}
		}
		switch key {
		case "header":
			c.header = pair
		case "one":
			c.one = pair
		case "zero":
			c.zero = pair
		case "pre":
			c.pre = pair
		case "post":
			c.post = pair
		case "foot":
			c.foot = pair
		}
		// repeat shapes NEC repeat frames, which are never sent.
	case "ptrail", "plead":
		if err := want(1); err != nil {
			return err
		}
		d, err := parseDuration(vals[0])
		if err != nil {
			return fmt.Errorf("%s: %w", key, err)
		}
		if key == "ptrail" {
			c.ptrail = d
		} else {
			c.plead = d
		}
	case "gap":
		// A second value is lircd's gap after a repeat; only full codes
		// are sent.
		if len(vals) != 1 && len(vals) != 2 {
			return fmt.Errorf("gap takes 1 or 2 values, got %d", len(vals))
		}
		if c.gap, err = parseDuration(vals[0]); err != nil {
			return fmt.Errorf("gap: %w", err)
		}
		if c.gap == 0 {
			return fmt.Errorf("gap: must not be 0")
		}
	case "frequency":
		if err := want(1); err != nil {
			return err
		}
		n, err := parseNum(vals[0], maxFrequency)
		if err != nil || n < minFrequency {
			return fmt.Errorf("frequency %q: want %d to %d Hz", vals[0], minFrequency, maxFrequency)
		}
		c.freq = int(n)
	default:
		if ignoredParams[key] {
			return nil
		}
		return fmt.Errorf("unknown parameter %q", key)
	}
	return nil
}

// addKey registers a key name; it reports false for a duplicate, which is
// ignored (lircd sends the first).
func (c *confRemote) addKey(name string) (bool, error) {
	if err := checkName("key name", name); err != nil {
		return false, err
	}
	if c.seen[name] {
		return false, nil
	}
	if len(c.keys) == maxKeys {
		return false, fmt.Errorf("more than %d keys in remote", maxKeys)
	}
	c.seen[name] = true
	c.keys = append(c.keys, name)
	return true, nil
}

func (c *confRemote) code(f []string, line int) error {
	if len(f) < 2 {
		return fmt.Errorf("want a key name and its code, got %q", strings.Join(f, " "))
	}
	if len(f) > 2 {
		return fmt.Errorf("key %q: several codes for one key are not supported", f[0])
	}
	v, err := parseNum(f[1], 1<<64-1)
	if err != nil {
		return fmt.Errorf("key %q: %w", f[0], err)
	}
	added, err := c.addKey(f[0])
	if added {
		c.codes = append(c.codes, confCode{value: v, line: line})
	}
	return err
}

func (c *confRemote) rawLine(f []string, line int) error {
	if f[0] == "name" {
		if len(f) < 2 {
			return fmt.Errorf("name takes a key name")
		}
		added, err := c.addKey(f[1])
		if err != nil {
			return err
		}
		c.ignoreRaw = !added
		if added {
			c.rawCodes = append(c.rawCodes, nil)
			c.rawLines = append(c.rawLines, line)
		}
		f = f[2:]
	} else if len(c.rawCodes) == 0 && !c.ignoreRaw {
		return fmt.Errorf("durations before the first \"name\"")
	}
	for _, w := range f {
		d, err := parseDuration(w)
		if err != nil {
			return err
		}
		if d == 0 {
			return fmt.Errorf("zero duration")
		}
		if c.ignoreRaw {
			continue
		}
		cur := &c.rawCodes[len(c.rawCodes)-1]
		if len(*cur) == maxDurations+1 { // one more: a trailing space is dropped
			return fmt.Errorf("key %q: more than %d durations", c.keys[len(c.keys)-1], maxDurations)
		}
		*cur = append(*cur, d)
	}
	return nil
}

// lineError is an error about a line other than the one being parsed.
type lineError struct {
	line int
	err  error
}

func (e *lineError) Error() string { return e.err.Error() }
func (e *lineError) Unwrap() error { return e.err }

// build checks a remote's parameters and computes every key's signal.
func (c *confRemote) build() (*Remote, error) {
	at := func(param string, format string, args ...any) error {
		line, ok := c.lines[param]
		if !ok {
			line = c.line
		}
		return &lineError{line, fmt.Errorf(format, args...)}
	}
	if c.name == "" {
		return nil, at("name", "remote has no name")
	}
	if len(c.keys) == 0 {
		return nil, at("name", "remote %q has no keys", c.name)
	}
	freq := c.freq
	if freq == 0 {
		freq = DefaultFrequency
	}
	var pulses [][]uint32
	if c.raw {
		if c.hadCodes || c.spaceEnc {
			return nil, at("flags", "remote %q: RAW_CODES with space-encoded codes", c.name)
		}
		for i, p := range c.rawCodes {
			if len(p)%2 == 0 && len(p) > 0 {
				p = p[:len(p)-1] // a trailing space is the gap's business
			}
			if err := checkPulses(p); err != nil {
				return nil, &lineError{c.rawLines[i], fmt.Errorf("key %q: %w", c.keys[i], err)}
			}
			pulses = append(pulses, p)
		}
	} else {
		if c.bits < 1 || c.preBits+c.bits+c.postBits > 64 {
			return nil, at("bits", "remote %q: bits %d + pre_data_bits %d + post_data_bits %d: want 1 to 64 bits of data, at most 64 in all", c.name, c.bits, c.preBits, c.postBits)
		}
		if c.one == [2]uint32{} || c.zero == [2]uint32{} || c.one == c.zero {
			return nil, at("one", "remote %q: a space-encoded remote needs different one and zero durations", c.name)
		}
		if !fits(c.preData, c.preBits) {
			return nil, at("pre_data", "remote %q: pre_data 0x%X does not fit in %d bits", c.name, c.preData, c.preBits)
		}
		if !fits(c.postData, c.postBits) {
			return nil, at("post_data", "remote %q: post_data 0x%X does not fit in %d bits", c.name, c.postData, c.postBits)
		}
		for i, code := range c.codes {
			if !fits(code.value, c.bits) {
				return nil, &lineError{code.line, fmt.Errorf("key %q: code 0x%X does not fit in %d bits", c.keys[i], code.value, c.bits)}
			}
			p := c.encode(code.value)
			if err := checkPulses(p); err != nil {
				return nil, &lineError{code.line, fmt.Errorf("key %q: %w", c.keys[i], err)}
			}
			pulses = append(pulses, p)
		}
	}
	gap := defaultGap
	if c.gap > 0 {
		gap = time.Duration(c.gap) * time.Microsecond
		if c.constL {
			// The gap is the period from one code's start to the next.
			var longest uint32
			for _, p := range pulses {
				longest = max(longest, sum(p))
			}
			gap = max(gap-time.Duration(longest)*time.Microsecond, necFrameBreak*time.Microsecond)
		}
	}
	return newRemote(c.name, freq, gap, c.raw, c.keys, pulses), nil
}

// encode returns a space-encoded remote's signal for code, in the order
// lircd sends it.
func (c *confRemote) encode(code uint64) []uint32 {
	var b pulseBuf
	if c.header[0] > 0 && c.header[1] > 0 {
		b.add(true, c.header[0])
		b.add(false, c.header[1])
	}
	b.add(true, c.plead)
	if c.preBits > 0 {
		c.sendBits(&b, c.preData, c.preBits)
		if c.pre[0] > 0 && c.pre[1] > 0 {
			b.add(true, c.pre[0])
			b.add(false, c.pre[1])
		}
	}
	c.sendBits(&b, code, c.bits)
	if c.postBits > 0 {
		if c.post[0] > 0 && c.post[1] > 0 {
			b.add(true, c.post[0])
			b.add(false, c.post[1])
		}
		c.sendBits(&b, c.postData, c.postBits)
	}
	b.add(true, c.ptrail)
	if c.foot[0] > 0 && c.foot[1] > 0 {
		b.add(false, c.foot[1])
		b.add(true, c.foot[0])
	}
	if len(b.p)%2 == 0 && len(b.p) > 0 {
		b.p = b.p[:len(b.p)-1]
	}
	return b.p
}

// sendBits sends the low n bits of v, most significant first, or least
// significant first for a REVERSE remote.
func (c *confRemote) sendBits(b *pulseBuf, v uint64, n int) {
	if c.reverse {
		v = bits.Reverse64(v) >> (64 - n)
	}
	for i := n - 1; i >= 0; i-- {
		pair := c.zero
		if v>>i&1 == 1 {
			pair = c.one
		}
		b.add(true, pair[0])
		b.add(false, pair[1])
	}
}

// pulseBuf builds a mark/space list, merging a mark that follows a mark
// (or a space a space) as the IR LED would.
type pulseBuf struct{ p []uint32 }

func (b *pulseBuf) add(mark bool, d uint32) {
	switch {
	case d == 0:
	case len(b.p) == 0:
		if mark { // a leading space is just idle time
			b.p = append(b.p, d)
		}
	case (len(b.p)%2 == 1) == mark:
		b.p[len(b.p)-1] += d
	default:
		b.p = append(b.p, d)
	}
}

// checkPulses checks a signal against what /dev/lirc accepts.
func checkPulses(p []uint32) error {
	if len(p) == 0 {
		return fmt.Errorf("empty signal")
	}
	if len(p) > maxDurations {
		return fmt.Errorf("%d durations, more than %d", len(p), maxDurations)
	}
	var total uint64
	for _, d := range p {
		if d == 0 {
			return fmt.Errorf("zero duration")
		}
		total += uint64(d)
	}
	if total > maxTransmission {
		return fmt.Errorf("signal lasts %d µs, more than %d", total, maxTransmission)
	}
	return nil
}

func fits(v uint64, n int) bool { return n >= 64 || v>>n == 0 }

// parseNum parses a decimal, 0x hexadecimal or 0 octal number, as lircd's
// strtoull does, up to limit.
func parseNum(s string, limit uint64) (uint64, error) {
	n, err := strconv.ParseUint(s, 0, 64)
	if err != nil || strings.Contains(s, "_") {
		return 0, fmt.Errorf("bad number %q", s)
	}
	if n > limit {
		return 0, fmt.Errorf("%s is more than %d", s, limit)
	}
	return n, nil
}

// parseDuration parses a duration in microseconds.
func parseDuration(s string) (uint32, error) {
	n, err := parseNum(s, maxTransmission)
	if err != nil {
		return 0, fmt.Errorf("duration: %w", err)
	}
	return uint32(n), nil
}

// checkName accepts the names lircd's socket protocol can carry.
func checkName(what, s string) error {
	if len(s) > maxNameLen || !utf8.ValidString(s) || strings.ContainsFunc(s, unicode.IsControl) {
		return fmt.Errorf("bad %s %q", what, s)
	}
	return nil
}
