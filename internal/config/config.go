// Package config is the server's configuration: a documented struct with
// defaults, a strict YAML loader, one command-line flag per key, and
// Validate, which names every bad value instead of fixing it.
//
// The order of precedence is defaults, then the YAML file (--config), then
// the flags the user actually set. Resolve does all three and validates.
//
// Every key of the YAML file is listed once, in the key table (keys.go). The
// YAML checker, the flags and the documentation test all read that table, so
// a key added to Config must be added there too (a test enforces it).
package config

import "time"

// Defaults of every key. Default returns a Config holding exactly these.
const (
	DataDirDefault         = "./data"
	ListenDefault          = "127.0.0.1:7070"
	MetricsListenDefault   = "127.0.0.1:9090"
	WorkersDefault         = 8
	ShutdownTimeoutDefault = 30 * time.Second
	SyncDefault            = SyncAlways
	SyncIntervalDefault    = 10 * time.Millisecond

	SnapshotEveryRecordsDefault  = 100_000
	SnapshotEveryBytesDefault    = 64 * MiB
	SnapshotIntervalDefault      = 5 * time.Minute
	SnapshotKeepDefault          = 2
	SnapshotRebasePercentDefault = 50
	SnapshotBaseRateDefault      = 64 * MiB

	WALSegmentSizeDefault = 64 * MiB
	WALReserveDefault     = 64 * MiB

	RetentionCompletedDefault = 24 * time.Hour
	RetentionFailedDefault    = 168 * time.Hour
	RetentionCanceledDefault  = 168 * time.Hour

	RetryMaxAttemptsDefault = 25
	RetryBaseDefault        = time.Second
	RetryMaxDefault         = time.Hour

	DefaultQueueDefault   = "default"
	DefaultTimeoutDefault = 30 * time.Second

	MaxPayloadDefault     = 1 * MiB
	MaxBatchDefault       = 10_000
	MaxRequestDefault     = 64 * MiB
	MaxQueueDepthDefault  = 10_000_000
	MaxLeaseDefault       = 1000
	MaxWaitDefault        = 60 * time.Second
	MaxConnectionsDefault = 10_000
	ReadTimeoutDefault    = 30 * time.Second
	WriteTimeoutDefault   = 2 * time.Minute

	ExecEnabledDefault   = false
	HTTPEnabledDefault   = true
	HTTPTimeoutDefault   = 30 * time.Second
	HTTPMaxResultDefault = 64 * KiB

	LogFormatDefault = LogText
	LogLevelDefault  = "info"

	ClusterRaftListenDefault       = "127.0.0.1:7000"
	ClusterHeartbeatTimeoutDefault = 500 * time.Millisecond
	ClusterElectionTimeoutDefault  = 500 * time.Millisecond
	ClusterLeaderLeaseDefault      = 250 * time.Millisecond
	ClusterApplyTimeoutDefault     = 10 * time.Second
	ClusterTrailingLogsDefault     = 10_240
	ClusterLogStoreDefault         = LogStoreWAL
)

// Raft log stores (cluster.log_store).
const (
	// LogStoreWAL keeps raft's log in Beaver-Raft's own WAL segments
	// (raft/log/): one fdatasync per batch, shared by concurrent writes.
	LogStoreWAL = "wal"
	// LogStoreBolt keeps raft's log in raft-boltdb (raft/raft.db): two
	// fdatasyncs per batch.
	LogStoreBolt = "bolt"
)

// SyncMode says when the WAL is fsynced.
type SyncMode string

const (
	// SyncAlways acknowledges a write only after fdatasync returned (group
	// commit). No acknowledged write is ever lost.
	SyncAlways SyncMode = "always"
	// SyncInterval acknowledges at once and fsyncs every sync_interval: a
	// crash of the machine (not of the process) loses up to that window.
	SyncInterval SyncMode = "interval"
	// SyncNever leaves flushing to the operating system: a power loss can
	// lose any write not yet written back (typically up to ~30s).
	SyncNever SyncMode = "never"
)

// Log formats.
const (
	LogText = "text"
	LogJSON = "json"
)

// Config is the whole server configuration. The zero value is not valid;
// start from Default or Load.
type Config struct {
	// DataDir holds the lock file, wal/ and snapshots/.
	DataDir string `yaml:"data_dir"`
	// Listen is the host:port of the HTTP API. A non-loopback address
	// requires at least one auth token.
	Listen string `yaml:"listen"`
	// MetricsListen is the host:port serving /metrics, /healthz, /readyz
	// and pprof.
	MetricsListen string `yaml:"metrics_listen"`
	// Workers is the number of jobs this node runs at once with its local
	// handlers.
	Workers int `yaml:"workers"`
	// ShutdownTimeout is how long a graceful stop waits for running jobs
	// before abandoning them (they run again after restart).
	ShutdownTimeout Duration `yaml:"shutdown_timeout"`
	// Sync is the WAL durability mode: always, interval or never.
	Sync SyncMode `yaml:"sync"`
	// SyncInterval is the fsync period with Sync == SyncInterval.
	SyncInterval Duration `yaml:"sync_interval"`

	Snapshot  SnapshotConfig  `yaml:"snapshot"`
	WAL       WALConfig       `yaml:"wal"`
	Retention RetentionConfig `yaml:"retention"`
	Retry     RetryConfig     `yaml:"retry"`
	Defaults  DefaultsConfig  `yaml:"defaults"`
	Limits    LimitsConfig    `yaml:"limits"`
	Auth      AuthConfig      `yaml:"auth"`
	Handlers  HandlersConfig  `yaml:"handlers"`
	Log       LogConfig       `yaml:"log"`
	Cluster   ClusterConfig   `yaml:"cluster"`

	// Periodic are schedules of periodic jobs, by name (periodic.go). It is
	// a table of records, not a key: it has no flag.
	Periodic map[string]PeriodicConfig `yaml:"periodic,omitempty"`
	// Queues are settings of named queues (pause, limits), proposed at
	// start (queues.go).
	Queues QueuesConfig `yaml:"queues"`
}

// ClusterConfig turns the node into a member of a replicated cluster
// (hashicorp/raft). docs/cluster.md walks through it.
type ClusterConfig struct {
	// Enabled runs the node in cluster mode: the state machine is driven by
	// raft instead of the single-node WAL.
	Enabled bool `yaml:"enabled"`
	// NodeID names this node in the cluster; it never changes.
	NodeID string `yaml:"node_id"`
	// RaftListen is the host:port of the node-to-node port (raft and the
	// forwarded API calls). A non-loopback address requires tls.
	RaftListen string `yaml:"raft_listen"`
	// RaftAdvertise is the address other nodes dial, when it differs from
	// RaftListen (e.g. RaftListen 0.0.0.0:7000).
	RaftAdvertise string `yaml:"raft_advertise"`
	// Bootstrap makes a node with no raft state form the cluster of Peers.
	// On a node that has state already it does nothing.
	Bootstrap bool `yaml:"bootstrap"`
	// Peers lists the initial voters as "id=host:port" (this node too).
	Peers []string `yaml:"peers"`
	// TLS is mutual TLS on the node-to-node port.
	TLS ClusterTLSConfig `yaml:"tls"`
	// HeartbeatTimeout and ElectionTimeout bound how long a follower waits
	// for the leader before it starts an election; LeaderLease how long a
	// leader keeps leading without hearing from a quorum. They set how fast
	// a failover is (see docs/cluster.md).
	HeartbeatTimeout Duration `yaml:"heartbeat_timeout"`
	ElectionTimeout  Duration `yaml:"election_timeout"`
	LeaderLease      Duration `yaml:"leader_lease"`
	// ApplyTimeout bounds the wait for a write to commit; past it the answer
	// is 503 unknown_outcome.
	ApplyTimeout Duration `yaml:"apply_timeout"`
	// TrailingLogs is the number of raft log entries kept after a snapshot,
	// so a follower that lags by less catches up without a snapshot.
	TrailingLogs int `yaml:"trailing_logs"`
	// LogStore is where a new data directory keeps raft's log and stable
	// store: wal (Beaver-Raft's WAL segments, the default) or bolt
	// (raft-boltdb). A data directory that holds a log keeps its store
	// whatever this says (docs/cluster.md).
	LogStore string `yaml:"log_store"`
}

// ClusterTLSConfig names the PEM files of mutual TLS between nodes: this
// node's certificate and key, and the CA that signs every node's
// certificate.
type ClusterTLSConfig struct {
	Cert string `yaml:"cert"`
	Key  string `yaml:"key"`
	CA   string `yaml:"ca"`
}

// Enabled reports whether TLS is configured.
func (t ClusterTLSConfig) Enabled() bool { return t.Cert != "" || t.Key != "" || t.CA != "" }

// SnapshotConfig says when snapshots are taken and how many are kept. A
// snapshot is taken when either trigger fires.
type SnapshotConfig struct {
	// EveryRecords takes a snapshot after this many WAL records.
	EveryRecords int `yaml:"every_records"`
	// EveryBytes also takes a snapshot once this many bytes were logged
	// since the last one, so batch enqueues bound restart time too.
	EveryBytes ByteSize `yaml:"every_bytes"`
	// Interval takes a snapshot this long after the last one if any record
	// was written since.
	Interval Duration `yaml:"interval"`
	// Keep is the number of snapshot files kept (the newest ones).
	Keep int `yaml:"keep"`
	// RebasePercent: snapshots after the first are deltas (the jobs changed
	// since the previous one) until the deltas of the chain add up to this
	// percentage of its full base; the next one then also writes a new
	// full base. 0 writes every snapshot full.
	RebasePercent int `yaml:"rebase_percent"`
	// BaseRate limits how fast a new full base is written in the
	// background, in bytes per second (0: unlimited).
	BaseRate ByteSize `yaml:"base_rate"`
}

// WALConfig shapes the write-ahead log.
type WALConfig struct {
	// SegmentSize is the size at which a WAL segment is closed and a new
	// one started.
	SegmentSize ByteSize `yaml:"segment_size"`
	// Reserve is disk space the WAL keeps allocated in wal/reserve: when the
	// disk fills up it is released so completions, leases and cancels keep
	// working while enqueues answer 507. 0 keeps no reserve.
	Reserve ByteSize `yaml:"reserve"`
}

// RetentionConfig is how long finished jobs are kept, by final state,
// counted from their finish time. They are purged afterwards.
type RetentionConfig struct {
	Completed Duration `yaml:"completed"`
	Failed    Duration `yaml:"failed"`
	Canceled  Duration `yaml:"canceled"`
}

// RetryConfig is the retry policy of failed attempts.
type RetryConfig struct {
	// MaxAttempts is the default number of attempts of a job that does not
	// set max_attempts.
	MaxAttempts int `yaml:"max_attempts"`
	// Base is the backoff after the first failure; it doubles per attempt
	// (with jitter) up to Max.
	Base Duration `yaml:"base"`
	// Max caps the backoff.
	Max Duration `yaml:"max"`
}

// DefaultsConfig holds the values of job fields an enqueue leaves out.
type DefaultsConfig struct {
	// Queue is the queue of a job that names none.
	Queue string `yaml:"queue"`
	// Timeout is the per-attempt timeout of a job that sets none.
	Timeout Duration `yaml:"timeout"`
}

// LimitsConfig bounds what clients may ask for. Exceeding a limit is a
// clear error (413, 429 or 507), never an out-of-memory crash.
type LimitsConfig struct {
	// MaxPayload is the largest job payload (413).
	MaxPayload ByteSize `yaml:"max_payload"`
	// MaxBatch is the most jobs in one batch enqueue or ack (413).
	MaxBatch int `yaml:"max_batch"`
	// MaxRequest is the largest HTTP request body (413).
	MaxRequest ByteSize `yaml:"max_request"`
	// MaxQueueDepth is the most unfinished jobs the server holds (429).
	MaxQueueDepth int `yaml:"max_queue_depth"`
	// MaxLease is the most jobs one lease call may take.
	MaxLease int `yaml:"max_lease"`
	// MaxWait is the longest long-poll a lease call may ask for.
	MaxWait Duration `yaml:"max_wait"`
	// MaxConnections is the most API connections served at once; more
	// wait in the listen backlog until one closes.
	MaxConnections int `yaml:"max_connections"`
	// ReadTimeout bounds the time a client takes to send a request body
	// (408 beyond), and its headers too when it is under 10s.
	ReadTimeout Duration `yaml:"read_timeout"`
	// WriteTimeout bounds the time from the end of a request's headers to
	// the end of its answer. It must exceed ReadTimeout + MaxWait, so that a
	// long poll can answer.
	WriteTimeout Duration `yaml:"write_timeout"`
}

// AuthConfig is API authentication.
type AuthConfig struct {
	// Tokens are the accepted bearer tokens. With any token set, every /v1
	// call needs "Authorization: Bearer <token>". Required when Listen is
	// not a loopback address.
	Tokens []string `yaml:"tokens"`
}

// HandlersConfig configures the built-in job handlers.
type HandlersConfig struct {
	Exec ExecConfig `yaml:"exec"`
	HTTP HTTPConfig `yaml:"http"`
}

// ExecConfig configures the exec handler, which runs allow-listed commands.
// It is off by default.
type ExecConfig struct {
	Enabled bool `yaml:"enabled"`
	// Allow lists the commands a job may run. An absolute path allows that
	// exact argv[0]; a bare name (no slash) allows exactly that argv[0],
	// looked up in the server's PATH.
	Allow []string `yaml:"allow"`
}

// HTTPConfig configures the http handler, which calls a URL.
type HTTPConfig struct {
	Enabled bool `yaml:"enabled"`
	// Timeout caps one request, whatever the job's own timeout.
	Timeout Duration `yaml:"timeout"`
	// MaxResult is how much of a response body is kept as the job result;
	// the rest is cut off.
	MaxResult ByteSize `yaml:"max_result"`
}

// LogConfig configures the server's log.
type LogConfig struct {
	// Format is text or json.
	Format string `yaml:"format"`
	// Level is debug, info, warn or error.
	Level string `yaml:"level"`
}

// Default returns the configuration used when neither file nor flags say
// otherwise. It is valid.
func Default() Config {
	return Config{
		DataDir:         DataDirDefault,
		Listen:          ListenDefault,
		MetricsListen:   MetricsListenDefault,
		Workers:         WorkersDefault,
		ShutdownTimeout: Duration(ShutdownTimeoutDefault),
		Sync:            SyncDefault,
		SyncInterval:    Duration(SyncIntervalDefault),
		Snapshot: SnapshotConfig{
			EveryRecords:  SnapshotEveryRecordsDefault,
			EveryBytes:    SnapshotEveryBytesDefault,
			Interval:      Duration(SnapshotIntervalDefault),
			Keep:          SnapshotKeepDefault,
			RebasePercent: SnapshotRebasePercentDefault,
			BaseRate:      SnapshotBaseRateDefault,
		},
		WAL: WALConfig{SegmentSize: WALSegmentSizeDefault, Reserve: WALReserveDefault},
		Retention: RetentionConfig{
			Completed: Duration(RetentionCompletedDefault),
			Failed:    Duration(RetentionFailedDefault),
			Canceled:  Duration(RetentionCanceledDefault),
		},
		Retry: RetryConfig{
			MaxAttempts: RetryMaxAttemptsDefault,
			Base:        Duration(RetryBaseDefault),
			Max:         Duration(RetryMaxDefault),
		},
		Defaults: DefaultsConfig{
			Queue:   DefaultQueueDefault,
			Timeout: Duration(DefaultTimeoutDefault),
		},
		Limits: LimitsConfig{
			MaxPayload:     MaxPayloadDefault,
			MaxBatch:       MaxBatchDefault,
			MaxRequest:     MaxRequestDefault,
			MaxQueueDepth:  MaxQueueDepthDefault,
			MaxLease:       MaxLeaseDefault,
			MaxWait:        Duration(MaxWaitDefault),
			MaxConnections: MaxConnectionsDefault,
			ReadTimeout:    Duration(ReadTimeoutDefault),
			WriteTimeout:   Duration(WriteTimeoutDefault),
		},
		Handlers: HandlersConfig{
			Exec: ExecConfig{Enabled: ExecEnabledDefault},
			HTTP: HTTPConfig{
				Enabled:   HTTPEnabledDefault,
				Timeout:   Duration(HTTPTimeoutDefault),
				MaxResult: HTTPMaxResultDefault,
			},
		},
		Log: LogConfig{Format: LogFormatDefault, Level: LogLevelDefault},
		Cluster: ClusterConfig{
			RaftListen:       ClusterRaftListenDefault,
			HeartbeatTimeout: Duration(ClusterHeartbeatTimeoutDefault),
			ElectionTimeout:  Duration(ClusterElectionTimeoutDefault),
			LeaderLease:      Duration(ClusterLeaderLeaseDefault),
			ApplyTimeout:     Duration(ClusterApplyTimeoutDefault),
			TrailingLogs:     ClusterTrailingLogsDefault,
			LogStore:         ClusterLogStoreDefault,
		},
	}
}
