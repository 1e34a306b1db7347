package raftrep

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"testing"
	"time"
)

// testCA makes a CA and returns a function that issues node certificates
// for 127.0.0.1 signed by it, and the pool that trusts it.
func testCA(t *testing.T) (issue func() tls.Certificate, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(ca)
	serial := int64(1)
	issue = func() tls.Certificate {
		serial++
		nk, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		nt := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "node"},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}}
		nd, err := x509.CreateCertificate(rand.Reader, nt, ca, &nk.PublicKey, key)
		if err != nil {
			t.Fatal(err)
		}
		return tls.Certificate{Certificate: [][]byte{nd}, PrivateKey: nk}
	}
	return issue, pool
}

func mutualTLS(cert tls.Certificate, pool *x509.CertPool) *tls.Config {
	return &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: pool, ClientCAs: pool,
		ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS13}
}

// With mutual TLS the cluster elects, replicates and forwards; a peer
// without a certificate of the cluster's CA gets nothing from the port.
func TestMutualTLS(t *testing.T) {
	issue, pool := testCA(t)
	c := newCluster(t, 3, func(i int, o *Options) { o.TLS = mutualTLS(issue(), pool) })
	ctx := context.Background()
	l := c.leader(10 * time.Second)
	if _, err := enqueue(ctx, c.nodes[(l+1)%3], "over-tls"); err != nil {
		t.Fatalf("forwarded enqueue over TLS: %v", err)
	}
	c.sameState(10 * time.Second)

	// a stranger: plaintext, and TLS with a certificate of another CA
	addr := c.nodes[l].Addr()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	conn.Write([]byte{tagHTTP})
	conn.Write([]byte("GET /raft/v1/readindex HTTP/1.1\r\nHost: x\r\n\r\n"))
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 64)
	if n, _ := conn.Read(buf); n > 0 && string(buf[:4]) == "HTTP" {
		t.Fatalf("plaintext peer got an HTTP answer: %q", buf[:n])
	}
	conn.Close()
	otherIssue, _ := testCA(t)
	tc, err := tls.Dial("tcp", addr, &tls.Config{Certificates: []tls.Certificate{otherIssue()}, RootCAs: pool, MinVersion: tls.VersionTLS13})
	if err == nil {
		tc.Write([]byte{tagHTTP})
		tc.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err = tc.Read(buf); err == nil {
			t.Fatal("a peer with a foreign certificate was served")
		}
		tc.Close()
	}
}
