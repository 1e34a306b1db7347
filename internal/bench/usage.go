package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Usage is one reading of a server process's resources.
type Usage struct {
	// CPU is the user plus system CPU time the process used since it
	// started.
	CPU time.Duration
	// RSS is its resident set size in bytes; HWM its peak (0: unknown).
	RSS, HWM int64
}

// userHZ is the unit of the CPU times in /proc/<pid>/stat. It is 100 on
// every Linux architecture Go runs on (as the Prometheus process collector
// also assumes).
const userHZ = 100

// pidUsage reads the CPU time and memory of process pid from /proc.
func pidUsage(pid int) (Usage, error) {
	var u Usage
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return u, err
	}
	// the command name (field 2) may hold spaces: count fields after ')'
	i := strings.LastIndexByte(string(stat), ')')
	if i < 0 {
		return u, fmt.Errorf("/proc/%d/stat: no ')'", pid)
	}
	f := strings.Fields(string(stat[i+1:]))
	// f[0] is field 3 (state); utime and stime are fields 14 and 15
	if len(f) < 13 {
		return u, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f)+2)
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return u, fmt.Errorf("/proc/%d/stat: %w", pid, err)
	}
	u.CPU = time.Duration(ut+st) * time.Second / userHZ
	u.RSS, u.HWM, err = procMemory(fmt.Sprintf("/proc/%d/status", pid))
	return u, err
}

// selfUsage reads this process's CPU time (getrusage) and memory (/proc).
func selfUsage() (Usage, error) {
	var u Usage
	cpu, err := selfCPU()
	if err != nil {
		return u, err
	}
	u.CPU = cpu
	u.RSS, u.HWM, err = procMemory("/proc/self/status")
	return u, err
}

// procMemory reads VmRSS and VmHWM from a /proc status file.
func procMemory(path string) (rss, hwm int64, err error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, 0, err
	}
	for line := range strings.Lines(string(b)) {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		var dst *int64
		switch f[0] {
		case "VmRSS:":
			dst = &rss
		case "VmHWM:":
			dst = &hwm
		default:
			continue
		}
		kb, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("%s: %s: %w", path, f[0], err)
		}
		*dst = kb << 10
	}
	if rss == 0 {
		return 0, 0, fmt.Errorf("%s: no VmRSS", path)
	}
	return rss, hwm, nil
}

// Metric names read from a server's /metrics.
const (
	metricCPU        = "process_cpu_seconds_total"
	metricRSS        = "process_resident_memory_bytes"
	metricFsyncSum   = "beaver_wal_fsync_duration_seconds_sum"
	metricFsyncCount = "beaver_wal_fsync_duration_seconds_count"
	metricBatchSum   = "beaver_wal_batch_records_sum"
)

// scrape reads the unlabelled samples named in names from the Prometheus
// text at url. Names it does not find are missing from the map.
func scrape(ctx context.Context, hc *http.Client, url string, names ...string) (map[string]float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	out := make(map[string]float64, len(names))
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), " ")
		if !ok || !slices.Contains(names, name) {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
		if err != nil {
			return nil, fmt.Errorf("%s: %s: %w", url, name, err)
		}
		out[name] = v
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", url, err)
	}
	return out, nil
}

// metricsUsage reads a server's CPU time and resident memory from its
// Prometheus metrics (process_cpu_seconds_total,
// process_resident_memory_bytes). The peak is unknown there.
func metricsUsage(ctx context.Context, hc *http.Client, url string) (Usage, error) {
	m, err := scrape(ctx, hc, url, metricCPU, metricRSS)
	if err != nil {
		return Usage{}, err
	}
	cpu, ok1 := m[metricCPU]
	rss, ok2 := m[metricRSS]
	if !ok1 || !ok2 {
		return Usage{}, fmt.Errorf("%s: no %s or %s (is it the server's metrics listener?)", url, metricCPU, metricRSS)
	}
	return Usage{CPU: time.Duration(cpu * float64(time.Second)), RSS: int64(rss)}, nil
}

// walCounters are the server's WAL counters, read before and after the
// timed phase.
type walCounters struct {
	fsyncs, fsyncSeconds, records float64
}

func walMetrics(ctx context.Context, hc *http.Client, url string) (walCounters, error) {
	m, err := scrape(ctx, hc, url, metricFsyncSum, metricFsyncCount, metricBatchSum)
	if err != nil {
		return walCounters{}, err
	}
	if _, ok := m[metricFsyncCount]; !ok {
		return walCounters{}, fmt.Errorf("%s: no %s", url, metricFsyncCount)
	}
	return walCounters{fsyncs: m[metricFsyncCount], fsyncSeconds: m[metricFsyncSum], records: m[metricBatchSum]}, nil
}
