// Package octopustest is a fake Octopus Deploy server for tests and demos.
//
// A Server listens on the loopback interface and serves the read-only part
// of the Octopus REST API that package octopus uses: spaces, projects,
// environments, deployments, tasks and their activity logs, the dynamic
// dashboard and interruptions, with the property names, IDs and links of
// the real API. It checks the X-Octopus-ApiKey header (401 for a wrong
// key), counts requests per endpoint, and can inject failures: error
// statuses, malformed bodies and requests that hang.
//
// Deployments follow scripted Timelines: a release is queued, executes its
// steps, waits at a manual intervention or a guided failure, succeeds or
// fails. Timelines move on by themselves as the clock passes each Phase's
// After, or one phase at a time with Advance; tests use Advance and
// phases without After, demos use real time.
//
//	srv := octopustest.NewServer(octopustest.Options{})
//	defer srv.Close()
//	srv.AddProject("", "Website")
//	srv.AddEnvironment("", "Production")
//	srv.Play(octopustest.DemoTimeline("Website", "Production"))
//	client, _ := octopus.NewClient(srv.URL, octopustest.DefaultAPIKey, octopus.ClientOptions{})
//
// A Server's methods are safe for concurrent use.
package octopustest

import (
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// DefaultAPIKey is the key a Server accepts when Options.APIKey is empty.
const DefaultAPIKey = "API-PIKITTESTKEY0000000000000"

// Endpoint names a group of API routes, for counting requests and
// injecting faults.
type Endpoint string

// The endpoints a Server serves.
const (
	EndpointSpaces        Endpoint = "spaces"        // /api/spaces, /api/spaces/all
	EndpointProjects      Endpoint = "projects"      // /api/{space}/projects/all, /projects/{id}
	EndpointEnvironments  Endpoint = "environments"  // /api/{space}/environments/all, /environments/{id}
	EndpointDeployments   Endpoint = "deployments"   // /api/{space}/deployments
	EndpointTask          Endpoint = "task"          // /api/{space}/tasks/{id}
	EndpointTaskDetails   Endpoint = "details"       // /api/{space}/tasks/{id}/details
	EndpointDashboard     Endpoint = "dashboard"     // /api/{space}/dashboard/dynamic
	EndpointInterruptions Endpoint = "interruptions" // /api/{space}/interruptions
)

// Options configures a Server. The zero value is ready to use.
type Options struct {
	// APIKey is the key clients must send (default DefaultAPIKey).
	APIKey string
	// Now is the clock that drives timelines and timestamps (default
	// time.Now).
	Now func() time.Time
}

// Fault is a failure a Server injects instead of answering a request.
type Fault struct {
	// Endpoint is the endpoint the fault applies to; empty means all.
	Endpoint Endpoint
	// Status is the HTTP status to answer with (default 200 when Body is
	// set). Without Body, the body is an Octopus-style error.
	Status int
	// Body, if set, is sent as the response body, e.g. malformed JSON.
	Body string
	// Hang holds the request without answering until the client gives up
	// or the server closes.
	Hang bool
	// Times is how many requests the fault applies to; 0 means every
	// request until ClearFaults.
	Times int
}

// Server is a fake Octopus server. Create one with NewServer.
type Server struct {
	// URL is the server's base URL, e.g. "http://127.0.0.1:43127".
	URL string

	apiKey    string
	now       func() time.Time
	hs        *http.Server
	closed    chan struct{}
	closeOnce sync.Once

	mu            sync.Mutex
	spaces        []*space
	projects      []*project
	envs          []*environment
	releases      []*release
	deployments   []*deployment
	tasks         []*task
	interruptions []*interruption
	playing       []*playing
	faults        []*Fault
	counts        map[Endpoint]int
	seq           map[string]int
}

// NewServer starts a Server on a loopback port with one space, "Default"
// (Spaces-1), which is the default space. Like httptest.NewServer it panics
// if it cannot listen. Close it when done.
func NewServer(opts Options) *Server {
	if opts.APIKey == "" {
		opts.APIKey = DefaultAPIKey
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	s := &Server{
		apiKey: opts.APIKey,
		now:    opts.Now,
		closed: make(chan struct{}),
		counts: map[Endpoint]int{},
		seq:    map[string]int{"ServerTasks": 11598},
	}
	s.addSpaceLocked("Default", true)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		if ln, err = net.Listen("tcp6", "[::1]:0"); err != nil {
			panic(fmt.Sprintf("octopustest: failed to listen on a loopback port: %v", err))
		}
	}
	s.hs = &http.Server{Handler: s.routes(), ReadHeaderTimeout: 10 * time.Second}
	s.URL = "http://" + ln.Addr().String()
	go func() { _ = s.hs.Serve(ln) }() // ErrServerClosed once closed
	return s
}

// Close stops the server, releasing requests held by a Hang fault.
func (s *Server) Close() {
	s.closeOnce.Do(func() {
		close(s.closed)
		s.hs.Close()
	})
}

// Requests returns how many requests an endpoint has received, including
// refused ones; an empty endpoint counts all requests.
func (s *Server) Requests(e Endpoint) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e == "" {
		n := 0
		for _, c := range s.counts {
			n += c
		}
		return n
	}
	return s.counts[e]
}

// ResetRequests sets every request count back to zero.
func (s *Server) ResetRequests() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.counts)
}

// Fail injects a fault. Faults apply in the order added, the first that
// matches a request.
func (s *Server) Fail(f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = append(s.faults, &f)
}

// ClearFaults removes every fault.
func (s *Server) ClearFaults() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = nil
}

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api", s.root)
	mux.HandleFunc("GET /api/{$}", s.root)
	handle := func(pattern string, e Endpoint, h handlerFunc) {
		mux.Handle(pattern, s.wrap(e, h))
	}
	handle("GET /api/spaces/all", EndpointSpaces, s.spacesAll)
	handle("GET /api/spaces", EndpointSpaces, s.spacesPage)
	handle("GET /api/{space}/projects/all", EndpointProjects, s.projectsAll)
	handle("GET /api/{space}/projects/{id}", EndpointProjects, s.projectByID)
	handle("GET /api/{space}/environments/all", EndpointEnvironments, s.environmentsAll)
	handle("GET /api/{space}/environments/{id}", EndpointEnvironments, s.environmentByID)
	handle("GET /api/{space}/deployments", EndpointDeployments, s.deploymentsList)
	handle("GET /api/{space}/tasks/{id}", EndpointTask, s.taskByID)
	handle("GET /api/{space}/tasks/{id}/details", EndpointTaskDetails, s.taskDetails)
	handle("GET /api/{space}/dashboard/dynamic", EndpointDashboard, s.dashboard)
	handle("GET /api/{space}/interruptions", EndpointInterruptions, s.interruptionsList)
	mux.Handle("/", s.wrap("", func(*http.Request, *space) response {
		return notFound("The resource you requested was not found.")
	}))
	return mux
}

// handlerFunc answers a request with the server locked; sp is the space
// from the path, nil for routes without one.
type handlerFunc func(r *http.Request, sp *space) response

// response is a handler's answer, written once the server is unlocked so
// that a slow client cannot hold up the others.
type response struct {
	status int    // 0 means 200
	body   any    // JSON body
	errMsg string // error message, for status >= 400
}

func notFound(msg string) response { return response{status: http.StatusNotFound, errMsg: msg} }

// wrap counts a request, injects faults, checks the API key, brings the
// timelines up to date, resolves the space in the path and runs h.
func (s *Server) wrap(e Endpoint, h handlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.counts[e]++
		var fault *Fault
		for i, f := range s.faults {
			if f.Endpoint == "" || f.Endpoint == e {
				cp := *f
				fault = &cp
				if f.Times > 0 {
					if f.Times--; f.Times == 0 {
						s.faults = append(s.faults[:i:i], s.faults[i+1:]...)
					}
				}
				break
			}
		}
		s.mu.Unlock()

		if fault != nil {
			s.inject(w, r, fault)
			return
		}
		if subtle.ConstantTimeCompare([]byte(r.Header.Get("X-Octopus-ApiKey")), []byte(s.apiKey)) != 1 {
			writeError(w, http.StatusUnauthorized, "You must be logged in to perform this action. Please provide a valid API key or log in again.")
			return
		}

		s.mu.Lock()
		s.tickLocked(s.now())
		var resp response
		if id := r.PathValue("space"); id != "" {
			if sp := s.spaceByIDLocked(id); sp == nil {
				resp = notFound(fmt.Sprintf("The resource '%s' was not found.", id))
			} else {
				resp = h(r, sp)
			}
		} else {
			resp = h(r, nil)
		}
		s.mu.Unlock()

		if resp.status >= 400 {
			writeError(w, resp.status, resp.errMsg)
			return
		}
		writeJSON(w, resp.body)
	})
}

func (s *Server) inject(w http.ResponseWriter, r *http.Request, f *Fault) {
	if f.Hang {
		select {
		case <-r.Context().Done():
		case <-s.closed:
		}
		return
	}
	status := f.Status
	if status == 0 {
		status = http.StatusOK
	}
	if f.Body == "" {
		writeError(w, status, http.StatusText(status))
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(f.Body))
}

// writeJSON writes v indented, as Octopus does.
func writeJSON(w http.ResponseWriter, v any) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	_, _ = w.Write(b)
}

// writeError writes an Octopus-style error body.
func writeError(w http.ResponseWriter, status int, msg string) {
	b, _ := json.MarshalIndent(struct {
		ErrorMessage    string   `json:"ErrorMessage"`
		Errors          []string `json:"Errors"`
		ParsedHelpLinks []string `json:"ParsedHelpLinks"`
	}{msg, []string{}, []string{}}, "", "  ")
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// splitIDs splits comma-separated and repeated query values.
func splitIDs(vals []string) []string {
	var out []string
	for _, v := range vals {
		for _, id := range strings.Split(v, ",") {
			if id = strings.TrimSpace(id); id != "" {
				out = append(out, id)
			}
		}
	}
	return out
}

func containsFold(list []string, s string) bool {
	for _, x := range list {
		if strings.EqualFold(x, s) {
			return true
		}
	}
	return false
}
