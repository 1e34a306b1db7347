package handlers

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"syscall"
	"time"
)

// DefaultMaxResult is the MaxResult of HTTPOptions and ExecOptions left at 0.
const DefaultMaxResult = 64 << 10

// errorBodySize is how much of a non-2xx body goes into StatusError.
const errorBodySize = 200

// ErrPrivateAddress is the (permanent) error of an http job whose URL leads
// to a loopback, private, link-local or unspecified address while
// HTTPOptions.DenyPrivate is set.
var ErrPrivateAddress = errors.New("handlers: destination address is not public")

// HTTPOptions configures the http handler.
type HTTPOptions struct {
	// Client sends the requests; nil means a client with no timeout of its
	// own (the attempt's context still bounds every request). Set
	// Client.Timeout to cap single requests.
	Client *http.Client
	// MaxResult is the most bytes of a 2xx response body kept as the job
	// result; the rest of the body is silently cut off. 0 means
	// DefaultMaxResult.
	MaxResult int
	// DenyPrivate refuses to connect to loopback, private (RFC 1918, fc00::/7),
	// link-local (including the 169.254.169.254 metadata service), multicast
	// and unspecified addresses, checked on every connection the client
	// dials (so also after redirects and DNS changes). It replaces the
	// dialer of Client's transport, which must then be nil or an
	// *http.Transport; HTTP panics otherwise. Connections through a proxy
	// are checked against the proxy's address.
	DenyPrivate bool
}

// HTTP returns the http handler. Its payload is
//
//	{"url": "https://example.com/hook", "method": "POST",
//	 "headers": {"X-Token": "abc"}, "body": {"any": "JSON"}}
//
// Only url is required, with the scheme http or https. method defaults to GET
// without a body and POST with one. A body that is a JSON string is sent as
// those bytes (Content-Type text/plain; charset=utf-8 unless headers set
// one); any other JSON value is sent as JSON (Content-Type
// application/json). A "Host" header sets the request's Host.
//
// A 2xx answer completes the job with the response body, cut to MaxResult
// bytes, as its result. Any other status fails the attempt with a
// *StatusError ("http 503: <first 200 bytes of the body>"); a 4xx status
// other than 408 (Request Timeout) and 429 (Too Many Requests) is permanent,
// because sending the same request again will not change the answer.
// Transport errors (connection refused, timeouts) are retried. A bad payload
// is a permanent error.
func HTTP(opts HTTPOptions) Handler {
	h := &httpHandler{client: opts.Client, maxResult: opts.MaxResult}
	if h.client == nil {
		h.client = &http.Client{}
	}
	if h.maxResult <= 0 {
		h.maxResult = DefaultMaxResult
	}
	if opts.DenyPrivate {
		h.client = denyPrivate(h.client)
	}
	return h
}

// StatusError is the error of an HTTP answer outside 2xx.
type StatusError struct {
	StatusCode int
	Body       string // the first 200 bytes of the response body
}

func (e *StatusError) Error() string {
	if e.Body == "" {
		return fmt.Sprintf("http %d", e.StatusCode)
	}
	return fmt.Sprintf("http %d: %s", e.StatusCode, e.Body)
}

type httpHandler struct {
	client    *http.Client
	maxResult int
}

type httpPayload struct {
	URL     string            `json:"url"`
	Method  string            `json:"method"`
	Headers map[string]string `json:"headers"`
	Body    json.RawMessage   `json:"body"`
}

func (h *httpHandler) Handle(ctx context.Context, job *Job) ([]byte, error) {
	req, err := h.request(ctx, job)
	if err != nil {
		return nil, badPayload(job, err)
	}
	resp, err := h.client.Do(req)
	if err != nil {
		if errors.Is(err, ErrPrivateAddress) {
			return nil, Permanent(err)
		}
		return nil, err // a *url.Error naming method and URL (without password)
	}
	defer func() {
		// Read a little more so the connection can be reused, then close.
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
		_ = resp.Body.Close()
	}()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		snippet, _ := io.ReadAll(io.LimitReader(resp.Body, errorBodySize))
		err := &StatusError{StatusCode: resp.StatusCode, Body: strings.TrimSpace(strings.ToValidUTF8(string(snippet), "\uFFFD"))}
		if resp.StatusCode >= 400 && resp.StatusCode <= 499 &&
			resp.StatusCode != http.StatusRequestTimeout && resp.StatusCode != http.StatusTooManyRequests {
			return nil, Permanent(err)
		}
		return nil, err
	}
	result, err := io.ReadAll(io.LimitReader(resp.Body, int64(h.maxResult)))
	if err != nil {
		return nil, fmt.Errorf("http %d: reading the body: %w", resp.StatusCode, err)
	}
	if len(result) == 0 {
		return nil, nil
	}
	return result, nil
}

// request builds the request of the job's payload. Its errors are payload
// errors.
func (h *httpHandler) request(ctx context.Context, job *Job) (*http.Request, error) {
	var p httpPayload
	if err := decodePayload(job, &p); err != nil {
		return nil, err
	}
	u, err := url.Parse(p.URL)
	if err != nil {
		return nil, fmt.Errorf(`"url": %w`, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf(`"url" must be an absolute http or https URL, got %q`, u.Redacted())
	}
	var body io.Reader
	contentType := ""
	switch {
	case len(p.Body) == 0 || string(p.Body) == "null":
	case p.Body[0] == '"':
		var s string
		if err := json.Unmarshal(p.Body, &s); err != nil {
			return nil, fmt.Errorf(`"body": %w`, err)
		}
		body, contentType = strings.NewReader(s), "text/plain; charset=utf-8"
	default:
		body, contentType = bytes.NewReader(p.Body), "application/json"
	}
	method := p.Method
	if method == "" {
		method = http.MethodGet
		if body != nil {
			method = http.MethodPost
		}
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), body)
	if err != nil {
		return nil, err
	}
	req.Header.Set("User-Agent", "beaver-raft")
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for name, value := range p.Headers {
		if !validHeader(name, value) {
			return nil, fmt.Errorf(`"headers": invalid header %q`, name)
		}
		if http.CanonicalHeaderKey(name) == "Host" {
			req.Host = value
			continue
		}
		req.Header.Set(name, value)
	}
	return req, nil
}

// validHeader reports whether name is an HTTP token and value holds no
// line break or NUL.
func validHeader(name, value string) bool {
	if name == "" || strings.ContainsAny(value, "\r\n\x00") {
		return false
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("!#$%&'*+-.^_`|~", r)) {
			return false
		}
	}
	return true
}

// denyPrivate returns a copy of c whose transport refuses non-public
// addresses at connect time.
func denyPrivate(c *http.Client) *http.Client {
	var tr *http.Transport
	switch t := c.Transport.(type) {
	case nil:
		tr = http.DefaultTransport.(*http.Transport).Clone()
	case *http.Transport:
		tr = t.Clone()
	default:
		panic(fmt.Sprintf("handlers: HTTPOptions.DenyPrivate needs an *http.Transport, not %T", c.Transport))
	}
	dialer := &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second, Control: func(_, address string, _ syscall.RawConn) error {
		ap, err := netip.ParseAddrPort(address)
		if err != nil {
			return err
		}
		if ip := ap.Addr().Unmap(); !ip.IsGlobalUnicast() || ip.IsPrivate() || ip.IsLoopback() {
			return fmt.Errorf("%w: %s", ErrPrivateAddress, ip)
		}
		return nil
	}}
	tr.DialContext = dialer.DialContext
	cc := *c
	cc.Transport = tr
	return &cc
}
