package config

import (
	"slices"
	"strings"
	"testing"
	"time"
)

func TestDefaultIsValid(t *testing.T) {
	c := Default()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestValidateNamesTheKey(t *testing.T) {
	for _, tc := range []struct {
		key    string
		mutate func(*Config)
		msg    string
	}{
		{"data_dir", func(c *Config) { c.DataDir = "" }, "must not be empty"},
		{"listen", func(c *Config) { c.Listen = "7070" }, "host:port"},
		{"listen", func(c *Config) { c.Listen = "127.0.0.1:http" }, "port"},
		{"listen", func(c *Config) { c.Listen = "127.0.0.1:70000" }, "port"},
		{"metrics_listen", func(c *Config) { c.MetricsListen = "localhost" }, "host:port"},
		{"metrics_listen", func(c *Config) { c.MetricsListen = c.Listen }, "must differ"},
		{"workers", func(c *Config) { c.Workers = 0 }, "must be >= 1"},
		{"shutdown_timeout", func(c *Config) { c.ShutdownTimeout = 0 }, "> 0"},
		{"sync", func(c *Config) { c.Sync = "sometimes" }, "must be one of always, interval, never"},
		{"sync", func(c *Config) { c.Sync = "" }, "must be one of"},
		{"sync_interval", func(c *Config) { c.SyncInterval = Duration(-time.Millisecond) }, "> 0"},
		{"snapshot.every_records", func(c *Config) { c.Snapshot.EveryRecords = 0 }, ">= 1"},
		{"snapshot.interval", func(c *Config) { c.Snapshot.Interval = 0 }, "> 0"},
		{"snapshot.keep", func(c *Config) { c.Snapshot.Keep = 0 }, ">= 1"},
		{"snapshot.rebase_percent", func(c *Config) { c.Snapshot.RebasePercent = -1 }, "between 0 and 1000"},
		{"snapshot.base_rate", func(c *Config) { c.Snapshot.BaseRate = -1 }, "must not be negative"},
		{"wal.segment_size", func(c *Config) { c.WAL.SegmentSize = 4 * KiB }, "at least 64KiB"},
		{"retention.completed", func(c *Config) { c.Retention.Completed = 0 }, "> 0"},
		{"retention.failed", func(c *Config) { c.Retention.Failed = -1 }, "> 0"},
		{"retention.canceled", func(c *Config) { c.Retention.Canceled = 0 }, "> 0"},
		{"retry.max_attempts", func(c *Config) { c.Retry.MaxAttempts = 0 }, ">= 1"},
		{"retry.base", func(c *Config) { c.Retry.Base = 0 }, "> 0"},
		{"retry.max", func(c *Config) { c.Retry.Max = Duration(time.Millisecond) }, ">= retry.base"},
		{"defaults.queue", func(c *Config) { c.Defaults.Queue = "no spaces" }, "[a-zA-Z0-9_.-]"},
		{"defaults.queue", func(c *Config) { c.Defaults.Queue = strings.Repeat("q", 129) }, "1 to 128"},
		{"defaults.timeout", func(c *Config) { c.Defaults.Timeout = 0 }, "> 0"},
		{"limits.max_payload", func(c *Config) { c.Limits.MaxPayload = 0 }, "> 0"},
		{"limits.max_batch", func(c *Config) { c.Limits.MaxBatch = 0 }, ">= 1"},
		{"limits.max_request", func(c *Config) { c.Limits.MaxRequest = 512 * KiB }, ">= limits.max_payload"},
		{"limits.max_queue_depth", func(c *Config) { c.Limits.MaxQueueDepth = -1 }, ">= 1"},
		{"limits.max_lease", func(c *Config) { c.Limits.MaxLease = 0 }, ">= 1"},
		{"limits.max_wait", func(c *Config) { c.Limits.MaxWait = 0 }, "> 0"},
		{"limits.max_batch", func(c *Config) { c.Limits.MaxBatch = 1<<20 + 1 }, "<= 1048576"},
		{"limits.max_connections", func(c *Config) { c.Limits.MaxConnections = 0 }, ">= 1"},
		{"limits.read_timeout", func(c *Config) { c.Limits.ReadTimeout = 0 }, "> 0"},
		{"limits.write_timeout", func(c *Config) { c.Limits.WriteTimeout = Duration(90 * time.Second) }, "> limits.read_timeout + limits.max_wait (1m30s)"},
		{"limits.write_timeout", func(c *Config) { c.Limits.MaxWait = Duration(5 * time.Minute) }, "long polls cannot answer"},
		{"auth.tokens", func(c *Config) { c.Auth.Tokens = []string{""} }, "empty"},
		{"auth.tokens", func(c *Config) { c.Auth.Tokens = []string{"a b"} }, "spaces"},
		{"handlers.exec.allow", func(c *Config) { c.Handlers.Exec.Enabled = true }, "at least one command"},
		{"handlers.exec.allow", func(c *Config) { c.Handlers.Exec.Allow = []string{"bin/sh"} }, "absolute"},
		{"handlers.exec.allow", func(c *Config) { c.Handlers.Exec.Allow = []string{"/bin/../bin/sh"} }, "clean"},
		{"handlers.exec.allow", func(c *Config) { c.Handlers.Exec.Allow = []string{""} }, "bare command"},
		{"handlers.http.timeout", func(c *Config) { c.Handlers.HTTP.Timeout = 0 }, "> 0"},
		{"handlers.http.max_result", func(c *Config) { c.Handlers.HTTP.MaxResult = 0 }, "> 0"},
		{"log.format", func(c *Config) { c.Log.Format = "xml" }, "text, json"},
		{"log.level", func(c *Config) { c.Log.Level = "verbose" }, "debug, info, warn, error"},
	} {
		t.Run(tc.key, func(t *testing.T) {
			c := Default()
			tc.mutate(&c)
			before := c
			err := c.Validate()
			fes := fieldErrors(err)
			if len(fes) != 1 || fes[0].Key != tc.key {
				t.Fatalf("Validate() = %v; want exactly one error for %s", err, tc.key)
			}
			if !strings.HasPrefix(err.Error(), tc.key+": ") || !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("Validate() = %q; want %q and %q", err, tc.key+": ", tc.msg)
			}
			if !sameConfig(c, before) {
				t.Errorf("Validate changed the config")
			}
		})
	}
}

func TestValidateReportsEveryProblem(t *testing.T) {
	c := Default()
	c.Workers, c.Sync, c.Retry.Base = 0, "x", 0
	want := []string{"workers", "sync", "retry.base"}
	if got := keysOf(c.Validate()); !slices.Equal(got, want) {
		t.Errorf("Validate named %v, want %v", got, want)
	}
}

func TestNonLoopbackListenNeedsToken(t *testing.T) {
	for _, tc := range []struct {
		listen   string
		loopback bool
	}{
		{"127.0.0.1:7070", true},
		{"127.3.2.1:7070", true},
		{"[::1]:7070", true},
		{"localhost:7070", true},
		{"LOCALHOST:0", true},
		{"[::ffff:127.0.0.1]:7070", true},
		{"0.0.0.0:7070", false},
		{":7070", false},
		{"[::]:7070", false},
		{"192.168.1.5:7070", false},
		{"10.0.0.1:7070", false},
		{"example.com:7070", false},
		{"localhost.example.com:7070", false},
	} {
		t.Run(tc.listen, func(t *testing.T) {
			c := Default()
			c.Listen = tc.listen
			err := c.Validate()
			if tc.loopback {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil on a loopback address", err)
				}
				return
			}
			if got := keysOf(err); !slices.Equal(got, []string{"auth.tokens"}) || !strings.Contains(err.Error(), "token is required") {
				t.Fatalf("Validate() = %v, want an auth.tokens error saying a token is required", err)
			}
			c.Auth.Tokens = []string{"s3cret"}
			if err := c.Validate(); err != nil {
				t.Fatalf("with a token: Validate() = %v, want nil", err)
			}
		})
	}
}

func TestValidateCluster(t *testing.T) {
	good := func() Config {
		c := Default()
		c.Cluster.Enabled, c.Cluster.NodeID, c.Cluster.RaftListen = true, "n1", "127.0.0.1:7101"
		c.Cluster.Bootstrap = true
		c.Cluster.Peers = []string{"n1=127.0.0.1:7101", "n2=127.0.0.1:7102"}
		return c
	}
	if c := good(); c.Validate() != nil {
		t.Fatalf("valid cluster config refused: %v", c.Validate())
	}
	for _, tc := range []struct {
		key    string
		mutate func(*Config)
		msg    string
	}{
		{"cluster.node_id", func(c *Config) { c.Cluster.NodeID = "" }, "--node-id"},
		{"cluster.node_id", func(c *Config) { c.Cluster.NodeID = "a b" }, "[a-zA-Z0-9_.-]"},
		{"cluster.raft_listen", func(c *Config) { c.Cluster.RaftListen = "7101" }, "host:port"},
		{"cluster.raft_listen", func(c *Config) { c.Cluster.RaftListen = c.Listen }, "must differ"},
		{"cluster.peers", func(c *Config) { c.Cluster.Peers = []string{"n1"} }, "id=host:port"},
		{"cluster.peers", func(c *Config) { c.Cluster.Peers = append(c.Cluster.Peers, "n2=127.0.0.1:7109") }, "twice"},
		{"cluster.peers", func(c *Config) { c.Cluster.Peers = []string{"n2=127.0.0.1:7102"} }, "must list this node"},
		{"cluster.tls", func(c *Config) { c.Cluster.RaftListen = "0.0.0.0:7101" }, "is required"},
		{"cluster.tls", func(c *Config) { c.Cluster.TLS.Cert = "/x.pem" }, "needs all of"},
		{"cluster.leader_lease", func(c *Config) { c.Cluster.LeaderLease = Duration(time.Minute) }, "<= cluster.heartbeat_timeout"},
		{"cluster.apply_timeout", func(c *Config) { c.Cluster.ApplyTimeout = 0 }, "> 0"},
		{"cluster.log_store", func(c *Config) { c.Cluster.LogStore = "raft-wal" }, "must be one of wal, bolt"},
		{"cluster.log_store", func(c *Config) { c.Cluster.LogStore = "" }, "must be one of wal, bolt"},
	} {
		c := good()
		tc.mutate(&c)
		err := c.Validate()
		if err == nil || !slices.Contains(keysOf(err), tc.key) || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%s: Validate() = %v, want an error for %s containing %q", tc.key, err, tc.key, tc.msg)
		}
	}
	// off: the cluster keys are not read
	c := Default()
	c.Cluster.NodeID = "a b"
	if err := c.Validate(); err != nil {
		t.Errorf("cluster keys checked while cluster.enabled is false: %v", err)
	}
}
