package config

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"unicode"

	"github.com/beaver-raft/beaver-raft/internal/fsm"
)

// queueName is the syntax of a queue name (DESIGN section 2).
var queueName = regexp.MustCompile(`^[a-zA-Z0-9_.-]{1,128}$`)

// minSegmentSize is the smallest WAL segment accepted.
const minSegmentSize = 64 * KiB

// Validate reports every bad value of c, each as a *FieldError naming its
// key, joined with errors.Join. It changes nothing: a bad value is an error,
// never silently replaced.
//
// Besides each value's own range, it enforces the secure default: a listen
// address that is not loopback (127.0.0.0/8, ::1, localhost) requires at
// least one auth token.
func (c *Config) Validate() error {
	var v validator
	v.notEmpty("data_dir", c.DataDir)
	listenOK := v.hostPort("listen", c.Listen)
	v.hostPort("metrics_listen", c.MetricsListen)
	if c.MetricsListen == c.Listen && !strings.HasSuffix(c.Listen, ":0") {
		v.fail("metrics_listen", "must differ from listen (%s)", c.Listen)
	}
	v.atLeast("workers", c.Workers, 1)
	v.positive("shutdown_timeout", c.ShutdownTimeout)
	v.oneOf("sync", string(c.Sync), string(SyncAlways), string(SyncInterval), string(SyncNever))
	v.positive("sync_interval", c.SyncInterval)

	v.atLeast("snapshot.every_records", c.Snapshot.EveryRecords, 1)
	if c.Snapshot.EveryBytes < 64*KiB {
		v.fail("snapshot.every_bytes", "must be at least 64KiB, got %s", c.Snapshot.EveryBytes)
	}
	v.positive("snapshot.interval", c.Snapshot.Interval)
	v.atLeast("snapshot.keep", c.Snapshot.Keep, 1)
	if c.Snapshot.RebasePercent < 0 || c.Snapshot.RebasePercent > 1000 {
		v.fail("snapshot.rebase_percent", "must be between 0 and 1000, got %d", c.Snapshot.RebasePercent)
	}
	if c.Snapshot.BaseRate < 0 {
		v.fail("snapshot.base_rate", "must not be negative, got %s", c.Snapshot.BaseRate)
	}
	if c.WAL.SegmentSize < minSegmentSize {
		v.fail("wal.segment_size", "must be at least %s, got %s", minSegmentSize, c.WAL.SegmentSize)
	}

	v.positive("retention.completed", c.Retention.Completed)
	v.positive("retention.failed", c.Retention.Failed)
	v.positive("retention.canceled", c.Retention.Canceled)

	v.atLeast("retry.max_attempts", c.Retry.MaxAttempts, 1)
	v.positive("retry.base", c.Retry.Base)
	v.positive("retry.max", c.Retry.Max)
	if c.Retry.Base > 0 && c.Retry.Max < c.Retry.Base {
		v.fail("retry.max", "must be >= retry.base (%s), got %s", c.Retry.Base, c.Retry.Max)
	}

	if !queueName.MatchString(c.Defaults.Queue) {
		v.fail("defaults.queue", "must be 1 to 128 of [a-zA-Z0-9_.-], got %q", c.Defaults.Queue)
	}
	v.positive("defaults.timeout", c.Defaults.Timeout)

	v.positiveSize("limits.max_payload", c.Limits.MaxPayload)
	v.atLeast("limits.max_batch", c.Limits.MaxBatch, 1)
	if c.Limits.MaxBatch > fsm.MaxDecodeItems {
		// A log record of more items would not be read back.
		v.fail("limits.max_batch", "must be <= %d, got %d", fsm.MaxDecodeItems, c.Limits.MaxBatch)
	}
	if c.Limits.MaxRequest < c.Limits.MaxPayload {
		v.fail("limits.max_request", "must be >= limits.max_payload (%s), got %s", c.Limits.MaxPayload, c.Limits.MaxRequest)
	}
	v.atLeast("limits.max_queue_depth", c.Limits.MaxQueueDepth, 1)
	v.atLeast("limits.max_lease", c.Limits.MaxLease, 1)
	v.positive("limits.max_wait", c.Limits.MaxWait)
	v.atLeast("limits.max_connections", c.Limits.MaxConnections, 1)
	v.positive("limits.read_timeout", c.Limits.ReadTimeout)
	if least := c.Limits.ReadTimeout + c.Limits.MaxWait; c.Limits.WriteTimeout <= least {
		v.fail("limits.write_timeout", "must be > limits.read_timeout + limits.max_wait (%s), or long polls cannot answer; got %s", least, c.Limits.WriteTimeout)
	}

	for i, t := range c.Auth.Tokens {
		if t == "" || strings.ContainsFunc(t, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) {
			v.fail("auth.tokens", "token %d is empty or contains spaces or control characters", i+1)
		}
	}
	if listenOK && len(c.Auth.Tokens) == 0 && !isLoopback(c.Listen) {
		v.fail("auth.tokens", "at least one token is required because listen (%s) is not a loopback address: "+
			"set auth.tokens (--auth-token), or listen on 127.0.0.1", c.Listen)
	}

	for _, a := range c.Handlers.Exec.Allow {
		if a == "" || strings.Contains(a, "/") && (!filepath.IsAbs(a) || filepath.Clean(a) != a) {
			v.fail("handlers.exec.allow", "entry %q must be an absolute, clean path or a bare command name", a)
		}
	}
	if c.Handlers.Exec.Enabled && len(c.Handlers.Exec.Allow) == 0 {
		v.fail("handlers.exec.allow", "must list at least one command when handlers.exec.enabled is true")
	}
	v.positive("handlers.http.timeout", c.Handlers.HTTP.Timeout)
	v.positiveSize("handlers.http.max_result", c.Handlers.HTTP.MaxResult)

	v.oneOf("log.format", c.Log.Format, LogText, LogJSON)
	v.oneOf("log.level", c.Log.Level, "debug", "info", "warn", "error")
	if c.Cluster.Enabled {
		c.validateCluster(&v)
	}
	c.validatePeriodic(&v)
	c.validateQueues(&v)
	return errors.Join(v.errs...)
}

// isLoopback reports whether the host of hostport is localhost or a loopback
// IP address. An empty host (all interfaces) is not loopback.
func isLoopback(hostport string) bool {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Unmap().IsLoopback()
}

// validator collects the problems found by Validate.
type validator struct{ errs []error }

func (v *validator) fail(key, format string, args ...any) {
	v.errs = append(v.errs, &FieldError{Key: key, Problem: fmt.Sprintf(format, args...)})
}

func (v *validator) notEmpty(key, s string) {
	if s == "" {
		v.fail(key, "must not be empty")
	}
}

func (v *validator) atLeast(key string, n, least int) {
	if n < least {
		v.fail(key, "must be >= %d, got %d", least, n)
	}
}

func (v *validator) positive(key string, d Duration) {
	if d <= 0 {
		v.fail(key, "must be a duration > 0, got %s", d)
	}
}

func (v *validator) positiveSize(key string, b ByteSize) {
	if b <= 0 {
		v.fail(key, "must be a size > 0, got %s", b)
	}
}

func (v *validator) oneOf(key, s string, allowed ...string) {
	for _, a := range allowed {
		if s == a {
			return
		}
	}
	v.fail(key, "must be one of %s, got %q", strings.Join(allowed, ", "), s)
}

// hostPort checks that s is host:port with a numeric port and reports
// whether it is.
func (v *validator) hostPort(key, s string) bool {
	_, port, err := net.SplitHostPort(s)
	if err != nil {
		v.fail(key, "must be host:port (like 127.0.0.1:7070), got %q", s)
		return false
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		v.fail(key, "port must be a number from 0 to 65535, got %q", port)
		return false
	}
	return true
}

// validateCluster checks the cluster keys (only with cluster.enabled).
func (c *Config) validateCluster(v *validator) {
	cl := &c.Cluster
	if !nodeID.MatchString(cl.NodeID) {
		v.fail("cluster.node_id", "must be 1 to 64 of [a-zA-Z0-9_.-] (--node-id), got %q", cl.NodeID)
	}
	listenOK := v.hostPort("cluster.raft_listen", cl.RaftListen)
	if cl.RaftAdvertise != "" {
		v.hostPort("cluster.raft_advertise", cl.RaftAdvertise)
	}
	if cl.RaftListen == c.Listen || cl.RaftListen == c.MetricsListen {
		if !strings.HasSuffix(cl.RaftListen, ":0") {
			v.fail("cluster.raft_listen", "must differ from listen and metrics_listen, got %s", cl.RaftListen)
		}
	}
	ids := map[string]bool{}
	for _, p := range cl.Peers {
		id, addr, ok := strings.Cut(p, "=")
		switch {
		case !ok || !nodeID.MatchString(id):
			v.fail("cluster.peers", "entry %q must be id=host:port", p)
			continue
		case ids[id]:
			v.fail("cluster.peers", "node id %q is listed twice", id)
		}
		ids[id] = true
		if _, _, err := net.SplitHostPort(addr); err != nil {
			v.fail("cluster.peers", "entry %q: %v", p, err)
		}
	}
	if cl.Bootstrap && len(cl.Peers) > 0 && !ids[cl.NodeID] {
		v.fail("cluster.peers", "must list this node (%s) when bootstrapping", cl.NodeID)
	}
	t := cl.TLS
	if t.Enabled() && (t.Cert == "" || t.Key == "" || t.CA == "") {
		v.fail("cluster.tls", "needs all of cert, key and ca (--cluster-tls-cert, --cluster-tls-key, --cluster-tls-ca)")
	}
	if listenOK && !t.Enabled() && (!isLoopback(cl.RaftListen) || (cl.RaftAdvertise != "" && !isLoopback(cl.RaftAdvertise))) {
		v.fail("cluster.tls", "is required because raft_listen (%s) is not a loopback address: "+
			"set cluster.tls (--cluster-tls-cert, --cluster-tls-key, --cluster-tls-ca), or listen on 127.0.0.1", cl.RaftListen)
	}
	v.positive("cluster.heartbeat_timeout", cl.HeartbeatTimeout)
	v.positive("cluster.election_timeout", cl.ElectionTimeout)
	v.positive("cluster.leader_lease", cl.LeaderLease)
	if cl.LeaderLease > cl.HeartbeatTimeout {
		v.fail("cluster.leader_lease", "must be <= cluster.heartbeat_timeout (%s), got %s", cl.HeartbeatTimeout, cl.LeaderLease)
	}
	v.positive("cluster.apply_timeout", cl.ApplyTimeout)
	v.atLeast("cluster.trailing_logs", cl.TrailingLogs, 1)
	v.oneOf("cluster.log_store", cl.LogStore, LogStoreWAL, LogStoreBolt)
}

var nodeID = regexp.MustCompile(`^[a-zA-Z0-9_.-]{1,64}$`)
