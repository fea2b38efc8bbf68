// Package flagenv lets every pikit program read its flags from the
// environment the same way: flag -daily-limit of program TREATFEEDER is
// TREATFEEDER_DAILY_LIMIT, the environment sets the default, and a flag on
// the command line wins. It also holds the programs' shared default for
// their state directory.
package flagenv

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Name returns the environment variable for a flag: prefix + "_" + the
// flag's name in upper case with dashes as underscores.
func Name(prefix, flagName string) string {
	return prefix + "_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// EnvSetter is implemented by flag values that read the environment
// differently from the command line, such as a repeatable flag that takes
// a comma-separated list from one variable.
type EnvSetter interface {
	SetEnv(value string) error
}

// Apply sets every flag of fs whose environment variable is set and not
// empty, and returns the names of the flags it set. Call it before
// fs.Parse, so that flags on the command line override. An error names the
// variable but never its value: it may hold a password or token.
func Apply(fs *flag.FlagSet, prefix string, getenv func(string) string) (set []string, err error) {
	fs.VisitAll(func(f *flag.Flag) {
		if err != nil {
			return
		}
		name := Name(prefix, f.Name)
		v := getenv(name)
		if v == "" {
			return
		}
		var serr error
		if es, ok := f.Value.(EnvSetter); ok {
			serr = es.SetEnv(v)
		} else {
			serr = f.Value.Set(v)
		}
		if serr != nil {
			err = fmt.Errorf("%s: %v", name, serr)
			return
		}
		set = append(set, f.Name)
	})
	return set, err
}

// StateDir returns where a program keeps its state by default, following
// the XDG base directory convention: $XDG_STATE_HOME/app, else
// ~/.local/state/app; "" if neither can be found.
func StateDir(getenv func(string) string, app string) string {
	if d := getenv("XDG_STATE_HOME"); d != "" {
		return filepath.Join(d, app)
	}
	if h, err := os.UserHomeDir(); err == nil {
		return filepath.Join(h, ".local", "state", app)
	}
	return ""
}
