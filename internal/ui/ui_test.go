package ui

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/beaver-raft/beaver-raft/api"
	"github.com/beaver-raft/beaver-raft/internal/httpapi"
	"github.com/beaver-raft/beaver-raft/internal/replica/local"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const testToken = "s3cret-token"

// stack is the API with the UI mounted, over a real single-node replica in
// a temporary directory, behind an httptest server.
type stack struct {
	t   *testing.T
	ui  *UI
	api *httpapi.API
	srv *httptest.Server
	now atomic.Int64 // the UI's clock, Unix ns
}

type stackOpts struct {
	tokens []string
	tls    bool
	ui     func(o *Options)
}

func newStack(t *testing.T, so stackOpts) *stack {
	t.Helper()
	rep, err := local.Open(local.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rep.Close() })
	s := &stack{t: t}
	s.now.Store(time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC).UnixNano())
	uo := Options{Clock: func() time.Time { return time.Unix(0, s.now.Load()) }}
	if len(so.tokens) > 0 {
		uo.CheckToken = func(tok string) bool { return s.api.ValidToken(tok) }
	}
	if so.ui != nil {
		so.ui(&uo)
	}
	s.ui = New(uo)
	s.api = httpapi.New(httpapi.Options{Replica: rep, Tokens: so.tokens, Sessions: s.ui, UI: s.ui, Stats: s.ui.Stats})
	if so.tls {
		s.srv = httptest.NewTLSServer(s.api.Handler())
	} else {
		s.srv = httptest.NewServer(s.api.Handler())
	}
	t.Cleanup(s.srv.Close)
	return s
}

type answer struct {
	status int
	header http.Header
	body   string
}

// do sends a request without following redirects. hdr are name, value
// pairs; a form body is sent as application/x-www-form-urlencoded, a
// string as JSON.
func (s *stack) do(method, path string, body any, hdr ...string) answer {
	s.t.Helper()
	var rd io.Reader
	ct := ""
	switch b := body.(type) {
	case nil:
	case url.Values:
		rd, ct = strings.NewReader(b.Encode()), "application/x-www-form-urlencoded"
	case string:
		rd, ct = strings.NewReader(b), "application/json"
	default:
		s.t.Fatalf("body %T", body)
	}
	req, err := http.NewRequest(method, s.srv.URL+path, rd)
	if err != nil {
		s.t.Fatal(err)
	}
	if ct != "" {
		req.Header.Set("Content-Type", ct)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	c := *s.srv.Client()
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := c.Do(req)
	if err != nil {
		s.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		s.t.Fatal(err)
	}
	return answer{status: resp.StatusCode, header: resp.Header, body: string(b)}
}

// login posts the token and returns the session cookie set.
func (s *stack) login(token string) *http.Cookie {
	s.t.Helper()
	a := s.do("POST", "/ui/login", url.Values{"token": {token}})
	if a.status != http.StatusSeeOther || a.header.Get("Location") != "/ui/" {
		s.t.Fatalf("login: %d %q %s", a.status, a.header.Get("Location"), a.body)
	}
	for _, c := range (&http.Response{Header: a.header}).Cookies() {
		if c.Name == CookieName {
			return c
		}
	}
	s.t.Fatalf("login set no %s cookie: %v", CookieName, a.header["Set-Cookie"])
	return nil
}

var csrfMeta = regexp.MustCompile(`<meta name="beaver-csrf" content="([^"]*)">`)

// csrf reads the CSRF token from the dashboard page of a session.
func (s *stack) csrf(c *http.Cookie) string {
	s.t.Helper()
	a := s.do("GET", "/ui/", nil, "Cookie", c.Name+"="+c.Value)
	m := csrfMeta.FindStringSubmatch(a.body)
	if a.status != 200 || m == nil || m[1] == "" {
		s.t.Fatalf("dashboard page of a session: %d, csrf %q\n%s", a.status, m, a.body)
	}
	return m[1]
}

func cookieHdr(c *http.Cookie) string { return c.Name + "=" + c.Value }

func isLoginPage(body string) bool {
	return strings.Contains(body, `<form method="post" action="/ui/login"`) && strings.Contains(body, `name="token"`)
}

func TestLoginPage(t *testing.T) {
	s := newStack(t, stackOpts{tokens: []string{testToken}})
	a := s.do("GET", "/ui/", nil)
	if a.status != 200 || !isLoginPage(a.body) || strings.Contains(a.body, "beaver-csrf") {
		t.Fatalf("GET /ui/ without a session: %d\n%s", a.status, a.body)
	}
	if a.header.Get("Cache-Control") != "no-store" || !strings.HasPrefix(a.header.Get("Content-Type"), "text/html") {
		t.Errorf("headers %v", a.header)
	}
	// GET /ui/login (a reload after a failed login) goes back to /ui/
	if a := s.do("GET", "/ui/login", nil); a.status != http.StatusSeeOther || a.header.Get("Location") != "/ui/" {
		t.Errorf("GET /ui/login: %d %v", a.status, a.header)
	}
}

func TestLoginSetsSessionCookie(t *testing.T) {
	s := newStack(t, stackOpts{tokens: []string{"other", testToken}})
	c := s.login(testToken)
	if !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Path != "/" || c.Secure || c.MaxAge != int(DefaultSessionTTL/time.Second) {
		t.Errorf("cookie attributes: %+v", c)
	}
	if c.Value == testToken || strings.Contains(c.Value, testToken) || len(c.Value) < 40 {
		t.Errorf("cookie value %q is not a random session id", c.Value)
	}
	csrf := s.csrf(c)
	if csrf == c.Value {
		t.Error("the CSRF token is the session id")
	}
	// a second login is another session
	if c2 := s.login(" " + testToken + "\n"); c2.Value == c.Value || s.csrf(c2) == csrf {
		t.Error("two logins share a session")
	}
}

func TestLoginRefusesWrongToken(t *testing.T) {
	s := newStack(t, stackOpts{tokens: []string{testToken}})
	for _, tok := range []string{"", "nope", testToken[:len(testToken)-1], testToken + "x"} {
		a := s.do("POST", "/ui/login", url.Values{"token": {tok}})
		if a.status != http.StatusUnauthorized || !isLoginPage(a.body) || !strings.Contains(a.body, "That token is not valid") {
			t.Errorf("token %q: %d\n%s", tok, a.status, a.body)
		}
		if sc := a.header.Values("Set-Cookie"); len(sc) != 0 {
			t.Errorf("token %q: cookie set %v", tok, sc)
		}
	}
	if n := s.ui.sessions.len(); n != 0 {
		t.Errorf("%d sessions after refused logins", n)
	}
}

// A login posted by another site's page is refused.
func TestLoginFromAnotherOrigin(t *testing.T) {
	s := newStack(t, stackOpts{tokens: []string{testToken}})
	for _, origin := range []string{"http://evil.example", "null", "file://"} {
		if a := s.do("POST", "/ui/login", url.Values{"token": {testToken}}, "Origin", origin); a.status != http.StatusForbidden {
			t.Errorf("Origin %s: %d", origin, a.status)
		}
	}
	if a := s.do("POST", "/ui/login", url.Values{"token": {testToken}}, "Origin", s.srv.URL); a.status != http.StatusSeeOther {
		t.Errorf("own origin: %d %s", a.status, a.body)
	}
}

func TestSecureCookieOverTLS(t *testing.T) {
	s := newStack(t, stackOpts{tokens: []string{testToken}, tls: true})
	if c := s.login(testToken); !c.Secure || !c.HttpOnly || c.SameSite != http.SameSiteStrictMode {
		t.Errorf("cookie over TLS: %+v", c)
	}
}

// The API takes the session cookie instead of a bearer token, and wants the
// session's CSRF token for every write.
func TestCookieAuthAndCSRF(t *testing.T) {
	s := newStack(t, stackOpts{tokens: []string{testToken}})
	c := s.login(testToken)
	csrf := s.csrf(c)
	other := s.csrf(s.login(testToken))

	if a := s.do("GET", "/v1/status", nil, "Cookie", cookieHdr(c)); a.status != 200 {
		t.Errorf("GET with the cookie: %d %s", a.status, a.body)
	}
	for name, hdr := range map[string][]string{
		"no CSRF header":               {"Cookie", cookieHdr(c)},
		"a wrong CSRF token":           {"Cookie", cookieHdr(c), CSRFHeader, "x" + csrf},
		"another session's CSRF token": {"Cookie", cookieHdr(c), CSRFHeader, other},
	} {
		a := s.do("POST", "/v1/jobs", `{"type":"t"}`, hdr...)
		var e api.Error
		if a.status != http.StatusForbidden || a.header.Get("Content-Type") != "application/json" ||
			json.Unmarshal([]byte(a.body), &e) != nil || e.Error.Code != api.CodeForbidden {
			t.Errorf("POST with %s: %d %s", name, a.status, a.body)
		}
	}
	if a := s.do("GET", "/v1/jobs", nil, "Authorization", "Bearer "+testToken); !strings.Contains(a.body, `"jobs":[]`) {
		t.Fatalf("a refused POST stored a job: %s", a.body)
	}
	a := s.do("POST", "/v1/jobs", `{"type":"t","delay":"1h"}`, "Cookie", cookieHdr(c), CSRFHeader, csrf)
	if a.status != 201 {
		t.Fatalf("POST with the CSRF token: %d %s", a.status, a.body)
	}
	if a := s.do("POST", "/v1/jobs/1/retry", "", "Cookie", cookieHdr(c), CSRFHeader, csrf); a.status != 200 || !strings.Contains(a.body, `"state":"pending"`) {
		t.Errorf("retry with the CSRF token: %d %s", a.status, a.body)
	}
	if a := s.do("POST", "/v1/jobs/bulk", `{"action":"cancel","state":"pending"}`, "Cookie", cookieHdr(c)); a.status != 403 {
		t.Errorf("bulk without the CSRF token: %d %s", a.status, a.body)
	}
	// Bearer calls are unchanged.
	if a := s.do("POST", "/v1/jobs", `{"type":"t"}`, "Authorization", "Bearer "+testToken); a.status != 201 {
		t.Errorf("bearer POST: %d %s", a.status, a.body)
	}
	if a := s.do("GET", "/v1/status", nil); a.status != 401 {
		t.Errorf("no cookie, no token: %d", a.status)
	}
	if a := s.do("GET", "/v1/status", nil, "Cookie", CookieName+"="+testToken); a.status != 401 {
		t.Errorf("the token as a cookie: %d", a.status)
	}
}

func TestLogout(t *testing.T) {
	s := newStack(t, stackOpts{tokens: []string{testToken}})
	c := s.login(testToken)
	csrf := s.csrf(c)
	if a := s.do("POST", "/ui/logout", nil, "Cookie", cookieHdr(c)); a.status != http.StatusForbidden {
		t.Errorf("logout without the CSRF token: %d", a.status)
	}
	if a := s.do("GET", "/v1/status", nil, "Cookie", cookieHdr(c)); a.status != 200 {
		t.Fatalf("session ended by a refused logout: %d", a.status)
	}
	a := s.do("POST", "/ui/logout", nil, "Cookie", cookieHdr(c), CSRFHeader, csrf)
	cleared := false
	for _, k := range (&http.Response{Header: a.header}).Cookies() {
		cleared = cleared || (k.Name == CookieName && k.MaxAge < 0 && k.Value == "")
	}
	if a.status != http.StatusSeeOther || !cleared {
		t.Errorf("logout: %d %v", a.status, a.header)
	}
	if a := s.do("GET", "/v1/status", nil, "Cookie", cookieHdr(c)); a.status != 401 {
		t.Errorf("API after logout: %d", a.status)
	}
	if a := s.do("GET", "/ui/", nil, "Cookie", cookieHdr(c)); !isLoginPage(a.body) {
		t.Errorf("/ui/ after logout is not the login page")
	}
}

func TestSessionExpires(t *testing.T) {
	s := newStack(t, stackOpts{tokens: []string{testToken}, ui: func(o *Options) { o.SessionTTL = time.Hour }})
	c := s.login(testToken)
	s.now.Add(int64(time.Hour - time.Nanosecond))
	if a := s.do("GET", "/v1/status", nil, "Cookie", cookieHdr(c)); a.status != 200 {
		t.Fatalf("before expiry: %d", a.status)
	}
	s.now.Add(1)
	if a := s.do("GET", "/v1/status", nil, "Cookie", cookieHdr(c)); a.status != 401 {
		t.Errorf("after expiry: %d", a.status)
	}
	if a := s.do("GET", "/ui/", nil, "Cookie", cookieHdr(c)); !isLoginPage(a.body) {
		t.Error("an expired session still opens the dashboard")
	}
	if n := s.ui.sessions.len(); n != 0 {
		t.Errorf("%d sessions kept after expiry", n)
	}
}

// A full store ends expired sessions first, then the oldest ones.
func TestMaxSessions(t *testing.T) {
	s := newStack(t, stackOpts{tokens: []string{testToken}, ui: func(o *Options) { o.MaxSessions = 3; o.SessionTTL = time.Hour }})
	a := s.login(testToken)
	s.now.Add(int64(time.Minute))
	b := s.login(testToken)
	s.now.Add(int64(time.Minute))
	c := s.login(testToken)
	s.now.Add(int64(time.Minute))
	d := s.login(testToken) // a, the oldest, goes
	live := func(k *http.Cookie) bool { return s.do("GET", "/v1/status", nil, "Cookie", cookieHdr(k)).status == 200 }
	if live(a) || !live(b) || !live(c) || !live(d) {
		t.Errorf("live: a %v b %v c %v d %v", live(a), live(b), live(c), live(d))
	}
	if n := s.ui.sessions.len(); n != 3 {
		t.Errorf("%d sessions, want 3", n)
	}
}

// Without tokens (loopback), the dashboard and the API are open.
func TestOpenWithoutTokens(t *testing.T) {
	s := newStack(t, stackOpts{})
	a := s.do("GET", "/ui/", nil)
	if a.status != 200 || isLoginPage(a.body) || !strings.Contains(a.body, `<meta name="beaver-auth" content="off">`) {
		t.Fatalf("open dashboard: %d\n%s", a.status, a.body)
	}
	if a := s.do("POST", "/v1/jobs", `{"type":"t"}`); a.status != 201 {
		t.Errorf("open API: %d %s", a.status, a.body)
	}
	if a := s.do("POST", "/ui/login", url.Values{"token": {"x"}}); a.status != http.StatusSeeOther {
		t.Errorf("login without tokens: %d", a.status)
	}
}

func TestRootRedirects(t *testing.T) {
	s := newStack(t, stackOpts{tokens: []string{testToken}})
	for _, p := range []string{"/", "/ui"} {
		if a := s.do("GET", p, nil); a.status/100 != 3 || a.header.Get("Location") != "/ui/" {
			t.Errorf("GET %s: %d to %q", p, a.status, a.header.Get("Location"))
		}
	}
}

// Every answer of the UI forbids inline script, framing and sniffing.
func TestSecurityHeaders(t *testing.T) {
	s := newStack(t, stackOpts{tokens: []string{testToken}})
	c := cookieHdr(s.login(testToken))
	for _, r := range []struct{ method, path, cookie string }{
		{"GET", "/ui/", ""}, {"GET", "/ui/", c}, {"GET", "/ui/static/app.js", ""}, {"GET", "/ui/static/chart.js", ""},
		{"GET", "/ui/static/app.css", ""}, {"GET", "/ui/static/favicon.svg", ""}, {"GET", "/ui/static/nope.js", ""},
		{"GET", "/ui/nope", ""}, {"POST", "/ui/login", ""}, {"POST", "/ui/logout", c},
	} {
		a := s.do(r.method, r.path, nil, "Cookie", r.cookie)
		csp := a.header.Get("Content-Security-Policy")
		if csp != ContentSecurityPolicy || a.header.Get("X-Content-Type-Options") != "nosniff" || a.header.Get("X-Frame-Options") != "DENY" {
			t.Errorf("%s %s (%d): headers %v", r.method, r.path, a.status, a.header)
		}
	}
	// the policy itself: scripts from this origin only, nothing inline
	for _, want := range []string{"script-src 'self'", "default-src 'none'", "frame-ancestors 'none'", "style-src 'self'"} {
		if !strings.Contains(ContentSecurityPolicy, want) {
			t.Errorf("CSP lacks %s", want)
		}
	}
	if strings.Contains(ContentSecurityPolicy, "unsafe") || strings.Contains(ContentSecurityPolicy, "*") {
		t.Errorf("CSP allows too much: %s", ContentSecurityPolicy)
	}
}

var (
	scriptTag   = regexp.MustCompile(`(?i)<script\b[^>]*>`)
	handlerAttr = regexp.MustCompile(`(?i)\son[a-z]+\s*=`)
	styleAttr   = regexp.MustCompile(`(?i)\sstyle\s*=|<style\b`)
)

// The pages hold no inline script, handler or style (the CSP would block
// them anyway), and the scripts never parse HTML.
func TestNoInlineCode(t *testing.T) {
	s := newStack(t, stackOpts{tokens: []string{testToken}})
	c := cookieHdr(s.login(testToken))
	for name, body := range map[string]string{
		"login":     s.do("GET", "/ui/", nil).body,
		"dashboard": s.do("GET", "/ui/", nil, "Cookie", c).body,
		"refused":   s.do("POST", "/ui/login", url.Values{"token": {"x"}}).body,
	} {
		for _, tag := range scriptTag.FindAllString(body, -1) {
			if !strings.Contains(tag, `src="/ui/static/`) {
				t.Errorf("%s: inline script %s", name, tag)
			}
		}
		if m := handlerAttr.FindString(body); m != "" {
			t.Errorf("%s: inline handler %q", name, m)
		}
		if m := styleAttr.FindString(body); m != "" {
			t.Errorf("%s: inline style %q", name, m)
		}
	}
	for _, f := range []string{"app.js", "chart.js"} {
		js := string(s.ui.static[f].body)
		for _, bad := range []string{"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function", "DOMParser", "createContextualFragment"} {
			if strings.Contains(js, bad) {
				t.Errorf("%s uses %s", f, bad)
			}
		}
	}
}

// A hostile payload, error and unique key are delivered as JSON data, and
// no HTML page carries any data.
func TestHostileDataIsJSON(t *testing.T) {
	s := newStack(t, stackOpts{tokens: []string{testToken}})
	bearer := []string{"Authorization", "Bearer " + testToken}
	hostile := "<script>alert(1)</script>"
	body := `{"type":"t","queue":"q","payload":"` + hostile + `","unique_key":"<img src=x onerror=alert(1)>"}`
	if a := s.do("POST", "/v1/jobs", body, bearer...); a.status != 201 {
		t.Fatalf("enqueue: %d %s", a.status, a.body)
	}
	a := s.do("POST", "/v1/lease", `{"queues":["q"]}`, bearer...)
	var lease api.LeaseResponse
	if json.Unmarshal([]byte(a.body), &lease) != nil || len(lease.Jobs) != 1 {
		t.Fatalf("lease: %s", a.body)
	}
	fail := `{"lease_id":"` + lease.Jobs[0].LeaseID + `","error":"<img src=x onerror=alert(2)>","final":true}`
	if a := s.do("POST", "/v1/jobs/1/fail", fail, bearer...); a.status != 200 {
		t.Fatalf("fail: %d %s", a.status, a.body)
	}

	a = s.do("GET", "/v1/jobs/1", nil, bearer...)
	if a.header.Get("Content-Type") != "application/json" {
		t.Errorf("Content-Type %q", a.header.Get("Content-Type"))
	}
	if strings.ContainsAny(a.body, "<>") {
		t.Errorf("the JSON answer carries raw angle brackets: %s", a.body)
	}
	var j api.Job
	if err := json.Unmarshal([]byte(a.body), &j); err != nil {
		t.Fatal(err)
	}
	var payload string
	if json.Unmarshal(j.Payload, &payload) != nil || payload != hostile || j.LastError != "<img src=x onerror=alert(2)>" || j.UniqueKey != "<img src=x onerror=alert(1)>" {
		t.Errorf("the data does not round-trip: %+v", j)
	}

	c := cookieHdr(s.login(testToken))
	pages := map[string]string{
		"dashboard": s.do("GET", "/ui/", nil, "Cookie", c).body,
		"login":     s.do("GET", "/ui/", nil).body,
	}
	for f, sf := range s.ui.static {
		pages[f] = string(sf.body)
	}
	for name, body := range pages {
		for _, bad := range []string{"alert(", "onerror", "<img src=x"} {
			if strings.Contains(body, bad) {
				t.Errorf("%s contains %q", name, bad)
			}
		}
	}
}

func TestStatic(t *testing.T) {
	s := newStack(t, stackOpts{tokens: []string{testToken}})
	for file, ct := range map[string]string{
		"app.js": "text/javascript; charset=utf-8", "chart.js": "text/javascript; charset=utf-8",
		"app.css": "text/css; charset=utf-8", "favicon.svg": "image/svg+xml",
	} {
		// static files need no session: they hold no data
		a := s.do("GET", "/ui/static/"+file, nil)
		etag := a.header.Get("ETag")
		if a.status != 200 || a.header.Get("Content-Type") != ct || etag == "" || a.body != string(s.ui.static[file].body) {
			t.Errorf("%s: %d %v", file, a.status, a.header)
			continue
		}
		if a := s.do("GET", "/ui/static/"+file, nil, "If-None-Match", etag); a.status != http.StatusNotModified || a.body != "" {
			t.Errorf("%s revalidated: %d", file, a.status)
		}
	}
	if a := s.do("GET", "/ui/static/nope.js", nil); a.status != 404 {
		t.Errorf("unknown file: %d", a.status)
	}
	if a := s.do("GET", "/ui/static/../ui.go", nil); a.status == 200 {
		t.Errorf("path escape: %d %s", a.status, a.body)
	}
}

// GET /v1/stats serves the UI's samples through the API.
func TestStatsThroughTheAPI(t *testing.T) {
	var c atomic.Pointer[Counters]
	c.Store(&Counters{})
	s := newStack(t, stackOpts{ui: func(o *Options) { o.Counters = func() Counters { return *c.Load() } }})
	s.ui.sampler.sampleOnce()
	s.now.Add(int64(time.Second))
	c.Store(&Counters{Enqueued: 4, Completed: 3, Failed: 1, Fsyncs: 2, Records: 8, WALBytes: 512})
	s.ui.sampler.sampleOnce()
	s.ui.Recovered(time.Unix(0, s.now.Load()), 12)
	a := s.do("GET", "/v1/stats", nil)
	var st api.Stats
	if err := json.Unmarshal([]byte(a.body), &st); err != nil {
		t.Fatal(err)
	}
	if len(st.Series.Enqueued) != 1 || st.Series.Enqueued[0] != 4 || st.Series.Failed[0] != 1 ||
		st.WAL.RecordsPerFsync != 4 || st.JobsRecovered != 12 || st.Interval != "1s" || st.Window != "15m0s" {
		t.Errorf("stats: %s", a.body)
	}
}
