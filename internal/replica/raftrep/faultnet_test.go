package raftrep

import (
	"context"
	"errors"
	"net"
	"sync"
)

// faultNet is the network of an in-process cluster: every node dials
// through it, and a test cuts links between nodes (both ways, existing
// connections too) and heals them.
type faultNet struct {
	mu    sync.Mutex
	cut   map[[2]string]bool
	conns map[[2]string][]net.Conn
}

func newFaultNet() *faultNet {
	return &faultNet{cut: map[[2]string]bool{}, conns: map[[2]string][]net.Conn{}}
}

func link(a, b string) [2]string {
	if a > b {
		a, b = b, a
	}
	return [2]string{a, b}
}

var errCut = errors.New("faultnet: link cut")

// dialer returns node from's DialFunc; peers maps addresses to node ids.
func (f *faultNet) dialer(from string, peers []Peer) DialFunc {
	ids := map[string]string{}
	for _, p := range peers {
		ids[p.Addr] = p.ID
	}
	var d net.Dialer
	return func(ctx context.Context, addr string) (net.Conn, error) {
		to := ids[addr]
		l := link(from, to)
		f.mu.Lock()
		cut := f.cut[l]
		f.mu.Unlock()
		if cut {
			return nil, errCut
		}
		c, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return nil, err
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		if f.cut[l] { // cut while dialing
			c.Close()
			return nil, errCut
		}
		f.conns[l] = append(f.conns[l], c)
		return c, nil
	}
}

// partition cuts every link between a node of group and a node outside it.
func (f *faultNet) partition(group []string, all []string) {
	in := map[string]bool{}
	for _, g := range group {
		in[g] = true
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, a := range all {
		for _, b := range all {
			if a < b && in[a] != in[b] {
				l := link(a, b)
				f.cut[l] = true
				for _, c := range f.conns[l] {
					c.Close()
				}
				f.conns[l] = nil
			}
		}
	}
}

// heal restores every link.
func (f *faultNet) heal() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cut = map[[2]string]bool{}
}
