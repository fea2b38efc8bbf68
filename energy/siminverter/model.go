package siminverter

import (
	"math"
	"time"
)

// model is the simulated plant: a deterministic function of time and seed,
// plus the energy counter, which integrates power over the time the
// simulator has seen.
type model struct {
	peak     float64 // W, DC at clear-sky noon in midsummer
	seed     uint64
	clear    bool
	phases   int
	inputs   int
	lastT    time.Time
	energy   float64 // Wh, AC, lifetime
	started  bool
	stepSize time.Duration
}

// efficiency of the DC to AC conversion.
const efficiency = 0.965

// maxIntegrate bounds how far back the energy counter integrates after a
// jump of the clock, so that a clock set years ahead does not stall the
// simulator; longer gaps count as one such span.
const maxIntegrate = 400 * 24 * time.Hour

// splitmix64 is a small, good integer hash; the cloud pattern is a pure
// function of the seed and the time slot, so every run and every client
// sees the same weather.
func splitmix64(x uint64) uint64 {
	x += 0x9E3779B97F4A7C15
	x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9
	x = (x ^ (x >> 27)) * 0x94D049BB133111EB
	return x ^ (x >> 31)
}

// unit returns a deterministic number in [0, 1) for (seed, k).
func (m *model) unit(k int64) float64 {
	return float64(splitmix64(m.seed^uint64(k)*0xD6E8FEB86659FD93)>>11) / (1 << 53)
}

// hours returns the local clock time of t in hours since midnight.
func hours(t time.Time) float64 {
	h, mi, s := t.Clock()
	return float64(h) + float64(mi)/60 + (float64(s)+float64(t.Nanosecond())/1e9)/3600
}

// dayShape returns sunrise and sunset (local hours) and the seasonal factor
// for t's date: days from 8 h (midwinter) to 16 h (midsummer) long, centred
// on 12:00, with the midday sun weaker in winter (a mid-latitude site).
func dayShape(t time.Time) (rise, set, season float64) {
	s := math.Sin(2 * math.Pi * (float64(t.YearDay()) - 80) / 365.25)
	dayLen := 12 + 4*s
	return 12 - dayLen/2, 12 + dayLen/2, 0.8 + 0.2*s
}

// clearSky returns the clear-sky fraction of peak power at t: a half sine
// from sunrise to sunset.
func clearSky(t time.Time) float64 {
	rise, set, season := dayShape(t)
	h := hours(t)
	if h <= rise || h >= set {
		return 0
	}
	return season * math.Sin(math.Pi*(h-rise)/(set-rise))
}

// cloudSlot is the time over which the cloud cover changes.
const cloudSlot = 15 * time.Minute

// clouds returns the fraction of sunlight that gets through at t, between
// 0.3 (a thick cloud) and 1 (clear), smoothly interpolated between
// deterministic values every cloudSlot.
func (m *model) clouds(t time.Time) float64 {
	if m.clear {
		return 1
	}
	ns := t.UnixNano()
	slot := ns / int64(cloudSlot)
	if ns < 0 && ns%int64(cloudSlot) != 0 {
		slot--
	}
	frac := float64(ns-slot*int64(cloudSlot)) / float64(cloudSlot)
	at := func(k int64) float64 {
		u := m.unit(k)
		return 1 - 0.7*math.Max(0, u-0.4)/0.6
	}
	a, b := at(slot), at(slot+1)
	w := frac * frac * (3 - 2*frac) // smoothstep
	return a + (b-a)*w
}

// dcPower is the plant's DC power at t, W.
func (m *model) dcPower(t time.Time) float64 {
	cs := clearSky(t)
	if cs == 0 {
		return 0
	}
	return m.peak * cs * m.clouds(t)
}

// acPower is the AC output at t, W.
func (m *model) acPower(t time.Time) float64 { return m.dcPower(t) * efficiency }

// advance integrates AC power from the last time seen to t (trapezoids of
// at most stepSize) so that the lifetime energy only grows. A clock that
// goes back leaves the counter alone.
func (m *model) advance(t time.Time) {
	if !m.started {
		m.started = true
		m.lastT = t
		// A plausible installation age, different per seed.
		m.energy = 1e6 + math.Floor(m.unit(-1)*4e6)
		return
	}
	if !t.After(m.lastT) {
		return
	}
	from := m.lastT
	if t.Sub(from) > maxIntegrate {
		from = t.Add(-maxIntegrate)
	}
	step := m.stepSize
	if step <= 0 {
		step = time.Minute
	}
	p0 := m.acPower(from)
	for from.Before(t) {
		next := from.Add(step)
		if next.After(t) {
			next = t
		}
		p1 := m.acPower(next)
		m.energy += (p0 + p1) / 2 * next.Sub(from).Hours()
		from, p0 = next, p1
	}
	m.lastT = t
}
