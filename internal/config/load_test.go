package config

import (
	"errors"
	"io/fs"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

func TestLoadGood(t *testing.T) {
	for _, tc := range []struct {
		name string
		yaml string
		want func(*Config)
	}{
		{"empty file", "", func(*Config) {}},
		{"only comments", "# nothing here\n", func(*Config) {}},
		{"empty section keeps defaults", "snapshot:\n", func(*Config) {}},
		{"empty list", "auth:\n  tokens:\n    # - commented out\nhandlers: {exec: {allow: ~}}\n", func(*Config) {}},
		{"top-level keys", "data_dir: /var/lib/beaver\nworkers: 3\nsync: interval\nsync_interval: 5ms\n", func(c *Config) {
			c.DataDir, c.Workers, c.Sync, c.SyncInterval = "/var/lib/beaver", 3, SyncInterval, Duration(5*time.Millisecond)
		}},
		{"nested block style", "snapshot:\n  keep: 5\nhandlers:\n  exec:\n    enabled: true\n    allow: [/bin/echo, cat]\n", func(c *Config) {
			c.Snapshot.Keep = 5
			c.Handlers.Exec = ExecConfig{Enabled: true, Allow: []string{"/bin/echo", "cat"}}
		}},
		{"flow style", "retry: {max_attempts: 3, base: 250ms, max: 2m}\n", func(c *Config) {
			c.Retry = RetryConfig{MaxAttempts: 3, Base: Duration(250 * time.Millisecond), Max: Duration(2 * time.Minute)}
		}},
		{"sizes", "wal: {segment_size: 1GiB}\nlimits: {max_payload: 10MB, max_request: 100000000}\n", func(c *Config) {
			c.WAL.SegmentSize, c.Limits.MaxPayload, c.Limits.MaxRequest = GiB, 10*MB, 100*MB
		}},
		{"tokens", "listen: 0.0.0.0:7070\nauth:\n  tokens:\n    - s3cret\n    - other\n", func(c *Config) {
			c.Listen, c.Auth.Tokens = "0.0.0.0:7070", []string{"s3cret", "other"}
		}},
		{"invalid values load; Validate judges them", "workers: 0\nsync: sometimes\n", func(c *Config) {
			c.Workers, c.Sync = 0, "sometimes"
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Load(writeFile(t, tc.yaml))
			if err != nil {
				t.Fatal(err)
			}
			want := Default()
			tc.want(&want)
			if !sameConfig(got, want) {
				t.Errorf("Load =\n%+v\nwant\n%+v", got, want)
			}
		})
	}
}

func TestLoadBad(t *testing.T) {
	for _, tc := range []struct {
		name string
		yaml string
		key  string // the FieldError's key, or "" for a plain error
		line int
		msg  string // in the error text
	}{
		{"unknown top-level key", "workers: 3\nworker: 4\n", "worker", 2, "unknown key"},
		{"unknown nested key", "snapshot:\n  keep: 2\n  every: 5\n", "snapshot.every", 3, "every_records, every_bytes, interval, keep"},
		{"unknown deep key", "handlers:\n  exec:\n    allowed: [ls]\n", "handlers.exec.allowed", 3, "unknown key"},
		{"unknown section", "clusters:\n  peers: []\n", "clusters", 1, "unknown key"},
		{"unknown key in flow style", "retry: {max_attempts: 3, jitter: 0.1}\n", "retry.jitter", 1, "unknown key"},
		{"key path as a name", "snapshot.keep: 3\n", "snapshot.keep", 1, "unknown key"},
		{"int of wrong type", "workers: many\n", "workers", 1, "cannot unmarshal"},
		{"duration without unit", "retry:\n  base: 10\n", "retry.base", 2, "Go duration"},
		{"bad size", "limits:\n  max_payload: 1.5MiB\n", "limits.max_payload", 2, "invalid size"},
		{"bool of wrong type", "handlers: {http: {enabled: maybe}}\n", "handlers.http.enabled", 1, "cannot unmarshal"},
		{"list given a string", "auth:\n  tokens: abc\n", "auth.tokens", 2, "cannot unmarshal"},
		{"scalar without value", "workers: 3\nsnapshot:\n  interval:\n", "snapshot.interval", 3, "no value"},
		{"section given a value", "snapshot: 5\n", "snapshot", 1, "mapping"},
		{"leaf given a mapping", "workers: {n: 3}\n", "workers", 1, "cannot unmarshal"},
		{"top level not a mapping", "- workers\n", "the top level", 1, "mapping"},
		{"two documents", "workers: 3\n---\nworkers: 4\n", "", 0, "one YAML document"},
		{"duplicate key", "workers: 3\nworkers: 4\n", "", 0, "already defined"},
		{"syntax error", "workers: [3\n", "", 0, "yaml"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := writeFile(t, tc.yaml)
			_, err := Load(path)
			if err == nil {
				t.Fatal("Load succeeded, want an error")
			}
			if !strings.Contains(err.Error(), tc.msg) || !strings.Contains(err.Error(), path) {
				t.Errorf("error %q does not contain %q and the path", err, tc.msg)
			}
			fes := fieldErrors(err)
			if tc.key == "" {
				return
			}
			if len(fes) != 1 || fes[0].Key != tc.key || fes[0].Line != tc.line {
				t.Errorf("error %q: FieldErrors %v, want one for key %q at line %d", err, fes, tc.key, tc.line)
			}
		})
	}
}

func TestLoadReportsEveryUnknownKey(t *testing.T) {
	_, err := Load(writeFile(t, "wokers: 1\nsnapshot:\n  kep: 2\nlog:\n  colour: true\n"))
	if got, want := keysOf(err), []string{"wokers", "snapshot.kep", "log.colour"}; !slices.Equal(got, want) {
		t.Errorf("keys in %q = %v, want %v", err, got, want)
	}
}

func TestLoadPath(t *testing.T) {
	c, err := Load("")
	if err != nil || !sameConfig(c, Default()) {
		t.Errorf(`Load("") = %+v, %v; want the defaults`, c, err)
	}
	if _, err := Load("/nonexistent/beaver.yaml"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Load(missing) = %v, want fs.ErrNotExist", err)
	}
}

// The example file documents every key with its default.
func TestExampleFileIsTheDefaults(t *testing.T) {
	const path = "../../beaver.example.yaml"
	c, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if !sameConfig(c, Default()) {
		t.Errorf("%s =\n%+v\nwant Default() =\n%+v", path, c, Default())
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	present := leafPaths(doc.Content[0], "")
	for _, k := range keys {
		if !slices.Contains(present, k.name) {
			t.Errorf("%s does not set %s", path, k.name)
		}
		if !strings.Contains(string(data), "--"+k.flag) {
			t.Errorf("%s does not mention --%s", path, k.flag)
		}
	}
}

// leafPaths lists the dotted paths of the non-mapping values below n.
func leafPaths(n *yaml.Node, prefix string) []string {
	if n.Kind != yaml.MappingNode || len(n.Content) == 0 { // {}: a value (queues: {})
		return []string{prefix}
	}
	var out []string
	for i := 0; i+1 < len(n.Content); i += 2 {
		name := n.Content[i].Value
		if prefix != "" {
			name = prefix + "." + name
		}
		out = append(out, leafPaths(n.Content[i+1], name)...)
	}
	return out
}

func TestMarshalRoundTrip(t *testing.T) {
	want := Default()
	want.Auth.Tokens = []string{"t1"}
	want.Limits.MaxPayload = 10 * MB
	want.Retry.Max = Duration(90 * time.Minute)
	data, err := yaml.Marshal(want)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Load(writeFile(t, string(data)))
	if err != nil || !sameConfig(got, want) {
		t.Errorf("Load(Marshal(c)) = %+v, %v; want %+v\n%s", got, err, want, data)
	}
}
