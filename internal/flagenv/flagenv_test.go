package flagenv

import (
	"flag"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

type list []string

func (l *list) String() string     { return strings.Join(*l, ",") }
func (l *list) Set(v string) error { *l = append(*l, v); return nil }
func (l *list) SetEnv(v string) error {
	*l = append(*l, strings.Split(v, ",")...)
	return nil
}

func TestApply(t *testing.T) {
	env := map[string]string{"APP_DAILY_LIMIT": "4", "APP_WAIT": "1m", "APP_ITEM": "a,b", "APP_UNSET": ""}
	fs := flag.NewFlagSet("app", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	limit := fs.Int("daily-limit", 10, "")
	wait := fs.Duration("wait", time.Second, "")
	addr := fs.String("addr", ":80", "")
	var items list
	fs.Var(&items, "item", "")
	set, err := Apply(fs, "APP", func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if err := fs.Parse([]string{"-daily-limit", "5"}); err != nil {
		t.Fatal(err)
	}
	if *limit != 5 || *wait != time.Minute || *addr != ":80" || items.String() != "a,b" {
		t.Errorf("limit %d wait %s addr %s items %v", *limit, *wait, *addr, items)
	}
	if strings.Join(set, " ") != "daily-limit item wait" {
		t.Errorf("set = %v", set)
	}
}

func TestApplyErrorHidesValue(t *testing.T) {
	fs := flag.NewFlagSet("app", flag.ContinueOnError)
	fs.Int("pin", 0, "")
	_, err := Apply(fs, "APP", func(string) string { return "s3cret" })
	if err == nil || !strings.Contains(err.Error(), "APP_PIN") || strings.Contains(err.Error(), "s3cret") {
		t.Errorf("error %v: want the variable named and the value hidden", err)
	}
}

func TestStateDir(t *testing.T) {
	if got := StateDir(func(string) string { return "/x" }, "app"); got != filepath.Join("/x", "app") {
		t.Errorf("StateDir with XDG_STATE_HOME = %q", got)
	}
	if got := StateDir(func(string) string { return "" }, "app"); !strings.HasSuffix(got, filepath.Join(".local", "state", "app")) {
		t.Errorf("StateDir = %q", got)
	}
}
