package energy

import (
	"context"
	"fmt"
	"strings"
	"unicode"
)

// Identify reads the profile's serial-number (and model) registers from the
// device at unit and returns its Info if they hold a plausible serial
// number: at least 4 printable characters, not all spaces, zeros or 0xFF
// padding. Scan uses it to recognise vendor devices that do not speak
// SunSpec; a device of another brand usually answers those registers with
// an exception or with something that is not a serial number.
func (p *Profile) Identify(ctx context.Context, rr RegisterReader, unit uint8) (Info, error) {
	if p.Serial == nil {
		return Info{}, fmt.Errorf("energy: profile %s has no serial-number registers", p.Name)
	}
	var blocks []RegisterBlock
	for _, b := range p.InfoPlan() {
		regs, err := rr.ReadRegisters(ctx, unit, b.Function, b.Start, b.Count)
		if err != nil {
			return Info{}, err
		}
		blocks = append(blocks, RegisterBlock{Function: b.Function, Start: b.Start, Values: regs})
	}
	l := newLookup(blocks)
	info := p.Info()
	info.Serial = strings.TrimSpace(p.text(l, p.Serial))
	if p.Model != nil {
		info.Model = strings.TrimSpace(p.text(l, p.Model))
	}
	if !plausibleSerial(info.Serial) {
		return Info{}, fmt.Errorf("energy: %s: no plausible serial number at unit %d (read %q)", p.Name, unit, info.Serial)
	}
	return info, nil
}

func plausibleSerial(s string) bool {
	padding := func(r rune) bool { return r == '0' || r == ' ' || r == 0 || r == 0xFF || r == unicode.ReplacementChar }
	if len(s) < 4 || strings.TrimFunc(s, padding) == "" {
		return false
	}
	for _, r := range s {
		if !unicode.IsPrint(r) || r == unicode.ReplacementChar {
			return false
		}
	}
	return true
}

// ProfileIdentifiers returns an IdentifyFunc for every built-in profile
// with serial-number registers, in name order; Scan uses them when
// ScanOptions.Identify is nil.
func ProfileIdentifiers() []IdentifyFunc {
	var out []IdentifyFunc
	for _, name := range ProfileNames() {
		p, err := LookupProfile(name)
		if err != nil || p.Serial == nil {
			continue
		}
		out = append(out, p.Identify)
	}
	return out
}
