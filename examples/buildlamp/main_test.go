package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pikit/pikit/octopus/octopustest"
)

func TestFlags(t *testing.T) {
	var env map[string]string
	getenv := func(k string) string { return env[k] }
	base := []string{"-octopus-url", "http://o.example", "-octopus-key", "API-X", "-project", "p", "-environment", "e"}
	for _, tc := range []struct {
		args []string
		env  map[string]string
		want string // substring of the error; "" = valid
	}{
		{base, nil, ""},
		{[]string{"-github-repo", "octo/web"}, nil, ""},
		{[]string{"-demo"}, nil, ""},
		{[]string{"-colour-test", "-lamp", "sim"}, nil, ""},
		{nil, nil, "nothing to watch"},
		{[]string{"-project", "p", "-environment", "e"}, nil, "missing Octopus server URL"},
		{[]string{"-octopus-url", "http://o.example", "-project", "p", "-environment", "e"}, nil, "missing Octopus API key: set OCTOPUS_API_KEY"},
		{[]string{"-octopus-url", "http://o.example", "-octopus-key", "K", "-environment", "e"}, nil, "no Octopus project"},
		{[]string{"-octopus-url", "http://o.example", "-octopus-key", "K", "-project", "p"}, nil, "no Octopus environment"},
		{append(base, "-poll", "10ms"), nil, "-poll must be at least 100ms"},
		{append(base, "-poll", "2h"), nil, "-poll must be at most 1h"},
		{append(base, "-poll", "soon"), nil, "invalid value"},
		{append(base, "-refresh", "1s"), nil, "-refresh must be 0 (never) or at least 5s"},
		{append(base, "-refresh", "0"), nil, ""},
		{append(base, "-colours", "failed=CRIMSON"), nil, `unknown colour "CRIMSON"`},
		{append(base, "-quiet-hours", "19-7"), nil, "-quiet-hours"},
		{append(base, "-webhook-addr", ":0"), nil, "-webhook-addr needs -webhook-secret"},
		{append(base, "-webhook-addr", ":0", "-webhook-secret", "short"), nil, "at least 16 characters"},
		{append(base, "-github-repo", "octo"), nil, `-github-repo "octo"`},
		{append(base, "-github-ref", "a b"), nil, "-github-ref"},
		{append(base, "-github-api", "ftp://x"), nil, "scheme must be http or https"},
		{append(base, "-github-api", "https://user:pw@x"), nil, "must not contain user info"},
		{append(base, "-lamp", " "), nil, "-lamp is empty"},
		{append(base, "-project", ""), nil, "empty value"},
		{append(base, "-bogus"), nil, "flag provided but not defined"},
		{append(base, "extra"), nil, "unexpected arguments"},
		{base, map[string]string{"BUILDLAMP_POLL": "often"}, `BUILDLAMP_POLL: parse error`},
		{base, map[string]string{"BUILDLAMP_DEMO": "maybe"}, `BUILDLAMP_DEMO: parse error`},
		{[]string{"-project", "p", "-environment", "e"}, map[string]string{"BUILDLAMP_OCTOPUS_URL": "http://o", "OCTOPUS_API_KEY": "API-ENV"}, ""},
	} {
		env = tc.env
		_, err := parseFlags(tc.args, getenv, io.Discard)
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("parseFlags(%q, env %v) = %v, want %q", tc.args, tc.env, err, tc.want)
		}
		var ue usageError
		if err != nil && !errors.As(err, &ue) {
			t.Errorf("error %v is not a usage error", err)
		}
	}

	// The environment sets defaults; flags win; lists come comma-separated
	// from the environment and are replaced, not extended, by flags.
	env = map[string]string{
		"BUILDLAMP_OCTOPUS_URL": "http://env.example", "OCTOPUS_API_KEY": "API-GENERIC", "BUILDLAMP_OCTOPUS_KEY": "API-SPECIFIC",
		"BUILDLAMP_PROJECT": "Website, Billing API", "BUILDLAMP_ENVIRONMENT": "Production", "BUILDLAMP_POLL": "30s",
		"BUILDLAMP_GITHUB_REPO": "octo/web,octo/api@develop", "GITHUB_TOKEN": "ghp_x", "BUILDLAMP_QUIET_HOURS": "19:00-07:00",
		"BUILDLAMP_COLOURS": "failed=PINK", "BUILDLAMP_COLOUR_TEST": "", "BUILDLAMP_STATUS_ADDR": "127.0.0.1:8080",
		"BUILDLAMP_WEBHOOK_ADDR": ":9000", "BUILDLAMP_WEBHOOK_SECRET": testSecret, "BUILDLAMP_SPACE": "Ops", "BUILDLAMP_LAMP": "sim",
		"BUILDLAMP_REFRESH": "2m", "BUILDLAMP_GITHUB_REF": "trunk", "BUILDLAMP_GITHUB_API": "https://ghe.example/api/v3",
	}
	o, err := parseFlags([]string{"-environment", "Staging", "-environment", "Test", "-poll", "5s"}, getenv, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.octopusURL != "http://env.example" || o.octopusKey != "API-SPECIFIC" || o.poll != 5*time.Second || o.refresh != 2*time.Minute ||
		!slices.Equal(o.projects.vals, []string{"Website", "Billing API"}) || !slices.Equal(o.environments.vals, []string{"Staging", "Test"}) ||
		o.githubToken != "ghp_x" || o.quiet.String() != "19:00-07:00" || o.colours[stFailed] != "PINK" || o.statusAddr != "127.0.0.1:8080" ||
		o.space != "Ops" || o.lamp != "sim" || o.githubAPI != "https://ghe.example/api/v3/" ||
		!slices.Equal(o.githubRepo, []ghRepo{{"octo", "web", "trunk"}, {"octo", "api", "develop"}}) {
		t.Errorf("env + flags = %+v", o)
	}
	// The generic variables are the last resort; -octopus-key wins over both.
	delete(env, "BUILDLAMP_OCTOPUS_KEY")
	if o, err := parseFlags(nil, getenv, io.Discard); err != nil || o.octopusKey != "API-GENERIC" {
		t.Errorf("OCTOPUS_API_KEY: %v %v", o, err)
	}
	if o, err := parseFlags([]string{"-octopus-key", "API-FLAG", "-github-token", "ghp_flag"}, getenv, io.Discard); err != nil || o.octopusKey != "API-FLAG" || o.githubToken != "ghp_flag" {
		t.Errorf("-octopus-key: %v %v", o, err)
	}
	// A bad secret in the environment is not echoed.
	env = map[string]string{"BUILDLAMP_POLL": "1s", "BUILDLAMP_DEMO": "x-secret-x"}
	// Environment values are never echoed in errors: which flags hold
	// secrets is not something to guess from their names.
	if _, err := parseFlags(nil, getenv, io.Discard); err == nil || strings.Contains(err.Error(), "x-secret-x") || !strings.Contains(err.Error(), "BUILDLAMP_DEMO") {
		t.Errorf("bool from env: %v", err)
	}
}

func TestRunUsageErrors(t *testing.T) {
	const key = "API-SECRETKEY0123456789"
	for _, tc := range []struct {
		args []string
		env  map[string]string
		want string
	}{
		{nil, nil, "buildlamp: nothing to watch"},
		{[]string{"-project", "Website", "-environment", "Production"}, map[string]string{"OCTOPUS_API_KEY": key}, "missing Octopus server URL"},
		{[]string{"-octopus-url", "http://127.0.0.1:1", "-project", "Website", "-environment", "Production"}, nil, "missing Octopus API key"},
		{[]string{"-octopus-url", "http://127.0.0.1:1/?apikey=" + key, "-project", "W", "-environment", "P"}, map[string]string{"OCTOPUS_API_KEY": key}, "must not have a query"},
		{[]string{"-octopus-url", "ftp://x", "-project", "W", "-environment", "P"}, map[string]string{"OCTOPUS_API_KEY": key}, "scheme must be http or https"},
		{[]string{"-lamp", "nope", "-github-repo", "octo/web"}, nil, `-lamp: irlamp: unknown driver "nope"`},
		{[]string{"-colours", "fail=RED", "-github-repo", "octo/web"}, nil, `unknown state "fail"`},
		{[]string{"-help"}, nil, "-octopus-url"},
	} {
		var stdout, stderr bytes.Buffer
		getenv := func(k string) string { return tc.env[k] }
		code := run(context.Background(), tc.args, getenv, &stdout, &stderr)
		wantCode := 2
		if slices.Contains(tc.args, "-help") {
			wantCode = 0
		}
		if code != wantCode || !strings.Contains(stderr.String(), tc.want) {
			t.Errorf("run(%q) = %d, stderr %q; want %d and %q", tc.args, code, stderr.String(), wantCode, tc.want)
		}
		if strings.Contains(stdout.String()+stderr.String(), key) {
			t.Errorf("run(%q) printed the key:\n%s%s", tc.args, stdout.String(), stderr.String())
		}
	}
}

// TestStartupErrors: unknown names with suggestions, a refused key and an
// unreachable server, never printing the key.
func TestStartupErrors(t *testing.T) {
	s := newOctopus(t)
	s.AddProject("", "Website Admin")
	key := octopustest.DefaultAPIKey
	closed := func() string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		return "http://" + addr
	}()
	notOctopus := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		w.Write([]byte("<html>router login</html>"))
	}))
	defer notOctopus.Close()
	for _, tc := range []struct {
		name string
		args []string
		code int
		want []string
	}{
		{"unknown project", []string{"-octopus-url", s.URL, "-project", "Websit", "-environment", "Production"}, 2,
			[]string{`project "Websit" not found in space "Default"; did you mean "Website"`}},
		{"unknown project and environment", []string{"-octopus-url", s.URL, "-project", "Billing", "-environment", "Prod", "-environment", "Staging"}, 2,
			[]string{`-project: octopus: project "Billing" not found`, `"Billing API"`, `-environment: octopus: environment "Prod" not found`, `did you mean "Production"`}},
		{"unknown space", []string{"-octopus-url", s.URL, "-space", "Ops", "-project", "Website", "-environment", "Production"}, 2,
			[]string{`-space: octopus: space "Ops" not found`}},
		{"unreachable", []string{"-octopus-url", closed, "-project", "Website", "-environment", "Production"}, 1,
			[]string{"cannot reach the Octopus server", closed, "connection refused"}},
		{"not octopus", []string{"-octopus-url", notOctopus.URL, "-project", "Website", "-environment", "Production"}, 1,
			[]string{"does not answer like an Octopus server", notOctopus.URL}},
		{"wrong path", []string{"-octopus-url", s.URL + "/octopus", "-project", "Website", "-environment", "Production"}, 2,
			[]string{"is -octopus-url the server's root?"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			getenv := func(k string) string { return map[string]string{"OCTOPUS_API_KEY": key}[k] }
			code := runWith(context.Background(), append(tc.args, "-lamp", "sim"), getenv, &stdout, &stderr, hooks{requestTimeout: 2 * time.Second})
			if code != tc.code {
				t.Errorf("exit %d, want %d; stderr:\n%s", code, tc.code, stderr.String())
			}
			for _, w := range tc.want {
				if !strings.Contains(stderr.String(), w) {
					t.Errorf("stderr lacks %q:\n%s", w, stderr.String())
				}
			}
			if strings.Contains(stdout.String()+stderr.String(), key) {
				t.Errorf("the key was printed:\n%s%s", stdout.String(), stderr.String())
			}
		})
	}
	// A wrong key: 401, exit 2, and neither key printed.
	var stdout, stderr bytes.Buffer
	wrong := "API-WRONGKEY99999999999"
	code := runWith(context.Background(), []string{"-octopus-url", s.URL, "-octopus-key", wrong, "-project", "Website", "-environment", "Production", "-lamp", "sim"},
		func(string) string { return "" }, &stdout, &stderr, hooks{})
	if code != 2 || !strings.Contains(stderr.String(), "refused the API key") || !strings.Contains(stderr.String(), s.URL) ||
		strings.Contains(stderr.String()+stdout.String(), wrong) {
		t.Errorf("wrong key: exit %d, stderr:\n%s", code, stderr.String())
	}
	// GitHub: a refused token or a missing repository stops the program.
	g := newFakeGitHub(t, "ghp_RIGHT0123456789")
	for _, tc := range []struct {
		repo, token, want string
	}{
		{"octo/web", "ghp_WRONG0123456789", "check -github-token"},
		{"octo/nope", "ghp_RIGHT0123456789", "no such repository"},
	} {
		var stdout, stderr bytes.Buffer
		code := runWith(context.Background(), []string{"-github-repo", tc.repo, "-github-api", g.srv.URL, "-lamp", "sim"},
			func(k string) string { return map[string]string{"GITHUB_TOKEN": tc.token}[k] }, &stdout, &stderr, hooks{})
		if code != 2 || !strings.Contains(stderr.String(), tc.want) || strings.Contains(stdout.String()+stderr.String(), tc.token) {
			t.Errorf("%s: exit %d, stderr:\n%s", tc.repo, code, stderr.String())
		}
	}
	var gout, gerr bytes.Buffer
	if code := runWith(context.Background(), []string{"-github-repo", "octo/web", "-github-api", closed, "-lamp", "sim"},
		func(string) string { return "" }, &gout, &gerr, hooks{}); code != 1 || !strings.Contains(gerr.String(), "cannot reach the GitHub API") {
		t.Errorf("GitHub unreachable: exit %d, stderr:\n%s", code, gerr.String())
	}
}

func TestColourTest(t *testing.T) {
	p := startProg(t, []string{"-colour-test", "-colours", "idle=off,canceled=BROWN"}, nil, hooks{colourTestHold: time.Millisecond})
	if code := p.exit(); code != 0 {
		t.Fatalf("exit %d; stderr:\n%s", code, p.stderr)
	}
	out := p.stdout.String()
	for _, want := range []string{"failed        Failed               → RED", "canceled      Canceled             → BROWN", "idle          Idle                 → off", "done → off"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	// The lamp received each colour in turn, worst first.
	var keys []string
	for _, e := range p.sim.History() {
		if e.Key != "" && e.Key != "ON" && (len(keys) == 0 || keys[len(keys)-1] != e.Key) {
			keys = append(keys, e.Key)
		}
	}
	want := "RED ORANGE PURPLE PINK DARK_BLUE BLUE WHITE BROWN PEA_GREEN GREEN OFF"
	if got := strings.Join(keys, " "); got != want {
		t.Errorf("lamp received %s, want %s", got, want)
	}
	if p.colour() != colourOff {
		t.Errorf("lamp %s after the test", p.colour())
	}
}

// TestProcessSIGTERM builds the program, runs the demo and sends SIGTERM:
// it must switch the lamp off and exit 0.
func TestProcessSIGTERM(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a binary")
	}
	bin := filepath.Join(t.TempDir(), "buildlamp")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	cmd := exec.Command(bin, "-demo", "-status-addr", "127.0.0.1:0")
	cmd.Env = append(os.Environ(), "OCTOPUS_API_KEY=API-NOTUSED000000000")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	lines := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	var got []string
	deadline := time.After(wait)
	for len(got) == 0 || !strings.Contains(got[len(got)-1], "→ GREEN") {
		select {
		case l := <-lines:
			got = append(got, l)
		case <-deadline:
			t.Fatalf("no lamp colour printed:\n%s\nstderr:\n%s", strings.Join(got, "\n"), stderr.String())
		}
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	for l := range lines {
		got = append(got, l)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("exit: %v\nstderr:\n%s", err, stderr.String())
	}
	if last := got[len(got)-1]; !strings.HasSuffix(last, "stopped → off") {
		t.Errorf("last line %q, want the lamp switched off:\n%s", last, strings.Join(got, "\n"))
	}
}
