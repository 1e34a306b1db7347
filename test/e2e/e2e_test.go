package e2e

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/beaver-raft/beaver-raft/api"
	"github.com/beaver-raft/beaver-raft/client"
)

func TestAuthAndNonLoopback(t *testing.T) {
	p := startServer(t, t.TempDir(), "--auth-token", "s3cret")
	ctx := context.Background()
	_, err := p.client().Enqueue(ctx, api.EnqueueRequest{Type: "noop"})
	var ce *client.Error
	if !errors.As(err, &ce) || ce.Status != http.StatusUnauthorized {
		t.Fatalf("no token: %v", err)
	}
	_, err = p.client(client.WithToken("wrong")).Enqueue(ctx, api.EnqueueRequest{Type: "noop"})
	if !errors.As(err, &ce) || ce.Status != http.StatusUnauthorized {
		t.Fatalf("wrong token: %v", err)
	}
	if _, err := p.client(client.WithToken("s3cret")).Enqueue(ctx, api.EnqueueRequest{Type: "noop"}); err != nil {
		t.Fatalf("right token: %v", err)
	}

	// a non-loopback address without a token is refused at start
	_, stderr, err := runCLI(t, "", "run", "--data-dir", t.TempDir(), "--listen", "0.0.0.0:0", "--metrics-listen", "127.0.0.1:0")
	if err == nil || !strings.Contains(stderr, "token") {
		t.Fatalf("non-loopback without a token: err %v, stderr %q", err, stderr)
	}
}

func TestBadInputStoresNothing(t *testing.T) {
	p := startServer(t, t.TempDir(), "--workers", "1", "--limits-max-payload", "1KiB")
	for _, tc := range []struct {
		name, path, ctype, body string
		status                  int
	}{
		{"unknown field", "/v1/jobs", "application/json", `{"type":"noop","bogus":1}`, 400},
		{"missing type", "/v1/jobs", "application/json", `{"payload":1}`, 400},
		{"bad duration", "/v1/jobs", "application/json", `{"type":"noop","timeout":"soon"}`, 400},
		{"bad queue", "/v1/jobs", "application/json", `{"type":"noop","queue":"no spaces"}`, 400},
		{"invalid json", "/v1/jobs", "application/json", `{"type":`, 400},
		{"payload too large", "/v1/jobs", "application/json", `{"type":"noop","payload":"` + strings.Repeat("x", 2000) + `"}`, 413},
		{"batch with one bad job", "/v1/jobs/batch", "application/json", `{"jobs":[{"type":"noop"},{"type":""}]}`, 400},
		{"wrong content type", "/v1/jobs", "text/plain", `{"type":"noop"}`, 415},
	} {
		resp, err := http.Post(p.api+tc.path, tc.ctype, strings.NewReader(tc.body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.status {
			t.Errorf("%s: status %d, want %d", tc.name, resp.StatusCode, tc.status)
		}
	}
	st, err := p.client().Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if total := st.Jobs.Pending + st.Jobs.Scheduled + st.Jobs.InFlight + st.Jobs.Completed + st.Jobs.Failed + st.Jobs.Canceled; total != 0 {
		t.Fatalf("rejected requests stored %d jobs: %+v", total, st.Jobs)
	}
	if st.WAL.LastLSN != 0 {
		t.Fatalf("rejected requests wrote to the WAL: last LSN %d", st.WAL.LastLSN)
	}
}

func TestGracefulStopAndRestart(t *testing.T) {
	dir := t.TempDir()
	p := startServer(t, dir, "--workers", "2")
	c := p.client()
	e, err := c.Enqueue(context.Background(), api.EnqueueRequest{Type: "remote-later"})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.stop(); err != nil {
		t.Fatalf("SIGTERM: %v\n%s", err, p.logs())
	}
	if !strings.Contains(p.logs(), "msg=stopped") {
		t.Fatalf("no clean stop in the log:\n%s", p.logs())
	}
	p2 := startServer(t, dir)
	j, err := p2.client().Get(context.Background(), e.ID)
	if err != nil || j.State != api.StatePending {
		t.Fatalf("after a graceful restart: %+v %v", j, err)
	}
	if !strings.Contains(p2.logs(), "records_replayed=0") {
		t.Errorf("a graceful stop should snapshot, leaving nothing to replay:\n%s", p2.logs())
	}
}
