package camera

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"time"
)

// MJPEGHandler returns a handler that streams the Broadcaster's frames as
// multipart/x-mixed-replace (MJPEG), which browsers show in an <img> tag and
// ffmpeg, VLC and OpenCV read.
//
// Each part carries Content-Type, Content-Length and X-Timestamp (the
// capture time in Unix seconds with a fraction). Every viewer gets the
// newest frame whenever it has sent the previous one, so a slow viewer
// skips frames; a viewer that does not accept a frame within WriteTimeout
// is dropped. The handler returns when the client goes away, and ends the
// stream with the closing boundary when the Broadcaster is closed or gives
// up. A Broadcaster that has ended answers 503. Only GET and HEAD are
// allowed; HEAD does not start capture.
func (b *Broadcaster) MJPEGHandler() http.Handler {
	return http.HandlerFunc(b.serveMJPEG)
}

// SnapshotHandler returns a handler that answers with one JPEG: the latest
// frame, or the next one if capture is idle (starting it) or restarting. If
// no frame arrives within SnapshotWait it answers 503. Like a stream, the
// answer must be accepted within WriteTimeout.
func (b *Broadcaster) SnapshotHandler() http.Handler {
	return http.HandlerFunc(b.serveSnapshot)
}

func allowGet(w http.ResponseWriter, r *http.Request) bool {
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		return true
	}
	w.Header().Set("Allow", "GET, HEAD")
	http.Error(w, "camera: method not allowed", http.StatusMethodNotAllowed)
	return false
}

func noCache(h http.Header) {
	h.Set("Cache-Control", "no-cache, no-store, must-revalidate")
	h.Set("Pragma", "no-cache")
	h.Set("Expires", "0")
}

func unavailable(w http.ResponseWriter, msg string) {
	noCache(w.Header())
	w.Header().Set("Retry-After", "1")
	http.Error(w, msg, http.StatusServiceUnavailable)
}

func (b *Broadcaster) serveMJPEG(w http.ResponseWriter, r *http.Request) {
	if !allowGet(w, r) {
		return
	}
	var v *Viewer
	if r.Method == http.MethodHead {
		if err := b.err(); err != nil {
			unavailable(w, "camera: stream unavailable: "+err.Error())
			return
		}
	} else {
		var err error
		if v, err = b.Subscribe(); err != nil {
			unavailable(w, "camera: stream unavailable: "+err.Error())
			return
		}
		defer v.Close()
	}
	h := w.Header()
	h.Set("Content-Type", "multipart/x-mixed-replace; boundary="+b.boundary)
	h.Set("X-Content-Type-Options", "nosniff")
	noCache(h)
	if r.ProtoMajor == 1 {
		// Without chunking, partWriter can hand each frame to the socket
		// in one writev. The stream ends with the connection anyway
		// (net/http honours this value by closing it after the reply).
		h.Set("Transfer-Encoding", "identity")
	}
	w.WriteHeader(http.StatusOK)
	if v == nil {
		return
	}
	rc := http.NewResponseController(w)
	// Send the headers now: the first frame may take a while if the camera
	// has to start.
	if err := rc.Flush(); err != nil {
		return
	}
	ctx := r.Context()
	pw := newPartWriter(w)
	first := true
	for {
		p, err := v.next(ctx)
		if err != nil {
			if ctx.Err() == nil {
				// The Broadcaster ended: end the body properly so that the
				// client sees a complete stream rather than a cut.
				b.writePart(rc, func() error { _, err := w.Write(b.trailer); return err })
			}
			return
		}
		hdr := p.hdr
		if first {
			hdr, first = hdr[2:], false // no CRLF before the first delimiter
		}
		if err := b.writePart(rc, func() error { return pw.write(hdr, p.Data) }); err != nil {
			return
		}
	}
}

// writePart runs write and flushes under the write deadline. The deadline
// is cleared afterwards: waiting for the next frame may take longer (a
// slow or restarting camera), and HTTP/2 resets a stream whose deadline
// passes even when nothing is being written.
func (b *Broadcaster) writePart(rc *http.ResponseController, write func() error) error {
	if err := rc.SetWriteDeadline(time.Now().Add(b.opts.WriteTimeout)); err != nil && !errors.Is(err, http.ErrNotSupported) {
		return err
	}
	err := write()
	if err == nil {
		err = rc.Flush()
	}
	if err := rc.SetWriteDeadline(time.Time{}); err != nil && !errors.Is(err, http.ErrNotSupported) {
		return err
	}
	return err
}

// partWriter sends a part's header and JPEG, both shared with other
// viewers, in one write without copying them.
//
// net/http's ResponseWriter implements io.ReaderFrom by handing the reader
// to the TCP connection once headers are sent and the body is neither
// chunked nor HTTP/2; the connection writes a *net.Buffers with a single
// writev. Anywhere else (TLS, HTTP/2, wrappers that hide ReadFrom) the
// same call falls back to ordinary buffered writes, which are correct,
// just slower.
type partWriter struct {
	w    http.ResponseWriter
	rf   io.ReaderFrom
	arr  [2][]byte
	bufs net.Buffers // points into arr; allocated once per viewer
}

func newPartWriter(w http.ResponseWriter) *partWriter {
	pw := &partWriter{w: w}
	pw.rf, _ = w.(io.ReaderFrom)
	return pw
}

func (pw *partWriter) write(hdr, data []byte) error {
	if pw.rf == nil {
		if _, err := pw.w.Write(hdr); err != nil {
			return err
		}
		_, err := pw.w.Write(data)
		return err
	}
	pw.arr[0], pw.arr[1] = hdr, data
	pw.bufs = pw.arr[:]
	_, err := pw.rf.ReadFrom(&pw.bufs)
	pw.arr = [2][]byte{} // do not keep the frame alive
	return err
}

func (b *Broadcaster) serveSnapshot(w http.ResponseWriter, r *http.Request) {
	if !allowGet(w, r) {
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), b.opts.SnapshotWait)
	defer cancel()
	f, err := b.Snapshot(ctx)
	if err != nil {
		switch {
		case r.Context().Err() != nil:
			// The client left; nobody reads the answer.
		case errors.Is(err, context.DeadlineExceeded):
			unavailable(w, "camera: no frame within "+b.opts.SnapshotWait.String())
		default:
			unavailable(w, "camera: snapshot unavailable: "+err.Error())
		}
		return
	}
	h := w.Header()
	h.Set("Content-Type", "image/jpeg")
	h.Set("Content-Length", strconv.Itoa(len(f.Data)))
	h.Set("X-Timestamp", string(appendTimestamp(nil, f.Time)))
	h.Set("X-Content-Type-Options", "nosniff")
	noCache(h)
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		// An error means the client went away or was too slow.
		b.writePart(http.NewResponseController(w), func() error { _, err := w.Write(f.Data); return err })
	}
}
