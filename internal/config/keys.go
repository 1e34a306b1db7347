package config

import (
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"github.com/spf13/pflag"
)

// key is one configuration key: its dotted YAML path, its flag and where it
// lives in a Config.
type key struct {
	name  string            // dotted YAML path, e.g. "snapshot.every_records"
	flag  string            // flag name without dashes, e.g. "snapshot-every-records"
	usage string            // flag help; pflag appends the default
	field func(*Config) any // pointer to the field in c
}

// keys lists every configuration key, in the order of the documentation.
// Flag names are the dotted path with "." and "_" turned into "-", except
// that handlers.* drops the "handlers-" prefix and lists use the singular
// (--auth-token, --exec-allow) because they repeat.
var keys = []key{
	{"data_dir", "data-dir", "directory for the lock file, WAL segments and snapshots", func(c *Config) any { return &c.DataDir }},
	{"listen", "listen", "host:port of the HTTP API; a non-loopback address requires --auth-token", func(c *Config) any { return &c.Listen }},
	{"metrics_listen", "metrics-listen", "host:port serving /metrics, /healthz, /readyz and pprof", func(c *Config) any { return &c.MetricsListen }},
	{"workers", "workers", "number of jobs run at once by local handlers", func(c *Config) any { return &c.Workers }},
	{"shutdown_timeout", "shutdown-timeout", "how long a graceful stop waits for running jobs", func(c *Config) any { return &c.ShutdownTimeout }},
	{"sync", "sync", "WAL durability: always (fsync before ack), interval or never", func(c *Config) any { return &c.Sync }},
	{"sync_interval", "sync-interval", "fsync period with --sync=interval", func(c *Config) any { return &c.SyncInterval }},
	{"snapshot.every_records", "snapshot-every-records", "take a snapshot after this many WAL records", func(c *Config) any { return &c.Snapshot.EveryRecords }},
	{"snapshot.every_bytes", "snapshot-every-bytes", "also take a snapshot after this many bytes of WAL records", func(c *Config) any { return &c.Snapshot.EveryBytes }},
	{"snapshot.interval", "snapshot-interval", "take a snapshot this long after the last one if anything changed", func(c *Config) any { return &c.Snapshot.Interval }},
	{"snapshot.keep", "snapshot-keep", "number of snapshot files kept", func(c *Config) any { return &c.Snapshot.Keep }},
	{"snapshot.rebase_percent", "snapshot-rebase-percent", "snapshots are deltas until they add up to this % of the full base (0: always full)", func(c *Config) any { return &c.Snapshot.RebasePercent }},
	{"snapshot.base_rate", "snapshot-base-rate", "bytes per second a new full base is written at in the background (0: unlimited)", func(c *Config) any { return &c.Snapshot.BaseRate }},
	{"wal.segment_size", "wal-segment-size", "size at which a WAL segment is closed and a new one started", func(c *Config) any { return &c.WAL.SegmentSize }},
	{"wal.reserve", "wal-reserve", "disk space kept in reserve so completions keep working when the disk is full (0: none)", func(c *Config) any { return &c.WAL.Reserve }},
	{"retention.completed", "retention-completed", "how long completed jobs are kept", func(c *Config) any { return &c.Retention.Completed }},
	{"retention.failed", "retention-failed", "how long failed jobs are kept", func(c *Config) any { return &c.Retention.Failed }},
	{"retention.canceled", "retention-canceled", "how long canceled jobs are kept", func(c *Config) any { return &c.Retention.Canceled }},
	{"retry.max_attempts", "retry-max-attempts", "attempts of a job that sets no max_attempts", func(c *Config) any { return &c.Retry.MaxAttempts }},
	{"retry.base", "retry-base", "backoff after the first failure; doubles per attempt, with jitter", func(c *Config) any { return &c.Retry.Base }},
	{"retry.max", "retry-max", "longest backoff between attempts", func(c *Config) any { return &c.Retry.Max }},
	{"defaults.queue", "defaults-queue", "queue of a job that names none", func(c *Config) any { return &c.Defaults.Queue }},
	{"defaults.timeout", "defaults-timeout", "per-attempt timeout of a job that sets none", func(c *Config) any { return &c.Defaults.Timeout }},
	{"limits.max_payload", "limits-max-payload", "largest job payload (413 beyond)", func(c *Config) any { return &c.Limits.MaxPayload }},
	{"limits.max_batch", "limits-max-batch", "most jobs in one batch enqueue or ack (413 beyond)", func(c *Config) any { return &c.Limits.MaxBatch }},
	{"limits.max_request", "limits-max-request", "largest HTTP request body (413 beyond)", func(c *Config) any { return &c.Limits.MaxRequest }},
	{"limits.max_queue_depth", "limits-max-queue-depth", "most unfinished jobs held (429 beyond)", func(c *Config) any { return &c.Limits.MaxQueueDepth }},
	{"limits.max_lease", "limits-max-lease", "most jobs one lease call may take", func(c *Config) any { return &c.Limits.MaxLease }},
	{"limits.max_wait", "limits-max-wait", "longest long-poll a lease call may ask for", func(c *Config) any { return &c.Limits.MaxWait }},
	{"limits.max_connections", "limits-max-connections", "most API connections served at once; more wait in the listen backlog", func(c *Config) any { return &c.Limits.MaxConnections }},
	{"limits.read_timeout", "limits-read-timeout", "longest time a client may take to send a request body (408 beyond)", func(c *Config) any { return &c.Limits.ReadTimeout }},
	{"limits.write_timeout", "limits-write-timeout", "longest time from a request's headers to the end of its answer (> read_timeout + max_wait)", func(c *Config) any { return &c.Limits.WriteTimeout }},
	{"auth.tokens", "auth-token", "accepted bearer token (repeatable); required when --listen is not loopback", func(c *Config) any { return &c.Auth.Tokens }},
	{"handlers.exec.enabled", "exec-enabled", "enable the exec handler (runs allow-listed commands)", func(c *Config) any { return &c.Handlers.Exec.Enabled }},
	{"handlers.exec.allow", "exec-allow", "command the exec handler may run (repeatable): an absolute path, or a bare name looked up in PATH", func(c *Config) any { return &c.Handlers.Exec.Allow }},
	{"handlers.http.enabled", "http-enabled", "enable the http handler (calls a URL)", func(c *Config) any { return &c.Handlers.HTTP.Enabled }},
	{"handlers.http.timeout", "http-timeout", "longest single request of the http handler", func(c *Config) any { return &c.Handlers.HTTP.Timeout }},
	{"handlers.http.max_result", "http-max-result", "response bytes kept as the job result (the rest is cut)", func(c *Config) any { return &c.Handlers.HTTP.MaxResult }},
	{"log.format", "log-format", "log format: text or json", func(c *Config) any { return &c.Log.Format }},
	{"log.level", "log-level", "log level: debug, info, warn or error", func(c *Config) any { return &c.Log.Level }},
	{"cluster.enabled", "cluster", "run as a member of a raft cluster (see docs/cluster.md)", func(c *Config) any { return &c.Cluster.Enabled }},
	{"cluster.node_id", "node-id", "this node's id in the cluster", func(c *Config) any { return &c.Cluster.NodeID }},
	{"cluster.raft_listen", "raft-listen", "host:port of the node-to-node port (raft and forwarded calls); non-loopback requires TLS", func(c *Config) any { return &c.Cluster.RaftListen }},
	{"cluster.raft_advertise", "raft-advertise", "address other nodes dial, if not --raft-listen", func(c *Config) any { return &c.Cluster.RaftAdvertise }},
	{"cluster.bootstrap", "bootstrap", "form the cluster of --peer if this node has no raft state (a no-op otherwise)", func(c *Config) any { return &c.Cluster.Bootstrap }},
	{"cluster.peers", "peer", "initial voter as id=host:port (repeatable, this node included)", func(c *Config) any { return &c.Cluster.Peers }},
	{"cluster.tls.cert", "cluster-tls-cert", "PEM certificate of this node for mutual TLS between nodes", func(c *Config) any { return &c.Cluster.TLS.Cert }},
	{"cluster.tls.key", "cluster-tls-key", "PEM private key of --cluster-tls-cert", func(c *Config) any { return &c.Cluster.TLS.Key }},
	{"cluster.tls.ca", "cluster-tls-ca", "PEM CA certificate that signs every node's certificate", func(c *Config) any { return &c.Cluster.TLS.CA }},
	{"cluster.heartbeat_timeout", "raft-heartbeat-timeout", "how long a follower waits for the leader's heartbeat", func(c *Config) any { return &c.Cluster.HeartbeatTimeout }},
	{"cluster.election_timeout", "raft-election-timeout", "how long a candidate waits for votes", func(c *Config) any { return &c.Cluster.ElectionTimeout }},
	{"cluster.leader_lease", "raft-leader-lease", "how long a leader leads without hearing from a quorum", func(c *Config) any { return &c.Cluster.LeaderLease }},
	{"cluster.apply_timeout", "raft-apply-timeout", "longest wait for a write to commit (503 unknown_outcome beyond)", func(c *Config) any { return &c.Cluster.ApplyTimeout }},
	{"cluster.trailing_logs", "raft-trailing-logs", "raft log entries kept after a snapshot", func(c *Config) any { return &c.Cluster.TrailingLogs }},
	{"cluster.log_store", "raft-log-store", "raft log store of a new data directory: wal or bolt (a directory with a log keeps its store)", func(c *Config) any { return &c.Cluster.LogStore }},
	{"queues", "queue", "settings of a queue, NAME:KEY=VALUE,... with paused, concurrency and rate (LIMIT/PERIOD), e.g. emails:concurrency=5,rate=100/1s (repeatable; replaces the file's queues)", func(c *Config) any { return &c.Queues }},
}

// ConfigFlag is the flag naming the YAML file. BindFlags registers it unless
// the flag set already has it.
const ConfigFlag = "config"

// BindFlags registers one flag per configuration key on fs, writing into c.
// Each flag's default is c's current value, so bind a Default() config to get
// the documented defaults in the help. It also registers --config unless fs
// already has a flag of that name.
//
// Use Resolve after fs.Parse to combine defaults, file and flags.
func BindFlags(fs *pflag.FlagSet, c *Config) {
	if fs.Lookup(ConfigFlag) == nil {
		fs.String(ConfigFlag, "", "YAML configuration `file`; flags override its values")
	}
	for i := range keys {
		k := &keys[i]
		f := fs.VarPF(&flagValue{key: k, cfg: c}, k.flag, "", k.usage)
		if _, ok := k.field(c).(*bool); ok {
			f.NoOptDefVal = "true"
		}
	}
}

// Resolve builds the configuration of a command line: the defaults, then the
// YAML file named by --config (if fs has that flag and it is set), then every
// flag the user set on the command line, then Validate. fs must have been
// bound with BindFlags and parsed.
func Resolve(fs *pflag.FlagSet) (Config, error) {
	var path string
	if f := fs.Lookup(ConfigFlag); f != nil {
		path = f.Value.String()
	}
	c, err := Load(path)
	if err != nil {
		return Config{}, err
	}
	fs.Visit(func(f *pflag.Flag) {
		if v, ok := f.Value.(*flagValue); ok {
			v.copyTo(&c)
		}
	})
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// flagValue is the pflag.Value of one key, bound to one Config.
type flagValue struct {
	key *key
	cfg *Config
	set bool // a list flag replaces the default on its first use, then appends
}

func (v *flagValue) Set(s string) error {
	switch p := v.key.field(v.cfg).(type) {
	case pflag.Value:
		if err := p.Set(s); err != nil {
			return err
		}
	case *[]string:
		if !v.set {
			*p = nil
		}
		*p = append(*p, s)
	case *int:
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil {
			return fmt.Errorf("invalid integer %q", s)
		}
		*p = n
	case *bool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return fmt.Errorf("invalid boolean %q: want true or false", s)
		}
		*p = b
	default: // string kinds (string, SyncMode)
		reflect.ValueOf(p).Elem().SetString(s)
	}
	v.set = true
	return nil
}

func (v *flagValue) String() string {
	if v.cfg == nil { // pflag may call String on a zero Value
		return ""
	}
	switch p := v.key.field(v.cfg).(type) {
	case *[]string:
		if len(*p) == 0 {
			return "" // no "(default [])" in the help
		}
		return "[" + strings.Join(*p, ",") + "]"
	default:
		return fmt.Sprint(reflect.ValueOf(p).Elem().Interface())
	}
}

func (v *flagValue) Type() string {
	switch p := v.key.field(&Config{}).(type) {
	case pflag.Value:
		return p.Type()
	case *[]string:
		return "stringArray"
	default:
		return reflect.TypeOf(p).Elem().Kind().String()
	}
}

// copyTo copies the flag's value into the same key of dst.
func (v *flagValue) copyTo(dst *Config) {
	src := reflect.ValueOf(v.key.field(v.cfg)).Elem()
	if list, ok := src.Interface().([]string); ok {
		src = reflect.ValueOf(slices.Clone(list))
	}
	reflect.ValueOf(v.key.field(dst)).Elem().Set(src)
}
