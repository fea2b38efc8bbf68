package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"
)

// This file is the GitHub source: the combined commit status and the check
// runs of owner/repo@ref, mapped onto the lamp's states. Both are needed:
// CI servers such as Jenkins report commit statuses, while GitHub Actions
// and other GitHub Apps report check runs, which never appear in the
// combined status.

const (
	defaultGitHubAPI = "https://api.github.com"
	// ghMaxBody bounds a GitHub response body.
	ghMaxBody = 8 << 20
	// ghPerPage and ghMaxPages bound the check runs read per poll: 500 is
	// far more than one commit has; beyond it the state is Unknown, since
	// an unread check run may have failed.
	ghPerPage  = 100
	ghMaxPages = 5
	// ghMaxWait caps how long a rate limit pauses polling.
	ghMaxWait = time.Hour
)

// ghRepo is a repository and ref to watch.
type ghRepo struct{ Owner, Name, Ref string }

func (r ghRepo) String() string { return r.Owner + "/" + r.Name + "@" + r.Ref }

// path returns the API path of the ref's commit, escaped.
func (r ghRepo) path() string {
	segs := strings.Split(r.Ref, "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	return "repos/" + url.PathEscape(r.Owner) + "/" + url.PathEscape(r.Name) + "/commits/" + strings.Join(segs, "/")
}

var (
	ghOwnerRe = regexp.MustCompile(`^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})$`)
	ghNameRe  = regexp.MustCompile(`^[A-Za-z0-9._-]{1,100}$`)
)

// parseGHRepo reads owner/name or owner/name@ref.
func parseGHRepo(s, defaultRef string) (ghRepo, error) {
	s = strings.TrimSpace(s)
	spec, ref, hasRef := strings.Cut(s, "@")
	if !hasRef {
		ref = defaultRef
	}
	owner, name, ok := strings.Cut(spec, "/")
	if !ok || !ghOwnerRe.MatchString(owner) || !ghNameRe.MatchString(name) || name == "." || name == ".." {
		return ghRepo{}, fmt.Errorf("-github-repo %q: want owner/name or owner/name@ref, e.g. octo-org/website", s)
	}
	if err := checkRef(ref); err != nil {
		return ghRepo{}, fmt.Errorf("-github-repo %q: %v", s, err)
	}
	return ghRepo{Owner: owner, Name: name, Ref: ref}, nil
}

// checkRef accepts branch and tag names and SHAs as git allows them, but
// nothing that would change the request path.
func checkRef(ref string) error {
	switch {
	case ref == "":
		return errors.New("empty ref")
	case len(ref) > 255:
		return errors.New("ref longer than 255 bytes")
	case !utf8.ValidString(ref):
		return errors.New("ref is not UTF-8")
	case strings.HasPrefix(ref, "/") || strings.HasSuffix(ref, "/") || strings.Contains(ref, "//"):
		return fmt.Errorf("ref %q: empty path component", ref)
	case strings.Contains(ref, ".."):
		return fmt.Errorf("ref %q contains \"..\"", ref)
	case strings.ContainsAny(ref, `?#\~^:*[`):
		return fmt.Errorf("ref %q contains a character git does not allow", ref)
	case strings.IndexFunc(ref, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) >= 0:
		return fmt.Errorf("ref %q contains spaces or control characters", ref)
	}
	return nil
}

// parseGitHubAPI checks -github-api: an http(s) URL without credentials.
func parseGitHubAPI(s string) (*url.URL, error) {
	u, err := url.Parse(strings.TrimSpace(s))
	switch {
	case err != nil:
		return nil, errors.New("-github-api: not a URL")
	case u.User != nil:
		return nil, errors.New("-github-api must not contain user info; use -github-token")
	case u.RawQuery != "" || u.ForceQuery || u.Fragment != "":
		return nil, errors.New("-github-api must not have a query or fragment")
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, fmt.Errorf("-github-api %q: scheme must be http or https", u.Redacted())
	case u.Host == "":
		return nil, fmt.Errorf("-github-api %q has no host", u.Redacted())
	}
	u.Path = strings.TrimSuffix(u.Path, "/") + "/"
	u.RawPath = ""
	return u, nil
}

// The errors of the GitHub client. None of them ever holds the token.
var (
	errGHUnauthorized = errors.New("github: unauthorized (HTTP 401): check -github-token")
	errGHForbidden    = errors.New("github: forbidden (HTTP 403): the token lacks permission (it needs read access to commit statuses and checks)")
	errGHNotFound     = errors.New("github: not found (HTTP 404): no such repository or ref, or the token cannot see it")
	errGHMalformed    = errors.New("github: malformed response")
)

// ghRateLimitError reports GitHub's primary or secondary rate limit.
type ghRateLimitError struct {
	Endpoint string
	Until    time.Time
}

func (e *ghRateLimitError) Error() string {
	return fmt.Sprintf("github: GET %s: rate limited until %s", e.Endpoint, e.Until.Format("15:04:05"))
}

// ghError is any other HTTP error status.
type ghError struct {
	Endpoint string
	Code     int
	Excerpt  string
	sentinel error
}

func (e *ghError) Error() string {
	msg := fmt.Sprintf("github: GET %s: HTTP %d %s", e.Endpoint, e.Code, http.StatusText(e.Code))
	if e.sentinel != nil {
		msg = fmt.Sprintf("GET %s: %v", e.Endpoint, e.sentinel)
	}
	if e.Excerpt != "" {
		msg += " (server said: " + e.Excerpt + ")"
	}
	return msg
}

func (e *ghError) Unwrap() error { return e.sentinel }

// permanentGH reports errors that retrying will not fix.
func permanentGH(err error) bool {
	return errors.Is(err, errGHUnauthorized) || errors.Is(err, errGHForbidden) || errors.Is(err, errGHNotFound)
}

// ghClient reads commit statuses and check runs from the GitHub REST API.
// It uses conditional requests (ETags), which GitHub does not count
// against an authenticated rate limit when nothing changed.
type ghClient struct {
	api     *url.URL
	token   *secret
	hc      *http.Client
	timeout time.Duration
	now     func() time.Time

	mu    sync.Mutex
	cache map[string]ghCached
}

type ghCached struct {
	etag string
	body []byte
}

// secret holds a credential; printing it shows nothing.
type secret struct{ v string }

func (*secret) String() string   { return "[REDACTED]" }
func (*secret) GoString() string { return "[REDACTED]" }

func newGHClient(api *url.URL, token string, hc *http.Client, timeout time.Duration, now func() time.Time) *ghClient {
	cp := &http.Client{}
	if hc != nil {
		c := *hc
		cp = &c
	}
	// The token goes in the Authorization header, which net/http drops on
	// redirects to other hosts; refuse them anyway, and https downgrades.
	cp.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if !strings.EqualFold(req.URL.Hostname(), api.Hostname()) {
			return fmt.Errorf("github: refusing redirect to %s", req.URL.Host)
		}
		if len(via) > 0 && via[len(via)-1].URL.Scheme == "https" && req.URL.Scheme != "https" {
			return errors.New("github: refusing redirect from https to http")
		}
		if len(via) >= 5 {
			return errors.New("github: stopped after 5 redirects")
		}
		return nil
	}
	return &ghClient{api: api, token: &secret{token}, hc: cp, timeout: timeout, now: now, cache: map[string]ghCached{}}
}

// String describes the client without its token.
func (c *ghClient) String() string { return "github.Client(" + c.api.Redacted() + ")" }

// get fetches an API path (relative, escaped) and returns its body.
func (c *ghClient) get(ctx context.Context, path string, q url.Values) ([]byte, error) {
	u := *c.api
	u.RawPath = c.api.EscapedPath() + path
	if p, err := url.PathUnescape(u.RawPath); err == nil {
		u.Path = p
	}
	u.RawQuery = q.Encode()
	endpoint := "/" + path
	if u.RawQuery != "" {
		endpoint += "?" + u.RawQuery
	}
	rctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, fmt.Errorf("github: GET %s: %w", endpoint, err)
	}
	req.Header.Set("Accept", "application/vnd.github+json")
	req.Header.Set("X-GitHub-Api-Version", "2022-11-28")
	req.Header.Set("User-Agent", "pikit-buildlamp/1")
	if c.token.v != "" {
		req.Header.Set("Authorization", "Bearer "+c.token.v)
	}
	c.mu.Lock()
	cached, haveCache := c.cache[endpoint]
	c.mu.Unlock()
	if haveCache && cached.etag != "" {
		req.Header.Set("If-None-Match", cached.etag)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		if perr := ctx.Err(); perr != nil {
			return nil, fmt.Errorf("github: GET %s: %w", endpoint, perr)
		}
		if errors.Is(rctx.Err(), context.DeadlineExceeded) {
			return nil, fmt.Errorf("github: GET %s: no response within %s: %w", endpoint, c.timeout, context.DeadlineExceeded)
		}
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // its message repeats the whole URL
		}
		return nil, fmt.Errorf("github: GET %s: %w", endpoint, err)
	}
	defer resp.Body.Close()

	switch {
	case resp.StatusCode == http.StatusNotModified && haveCache:
		return cached.body, nil
	case resp.StatusCode >= 200 && resp.StatusCode <= 299:
	default:
		return nil, c.statusError(endpoint, resp)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, ghMaxBody+1))
	if err != nil {
		return nil, fmt.Errorf("github: GET %s: reading the body: %w", endpoint, err)
	}
	if len(body) > ghMaxBody {
		return nil, fmt.Errorf("github: GET %s: %w: more than %d bytes", endpoint, errGHMalformed, ghMaxBody)
	}
	if etag := resp.Header.Get("ETag"); etag != "" {
		c.mu.Lock()
		c.cache[endpoint] = ghCached{etag: etag, body: body}
		c.mu.Unlock()
	}
	return body, nil
}

func (c *ghClient) statusError(endpoint string, resp *http.Response) error {
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var m struct {
		Message string `json:"message"`
	}
	msg := ""
	if json.Unmarshal(body, &m) == nil {
		msg = m.Message
	}
	msg = c.excerpt(msg, 200)
	now := c.now()
	if resp.StatusCode == http.StatusForbidden || resp.StatusCode == http.StatusTooManyRequests {
		var until time.Time
		if resp.Header.Get("X-RateLimit-Remaining") == "0" {
			if s, err := strconv.ParseInt(resp.Header.Get("X-RateLimit-Reset"), 10, 64); err == nil {
				until = time.Unix(s, 0)
			}
		}
		if ra := resp.Header.Get("Retry-After"); ra != "" {
			if s, err := strconv.Atoi(ra); err == nil && s >= 0 {
				until = now.Add(time.Duration(s) * time.Second)
			}
		}
		if until.IsZero() && (resp.StatusCode == http.StatusTooManyRequests || resp.Header.Get("X-RateLimit-Remaining") == "0") {
			until = now.Add(time.Minute)
		}
		if !until.IsZero() {
			if until.Before(now) {
				until = now
			}
			if until.After(now.Add(ghMaxWait)) {
				until = now.Add(ghMaxWait)
			}
			return &ghRateLimitError{Endpoint: endpoint, Until: until}
		}
	}
	e := &ghError{Endpoint: endpoint, Code: resp.StatusCode, Excerpt: msg}
	switch resp.StatusCode {
	case http.StatusUnauthorized:
		e.sentinel = errGHUnauthorized
	case http.StatusForbidden:
		e.sentinel = errGHForbidden
	case http.StatusNotFound:
		e.sentinel = errGHNotFound
	}
	return e
}

// excerpt shortens a server message to one line, without the token.
func (c *ghClient) excerpt(s string, n int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if c.token.v != "" {
		s = strings.ReplaceAll(s, c.token.v, "[REDACTED]")
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

// status reads the combined status and the check runs of a repo's ref.
func (c *ghClient) status(ctx context.Context, r ghRepo) (ghResult, error) {
	base := r.path()
	body, err := c.get(ctx, base+"/status", url.Values{"per_page": {strconv.Itoa(ghPerPage)}})
	if err != nil {
		return ghResult{}, err
	}
	cs, err := parseCombinedStatus(body)
	if err != nil {
		return ghResult{}, fmt.Errorf("github: GET /%s/status: %w", base, err)
	}
	var runs []checkRun
	total := 0
	for page := 1; page <= ghMaxPages; page++ {
		body, err := c.get(ctx, base+"/check-runs", url.Values{"per_page": {strconv.Itoa(ghPerPage)}, "page": {strconv.Itoa(page)}})
		if err != nil {
			return ghResult{}, err
		}
		cr, err := parseCheckRuns(body)
		if err != nil {
			return ghResult{}, fmt.Errorf("github: GET /%s/check-runs: %w", base, err)
		}
		total = *cr.TotalCount
		runs = append(runs, *cr.CheckRuns...)
		if len(*cr.CheckRuns) < ghPerPage || len(runs) >= total {
			break
		}
	}
	return githubState(cs, runs, total), nil
}

// combinedStatus is GET /repos/{owner}/{repo}/commits/{ref}/status.
type combinedStatus struct {
	State      *string         `json:"state"`
	SHA        string          `json:"sha"`
	TotalCount *int            `json:"total_count"`
	Statuses   *[]commitStatus `json:"statuses"`
}

type commitStatus struct {
	State       string `json:"state"`
	Context     string `json:"context"`
	Description string `json:"description"`
}

// checkRuns is GET /repos/{owner}/{repo}/commits/{ref}/check-runs.
type checkRuns struct {
	TotalCount *int        `json:"total_count"`
	CheckRuns  *[]checkRun `json:"check_runs"`
}

type checkRun struct {
	Name       string  `json:"name"`
	Status     string  `json:"status"`
	Conclusion *string `json:"conclusion"`
	HeadSHA    string  `json:"head_sha"`
}

// parseCombinedStatus decodes a combined status body. A body that is valid
// JSON but lacks state, total_count or statuses is malformed: read as
// empty, it would show a repository as having nothing to report.
func parseCombinedStatus(b []byte) (*combinedStatus, error) {
	var cs combinedStatus
	if err := json.Unmarshal(b, &cs); err != nil {
		return nil, fmt.Errorf("%w: %v", errGHMalformed, err)
	}
	if cs.State == nil || cs.TotalCount == nil || cs.Statuses == nil {
		return nil, fmt.Errorf("%w: combined status without state, total_count or statuses", errGHMalformed)
	}
	if *cs.TotalCount < 0 {
		return nil, fmt.Errorf("%w: negative total_count", errGHMalformed)
	}
	return &cs, nil
}

// parseCheckRuns decodes a check runs body.
func parseCheckRuns(b []byte) (*checkRuns, error) {
	var cr checkRuns
	if err := json.Unmarshal(b, &cr); err != nil {
		return nil, fmt.Errorf("%w: %v", errGHMalformed, err)
	}
	if cr.TotalCount == nil || cr.CheckRuns == nil {
		return nil, fmt.Errorf("%w: check runs without total_count or check_runs", errGHMalformed)
	}
	if *cr.TotalCount < 0 {
		return nil, fmt.Errorf("%w: negative total_count", errGHMalformed)
	}
	return &cr, nil
}

// ghResult is what a repository's ref shows.
type ghResult struct {
	State state
	Step  string // the status context or check run that decided the state
	SHA   string
	Note  string // why the state is Unknown, if it is
}

// statusState maps a commit status's state. GitHub's commit statuses have
// no separate "queued": CI servers set "pending" when a build starts, so it
// shows as executing (testing, when the context or description says so).
func statusState(s commitStatus) state {
	switch s.State {
	case "success":
		return stSuccess
	case "failure", "error":
		return stFailed
	case "pending":
		if testPattern.MatchString(s.Context) || testPattern.MatchString(s.Description) {
			return stTesting
		}
		return stExecuting
	}
	return stUnknown
}

// runState maps a check run's status and conclusion.
func runState(r checkRun) state {
	switch r.Status {
	case "queued", "requested", "pending":
		return stQueued
	case "waiting": // a deployment protection rule waits for approval
		return stIntervention
	case "in_progress":
		if testPattern.MatchString(r.Name) {
			return stTesting
		}
		return stExecuting
	case "completed":
		if r.Conclusion == nil {
			return stUnknown
		}
		switch *r.Conclusion {
		case "success", "neutral", "skipped":
			return stSuccess
		case "failure", "startup_failure":
			return stFailed
		case "timed_out", "stale": // stale: GitHub gave up on it
			return stTimedOut
		case "cancelled":
			return stCanceled
		case "action_required":
			return stIntervention
		}
	}
	return stUnknown
}

// githubState combines the statuses and check runs of a ref: the worst
// wins, as across targets. Nothing reported at all is Idle (a combined
// state of "pending" with no statuses means just that); anything not
// recognised is Unknown, never Success.
func githubState(cs *combinedStatus, runs []checkRun, totalRuns int) ghResult {
	res := ghResult{State: stIdle}
	if cs != nil {
		res.SHA = cs.SHA
	}
	first := true
	consider := func(st state, name, note string) {
		if first || worse(st, res.State) {
			res.State, res.Step, res.Note = st, name, note
			first = false
		}
	}
	if cs != nil && cs.Statuses != nil {
		for _, s := range *cs.Statuses {
			st := statusState(s)
			note := ""
			if st == stUnknown {
				note = fmt.Sprintf("unknown commit status state %q", s.State)
			}
			consider(st, s.Context, note)
		}
		// More statuses than one page holds: the combined state covers
		// them all.
		if cs.TotalCount != nil && *cs.TotalCount > len(*cs.Statuses) && cs.State != nil {
			st := statusState(commitStatus{State: *cs.State})
			note := ""
			if st == stUnknown {
				note = fmt.Sprintf("unknown combined state %q", *cs.State)
			}
			consider(st, fmt.Sprintf("%d commit statuses", *cs.TotalCount), note)
		}
	}
	for _, r := range runs {
		st := runState(r)
		note := ""
		if st == stUnknown {
			c := "null"
			if r.Conclusion != nil {
				c = strconv.Quote(*r.Conclusion)
			}
			note = fmt.Sprintf("unknown check run status %q, conclusion %s", r.Status, c)
		}
		consider(st, r.Name, note)
		if res.SHA == "" {
			res.SHA = r.HeadSHA
		}
	}
	if totalRuns > len(runs) {
		consider(stUnknown, "check runs", fmt.Sprintf("read %d of %d check runs", len(runs), totalRuns))
	}
	switch res.State {
	case stSuccess, stWarnings, stIdle:
		res.Step = "" // no single check decided it
	}
	return res
}

// ghPoller polls the GitHub targets and publishes their states.
type ghPoller struct {
	c        *ghClient
	repos    []ghRepo
	interval time.Duration
	now      func() time.Time
	publish  func(i int, t target)
	log      *slog.Logger
	trigger  chan struct{}

	failures     []int
	last         []target
	limitedUntil time.Time
}

func newGHPoller(c *ghClient, repos []ghRepo, interval time.Duration, now func() time.Time, log *slog.Logger, publish func(int, target)) *ghPoller {
	p := &ghPoller{c: c, repos: repos, interval: interval, now: now, publish: publish, log: log,
		trigger: make(chan struct{}, 1), failures: make([]int, len(repos)), last: make([]target, len(repos))}
	for i, r := range repos {
		p.last[i] = target{Name: r.String(), Source: "github"}
	}
	return p
}

// Trigger polls at once (for webhooks); it never blocks.
func (p *ghPoller) Trigger() {
	select {
	case p.trigger <- struct{}{}:
	default:
	}
}

// Run polls until ctx is done.
func (p *ghPoller) Run(ctx context.Context) {
	for {
		p.pollOnce(ctx)
		t := time.NewTimer(p.interval)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-p.trigger:
			t.Stop()
		case <-t.C:
		}
	}
}

// pollOnce reads every repository once. While GitHub's rate limit lasts no
// request is made, and each poll counts as a failure.
func (p *ghPoller) pollOnce(ctx context.Context) {
	for i, r := range p.repos {
		if ctx.Err() != nil {
			return
		}
		var (
			res ghResult
			err error
		)
		if now := p.now(); now.Before(p.limitedUntil) {
			err = fmt.Errorf("github: rate limited until %s", p.limitedUntil.Format("15:04:05"))
		} else {
			res, err = p.c.status(ctx, r)
		}
		if ctx.Err() != nil {
			return
		}
		t := p.last[i]
		if err != nil {
			var rl *ghRateLimitError
			if errors.As(err, &rl) {
				p.limitedUntil = rl.Until
			}
			p.failures[i]++
			t.Err, t.Failures = err.Error(), p.failures[i]
			if p.failures[i] >= failThreshold {
				t.State, t.Known = stError, true
			}
			p.log.Warn("github poll failed", "repo", r.String(), "err", err, "failures", p.failures[i])
		} else {
			p.failures[i] = 0
			t = target{Name: r.String(), Source: "github", State: res.State, Step: res.Step, Err: res.Note,
				Known: true, Updated: p.now()}
			if len(res.SHA) >= 7 {
				t.Release = res.SHA[:7]
			}
			p.last[i] = t
		}
		p.publish(i, t)
	}
}
