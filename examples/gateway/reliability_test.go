package main

import (
	"fmt"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pikit/pikit/energy/siminverter"
	"github.com/pikit/pikit/energy/store"
)

// checkNoneLost opens the queue a stopped gateway left in dir and checks
// that every sequence number ever assigned either reached the receiver or
// is still queued for the sink.
func checkNoneLost(t *testing.T, dir string, rcv *receiver) (last uint64) {
	t.Helper()
	q, err := store.Open(filepath.Join(dir, queueFile), store.Options{Sinks: []string{"http"}, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	st, err := q.Stats()
	if err != nil {
		t.Fatal(err)
	}
	last = st.NextSeq - 1
	if st.Dropped != 0 {
		t.Errorf("queue dropped %d records", st.Dropped)
	}
	queued := map[uint64]bool{}
	for from := st.PerSink["http"]; ; {
		recs, err := q.Since(from, 1000)
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) == 0 {
			break
		}
		for _, r := range recs {
			queued[r.Seq] = true
		}
		from = recs[len(recs)-1].Seq
	}
	var missing []uint64
	for s := uint64(1); s <= last; s++ {
		if !rcv.has(s) && !queued[s] {
			missing = append(missing, s)
		}
	}
	if len(missing) > 0 {
		t.Errorf("%d of %d sequence numbers neither delivered nor queued: %v", len(missing), last, missing)
	}
	// Everything the sink acknowledged really arrived.
	for s := uint64(1); s <= st.PerSink["http"]; s++ {
		if !rcv.has(s) {
			t.Errorf("seq %d acknowledged in the queue but never received", s)
			break
		}
	}
	return last
}

// TestBackendDownThenUp: the receiver is down (503) for a while, then
// loses two answers after storing the batch (the send is interrupted from
// the gateway's view), then works. Afterwards every sequence number has
// arrived, every signature verifies, and duplicates exist only for the
// interrupted sends.
func TestBackendDownThenUp(t *testing.T) {
	t.Parallel()
	rcv, rsrv := newReceiver(t)
	var phase atomic.Int32 // 0 down, 1 interrupting, 2 up
	var interruptions atomic.Int32
	rcv.respond = func(int) string {
		switch phase.Load() {
		case 0:
			return "down"
		case 1:
			if interruptions.Add(1) > 2 {
				phase.Store(2)
				return "ok"
			}
			return "interrupted"
		}
		return "ok"
	}
	tg := newTestGateway(t, Settings{HTTPURL: rsrv.URL, Devices: []DeviceConfig{
		{ID: "a", Spec: "sim?seed=1"}, {ID: "b", Spec: "sim?seed=2&profile=sma"},
	}})
	rcv.setKey(publicKey(t, tg.srv.URL))

	// Down: readings pile up in the queue, failures are reported.
	waitFor(t, 15*time.Second, "failed deliveries and a backlog", func() bool {
		_, st := tg.call(t, "GET", "/api/state", nil, "")
		q := st["queue"].(map[string]any)
		sinks := fmt.Sprint(st["sinks"])
		return num(q["pending"]) >= 4 && strings.Contains(sinks, "503")
	})
	if n := rcv.distinct(); n != 0 {
		t.Fatalf("%d readings arrived while the receiver was down", n)
	}
	phase.Store(1)
	waitFor(t, 30*time.Second, "the backlog to drain", func() bool {
		_, st := tg.call(t, "GET", "/api/state", nil, "")
		q := st["queue"].(map[string]any)
		return phase.Load() == 2 && num(q["pending"]) == 0 && rcv.distinct() >= 8
	})
	tg.stop()
	last := checkNoneLost(t, tg.dir, rcv)
	dupes := rcv.check(t, false)
	rcv.mu.Lock()
	interrupted := len(rcv.interrupted)
	rcv.mu.Unlock()
	if interrupted == 0 {
		t.Error("no send was interrupted; the test did not test that")
	}
	t.Logf("%d readings; %d seqs in interrupted sends, %d duplicates at the receiver", last, interrupted, dupes)
}

// TestInverterFaults injects the simulator's faults into one of two
// devices: the gateway keeps running, reports the device's state, keeps
// reading the healthy device on schedule, and recovers when the faults end.
func TestInverterFaults(t *testing.T) {
	t.Parallel()
	tg := newTestGateway(t, Settings{Devices: []DeviceConfig{{ID: "bad", Spec: "sim?seed=1"}, {ID: "good", Spec: "sim?seed=2"}}})
	waitFor(t, 10*time.Second, "both devices to read", func() bool {
		a, b := tg.deviceState(t, "bad"), tg.deviceState(t, "good")
		return a != nil && b != nil && a["state"] == stateOK && b["state"] == stateOK
	})
	sim, ok := siminverter.Sim(tg.g.harvester("bad").inverter())
	if !ok {
		t.Fatal("no simulator behind the device")
	}
	for _, fc := range []struct {
		name   string
		faults siminverter.Faults
		want   string // in last_error
	}{
		{"exceptions", siminverter.Faults{ExceptionRate: 1}, "exception"},
		{"disconnects", siminverter.Faults{DropRate: 1}, "read:"},
		{"timeouts", siminverter.Faults{Delay: 5 * time.Second}, "read:"},
		{"garbage", siminverter.Faults{GarbageRate: 1}, "read:"},
	} {
		t.Run(fc.name, func(t *testing.T) {
			before := tg.deviceState(t, "bad")
			goodBefore := num(tg.deviceState(t, "good")["reads"])
			if err := sim.SetFaults(fc.faults); err != nil {
				t.Fatal(err)
			}
			waitFor(t, 15*time.Second, "the device to be reported failing", func() bool {
				d := tg.deviceState(t, "bad")
				return d["state"] == stateError && num(d["errors"]) > num(before["errors"]) &&
					strings.Contains(fmt.Sprint(d["last_error"]), fc.want)
			})
			if code, doc := tg.call(t, "GET", "/healthz", nil, ""); code != 200 || num(doc["devices_ok"]) != 1 {
				t.Errorf("/healthz with a failing device: %d %v", code, doc)
			}
			// The healthy device went on being read meanwhile.
			waitFor(t, 10*time.Second, "the healthy device to go on", func() bool {
				return num(tg.deviceState(t, "good")["reads"]) >= goodBefore+2
			})
			if err := sim.SetFaults(siminverter.Faults{}); err != nil {
				t.Fatal(err)
			}
			reads := num(tg.deviceState(t, "bad")["reads"])
			waitFor(t, 20*time.Second, "the device to recover", func() bool {
				d := tg.deviceState(t, "bad")
				return d["state"] == stateOK && num(d["reads"]) > reads && num(d["consecutive_errors"]) == 0
			})
		})
	}
	if d := tg.deviceState(t, "good"); num(d["errors"]) != 0 {
		t.Errorf("the healthy device had errors: %v", d)
	}
}

// TestScheduleDoesNotDrift: reads are due at start + n*interval whatever
// they cost, and a slow device skips ticks rather than bursting.
func TestScheduleDoesNotDrift(t *testing.T) {
	t.Parallel()
	tg := newTestGateway(t, Settings{Devices: []DeviceConfig{{ID: "slow", Spec: "sim?seed=1"}}})
	waitFor(t, 10*time.Second, "a first read", func() bool { return tg.deviceState(t, "slow")["state"] == stateOK })
	h := tg.g.harvester("slow")
	first := h.state().NextReadAt
	waitFor(t, 10*time.Second, "three more ticks", func() bool { return h.state().NextReadAt.Sub(first) >= 3*time.Second })
	// Every due time lies on the grid of the first one.
	if off := h.state().NextReadAt.Sub(first) % time.Second; off != 0 {
		t.Errorf("due times drifted by %s off the 1s grid", off)
	}
	// A slow device makes reads time out and back off: ticks are
	// skipped and counted, and the grid holds.
	sim, _ := siminverter.Sim(h.inverter())
	sim.SetFaults(siminverter.Faults{Delay: 600 * time.Millisecond})
	waitFor(t, 15*time.Second, "skipped ticks", func() bool { return h.state().SkippedTicks > 0 })
	sim.SetFaults(siminverter.Faults{})
	if off := h.state().NextReadAt.Sub(first) % time.Second; off != 0 {
		t.Errorf("due times drifted by %s off the 1s grid after overruns", off)
	}
}
