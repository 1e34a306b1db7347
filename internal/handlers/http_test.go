package handlers

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// request is what the test server saw.
type request struct {
	method, host, contentType, userAgent, token, body string
}

// recorder starts a server answering status and body, and reports each
// request it gets.
func recorder(t *testing.T, status int, body string) (*httptest.Server, <-chan request) {
	t.Helper()
	seen := make(chan request, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		seen <- request{r.Method, r.Host, r.Header.Get("Content-Type"), r.UserAgent(), r.Header.Get("X-Token"), string(b)}
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}))
	t.Cleanup(srv.Close)
	return srv, seen
}

func TestHTTPSuccess(t *testing.T) {
	for _, tc := range []struct {
		name    string
		payload string // %s is the server URL
		want    request
	}{
		{"GET without body", `{"url":"%s/hook"}`, request{method: "GET"}},
		{"POST with JSON body", `{"url":"%s/hook","body":{"a":[1,2]}}`,
			request{method: "POST", contentType: "application/json", body: `{"a":[1,2]}`}},
		{"POST with string body", `{"url":"%s","body":"plain \"text\""}`,
			request{method: "POST", contentType: "text/plain; charset=utf-8", body: `plain "text"`}},
		{"null body", `{"url":"%s","body":null}`, request{method: "GET"}},
		{"method and headers", `{"url":"%s","method":"PUT","headers":{"X-Token":"t1","content-type":"text/csv","Host":"example.com"},"body":"a,b"}`,
			request{method: "PUT", host: "example.com", contentType: "text/csv", token: "t1", body: "a,b"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, seen := recorder(t, http.StatusCreated, "created!")
			h := HTTP(HTTPOptions{Client: srv.Client()})
			res, err := handle(t.Context(), h, "http", fmt.Sprintf(tc.payload, srv.URL))
			if err != nil || string(res) != "created!" {
				t.Fatalf("Handle = %q, %v; want created!, nil", res, err)
			}
			got := <-seen
			want := tc.want
			if want.host == "" {
				want.host = strings.TrimPrefix(srv.URL, "http://")
			}
			want.userAgent = "beaver-raft"
			if got != want {
				t.Errorf("server saw %+v, want %+v", got, want)
			}
		})
	}
}

func TestHTTPEmptyBodyIsNilResult(t *testing.T) {
	srv, _ := recorder(t, http.StatusNoContent, "")
	res, err := handle(t.Context(), HTTP(HTTPOptions{Client: srv.Client()}), "http", `{"url":"`+srv.URL+`"}`)
	if res != nil || err != nil {
		t.Errorf("Handle = %q, %v; want nil, nil", res, err)
	}
}

func TestHTTPTruncatesResult(t *testing.T) {
	srv, _ := recorder(t, http.StatusOK, strings.Repeat("x", 1000))
	res, err := handle(t.Context(), HTTP(HTTPOptions{Client: srv.Client(), MaxResult: 10}), "http", `{"url":"`+srv.URL+`"}`)
	if err != nil || string(res) != "xxxxxxxxxx" {
		t.Errorf("Handle = %q, %v; want 10 bytes", res, err)
	}
}

func TestHTTPStatusErrors(t *testing.T) {
	long := strings.Repeat("e", 500)
	for _, tc := range []struct {
		status    int
		body      string
		permanent bool
		msg       string
	}{
		{503, "  try later\n", false, "http 503: try later"},
		{500, long, false, "http 500: " + long[:200]},
		{502, "", false, "http 502"},
		{304, "", false, "http 304"},
		{400, "bad", true, "http 400: bad"},
		{404, "no such hook", true, "http 404: no such hook"},
		{410, "", true, "http 410"},
		{408, "", false, "http 408"},
		{429, "slow down", false, "http 429: slow down"},
	} {
		t.Run(fmt.Sprint(tc.status), func(t *testing.T) {
			srv, _ := recorder(t, tc.status, tc.body)
			res, err := handle(t.Context(), HTTP(HTTPOptions{Client: srv.Client()}), "http", `{"url":"`+srv.URL+`"}`)
			var se *StatusError
			if res != nil || !errors.As(err, &se) || se.StatusCode != tc.status {
				t.Fatalf("Handle = %q, %v; want a StatusError %d", res, err, tc.status)
			}
			if err.Error() != tc.msg || IsPermanent(err) != tc.permanent {
				t.Errorf("error %q (permanent %v), want %q (permanent %v)", err, IsPermanent(err), tc.msg, tc.permanent)
			}
		})
	}
}

func TestHTTPHonoursContext(t *testing.T) {
	arrived := make(chan struct{}, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		<-r.Context().Done() // until the client gives up
	}))
	defer srv.Close()
	h := HTTP(HTTPOptions{Client: srv.Client()})
	payload := `{"url":"` + srv.URL + `"}`

	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error)
	go func() {
		_, err := handle(ctx, h, "http", payload)
		done <- err
	}()
	<-arrived
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) || IsPermanent(err) {
		t.Errorf("after cancel: %v, want context.Canceled, not permanent", err)
	}

	ctx, cancel = context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	if _, err := handle(ctx, h, "http", payload); !errors.Is(err, context.DeadlineExceeded) || IsPermanent(err) {
		t.Errorf("after the timeout: %v, want context.DeadlineExceeded, not permanent", err)
	}
	<-arrived
}

func TestHTTPBadPayload(t *testing.T) {
	for _, payload := range []string{
		`{"url":"ftp://example.com/file"}`,
		`{"url":"file:///etc/passwd"}`,
		`{"url":"gopher://example.com"}`,
		`{"url":"/relative/path"}`,
		`{"url":"http://"}`,
		`{"url":""}`,
		`{}`,
		`{"url":"http://example.com/%zz"}`,
		`{"url":"http://example.com","method":"BAD METHOD"}`,
		`{"url":"http://example.com","headers":{"Bad Name":"x"}}`,
		`{"url":"http://example.com","headers":{"X-Ok":"line\r\nbreak"}}`,
		`{"url":"http://example.com","header":{"X-Typo":"1"}}`,
		`{"url":"http://example.com","body":"unterminated}`,
		`"http://example.com"`,
	} {
		if _, err := handle(t.Context(), HTTP(HTTPOptions{}), "http", payload); !IsPermanent(err) {
			t.Errorf("Handle(%s) = %v, want a permanent error", payload, err)
		}
	}
}

func TestHTTPTransportErrorIsRetried(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close() // nothing listens there now
	_, err := handle(t.Context(), HTTP(HTTPOptions{Client: &http.Client{Transport: &http.Transport{}}}), "http", `{"url":"`+url+`"}`)
	if err == nil || IsPermanent(err) {
		t.Errorf("Handle against a closed port = %v, want a retryable error", err)
	}
}

func TestHTTPDenyPrivate(t *testing.T) {
	srv, seen := recorder(t, http.StatusOK, "secret")
	h := HTTP(HTTPOptions{DenyPrivate: true})
	for _, url := range []string{srv.URL, "http://[::1]:1/", "http://169.254.169.254/latest/meta-data", "http://10.1.2.3:1/", "http://0.0.0.0:1/"} {
		_, err := handle(t.Context(), h, "http", `{"url":"`+url+`"}`)
		if !errors.Is(err, ErrPrivateAddress) || !IsPermanent(err) {
			t.Errorf("Handle(%s) with DenyPrivate = %v, want a permanent ErrPrivateAddress", url, err)
		}
	}
	select {
	case r := <-seen:
		t.Errorf("the loopback server got a request: %+v", r)
	default:
	}
	defer func() {
		if recover() == nil {
			t.Error("DenyPrivate with a custom RoundTripper did not panic")
		}
	}()
	HTTP(HTTPOptions{DenyPrivate: true, Client: &http.Client{Transport: roundTripper(nil)}})
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
