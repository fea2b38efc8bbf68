package sink

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/pikit/pikit/energy/store"
)

// Defaults for HTTPOptions.
const (
	DefaultHTTPName    = "http"
	DefaultHTTPTimeout = 30 * time.Second
)

// HTTPOptions configures an HTTP sink.
type HTTPOptions struct {
	// Name is the sink's name (default DefaultHTTPName); give each HTTP
	// sink of a gateway its own.
	Name string
	// URL receives the batches as POST requests (http or https).
	URL string
	// Sign builds the request body and its content type from a batch. The
	// gateway signs a JWT whose payload is NewBatch(recs). By default the
	// body is NewBatch(recs) as unsigned JSON ("application/json").
	Sign func(recs []store.Record) (body []byte, contentType string, err error)
	// Header, if set, is added to every request (e.g. an API key).
	Header http.Header
	// Client sends the requests (default: a new http.Client).
	Client *http.Client
	// Timeout bounds each request (default DefaultHTTPTimeout).
	Timeout time.Duration
	// Now returns the current time, for Retry-After dates (default
	// time.Now).
	Now func() time.Time
}

// HTTP is a sink that POSTs each batch to a URL. Any 2xx response
// acknowledges the whole batch; anything else (other statuses, network
// errors, timeouts) is an error, and a Retry-After header (seconds or an
// HTTP date) on a 429 or 503 response is returned as a *RetryAfterError.
type HTTP struct {
	opts HTTPOptions
}

// NewHTTP returns an HTTP sink.
func NewHTTP(opts HTTPOptions) (*HTTP, error) {
	u, err := url.Parse(opts.URL)
	if err != nil {
		return nil, fmt.Errorf("sink: http: bad URL: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("sink: http: URL %q is not an absolute http or https URL", opts.URL)
	}
	if opts.Name == "" {
		opts.Name = DefaultHTTPName
	}
	if opts.Sign == nil {
		opts.Sign = func(recs []store.Record) ([]byte, string, error) {
			b, err := json.Marshal(NewBatch(recs))
			return b, "application/json", err
		}
	}
	if opts.Client == nil {
		opts.Client = &http.Client{}
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultHTTPTimeout
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &HTTP{opts: opts}, nil
}

// Name implements Sink.
func (h *HTTP) Name() string { return h.opts.Name }

// Deliver implements Sink.
func (h *HTTP) Deliver(ctx context.Context, recs []store.Record) error {
	if len(recs) == 0 {
		return nil
	}
	body, ct, err := h.opts.Sign(recs)
	if err != nil {
		return fmt.Errorf("sink: %s: build batch: %w", h.opts.Name, err)
	}
	ctx, cancel := context.WithTimeout(ctx, h.opts.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.opts.URL, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("sink: %s: %w", h.opts.Name, err)
	}
	for k, vs := range h.opts.Header {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	if ct != "" {
		req.Header.Set("Content-Type", ct)
	}
	req.Header.Set("Pikit-Seq-First", strconv.FormatUint(recs[0].Seq, 10))
	req.Header.Set("Pikit-Seq-Last", strconv.FormatUint(recs[len(recs)-1].Seq, 10))
	resp, err := h.opts.Client.Do(req)
	if err != nil {
		return fmt.Errorf("sink: %s: %w", h.opts.Name, err)
	}
	defer resp.Body.Close()
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // let the connection be reused
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return nil
	}
	err = fmt.Errorf("sink: %s: POST %s: %s", h.opts.Name, redact(h.opts.URL), resp.Status)
	if s := strings.TrimSpace(string(snippet)); s != "" {
		err = fmt.Errorf("%w: %q", err, s)
	}
	if resp.StatusCode == http.StatusRequestEntityTooLarge {
		return fmt.Errorf("%w (%w)", err, ErrTooLarge)
	}
	if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable {
		if d, ok := parseRetryAfter(resp.Header.Get("Retry-After"), h.opts.Now()); ok {
			return &RetryAfterError{After: d, Err: err}
		}
	}
	return err
}

// parseRetryAfter parses a Retry-After value: delay seconds or an HTTP
// date (a date in the past means no wait).
func parseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if n, err := strconv.ParseUint(v, 10, 64); err == nil {
		if n > uint64(1<<63-1)/uint64(time.Second) {
			n = uint64(1<<63-1) / uint64(time.Second)
		}
		return time.Duration(n) * time.Second, true
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	return max(t.Sub(now), 0), true
}

// redact removes credentials from a URL for error messages.
func redact(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(bad URL)"
	}
	return u.Redacted()
}

var _ Sink = (*HTTP)(nil)
