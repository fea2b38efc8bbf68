package energy

import (
	"context"
	"io"
	"net"
	"testing"
	"time"
)

// benchRead reads a 125-register block over loopback from a simonvetter
// server, sequentially on one connection.
func benchRead(b *testing.B, ctx context.Context) {
	dev := newFakeDevice()
	dev.set(1, 0, seq(0, 200))
	srv := startServer(b, dev, 0)
	m := newTestModbus(b, srv.url(), ModbusOptions{})
	if _, err := m.ReadRegisters(ctx, 1, 3, 0, 125); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for b.Loop() {
		if _, err := m.ReadRegisters(ctx, 1, 3, 0, 125); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "reads/s")
}

// BenchmarkModbusRead125 uses a context that cannot be cancelled: the
// request runs in the caller's goroutine.
func BenchmarkModbusRead125(b *testing.B) { benchRead(b, context.Background()) }

// BenchmarkModbusRead125Deadline uses a context with a deadline: the
// request runs in a goroutine so that ctx can cut the wait short.
func BenchmarkModbusRead125Deadline(b *testing.B) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	benchRead(b, ctx)
}

// BenchmarkTCPEcho is the floor to compare with: the same exchange sizes
// as a 125-register read (a 12-byte request, a 259-byte response) over a
// plain loopback TCP connection with a server that only answers.
func BenchmarkTCPEcho(b *testing.B) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		req := make([]byte, 12)
		res := make([]byte, 7+2+250)
		for {
			if _, err := io.ReadFull(c, req); err != nil {
				return
			}
			if _, err := c.Write(res); err != nil {
				return
			}
		}
	}()
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	req := make([]byte, 12)
	res := make([]byte, 7+2+250)
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for b.Loop() {
		if _, err := c.Write(req); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(c, res); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "reads/s")
}

// BenchmarkModbusRead125RawServer isolates the client: the server is a
// plain loop that answers each request with a prepared frame, so the
// allocations reported are the client's own (the simonvetter server's are
// counted in BenchmarkModbusRead125).
func BenchmarkModbusRead125RawServer(b *testing.B) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		req := make([]byte, 12)
		res := mbapResponse(0, 1, 3, 0, 125)
		for {
			if _, err := io.ReadFull(c, req); err != nil {
				return
			}
			copy(res[:2], req[:2]) // echo the transaction ID
			if _, err := c.Write(res); err != nil {
				return
			}
		}
	}()
	m := newTestModbus(b, "tcp://"+l.Addr().String(), ModbusOptions{})
	ctx := context.Background()
	if _, err := m.ReadRegisters(ctx, 1, 3, 0, 125); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for b.Loop() {
		if _, err := m.ReadRegisters(ctx, 1, 3, 0, 125); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "reads/s")
}
