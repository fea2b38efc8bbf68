package main

import (
	"context"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/pikit/pikit/audio"
	"github.com/pikit/pikit/camera"
	"github.com/pikit/pikit/internal/realprog"
	"periph.io/x/conn/v3/physic"
)

// TestBrowser drives the real page in headless Chromium: log in, see the
// live picture change, give treats until the limit, call the dog.
func TestBrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a browser")
	}
	chromium := realprog.Require(t, "chromium", "chromium")

	fe := newFeederEnv(t, "", nil, func(c *feederConfig) {
		c.DailyLimit, c.MinInterval, c.OpenTime = 2, 0, 200*time.Millisecond
		c.Speed = 900 * physic.Degree // a visible sweep, still quick
	})
	player := audio.NewSim(audio.SimOptions{})
	t.Cleanup(func() { player.Close() })
	bc, err := camera.NewBroadcasterSpec("sim:320x240@15", camera.BroadcastOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bc.Close() })
	a := newAuth(testPassword, testToken, []byte("0123456789abcdef0123456789abcdef"), false, time.Now)
	srv := newServer(fe.f, a, player, audio.DefaultCall(), camStream{bc},
		map[string]string{"servo": "sim", "camera": "sim:320x240@15", "audio": "sim"}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	ts := httptest.NewServer(srv.handler())
	t.Cleanup(ts.Close)

	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		// No UserDataDir: chromedp makes a fresh profile directory and
		// removes it only after the browser's processes have exited; a
		// t.TempDir would race Chromium's helpers still writing to it.
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.WindowSize(412, 1000), // a phone
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	ctx, cancelCtx := chromedp.NewContext(actx)
	defer cancelCtx()
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()

	run := func(what string, actions ...chromedp.Action) {
		t.Helper()
		if err := chromedp.Run(ctx, actions...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	waitText := func(sel, want string) chromedp.Action {
		return chromedp.Poll(`document.querySelector(`+jsString(sel)+`).textContent.includes(`+jsString(want)+`)`, nil,
			chromedp.WithPollingTimeout(15*time.Second))
	}

	run("log in",
		chromedp.Navigate(ts.URL+"/"),
		chromedp.WaitVisible("#password", chromedp.ByID),
		chromedp.SendKeys("#password", testPassword, chromedp.ByID),
		chromedp.Submit("#password", chromedp.ByID),
		chromedp.WaitVisible("#treat", chromedp.ByID),
		waitText("#live", "Live updates on"),
	)

	// The picture changes: draw the stream into a canvas twice and compare.
	var first, second string
	grab := `(() => { const i = document.getElementById('stream'); const c = document.createElement('canvas');
		c.width = i.naturalWidth; c.height = i.naturalHeight; if (!c.width) return '';
		c.getContext('2d').drawImage(i, 0, 0); return c.toDataURL('image/png'); })()`
	run("see the picture",
		chromedp.Poll(`document.getElementById('stream').naturalWidth > 0`, nil, chromedp.WithPollingTimeout(15*time.Second)),
		chromedp.Evaluate(grab, &first),
		chromedp.Sleep(500*time.Millisecond),
		chromedp.Evaluate(grab, &second),
	)
	if first == "" || first == second {
		t.Errorf("the picture did not change (%d bytes, same=%v)", len(first), first == second)
	}

	run("give a treat", chromedp.Click("#treat", chromedp.ByID), waitText("#treats-today", "1"), waitText("#hopper", "closed"))
	if n := cycles(t, fe.sim, 90*physic.Degree); n != 1 {
		t.Errorf("servo model cycles after one click = %d", n)
	}

	run("call the dog", chromedp.Click("#call", chromedp.ByID))
	pctx, pcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer pcancel()
	if plays, err := player.WaitPlays(pctx, 1); err != nil || plays[0].Clip != audio.DefaultCall() {
		t.Errorf("audio model plays: %v %v", plays, err)
	}

	var disabled bool
	var reason string
	run("reach the limit",
		chromedp.Poll(`!document.getElementById('treat').disabled`, nil, chromedp.WithPollingTimeout(10*time.Second)),
		chromedp.Click("#treat", chromedp.ByID),
		waitText("#treats-today", "2"),
		waitText("#treat-reason", "daily limit"),
		chromedp.Evaluate(`document.getElementById('treat').disabled`, &disabled),
		chromedp.Text("#treat-reason", &reason, chromedp.ByID),
	)
	if !disabled || !strings.Contains(reason, "daily limit of 2 treats reached") {
		t.Errorf("at the limit: disabled=%v reason=%q", disabled, reason)
	}
	if n := cycles(t, fe.sim, 90*physic.Degree); n != 2 {
		t.Errorf("servo model cycles = %d, want 2", n)
	}

	var png []byte
	run("screenshot", chromedp.FullScreenshot(&png, 100)) // quality 100 means PNG
	dir := os.Getenv("PIKIT_ARTIFACTS")
	if dir == "" {
		dir = t.TempDir()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "treatfeeder.png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", path)
}

func jsString(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}
