package config

import (
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
)

// Every yaml field of Config is in the key table exactly once, and the table
// points each key at its own field.
func TestKeyTableCoversConfig(t *testing.T) {
	var fields []string
	var walk func(reflect.Type, string)
	walk = func(typ reflect.Type, prefix string) {
		for f := range typ.Fields() {
			name := prefix + f.Tag.Get("yaml")
			if name == periodicKey+",omitempty" {
				continue // a table of records, not a key (periodic.go)
			}
			if f.Type.Kind() == reflect.Struct {
				walk(f.Type, name+".")
			} else {
				fields = append(fields, name)
			}
		}
	}
	walk(reflect.TypeFor[Config](), "")

	var names, flags []string
	seen := map[any]bool{}
	var c Config
	for _, k := range keys {
		names = append(names, k.name)
		flags = append(flags, k.flag)
		p := k.field(&c)
		if seen[p] {
			t.Errorf("key %s points at the field of another key", k.name)
		}
		seen[p] = true
	}
	if !slices.Equal(names, fields) {
		t.Errorf("key table\n%v\ndiffers from the yaml fields of Config\n%v", names, fields)
	}
	slices.Sort(flags)
	if len(slices.Compact(flags)) != len(keys) {
		t.Errorf("two keys share a flag name")
	}
}

func TestFlagNames(t *testing.T) {
	fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
	c := Default()
	BindFlags(fs, &c)
	for _, name := range []string{"config", "data-dir", "listen", "metrics-listen", "workers", "shutdown-timeout",
		"sync", "sync-interval", "snapshot-every-records", "retention-completed", "auth-token",
		"exec-enabled", "exec-allow", "http-enabled", "http-max-result", "log-format", "log-level"} {
		if fs.Lookup(name) == nil {
			t.Errorf("no flag --%s", name)
		}
	}
}

func TestFlagHelpShowsDefaults(t *testing.T) {
	fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
	c := Default()
	BindFlags(fs, &c)
	help := fs.FlagUsages()
	for _, want := range []string{
		`--data-dir string`, `(default "./data")`,
		`--retry-base duration`, `(default 1s)`,
		`--retention-failed duration`, `(default 168h)`,
		`--wal-segment-size bytes`, `(default 64MiB)`,
		`--workers int`, `(default 8)`,
		`--auth-token stringArray`,
		`--http-enabled `, `(default true)`,
		`--config file`,
	} {
		if !strings.Contains(help, want) {
			t.Errorf("help does not contain %q:\n%s", want, help)
		}
	}
}

// parse binds a fresh flag set to the defaults and parses args.
func parse(t *testing.T, args ...string) (*pflag.FlagSet, error) {
	t.Helper()
	fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
	fs.SetOutput(&strings.Builder{})
	c := Default()
	BindFlags(fs, &c)
	return fs, fs.Parse(args)
}

func TestResolveFlagsWinOverFile(t *testing.T) {
	file := writeFile(t, `
workers: 3
listen: 0.0.0.0:7070
snapshot: {keep: 5, interval: 1m}
auth: {tokens: [from-file]}
handlers: {exec: {enabled: true, allow: [/bin/echo]}}
log: {level: debug}
`)
	fs, err := parse(t, "--config", file,
		"--workers=4", "--auth-token", "a", "--auth-token", "b", "--exec-enabled=false",
		"--snapshot-interval", "2m", "--wal-segment-size", "1GiB", "--sync", "never", "--retention-failed", "48h")
	if err != nil {
		t.Fatal(err)
	}
	got, err := Resolve(fs)
	if err != nil {
		t.Fatal(err)
	}
	want := Default()
	want.Listen = "0.0.0.0:7070"                       // file
	want.Snapshot.Keep = 5                             // file
	want.Log.Level = "debug"                           // file
	want.Handlers.Exec.Allow = []string{"/bin/echo"}   // file
	want.Workers = 4                                   // flag over file
	want.Snapshot.Interval = Duration(2 * time.Minute) // flag over file
	want.Auth.Tokens = []string{"a", "b"}              // flag list replaces the file's
	want.Handlers.Exec.Enabled = false                 // flag over file
	want.WAL.SegmentSize, want.Sync = GiB, SyncNever   // flag over default
	want.Retention.Failed = Duration(48 * time.Hour)   // flag over default
	if !sameConfig(got, want) {
		t.Errorf("Resolve =\n%+v\nwant\n%+v", got, want)
	}
}

// A flag left at its default does not override the file, even though its
// default differs from the file's value.
func TestResolveUnsetFlagsKeepFile(t *testing.T) {
	fs, err := parse(t, "--config", writeFile(t, "workers: 3\nhandlers: {http: {enabled: false}}\n"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := Resolve(fs)
	if err != nil {
		t.Fatal(err)
	}
	if got.Workers != 3 || got.Handlers.HTTP.Enabled {
		t.Errorf("Resolve: workers %d, http.enabled %v; want the file's 3, false", got.Workers, got.Handlers.HTTP.Enabled)
	}
}

func TestResolveWithoutConfigFlag(t *testing.T) {
	fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
	fs.String("config", "", "registered by the caller")
	c := Default()
	BindFlags(fs, &c) // must not register --config again
	if err := fs.Parse([]string{"--exec-enabled", "--exec-allow", "cat", "--limits-max-payload", "2MiB"}); err != nil {
		t.Fatal(err)
	}
	got, err := Resolve(fs)
	if err != nil {
		t.Fatal(err)
	}
	want := Default()
	want.Handlers.Exec = ExecConfig{Enabled: true, Allow: []string{"cat"}}
	want.Limits.MaxPayload = 2 * MiB
	if !sameConfig(got, want) {
		t.Errorf("Resolve =\n%+v\nwant\n%+v", got, want)
	}
}

func TestResolveValidates(t *testing.T) {
	for _, tc := range []struct {
		args []string
		key  string
	}{
		{[]string{"--workers", "0"}, "workers"},
		{[]string{"--listen", "0.0.0.0:7070"}, "auth.tokens"},
		{[]string{"--sync", "sometimes"}, "sync"},
		{[]string{"--exec-enabled"}, "handlers.exec.allow"},
	} {
		fs, err := parse(t, tc.args...)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Resolve(fs); !slices.Equal(keysOf(err), []string{tc.key}) {
			t.Errorf("Resolve(%v) = %v, want an error naming %s", tc.args, err, tc.key)
		}
	}
	fs, err := parse(t, "--config", writeFile(t, "nope: 1\n"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Resolve(fs); !slices.Equal(keysOf(err), []string{"nope"}) {
		t.Errorf("Resolve with a bad file = %v, want an error naming nope", err)
	}
}

func TestBadFlagValues(t *testing.T) {
	for _, args := range [][]string{
		{"--workers", "many"},
		{"--retry-base", "10"},
		{"--limits-max-payload", "1.5MiB"},
		{"--exec-enabled=maybe"},
		{"--snapshot-keep="},
	} {
		if _, err := parse(t, args...); err == nil || !strings.Contains(err.Error(), strings.TrimPrefix(strings.SplitN(args[0], "=", 2)[0], "--")) {
			t.Errorf("Parse(%v) = %v, want an error naming the flag", args, err)
		}
	}
}

func TestDocsCoverEveryKey(t *testing.T) {
	data, err := readDoc()
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if !strings.Contains(data, "`"+k.name+"`") || !strings.Contains(data, "`--"+k.flag+"`") {
			t.Errorf("docs/config.md does not document `%s` and `--%s`", k.name, k.flag)
		}
	}
}
