package raftrep

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// The node-to-node port carries two protocols on one listener: raft's own
// RPCs and HTTP between nodes (forwarded proposals, read indexes,
// membership). The dialer sends one tag byte first (after the TLS handshake,
// when TLS is on), and the listener routes the connection by it.
const (
	tagRaft byte = 'R'
	tagHTTP byte = 'H'
)

// tagTimeout bounds how long an accepted connection may take to send its
// tag (and finish the TLS handshake).
const tagTimeout = 5 * time.Second

// DialFunc dials a node-to-node address (tests inject faults with it).
type DialFunc func(ctx context.Context, addr string) (net.Conn, error)

// mux is the node-to-node listener. Its accept loop is owned by the mux:
// Close stops it and waits for it.
type mux struct {
	ln   net.Listener
	tls  *tls.Config // nil: plaintext (loopback only, enforced by config)
	dial DialFunc
	log  *slog.Logger

	raftCh chan net.Conn
	httpCh chan net.Conn
	done   chan struct{}
	wg     sync.WaitGroup
	once   sync.Once

	cmu   sync.Mutex
	conns map[net.Conn]struct{} // accepted connections, closed by close
}

func newMux(ln net.Listener, tlsCfg *tls.Config, dial DialFunc, log *slog.Logger) *mux {
	if dial == nil {
		var d net.Dialer
		dial = func(ctx context.Context, addr string) (net.Conn, error) { return d.DialContext(ctx, "tcp", addr) }
	}
	m := &mux{ln: ln, tls: tlsCfg, dial: dial, log: log,
		raftCh: make(chan net.Conn), httpCh: make(chan net.Conn), done: make(chan struct{}),
		conns: map[net.Conn]struct{}{}}
	m.wg.Add(1)
	go m.acceptLoop()
	return m
}

func (m *mux) acceptLoop() {
	defer m.wg.Done()
	for {
		c, err := m.ln.Accept()
		if err != nil {
			select {
			case <-m.done:
				return
			default:
			}
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				continue
			}
			m.log.Error("raft port: accept failed", "err", err)
			return
		}
		m.cmu.Lock()
		select {
		case <-m.done:
			m.cmu.Unlock()
			c.Close()
			return
		default:
		}
		tc := &trackedConn{Conn: c, m: m}
		m.conns[tc] = struct{}{}
		m.cmu.Unlock()
		m.wg.Add(1)
		go m.route(tc)
	}
}

// route reads the tag of c and hands it to the raft layer or the HTTP
// listener; a connection that sends anything else is closed.
func (m *mux) route(c net.Conn) {
	defer m.wg.Done()
	c.SetDeadline(time.Now().Add(tagTimeout))
	if m.tls != nil {
		tc := tls.Server(c, m.tls)
		if err := tc.Handshake(); err != nil {
			m.log.Warn("raft port: TLS handshake refused", "remote", c.RemoteAddr().String(), "err", err)
			c.Close()
			return
		}
		c = tc
	}
	var tag [1]byte
	if _, err := io.ReadFull(c, tag[:]); err != nil {
		c.Close()
		return
	}
	c.SetDeadline(time.Time{})
	var ch chan net.Conn
	switch tag[0] {
	case tagRaft:
		ch = m.raftCh
	case tagHTTP:
		ch = m.httpCh
	default:
		m.log.Warn("raft port: unknown protocol tag, connection closed", "remote", c.RemoteAddr().String(), "tag", tag[0])
		c.Close()
		return
	}
	select {
	case ch <- c:
	case <-m.done:
		c.Close()
	}
}

// dialTagged dials addr, completes TLS, and sends tag.
func (m *mux) dialTagged(ctx context.Context, addr string, tag byte) (net.Conn, error) {
	c, err := m.dial(ctx, addr)
	if err != nil {
		return nil, err
	}
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	if m.tls != nil {
		cfg := m.tls.Clone()
		if host, _, err := net.SplitHostPort(addr); err == nil {
			cfg.ServerName = host
		}
		tc := tls.Client(c, cfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			c.Close()
			return nil, fmt.Errorf("TLS handshake with %s: %w", addr, err)
		}
		c = tc
	}
	if _, err := c.Write([]byte{tag}); err != nil {
		c.Close()
		return nil, err
	}
	c.SetDeadline(time.Time{})
	return c, nil
}

func (m *mux) close() error {
	var err error
	m.once.Do(func() {
		m.cmu.Lock()
		close(m.done)
		for c := range m.conns {
			c.(*trackedConn).Conn.Close() // ends raft's and http's handlers of inbound connections
		}
		m.cmu.Unlock()
		err = m.ln.Close()
	})
	m.wg.Wait()
	return err
}

// raftLayer is the raft.StreamLayer of the mux.
type raftLayer struct{ m *mux }

var _ raft.StreamLayer = raftLayer{}

func (l raftLayer) Accept() (net.Conn, error) {
	select {
	case c := <-l.m.raftCh:
		return c, nil
	case <-l.m.done:
		return nil, net.ErrClosed
	}
}

func (l raftLayer) Close() error   { return l.m.close() }
func (l raftLayer) Addr() net.Addr { return l.m.ln.Addr() }

func (l raftLayer) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return l.m.dialTagged(ctx, string(address), tagRaft)
}

// httpListener is the net.Listener of the HTTP between nodes.
type httpListener struct{ m *mux }

func (l httpListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.m.httpCh:
		return c, nil
	case <-l.m.done:
		return nil, net.ErrClosed
	}
}

func (l httpListener) Close() error   { return nil } // the mux owns the socket
func (l httpListener) Addr() net.Addr { return l.m.ln.Addr() }

var errClosed = errors.New("raft port closed")

// trackedConn leaves the mux's set of connections when it is closed.
type trackedConn struct {
	net.Conn
	m    *mux
	once sync.Once
}

func (c *trackedConn) Close() error {
	c.once.Do(func() {
		c.m.cmu.Lock()
		delete(c.m.conns, c)
		c.m.cmu.Unlock()
	})
	return c.Conn.Close()
}
