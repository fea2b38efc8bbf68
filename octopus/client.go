package octopus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

const (
	// DefaultTimeout bounds each request when ClientOptions.Timeout is zero.
	DefaultTimeout = 10 * time.Second
	// MaxResponseSize bounds every response body. A dashboard or activity
	// log is far smaller; anything bigger is refused rather than read into
	// a Raspberry Pi's memory.
	MaxResponseSize = 8 << 20
	// DefaultUserAgent is sent when ClientOptions.UserAgent is empty.
	DefaultUserAgent = "pikit-octopus/1"

	apiKeyHeader = "X-Octopus-ApiKey"
	excerptSize  = 512      // bytes of an error body kept in an error
	errBodyLimit = 64 << 10 // bytes of an error body read at all
)

var (
	// ErrUnauthorized is wrapped by the error for an HTTP 401 response: the
	// API key is wrong, expired or revoked.
	ErrUnauthorized = errors.New("octopus: unauthorized")
	// ErrForbidden is wrapped by the error for an HTTP 403 response: the
	// API key's user lacks a permission.
	ErrForbidden = errors.New("octopus: forbidden")
	// ErrNotFound is wrapped by the error for an HTTP 404 response, and by
	// every error about a space, project or environment that does not exist
	// (see NotFoundError).
	ErrNotFound = errors.New("octopus: not found")
	// ErrNoDeployment is returned by LatestDeployment for a project never
	// deployed to the environment.
	ErrNoDeployment = errors.New("octopus: never deployed")
	// ErrMalformedResponse is wrapped by the error for a response body that
	// is not the JSON expected.
	ErrMalformedResponse = errors.New("octopus: malformed response")
	// ErrTooLarge is wrapped by the error for a response body larger than
	// MaxResponseSize.
	ErrTooLarge = errors.New("octopus: response too large")
)

// ServerError is the error for a response with an HTTP status the client
// does not expect: a 5xx, or a 3xx or 4xx other than 401, 403 and 404.
type ServerError struct {
	Method     string // "GET"
	Endpoint   string // path and query, e.g. "/api/Spaces-1/dashboard/dynamic?projects=Projects-1"
	StatusCode int    // e.g. 503
	// Excerpt is the start of the response body (Octopus's ErrorMessage
	// when the body has one), at most 512 bytes, with any occurrence of the
	// API key removed.
	Excerpt string
}

// Error describes the request, the status and the excerpt.
func (e *ServerError) Error() string {
	msg := fmt.Sprintf("octopus: %s %s: HTTP %d %s", e.Method, e.Endpoint, e.StatusCode, http.StatusText(e.StatusCode))
	if e.Excerpt != "" {
		msg += ": " + e.Excerpt
	}
	return msg
}

// statusError is the error for 401, 403 and 404, wrapping the sentinel.
type statusError struct {
	method, endpoint string
	code             int
	serverMsg        string
	sentinel         error
}

func (e *statusError) Error() string {
	msg := fmt.Sprintf("octopus: %s %s: HTTP %d %s", e.method, e.endpoint, e.code, http.StatusText(e.code))
	if e.code == http.StatusUnauthorized || e.code == http.StatusForbidden {
		msg += ": check the API key and its permissions"
	}
	if e.serverMsg != "" {
		msg += " (server said: " + e.serverMsg + ")"
	}
	return msg
}

func (e *statusError) Unwrap() error { return e.sentinel }

// ClientOptions configures a Client. The zero value is ready to use.
type ClientOptions struct {
	// Space is the name or ID ("Spaces-1") of the space to work in; empty
	// means the server's default space. It is resolved on first use.
	Space string
	// HTTPClient sends the requests (default: a new http.Client). The
	// Client uses a shallow copy whose redirect policy refuses redirects to
	// another host, which would receive the API key.
	HTTPClient *http.Client
	// Timeout bounds each request, including reading the body (default
	// DefaultTimeout).
	Timeout time.Duration
	// UserAgent is sent with each request (default DefaultUserAgent).
	UserAgent string
}

// Client reads from the Octopus REST API. Create one with NewClient; it is
// safe for concurrent use.
//
// Methods that take IDs (LatestDeployment, Task, Dashboard, ...) expect the
// IDs Octopus assigns ("Projects-1"); Project and Environment turn names
// into them.
type Client struct {
	base      *url.URL // ends in "/"
	key       *apiKey  // behind a pointer so that printing a Client shows no key
	hc        *http.Client
	timeout   time.Duration
	userAgent string
	spaceArg  string
	space     *spaceCache
}

type apiKey struct{ v string }

func (*apiKey) String() string   { return "[REDACTED]" }
func (*apiKey) GoString() string { return "[REDACTED]" }

// spaceCache holds the resolved space. lock, a one-slot channel, is held
// while resolving, so that concurrent first calls make one request and a
// caller waiting for it can still give up when its context ends.
type spaceCache struct {
	lock  chan struct{}
	space *Space // guarded by lock
}

// NewClient returns a client for the Octopus server at baseURL (its root,
// e.g. "https://octopus.example.com" or "https://example.com/octopus/"),
// authenticating with apiKey. It checks its arguments but does not contact
// the server.
func NewClient(baseURL, apiKey string, opts ClientOptions) (*Client, error) {
	base, err := parseBaseURL(baseURL)
	if err != nil {
		return nil, err
	}
	if err := checkAPIKey(apiKey); err != nil {
		return nil, err
	}
	if opts.Timeout < 0 {
		return nil, fmt.Errorf("octopus: negative Timeout %s", opts.Timeout)
	}
	if opts.Timeout == 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.UserAgent == "" {
		opts.UserAgent = DefaultUserAgent
	}
	hc := &http.Client{}
	if opts.HTTPClient != nil {
		cp := *opts.HTTPClient
		hc = &cp
	}
	hc.CheckRedirect = sameHostRedirects(base, hc.CheckRedirect)
	return &Client{
		base:      base,
		key:       newAPIKey(apiKey),
		hc:        hc,
		timeout:   opts.Timeout,
		userAgent: opts.UserAgent,
		spaceArg:  strings.TrimSpace(opts.Space),
		space:     &spaceCache{lock: make(chan struct{}, 1)},
	}, nil
}

func newAPIKey(s string) *apiKey { return &apiKey{v: s} }

// String describes the client without its API key.
func (c Client) String() string {
	if c.base == nil {
		return "octopus.Client(unconfigured)"
	}
	sp := c.spaceArg
	if sp == "" {
		sp = "default space"
	} else {
		sp = fmt.Sprintf("space %q", sp)
	}
	return fmt.Sprintf("octopus.Client(%s, %s)", c.base.Redacted(), sp)
}

// GoString is String, so that %#v shows no API key either.
func (c Client) GoString() string { return c.String() }

// parseBaseURL checks an Octopus server URL. Errors do not repeat the URL
// when it has a query or user info, where a key might have been put.
func parseBaseURL(s string) (*url.URL, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, errors.New("octopus: empty server URL")
	}
	u, err := url.Parse(s)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("octopus: invalid server URL: %v", err)
	}
	switch {
	case u.User != nil:
		return nil, errors.New("octopus: server URL must not contain user info; pass the API key as apiKey")
	case u.RawQuery != "" || u.ForceQuery:
		return nil, errors.New("octopus: server URL must not have a query; pass the API key as apiKey")
	case u.Fragment != "":
		return nil, errors.New("octopus: server URL must not have a fragment")
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, fmt.Errorf("octopus: server URL %q: scheme must be http or https", u.Redacted())
	case u.Host == "":
		return nil, fmt.Errorf("octopus: server URL %q has no host", u.Redacted())
	}
	u.Path = strings.TrimSuffix(u.Path, "/") + "/"
	u.RawPath = ""
	return u, nil
}

func checkAPIKey(k string) error {
	if k == "" || strings.TrimSpace(k) == "" {
		return errors.New("octopus: empty API key")
	}
	for _, r := range k {
		if r > unicode.MaxASCII || unicode.IsSpace(r) || unicode.IsControl(r) {
			// The key itself stays out of the message.
			return errors.New("octopus: API key contains spaces, control or non-ASCII characters")
		}
	}
	return nil
}

// sameHostRedirects wraps a redirect policy so that the API key, which
// net/http copies to redirected requests, never leaves the server's host
// or is downgraded from https to http.
func sameHostRedirects(base *url.URL, next func(*http.Request, []*http.Request) error) func(*http.Request, []*http.Request) error {
	return func(req *http.Request, via []*http.Request) error {
		if !strings.EqualFold(req.URL.Hostname(), base.Hostname()) {
			return fmt.Errorf("octopus: refusing redirect to %s: the API key would go to another host", req.URL.Host)
		}
		if len(via) > 0 && via[len(via)-1].URL.Scheme == "https" && req.URL.Scheme != "https" {
			return errors.New("octopus: refusing redirect from https to http")
		}
		if next != nil {
			return next(req, via)
		}
		if len(via) >= 10 {
			return errors.New("octopus: stopped after 10 redirects")
		}
		return nil
	}
}

// get fetches an API path (relative to the server root, without a leading
// slash) and decodes its JSON body into out.
func (c *Client) get(ctx context.Context, path string, query url.Values, out any) error {
	u := *c.base
	u.Path = c.base.Path + path
	u.RawQuery = query.Encode()
	endpoint := "/" + path
	if u.RawQuery != "" {
		endpoint += "?" + u.RawQuery
	}

	rctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return fmt.Errorf("octopus: GET %s: %w", endpoint, err)
	}
	req.Header.Set(apiKeyHeader, c.key.v)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", c.userAgent)
	resp, err := c.hc.Do(req)
	if err != nil {
		return c.transportError(ctx, rctx, endpoint, err)
	}
	defer resp.Body.Close()

	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return c.statusError(endpoint, resp)
	}
	if resp.ContentLength > MaxResponseSize {
		return fmt.Errorf("octopus: GET %s: %w: %d bytes, limit %d", endpoint, ErrTooLarge, resp.ContentLength, MaxResponseSize)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxResponseSize+1))
	if err != nil {
		return c.transportError(ctx, rctx, endpoint, err)
	}
	if len(body) > MaxResponseSize {
		return fmt.Errorf("octopus: GET %s: %w: more than %d bytes", endpoint, ErrTooLarge, MaxResponseSize)
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("octopus: GET %s: %w: %v (body starts %q)", endpoint, ErrMalformedResponse, err, c.excerpt(body, 80))
	}
	if v, ok := out.(validator); ok {
		if err := v.validate(); err != nil {
			return fmt.Errorf("octopus: GET %s: %w: %v (body starts %q)", endpoint, ErrMalformedResponse, err, c.excerpt(body, 80))
		}
	}
	return nil
}

// validator is implemented by responses that can be valid JSON and still
// not what was asked for, such as "null" or "{}" instead of a dashboard:
// read as an empty dashboard, that would show every target as never
// deployed.
type validator interface{ validate() error }

// transportError explains a failed round trip, telling the caller's
// cancellation apart from the client's own per-request timeout.
func (c *Client) transportError(parent, rctx context.Context, endpoint string, err error) error {
	if perr := parent.Err(); perr != nil {
		return fmt.Errorf("octopus: GET %s: %w", endpoint, perr)
	}
	if errors.Is(rctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("octopus: GET %s: no response within %s: %w", endpoint, c.timeout, context.DeadlineExceeded)
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err // its message repeats the whole URL
	}
	return fmt.Errorf("octopus: GET %s: %w", endpoint, err)
}

func (c *Client) statusError(endpoint string, resp *http.Response) error {
	body, _ := io.ReadAll(io.LimitReader(resp.Body, errBodyLimit))
	msg := serverMessage(body)
	if msg == "" {
		msg = string(body)
	}
	msg = c.excerpt([]byte(msg), excerptSize)
	var sentinel error
	switch resp.StatusCode {
	case http.StatusUnauthorized:
		sentinel = ErrUnauthorized
	case http.StatusForbidden:
		sentinel = ErrForbidden
	case http.StatusNotFound:
		sentinel = ErrNotFound
	default:
		return &ServerError{Method: http.MethodGet, Endpoint: endpoint, StatusCode: resp.StatusCode, Excerpt: msg}
	}
	return &statusError{method: http.MethodGet, endpoint: endpoint, code: resp.StatusCode, serverMsg: msg, sentinel: sentinel}
}

// serverMessage extracts Octopus's ErrorMessage (and its first detail)
// from an error body, or returns "".
func serverMessage(body []byte) string {
	var e struct {
		ErrorMessage string   `json:"ErrorMessage"`
		Errors       []string `json:"Errors"`
	}
	if json.Unmarshal(body, &e) != nil || e.ErrorMessage == "" {
		return ""
	}
	if len(e.Errors) > 0 && e.Errors[0] != "" && e.Errors[0] != e.ErrorMessage {
		return e.ErrorMessage + " " + e.Errors[0]
	}
	return e.ErrorMessage
}

// excerpt returns the start of b as one line of at most n bytes of valid
// UTF-8, with the API key removed in case the server echoed it.
func (c *Client) excerpt(b []byte, n int) string {
	if len(b) > 4*n {
		b = b[:4*n]
	}
	s := strings.ToValidUTF8(string(b), "\uFFFD")
	if c.key != nil && c.key.v != "" {
		s = strings.ReplaceAll(s, c.key.v, "[REDACTED]")
	}
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > n {
		cut := n
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "…"
	}
	return s
}

// checkID refuses IDs that would change the request path.
func checkID(kind, id string) error {
	if id == "" {
		return fmt.Errorf("octopus: empty %s ID", kind)
	}
	if strings.ContainsAny(id, "/\\?#,") || id == "." || id == ".." || strings.IndexFunc(id, unicode.IsSpace) >= 0 {
		return fmt.Errorf("octopus: invalid %s ID %q", kind, id)
	}
	return nil
}

// spacePath returns "api/{spaceID}/" + rest, resolving the space first.
func (c *Client) spacePath(ctx context.Context, rest string) (string, error) {
	sp, err := c.Space(ctx)
	if err != nil {
		return "", err
	}
	return "api/" + sp.ID + "/" + rest, nil
}

// Space returns the client's space, resolving it on the first call (one
// request to /api/spaces/all) and remembering it. A space name that matches
// nothing is a *NotFoundError listing close matches.
func (c *Client) Space(ctx context.Context) (*Space, error) {
	select {
	case c.space.lock <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("octopus: resolving the space: %w", ctx.Err())
	}
	defer func() { <-c.space.lock }()
	if c.space.space == nil {
		var all []Space
		if err := c.get(ctx, "api/spaces/all", nil, &all); err != nil {
			return nil, err
		}
		sp, err := pickSpace(c.spaceArg, all)
		if err != nil {
			return nil, err
		}
		c.space.space = sp
	}
	sp := *c.space.space
	return &sp, nil
}

func pickSpace(arg string, all []Space) (*Space, error) {
	if arg == "" {
		for i := range all {
			if all[i].IsDefault {
				return &all[i], nil
			}
		}
		names := make([]string, len(all))
		for i := range all {
			names[i] = all[i].Name
		}
		return nil, fmt.Errorf("octopus: the server has no default space (or the API key cannot see it); set the space to one of %s: %w", quoteList(names), ErrNotFound)
	}
	cands := make([]candidate, len(all))
	for i, s := range all {
		cands[i] = candidate{id: s.ID, name: s.Name, slug: s.Slug}
	}
	i, err := lookup("space", arg, "", cands)
	if err != nil {
		return nil, err
	}
	return &all[i], nil
}

// Project returns the project with the given ID ("Projects-1") or name.
// Names are matched exactly, then case-insensitively, then as slugs; a name
// that matches nothing is a *NotFoundError listing up to three close
// matches.
func (c *Client) Project(ctx context.Context, nameOrID string) (*Project, error) {
	nameOrID = strings.TrimSpace(nameOrID)
	if nameOrID == "" {
		return nil, errors.New("octopus: empty project name")
	}
	sp, err := c.Space(ctx)
	if err != nil {
		return nil, err
	}
	if isID(nameOrID, "Projects-") {
		nameOrID = "Projects-" + nameOrID[len("Projects-"):]
		var p Project
		err := c.get(ctx, "api/"+sp.ID+"/projects/"+nameOrID, nil, &p)
		if errors.Is(err, ErrNotFound) {
			return nil, &NotFoundError{Kind: "project", Name: nameOrID, Space: sp.Name}
		}
		if err != nil {
			return nil, err
		}
		return &p, nil
	}
	all, err := c.projects(ctx, sp)
	if err != nil {
		return nil, err
	}
	return findProject(nameOrID, sp, all)
}

// Environment returns the environment with the given ID ("Environments-1")
// or name, matched like Project's.
func (c *Client) Environment(ctx context.Context, nameOrID string) (*Environment, error) {
	nameOrID = strings.TrimSpace(nameOrID)
	if nameOrID == "" {
		return nil, errors.New("octopus: empty environment name")
	}
	sp, err := c.Space(ctx)
	if err != nil {
		return nil, err
	}
	if isID(nameOrID, "Environments-") {
		nameOrID = "Environments-" + nameOrID[len("Environments-"):]
		var e Environment
		err := c.get(ctx, "api/"+sp.ID+"/environments/"+nameOrID, nil, &e)
		if errors.Is(err, ErrNotFound) {
			return nil, &NotFoundError{Kind: "environment", Name: nameOrID, Space: sp.Name}
		}
		if err != nil {
			return nil, err
		}
		return &e, nil
	}
	all, err := c.environments(ctx, sp)
	if err != nil {
		return nil, err
	}
	return findEnvironment(nameOrID, sp, all)
}

func (c *Client) projects(ctx context.Context, sp *Space) ([]Project, error) {
	var all []Project
	err := c.get(ctx, "api/"+sp.ID+"/projects/all", nil, &all)
	return all, err
}

func (c *Client) environments(ctx context.Context, sp *Space) ([]Environment, error) {
	var all []Environment
	err := c.get(ctx, "api/"+sp.ID+"/environments/all", nil, &all)
	return all, err
}

func findProject(arg string, sp *Space, all []Project) (*Project, error) {
	cands := make([]candidate, len(all))
	for i, p := range all {
		cands[i] = candidate{id: p.ID, name: p.Name, slug: p.Slug}
	}
	i, err := lookup("project", arg, sp.Name, cands)
	if err != nil {
		return nil, err
	}
	p := all[i]
	return &p, nil
}

func findEnvironment(arg string, sp *Space, all []Environment) (*Environment, error) {
	cands := make([]candidate, len(all))
	for i, e := range all {
		cands[i] = candidate{id: e.ID, name: e.Name, slug: e.Slug}
	}
	i, err := lookup("environment", arg, sp.Name, cands)
	if err != nil {
		return nil, err
	}
	e := all[i]
	return &e, nil
}

// LatestDeployment returns the most recent deployment of a project to an
// environment (both IDs), or ErrNoDeployment if there is none.
func (c *Client) LatestDeployment(ctx context.Context, projectID, environmentID string) (*Deployment, error) {
	if err := checkID("project", projectID); err != nil {
		return nil, err
	}
	if err := checkID("environment", environmentID); err != nil {
		return nil, err
	}
	p, err := c.spacePath(ctx, "deployments")
	if err != nil {
		return nil, err
	}
	q := url.Values{"projects": {projectID}, "environments": {environmentID}, "take": {"1"}}
	var col collection[Deployment]
	if err := c.get(ctx, p, q, &col); err != nil {
		return nil, err
	}
	if len(col.Items) == 0 {
		return nil, fmt.Errorf("octopus: %s in %s: %w", projectID, environmentID, ErrNoDeployment)
	}
	d := col.Items[0]
	return &d, nil
}

// Task returns a server task by ID ("ServerTasks-1").
func (c *Client) Task(ctx context.Context, id string) (*Task, error) {
	if err := checkID("task", id); err != nil {
		return nil, err
	}
	p, err := c.spacePath(ctx, "tasks/"+id)
	if err != nil {
		return nil, err
	}
	var t Task
	if err := c.get(ctx, p, nil, &t); err != nil {
		return nil, err
	}
	return &t, nil
}

// TaskDetails returns a task with its activity log. It asks for the log
// without verbose messages and with only the last line of each node, which
// is all the status needs and keeps the response small.
func (c *Client) TaskDetails(ctx context.Context, id string) (*TaskDetails, error) {
	if err := checkID("task", id); err != nil {
		return nil, err
	}
	p, err := c.spacePath(ctx, "tasks/"+id+"/details")
	if err != nil {
		return nil, err
	}
	var td TaskDetails
	if err := c.get(ctx, p, url.Values{"verbose": {"false"}, "tail": {"1"}}, &td); err != nil {
		return nil, err
	}
	return &td, nil
}

// Dashboard returns the dashboard for the given projects and environments
// (IDs; the server ignores names) in one request, however many there are.
// Empty lists mean all projects or all environments.
func (c *Client) Dashboard(ctx context.Context, projectIDs, environmentIDs []string) (*Dashboard, error) {
	q := url.Values{}
	for _, l := range []struct {
		kind, param string
		ids         []string
	}{{"project", "projects", projectIDs}, {"environment", "environments", environmentIDs}} {
		for _, id := range l.ids {
			if err := checkID(l.kind, id); err != nil {
				return nil, err
			}
		}
		if len(l.ids) > 0 {
			q.Set(l.param, strings.Join(l.ids, ","))
		}
	}
	p, err := c.spacePath(ctx, "dashboard/dynamic")
	if err != nil {
		return nil, err
	}
	var d Dashboard
	if err := c.get(ctx, p, q, &d); err != nil {
		return nil, err
	}
	return &d, nil
}

// Interruptions returns the pending interruptions of a task: manual
// interventions and guided-failure prompts waiting for someone.
func (c *Client) Interruptions(ctx context.Context, taskID string) ([]Interruption, error) {
	if err := checkID("task", taskID); err != nil {
		return nil, err
	}
	p, err := c.spacePath(ctx, "interruptions")
	if err != nil {
		return nil, err
	}
	var col collection[Interruption]
	if err := c.get(ctx, p, url.Values{"regarding": {taskID}, "pendingOnly": {"true"}}, &col); err != nil {
		return nil, err
	}
	return col.Items, nil
}

// Status returns the current status of a project in an environment (both
// IDs): one dashboard request, plus the task's activity log while it
// executes and its interruptions while one is pending. The error is
// non-nil only when no status could be read at all; a failure to read the
// activity log or the interruptions leaves the state valid and is reported
// in Status.Err.
func (c *Client) Status(ctx context.Context, projectID, environmentID string, opts StatusOptions) (Status, error) {
	for _, id := range []struct{ kind, id string }{{"project", projectID}, {"environment", environmentID}} {
		if err := checkID(id.kind, id.id); err != nil {
			return Status{Err: err}, err
		}
	}
	sts, err := c.fetchStatuses(ctx, []pair{{projectID, environmentID}}, nil, opts)
	if err != nil {
		return Status{Err: err}, err
	}
	return sts[0], nil
}

// decodeJSON decodes a body the way the client does, for the Parse
// functions.
func decodeJSON(what string, data []byte, out any) error {
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("octopus: %s: %w: %v", what, ErrMalformedResponse, err)
	}
	if v, ok := out.(validator); ok {
		if err := v.validate(); err != nil {
			return fmt.Errorf("octopus: %s: %w: %v", what, ErrMalformedResponse, err)
		}
	}
	return nil
}

// ParseDashboard decodes a /dashboard/dynamic response body.
func ParseDashboard(data []byte) (*Dashboard, error) {
	var d Dashboard
	if err := decodeJSON("dashboard", data, &d); err != nil {
		return nil, err
	}
	return &d, nil
}

// ParseTaskDetails decodes a /tasks/{id}/details response body.
func ParseTaskDetails(data []byte) (*TaskDetails, error) {
	var td TaskDetails
	if err := decodeJSON("task details", data, &td); err != nil {
		return nil, err
	}
	return &td, nil
}
