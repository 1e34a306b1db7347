package server

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/beaver-raft/beaver-raft/internal/config"
	"github.com/beaver-raft/beaver-raft/internal/fsm"
)

// conn is a client connection written and read by hand.
type conn struct {
	t  *testing.T
	c  net.Conn
	br *bufio.Reader
}

func dial(t *testing.T, r *running) *conn {
	t.Helper()
	c, err := net.Dial("tcp", r.s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &conn{t: t, c: c, br: bufio.NewReader(c)}
}

func (c *conn) send(s string) {
	c.t.Helper()
	if _, err := io.WriteString(c.c, s); err != nil {
		c.t.Fatal(err)
	}
}

// status reads one answer within d and returns its status (0 and the
// error if none came).
func (c *conn) status(d time.Duration) (int, error) {
	c.c.SetReadDeadline(time.Now().Add(d))
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, err = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, err
}

// closedWithin reports whether the server closed the connection within d.
func (c *conn) closedWithin(d time.Duration) bool {
	c.c.SetReadDeadline(time.Now().Add(d))
	_, err := io.Copy(io.Discard, c.br)
	var ne net.Error
	return !errors.As(err, &ne) || !ne.Timeout()
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

const healthz = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"

// Beyond limits.max_connections, a connection waits in the listen backlog:
// it is not served (nor refused) until another one closes.
func TestMaxConnections(t *testing.T) {
	r := start(t, func(c *config.Config) { c.Limits.MaxConnections = 2 }, nil)
	a, b := dial(t, r), dial(t, r)
	for _, c := range []*conn{a, b} {
		c.send(healthz)
		if st, err := c.status(10 * time.Second); st != 200 {
			t.Fatalf("healthz: %d %v", st, err)
		}
	}
	// The third connection is made (the kernel's backlog) but not served.
	c := dial(t, r)
	c.send(healthz)
	if st, err := c.status(300 * time.Millisecond); !isTimeout(err) {
		t.Fatalf("a third connection beyond the limit of 2 was served: %d %v", st, err)
	}
	// The two first keep working (keep-alive).
	b.send(healthz)
	if st, err := b.status(10 * time.Second); st != 200 {
		t.Fatalf("healthz on a held connection: %d %v", st, err)
	}
	// One closes: the waiting connection is served.
	a.c.Close()
	if st, err := c.status(10 * time.Second); st != 200 {
		t.Fatalf("the waiting connection after a close: %d %v", st, err)
	}
	// Shutdown does not wait for the connections that never got a slot.
	d := dial(t, r)
	d.send(healthz)
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}
}

// A limitListener that waits for a slot stops waiting when it is closed.
func TestLimitListenerClose(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := newLimitListener(ln, 1)
	accepted := make(chan error, 2)
	go func() {
		for {
			c, err := l.Accept()
			accepted <- err
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	c1, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c1.Close()
	if err := <-accepted; err != nil {
		t.Fatal(err)
	}
	// The goroutine now waits for a slot; Close ends the wait.
	l.Close()
	if err := <-accepted; !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Accept after Close: %v", err)
	}
}

// Slow loris through the real server: headers or a body trickled slower
// than limits.read_timeout allows lose their connection; a long poll
// longer than read_timeout is not cut.
func TestSlowLoris(t *testing.T) {
	const timeout = 300 * time.Millisecond
	r := start(t, func(c *config.Config) {
		c.Limits.ReadTimeout = config.Duration(timeout)
		c.Limits.MaxWait = config.Duration(2 * time.Second)
		c.Limits.WriteTimeout = config.Duration(5 * time.Second)
	}, nil)
	for _, tc := range []struct {
		name, head, trickled string
		status               int
	}{
		// net/http answers a header read that timed out with a 400 (and
		// closes the connection).
		{"headers", "POST /v1/jobs HTTP/1.1\r\n", "Host: x\r\nContent-Type: application/json\r\nX-Slow: " + strings.Repeat("x", 200) + "\r\n\r\n", 400},
		{"body", "POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Length: 200\r\n\r\n", `{"type":"t","payload":"` + strings.Repeat("x", 200), 408},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := dial(t, r)
			c.send(tc.head)
			stop := make(chan struct{})
			done := make(chan int, 1)
			go func() {
				tick := time.NewTicker(20 * time.Millisecond)
				defer tick.Stop()
				n := 0
				for ; n < len(tc.trickled); n++ {
					select {
					case <-tick.C:
					case <-stop:
						done <- n
						return
					}
					if _, err := io.WriteString(c.c, tc.trickled[n:n+1]); err != nil {
						break
					}
				}
				done <- n
			}()
			begin := time.Now()
			st, err := c.status(10 * time.Second)
			closed := err != nil && !isTimeout(err) || c.closedWithin(5*time.Second)
			elapsed := time.Since(begin)
			close(stop)
			written := <-done
			if st != tc.status {
				t.Errorf("status %d (%v), want %d", st, err, tc.status)
			}
			if !closed || written == len(tc.trickled) || elapsed > 8*time.Second {
				t.Errorf("closed %v after %v, %d of %d bytes trickled", closed, elapsed, written, len(tc.trickled))
			}
		})
	}
	// A long poll of 1s, over the read timeout, gets its whole wait.
	begin := time.Now()
	resp, err := http.Post("http://"+r.s.Addr().String()+"/v1/lease", "application/json", strings.NewReader(`{"wait":"1s"}`))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if d := time.Since(begin); resp.StatusCode != 200 || d < 900*time.Millisecond {
		t.Errorf("long poll: %d %s after %v", resp.StatusCode, b, d)
	}
	http.DefaultClient.CloseIdleConnections()
	var n int
	r.s.Replica().Read(func(m *fsm.Machine) { n = m.Len() })
	if n != 0 {
		t.Errorf("%d jobs stored", n)
	}
}
