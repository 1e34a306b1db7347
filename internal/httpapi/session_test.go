package httpapi

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/beaver-raft/beaver-raft/api"
)

// cookieSessions is a test SessionAuth: the cookie sid=good is a live
// session whose CSRF token is "tok".
type cookieSessions struct{}

func (cookieSessions) Session(r *http.Request) (ok, csrf bool) {
	c, err := r.Cookie("sid")
	if err != nil || c.Value != "good" {
		return false, false
	}
	return true, r.Header.Get("X-CSRF-Token") == "tok"
}

func TestSessionAuth(t *testing.T) {
	s := newServer(t, replicaKinds[0].open, func(o *Options) {
		o.Tokens = []string{"s3cret"}
		o.Sessions = cookieSessions{}
	})
	noBearer := []string{"Authorization", ""}
	with := func(hdr ...string) []string { return append(append([]string(nil), noBearer...), hdr...) }

	// A GET needs the cookie only.
	if r := s.do("GET", "/v1/status", nil, with("Cookie", "sid=good")...); r.status != 200 {
		t.Errorf("GET with a session: %d %s", r.status, r.body)
	}
	// A write without the CSRF token, or with a wrong one, is refused
	// with a JSON error and stores nothing.
	for _, hdr := range [][]string{with("Cookie", "sid=good"), with("Cookie", "sid=good", "X-CSRF-Token", "nope")} {
		r := s.do("POST", "/v1/jobs", `{"type":"t"}`, hdr...)
		if r.status != 403 || r.header.Get("Content-Type") != "application/json" || !contains403(r.body) {
			t.Errorf("POST without the CSRF token: %d %s", r.status, r.body)
		}
	}
	if n := s.jobs(); n != 0 {
		t.Fatalf("%d jobs stored without a CSRF token", n)
	}
	if r := s.do("POST", "/v1/jobs", `{"type":"t"}`, with("Cookie", "sid=good", "X-CSRF-Token", "tok")...); r.status != 201 {
		t.Errorf("POST with the CSRF token: %d %s", r.status, r.body)
	}
	// Unknown sessions and no session are 401; so is a wrong bearer
	// token next to a good cookie (the header is what is checked then).
	for name, hdr := range map[string][]string{
		"unknown session":   with("Cookie", "sid=bad", "X-CSRF-Token", "tok"),
		"no session":        with("X-CSRF-Token", "tok"),
		"wrong bearer":      {"Authorization", "Bearer nope", "Cookie", "sid=good", "X-CSRF-Token", "tok"},
		"unknown route too": with("Cookie", "sid=bad"),
	} {
		path := "/v1/jobs"
		if name == "unknown route too" {
			path = "/v1/nothing"
		}
		if r := s.do("POST", path, `{"type":"t"}`, hdr...); r.status != 401 {
			t.Errorf("%s: %d %s", name, r.status, r.body)
		}
	}
	// Bearer calls are unchanged: no CSRF token needed.
	s.enqueue(`{"type":"t"}`)
	if n := s.jobs(); n != 2 {
		t.Errorf("%d jobs, want 2", n)
	}
}

func contains403(body []byte) bool {
	var e api.Error
	return json.Unmarshal(body, &e) == nil && e.Error.Code == api.CodeForbidden && e.Error.Message != ""
}

// Without tokens the API is open and sessions play no part.
func TestSessionsWithoutTokens(t *testing.T) {
	s := newServer(t, replicaKinds[0].open, func(o *Options) { o.Sessions = cookieSessions{} })
	if r := s.do("POST", "/v1/jobs", `{"type":"t"}`, "Cookie", "sid=good"); r.status != 201 {
		t.Errorf("open API with a cookie and no CSRF token: %d %s", r.status, r.body)
	}
}

func TestValidToken(t *testing.T) {
	a := New(Options{Tokens: []string{"s3cret", "", "other"}})
	for tok, want := range map[string]bool{"s3cret": true, "other": true, "": false, "s3cre": false, "s3cret ": false} {
		if got := a.ValidToken(tok); got != want {
			t.Errorf("ValidToken(%q) = %v", tok, got)
		}
	}
}

// With a UI, /ui/ is its own and GET / redirects there; unknown paths are
// still JSON 404s.
func TestUIMount(t *testing.T) {
	ui := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ui " + r.Method + " " + r.URL.Path)) })
	s := newServer(t, replicaKinds[0].open, func(o *Options) { o.UI = ui; o.Tokens = []string{"s3cret"} })
	s.srv.Client().CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	for _, c := range []struct{ method, path, body string }{
		{"GET", "/ui/", "ui GET /ui/"},
		{"POST", "/ui/login", "ui POST /ui/login"},
		{"GET", "/ui/static/app.js", "ui GET /ui/static/app.js"},
	} {
		if r := s.do(c.method, c.path, nil, "Authorization", ""); r.status != 200 || string(r.body) != c.body {
			t.Errorf("%s %s: %d %q", c.method, c.path, r.status, r.body)
		}
	}
	for path, want := range map[string]string{"/": "/ui/", "/ui": "/ui/"} {
		if r := s.do("GET", path, nil, "Authorization", ""); r.status/100 != 3 || r.header.Get("Location") != want {
			t.Errorf("GET %s: %d to %q", path, r.status, r.header.Get("Location"))
		}
	}
	s.callErr("GET", "/nothing", nil, 404, api.CodeNotFound)
	s.callErr("POST", "/", nil, 405, api.CodeMethodNotAllowed)
}
