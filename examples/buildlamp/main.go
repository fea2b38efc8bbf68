// Command buildlamp shows the state of a team's deployments and builds as
// the colour of an infrared-controlled RGB lamp: it polls Octopus Deploy
// (any number of projects in any number of environments) and GitHub
// (commit statuses and check runs of owner/repo@ref), takes the worst state
// of them all and sends the lamp its colour through irlamp.
//
//	go run ./examples/buildlamp -demo      # a simulated Octopus server and lamp
//
// Unknown states never show green: failed, timed out and canceled each have
// their own colour, anything unrecognised or unreadable shows the error
// colour (a single failed poll keeps the last colour; three in a row show
// it). Webhooks from Octopus and GitHub make it re-poll at once. See
// README.md beside this file for the flags, colours, webhooks, wiring and a
// systemd unit.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/pikit/pikit/internal/flagenv"
	"github.com/pikit/pikit/irlamp"
	"github.com/pikit/pikit/octopus"
	"github.com/pikit/pikit/octopus/octopustest"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
}

const (
	defaultPoll    = 10 * time.Second
	minPoll        = 100 * time.Millisecond
	minRefresh     = 5 * time.Second
	startupTimeout = 30 * time.Second
	// minSecret is the shortest webhook secret accepted.
	minSecret = 16
	// demoSpeed is how much faster than real time the demo's clock runs.
	demoSpeed = 10
	demoPoll  = 100 * time.Millisecond
)

// options are the parsed command line.
type options struct {
	octopusURL, octopusKey, space           string
	projects, environments, githubRepoFlags listFlag
	githubRef, githubToken, githubAPIFlag   string
	lamp                                    string
	poll, refresh                           time.Duration
	coloursFlag, quietFlag                  string
	colourTest, demo                        bool
	webhookAddr, webhookSecret, statusAddr  string

	// Parsed from the above.
	colours    colours
	quiet      quietHours
	githubRepo []ghRepo
	githubAPI  string
	set        map[string]bool // flags given on the command line or in the environment
}

// usageError is a bad flag or configuration: exit status 2.
type usageError struct{ error }

func (e usageError) Unwrap() error { return e.error }

// listFlag is a repeatable flag. Its environment variable takes a
// comma-separated list; flags on the command line replace that list.
type listFlag struct {
	vals    []string
	fromEnv bool
}

func (l *listFlag) String() string {
	if l == nil {
		return ""
	}
	return strings.Join(l.vals, ",")
}

func (l *listFlag) Set(v string) error {
	if l.fromEnv {
		l.vals, l.fromEnv = nil, false
	}
	if v = strings.TrimSpace(v); v == "" {
		return errors.New("empty value")
	}
	l.vals = append(l.vals, v)
	return nil
}

// SetEnv takes a comma-separated list from one environment variable
// (flagenv.EnvSetter); a flag on the command line replaces it.
func (l *listFlag) SetEnv(v string) error {
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			l.vals = append(l.vals, s)
		}
	}
	l.fromEnv = true
	return nil
}

func parseFlags(args []string, getenv func(string) string, stderr io.Writer) (*options, error) {
	o := &options{set: map[string]bool{}}
	fs := flag.NewFlagSet("buildlamp", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.octopusURL, "octopus-url", "", "Octopus server URL, e.g. https://octopus.example.com")
	fs.StringVar(&o.octopusKey, "octopus-key", "", "Octopus API key (better: the OCTOPUS_API_KEY environment variable, which ps does not show)")
	fs.StringVar(&o.space, "space", "", "Octopus space name or ID (default: the default space)")
	fs.Var(&o.projects, "project", "Octopus project name or ID (repeatable; every project is watched in every -environment)")
	fs.Var(&o.environments, "environment", "Octopus environment name or ID (repeatable)")
	fs.Var(&o.githubRepoFlags, "github-repo", "GitHub repository owner/name or owner/name@ref (repeatable)")
	fs.StringVar(&o.githubRef, "github-ref", "main", "GitHub ref (branch, tag or SHA) of repositories given without @ref")
	fs.StringVar(&o.githubToken, "github-token", "", "GitHub token (better: the GITHUB_TOKEN environment variable)")
	fs.StringVar(&o.githubAPIFlag, "github-api", defaultGitHubAPI, "GitHub API base URL (GitHub Enterprise: https://HOST/api/v3)")
	fs.StringVar(&o.lamp, "lamp", "auto", "irlamp transmitter spec: lircd[:/path/to/socket], lirc:/dev/lirc0, sim, auto")
	fs.DurationVar(&o.poll, "poll", defaultPoll, "time between polls")
	fs.StringVar(&o.coloursFlag, "colours", "", "colours per state, e.g. failed=RED,executing=BLUE,idle=off (states: "+strings.Join(sortedKeys(), ", ")+")")
	fs.StringVar(&o.quietFlag, "quiet-hours", "", "daily local time span with the lamp off, e.g. 19:00-07:00")
	fs.DurationVar(&o.refresh, "refresh", irlamp.DefaultRefreshEvery, "how often to re-send the lamp's colour, for codes lost or a hand on the switch (0: never)")
	fs.BoolVar(&o.colourTest, "colour-test", false, "show each state's colour in turn, then exit")
	fs.StringVar(&o.webhookAddr, "webhook-addr", "", "address for webhooks (POST /webhooks/octopus, /webhooks/github), e.g. :9000")
	fs.StringVar(&o.webhookSecret, "webhook-secret", "", "webhook secret: GitHub's HMAC key and the value of Octopus's "+octopusSecretHeader+" header")
	fs.StringVar(&o.statusAddr, "status-addr", "", "address for GET /status, e.g. 127.0.0.1:8080")
	fs.BoolVar(&o.demo, "demo", false, "run against a built-in simulated Octopus server, with a simulated lamp")

	// Environment variables BUILDLAMP_<NAME> set defaults; flags win.
	fromEnv, err := flagenv.Apply(fs, "BUILDLAMP", getenv)
	if err != nil {
		return nil, usageError{err}
	}
	for _, name := range fromEnv {
		o.set[name] = true
	}
	if err := fs.Parse(args); err != nil {
		return nil, usageError{err}
	}
	fs.Visit(func(f *flag.Flag) { o.set[f.Name] = true })
	if fs.NArg() > 0 {
		return nil, usageError{fmt.Errorf("unexpected arguments %q", fs.Args())}
	}
	if o.octopusKey == "" {
		o.octopusKey = strings.TrimSpace(getenv("OCTOPUS_API_KEY"))
	}
	if o.githubToken == "" {
		o.githubToken = strings.TrimSpace(getenv("GITHUB_TOKEN"))
	}
	if err := o.check(); err != nil {
		return nil, usageError{err}
	}
	return o, nil
}

// check validates the options and parses the structured ones.
func (o *options) check() error {
	var err error
	if o.colours, err = parseColours(o.coloursFlag); err != nil {
		return err
	}
	if o.quiet, err = parseQuietHours(o.quietFlag); err != nil {
		return err
	}
	switch {
	case o.poll < minPoll:
		return fmt.Errorf("-poll must be at least %s, got %s", minPoll, o.poll)
	case o.poll > time.Hour:
		return fmt.Errorf("-poll must be at most 1h, got %s", o.poll)
	case o.refresh < 0 || o.refresh > 0 && o.refresh < minRefresh:
		return fmt.Errorf("-refresh must be 0 (never) or at least %s, got %s", minRefresh, o.refresh)
	}
	if strings.TrimSpace(o.lamp) == "" {
		return errors.New("-lamp is empty (try auto or sim)")
	}
	if o.colourTest {
		return nil // needs nothing else
	}
	if o.webhookAddr != "" {
		switch {
		case o.webhookSecret == "":
			return errors.New("-webhook-addr needs -webhook-secret (or BUILDLAMP_WEBHOOK_SECRET): webhooks are never accepted unauthenticated")
		case len(o.webhookSecret) < minSecret:
			return fmt.Errorf("-webhook-secret must be at least %d characters (try: openssl rand -hex 32)", minSecret)
		}
	}
	api, err := parseGitHubAPI(o.githubAPIFlag)
	if err != nil {
		return err
	}
	o.githubAPI = api.String()
	if err := checkRef(o.githubRef); err != nil {
		return fmt.Errorf("-github-ref: %v", err)
	}
	o.githubRepo = nil
	for _, s := range uniq(o.githubRepoFlags.vals) {
		r, err := parseGHRepo(s, o.githubRef)
		if err != nil {
			return err
		}
		o.githubRepo = append(o.githubRepo, r)
	}
	if o.demo {
		return nil // the demo brings its own Octopus server
	}
	octo := o.octopusURL != "" || len(o.projects.vals) > 0 || len(o.environments.vals) > 0
	switch {
	case !octo && len(o.githubRepo) == 0:
		return errNothingToWatch
	case !octo:
		return nil
	case strings.TrimSpace(o.octopusURL) == "":
		return errors.New("missing Octopus server URL: set -octopus-url (or BUILDLAMP_OCTOPUS_URL)")
	case strings.TrimSpace(o.octopusKey) == "":
		return errors.New("missing Octopus API key: set OCTOPUS_API_KEY (or BUILDLAMP_OCTOPUS_KEY, or -octopus-key)")
	case len(o.projects.vals) == 0:
		return errors.New("no Octopus project: give -project NAME (repeatable)")
	case len(o.environments.vals) == 0:
		return errors.New("no Octopus environment: give -environment NAME (repeatable)")
	}
	return nil
}

// hooks let tests replace the clock, the lamp and timeouts.
type hooks struct {
	now            func() time.Time
	openLamp       func(spec string) (irlamp.Transmitter, error)
	requestTimeout time.Duration // per HTTP request (default 10s)
	colourTestHold time.Duration // per colour of -colour-test (default 2s)
	demoSpeed      float64
	quietCheck     time.Duration // how often quiet hours are checked (default 15s)
}

func (h hooks) withDefaults() hooks {
	if h.now == nil {
		h.now = time.Now
	}
	if h.openLamp == nil {
		h.openLamp = irlamp.Open
	}
	if h.requestTimeout == 0 {
		h.requestTimeout = octopus.DefaultTimeout
	}
	if h.colourTestHold == 0 {
		h.colourTestHold = 2 * time.Second
	}
	if h.demoSpeed == 0 {
		h.demoSpeed = demoSpeed
	}
	if h.quietCheck == 0 {
		h.quietCheck = 15 * time.Second
	}
	return h
}

// run is main without the process; it returns the exit status.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	return runWith(ctx, args, getenv, stdout, stderr, hooks{})
}

func runWith(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer, h hooks) int {
	o, err := parseFlags(args, getenv, stderr)
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(stderr, "buildlamp:", err)
			return 2
		}
		return 0
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	code, err := serve(ctx, o, h.withDefaults(), log, stdout)
	if err != nil {
		fmt.Fprintln(stderr, "buildlamp:", err)
	}
	return code
}

// describeLamp shows the spec the lamp runs on, and that "auto" chose it.
func describeLamp(asked, resolved string) string {
	if strings.TrimSpace(asked) != "auto" {
		return resolved
	}
	if resolved == "sim" || strings.HasPrefix(resolved, "sim:") || strings.HasPrefix(resolved, "sim?") {
		return resolved + " (auto: no IR transmitter found, simulated)"
	}
	return resolved + " (auto)"
}

func serve(ctx context.Context, o *options, h hooks, log *slog.Logger, stdout io.Writer) (int, error) {
	lampSpec := o.lamp
	if o.demo && !o.set["lamp"] {
		lampSpec = "sim"
	}
	resolved, err := irlamp.Resolve(lampSpec)
	if err != nil {
		return 2, fmt.Errorf("-lamp: %w", err)
	}
	if o.colourTest {
		return colourTest(ctx, o, h, resolved, lampSpec, log, stdout)
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	now := h.now
	poll := o.poll
	var demoEnd time.Time
	var clock *demoClock
	if o.demo {
		clock = newDemoClock(h.demoSpeed)
		now = clock.now
		srv := octopustest.NewDemoServer(octopustest.Options{Now: clock.now})
		defer srv.Close()
		o.octopusURL, o.octopusKey, o.space = srv.URL, octopustest.DefaultAPIKey, ""
		if len(o.projects.vals) == 0 {
			o.projects.vals = []string{"Website"}
		}
		if len(o.environments.vals) == 0 {
			o.environments.vals = []string{"Production"}
		}
		if !o.set["poll"] {
			poll = demoPoll
		}
		demoEnd = clock.now().Add(demoLength())
		fmt.Fprintf(stdout, "demo: simulated Octopus server at %s, clock %gx real time; the timeline takes %s of it\n",
			srv.URL, h.demoSpeed, demoLength())
	}

	var names []target
	var octoTargets []octopus.Target
	var oc *octopus.Client
	if o.octopusURL != "" {
		oc, err = octopus.NewClient(o.octopusURL, o.octopusKey, octopus.ClientOptions{Space: o.space, Timeout: h.requestTimeout})
		if err != nil {
			return 2, fmt.Errorf("-octopus-url: %w", err)
		}
		pctx, pcancel := context.WithTimeout(ctx, startupTimeout)
		projects, envs, code, err := checkOctopus(pctx, oc, o)
		pcancel()
		if err != nil {
			return code, err
		}
		for i, p := range uniq(o.projects.vals) {
			for j, e := range uniq(o.environments.vals) {
				octoTargets = append(octoTargets, octopus.Target{Project: p, Environment: e})
				names = append(names, target{Name: projects[i] + " → " + envs[j], Source: "octopus"})
			}
		}
	}

	var gh *ghClient
	ghInterval := poll
	if len(o.githubRepo) > 0 {
		api, _ := parseGitHubAPI(o.githubAPI) // checked by parseFlags
		gh = newGHClient(api, o.githubToken, nil, h.requestTimeout, time.Now)
		pctx, pcancel := context.WithTimeout(ctx, startupTimeout)
		code, err := checkGitHub(pctx, gh, o.githubRepo, log)
		pcancel()
		if err != nil {
			return code, err
		}
		if o.githubToken == "" {
			// 60 requests an hour without a token; a poll costs 2 a repository.
			least := time.Duration(len(o.githubRepo)) * 2 * time.Minute
			if ghInterval < least {
				ghInterval = least
				fmt.Fprintf(stdout, "no GitHub token: polling GitHub every %s to stay within its limit of 60 requests an hour (set GITHUB_TOKEN)\n", ghInterval)
			}
		}
		for _, r := range o.githubRepo {
			names = append(names, target{Name: r.String(), Source: "github"})
		}
	}

	tx, err := h.openLamp(resolved)
	if err != nil {
		return 1, fmt.Errorf("-lamp %s: %w", resolved, err)
	}
	defer tx.Close()
	refresh := o.refresh
	if refresh == 0 {
		refresh = -1
	}
	lamp, err := irlamp.NewLamp(tx, irlamp.LED24Key(), irlamp.LampOptions{RefreshEvery: refresh, Logger: log})
	if err != nil {
		return 1, err
	}
	ctrl := newController(lamp, o.colours, o.quiet, names, now, stdout, log)

	var wg sync.WaitGroup
	defer func() {
		cancel() // on every return, so that the goroutines below end
		wg.Wait()
	}()
	goRun := func(f func()) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f()
		}()
	}
	goRun(func() { lamp.Run(ctx) })

	if clock != nil {
		clock.start() // the demo's timeline starts now that everything is ready
	}
	fatal := make(chan error, 1)
	srv := &server{c: ctrl, lamp: lamp.State, secret: []byte(o.webhookSecret), log: log}
	if oc != nil {
		w, err := octopus.NewWatcher(oc, octoTargets, octopus.WatchOptions{Interval: poll, Logger: log})
		if err != nil {
			return 2, err
		}
		index := map[octopus.Target]int{}
		for i, t := range octoTargets {
			index[t] = i
		}
		goRun(func() {
			for u := range w.Changes() {
				if i, ok := index[u.Target]; ok {
					ctrl.set(i, targetOfOctopus(u))
				}
			}
		})
		goRun(func() {
			if err := w.Run(ctx); err != nil && ctx.Err() == nil {
				select {
				case fatal <- err:
				default: // another fatal error is already being handled
				}
			}
		})
		srv.triggerOctopus = w.Trigger
	}
	if gh != nil {
		off := len(octoTargets)
		p := newGHPoller(gh, o.githubRepo, ghInterval, time.Now, log, func(i int, t target) { ctrl.set(off+i, t) })
		goRun(func() { p.Run(ctx) })
		srv.triggerGitHub = p.Trigger
	}

	fmt.Fprintf(stdout, "lamp: %s\n", describeLamp(lampSpec, resolved))
	tnames := make([]string, len(names))
	for i, t := range names {
		tnames[i] = t.Name
	}
	fmt.Fprintf(stdout, "watching %d target(s), every %s: %s\n", len(names), poll, strings.Join(tnames, ", "))
	if o.quiet.set {
		fmt.Fprintf(stdout, "quiet hours: %s (lamp off)\n", o.quiet)
	}

	servers, err := startServers(o, srv, log, stdout, fatal)
	if err != nil {
		return 1, err
	}
	goRun(func() { ctrl.run(ctx, h.quietCheck) })

	var demoDone <-chan time.Time
	if o.demo {
		demoDone = demoTimer(ctx, now, demoEnd)
	}
	code := 0
	var runErr error
	select {
	case <-ctx.Done():
	case <-demoDone:
		fmt.Fprintln(stdout, "demo: the timeline is over")
	case err := <-fatal:
		code, runErr = 1, err
	}
	cancel()
	for _, hs := range servers {
		sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := hs.Shutdown(sctx); err != nil {
			log.Warn("http shutdown", "err", err)
		}
		scancel()
	}
	wg.Wait()
	if err := ctrl.shutdown(5 * time.Second); err != nil {
		log.Warn("switching the lamp off", "err", err)
	}
	return code, runErr
}

// checkOctopus makes sure the server answers, the key works and every
// project and environment exists, reporting every unknown name at once. It
// returns the names as Octopus spells them.
func checkOctopus(ctx context.Context, oc *octopus.Client, o *options) (projects, envs []string, code int, err error) {
	// NewClient has checked the URL: it holds no user info or query, so
	// nothing secret.
	where := "the Octopus server at " + strings.TrimSpace(o.octopusURL)
	if _, err := oc.Space(ctx); err != nil {
		switch {
		case errors.Is(err, octopus.ErrUnauthorized), errors.Is(err, octopus.ErrForbidden):
			return nil, nil, 2, fmt.Errorf("%s refused the API key: %w", where, err)
		case errors.Is(err, octopus.ErrNotFound):
			var nf *octopus.NotFoundError
			if errors.As(err, &nf) {
				return nil, nil, 2, fmt.Errorf("-space: %w", err)
			}
			return nil, nil, 2, fmt.Errorf("%s: %w (is -octopus-url the server's root?)", strings.TrimSpace(o.octopusURL), err)
		case errors.Is(err, octopus.ErrMalformedResponse):
			return nil, nil, 1, fmt.Errorf("%s does not answer like an Octopus server (is -octopus-url right?): %w", where, err)
		}
		return nil, nil, 1, fmt.Errorf("cannot reach %s: %w", where, err)
	}
	var errs []error
	code = 2
	for _, name := range uniq(o.projects.vals) {
		p, err := oc.Project(ctx, name)
		if err != nil {
			if !errors.Is(err, octopus.ErrNotFound) {
				code = 1
			}
			errs = append(errs, fmt.Errorf("-project: %w", err))
			continue
		}
		projects = append(projects, p.Name)
	}
	for _, name := range uniq(o.environments.vals) {
		e, err := oc.Environment(ctx, name)
		if err != nil {
			if !errors.Is(err, octopus.ErrNotFound) {
				code = 1
			}
			errs = append(errs, fmt.Errorf("-environment: %w", err))
			continue
		}
		envs = append(envs, e.Name)
	}
	if len(errs) > 0 {
		return nil, nil, code, errors.Join(errs...)
	}
	return projects, envs, 0, nil
}

// checkGitHub reads every repository once: a refused token or a repository
// that does not exist stops the program, a rate limit does not.
func checkGitHub(ctx context.Context, gh *ghClient, repos []ghRepo, log *slog.Logger) (int, error) {
	for _, r := range repos {
		_, err := gh.status(ctx, r)
		var rl *ghRateLimitError
		switch {
		case err == nil:
		case errors.As(err, &rl):
			log.Warn("github: rate limited at start-up; the lamp shows GitHub's state once the limit resets", "repo", r.String(), "until", rl.Until)
		case permanentGH(err):
			return 2, fmt.Errorf("-github-repo %s: %w", r, err)
		case errors.Is(err, errGHMalformed):
			return 1, fmt.Errorf("%s does not answer like the GitHub API (is -github-api right?): %w", gh.api.Redacted(), err)
		default:
			return 1, fmt.Errorf("cannot reach the GitHub API at %s: %w", gh.api.Redacted(), err)
		}
	}
	return 0, nil
}

// startServers listens on -status-addr and -webhook-addr (one server when
// they are the same address) and prints where.
func startServers(o *options, srv *server, log *slog.Logger, stdout io.Writer, fatal chan<- error) ([]*http.Server, error) {
	type listen struct {
		addr             string
		status, webhooks bool
	}
	var ls []listen
	switch {
	case o.statusAddr != "" && o.statusAddr == o.webhookAddr:
		ls = append(ls, listen{o.statusAddr, true, true})
	default:
		if o.statusAddr != "" {
			ls = append(ls, listen{o.statusAddr, true, false})
		}
		if o.webhookAddr != "" {
			ls = append(ls, listen{o.webhookAddr, false, true})
		}
	}
	var servers []*http.Server
	for _, l := range ls {
		ln, err := net.Listen("tcp", l.addr)
		if err != nil {
			for _, hs := range servers {
				hs.Close()
			}
			name := "-status-addr"
			if !l.status {
				name = "-webhook-addr"
			}
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		hs := &http.Server{
			Handler:           srv.handler(l.status, l.webhooks),
			ReadHeaderTimeout: 10 * time.Second,
			ReadTimeout:       30 * time.Second,
			WriteTimeout:      30 * time.Second,
			IdleTimeout:       2 * time.Minute,
			MaxHeaderBytes:    16 << 10,
			ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		}
		servers = append(servers, hs)
		base := displayURL(ln.Addr())
		if l.status {
			fmt.Fprintf(stdout, "status on %s/status\n", base)
		}
		if l.webhooks {
			fmt.Fprintf(stdout, "webhooks on %s/webhooks/octopus and %s/webhooks/github\n", base, base)
		}
		go func() {
			if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				select {
				case fatal <- fmt.Errorf("http server on %s: %w", l.addr, err):
				default:
				}
			}
		}()
	}
	return servers, nil
}

// displayURL turns a listen address into a URL a person can open.
func displayURL(addr net.Addr) string {
	host, port, err := net.SplitHostPort(addr.String())
	if err != nil {
		return "http://" + addr.String()
	}
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		host = "localhost"
	}
	return "http://" + net.JoinHostPort(host, port)
}
