package e2e

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/hashicorp/go-msgpack/v2/codec"
)

// linkProxy stands in front of every node's node-to-node port, so that a
// test can cut the link from one node to another while both processes run.
// Node i's peers dial listen address i (its --raft-advertise and its --peer
// entry); the proxy finds out which node dials (the X-Beaver-Node header of
// the HTTP between nodes, the server id in the header of a raft RPC), then
// forwards the connection to node i's --raft-listen, or closes it while that
// link is cut. Cutting a link closes its connections at once.
//
// The nodes speak plaintext on loopback here; the proxy reads only the first
// request of a connection and replays every byte it read.
type linkProxy struct {
	targets []string // node i's --raft-listen
	ids     []string // node i's id
	lns     []net.Listener

	mu    sync.Mutex
	cut   map[[2]string]bool              // {from, to} -> blocked
	conns map[[2]string]map[net.Conn]bool // open links, both ends
	seen  map[[2]string]int               // connections identified, per link
	wg    sync.WaitGroup                  // accept loops and pipes
	done  chan struct{}
}

// newLinkProxy listens on a free port for each target and returns the
// addresses to advertise.
func newLinkProxy(ids, targets []string) (*linkProxy, []string, error) {
	p := &linkProxy{targets: targets, ids: ids, cut: map[[2]string]bool{},
		conns: map[[2]string]map[net.Conn]bool{}, seen: map[[2]string]int{}, done: make(chan struct{})}
	var addrs []string
	for range targets {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			p.close()
			return nil, nil, err
		}
		p.lns = append(p.lns, ln)
		addrs = append(addrs, ln.Addr().String())
	}
	for i, ln := range p.lns {
		p.wg.Add(1)
		go p.accept(i, ln)
	}
	return p, addrs, nil
}

func (p *linkProxy) accept(i int, ln net.Listener) {
	defer p.wg.Done()
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		p.wg.Add(1)
		go func() { defer p.wg.Done(); p.serve(i, c) }()
	}
}

// serve identifies the dialling node of c, then pipes c to node i.
func (p *linkProxy) serve(i int, c net.Conn) {
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	var seen bytes.Buffer
	br := bufio.NewReader(io.TeeReader(c, &seen))
	from, err := identify(br)
	if err != nil {
		c.Close()
		return
	}
	c.SetReadDeadline(time.Time{})
	link := [2]string{from, p.ids[i]}
	up, err := net.DialTimeout("tcp", p.targets[i], 5*time.Second)
	if err != nil {
		c.Close()
		return
	}
	p.mu.Lock()
	p.seen[link]++
	if p.cut[link] || p.isClosed() {
		p.mu.Unlock()
		c.Close()
		up.Close()
		return
	}
	set := p.conns[link]
	if set == nil {
		set = map[net.Conn]bool{}
		p.conns[link] = set
	}
	set[c], set[up] = true, true
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		delete(set, c)
		delete(set, up)
		p.mu.Unlock()
	}()
	if _, err := up.Write(seen.Bytes()); err != nil {
		c.Close()
		up.Close()
		return
	}
	// what br holds beyond seen was read from c through the tee, so seen
	// has every byte; from here on copy c itself
	var pipes sync.WaitGroup
	pipes.Add(1)
	go func() {
		defer pipes.Done()
		io.Copy(c, up)
		c.Close()
	}()
	io.Copy(up, c)
	up.Close()
	pipes.Wait()
}

func (p *linkProxy) isClosed() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// identify reads the tag byte and the first request of a node-to-node
// connection and returns the id of the node that sent it.
func identify(br *bufio.Reader) (string, error) {
	tag, err := br.ReadByte()
	if err != nil {
		return "", err
	}
	switch tag {
	case 'H':
		req, err := http.ReadRequest(br)
		if err != nil {
			return "", err
		}
		if id := req.Header.Get("X-Beaver-Node"); id != "" {
			return id, nil
		}
		return "", errors.New("HTTP between nodes without X-Beaver-Node")
	case 'R':
		if _, err := br.ReadByte(); err != nil { // the RPC type
			return "", err
		}
		var req map[string]any
		if err := codec.NewDecoder(br, &codec.MsgpackHandle{}).Decode(&req); err != nil {
			return "", err
		}
		hdr := req
		if h, ok := req["RPCHeader"].(map[any]any); ok { // in case the header is not inlined
			hdr = map[string]any{}
			for k, v := range h {
				hdr[fmt.Sprint(k)] = v
			}
		}
		switch id := hdr["ID"].(type) {
		case []byte:
			if len(id) > 0 {
				return string(id), nil
			}
		case string:
			if id != "" {
				return id, nil
			}
		}
		return "", fmt.Errorf("raft RPC without a server id: %v", req)
	}
	return "", fmt.Errorf("unknown tag byte %q", tag)
}

// block cuts the link from node from to node to (one way) and closes its
// open connections; heal opens every link again.
func (p *linkProxy) block(from, to string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	link := [2]string{from, to}
	p.cut[link] = true
	for c := range p.conns[link] {
		c.Close()
	}
}

// identified reports how many connections from node from to node to the
// proxy has identified.
func (p *linkProxy) identified(from, to string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.seen[[2]string{from, to}]
}

// isolate cuts every link to and from node id.
func (p *linkProxy) isolate(id string) {
	for _, o := range p.ids {
		if o != id {
			p.block(id, o)
			p.block(o, id)
		}
	}
}

// split cuts every link between a node of a and a node of b.
func (p *linkProxy) split(a, b []string) {
	for _, x := range a {
		for _, y := range b {
			p.block(x, y)
			p.block(y, x)
		}
	}
}

func (p *linkProxy) heal() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = map[[2]string]bool{}
}

// close stops the listeners, closes every connection and waits.
func (p *linkProxy) close() {
	p.mu.Lock()
	select {
	case <-p.done:
	default:
		close(p.done)
	}
	for _, set := range p.conns {
		for c := range set {
			c.Close()
		}
	}
	p.mu.Unlock()
	for _, ln := range p.lns {
		ln.Close()
	}
	p.wg.Wait()
}
