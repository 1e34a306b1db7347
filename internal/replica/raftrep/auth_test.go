package raftrep

import (
	"context"
	"net"
	"testing"
	"time"
)

// With API tokens, forwarded calls carry one and a call without it is
// refused on the node-to-node port.
func TestNodeToNodeCallsNeedAToken(t *testing.T) {
	c := newCluster(t, 3, func(i int, o *Options) { o.Token, o.Tokens = "s3cret", []string{"s3cret"} })
	l := c.leader(10 * time.Second)
	if _, err := enqueue(context.Background(), c.nodes[(l+1)%3], "k"); err != nil {
		t.Fatalf("forwarded enqueue with the token: %v", err)
	}
	conn, err := net.Dial("tcp", c.nodes[l].Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.Write([]byte{tagHTTP})
	conn.Write([]byte("GET /raft/v1/readindex HTTP/1.1\r\nHost: x\r\n\r\n"))
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 12)
	n, _ := conn.Read(buf)
	if got := string(buf[:n]); got != "HTTP/1.1 401" {
		t.Fatalf("call without a token answered %q, want a 401", got)
	}
}
