// Package ui is Beaver-Raft's web dashboard, served by the API listener at
// /ui/ (docs/ui.md describes every panel).
//
// The pages are plain HTML, CSS and JavaScript embedded with go:embed: no
// build step, no CDN. The JavaScript reads everything from the public v1
// API (GET /v1/status, /v1/stats, /v1/jobs...) and acts through it (cancel,
// retry, bulk), and it renders data only as text (textContent and DOM
// calls, never HTML built from data). Every answer of this package carries
// a Content-Security-Policy that allows scripts from this origin only, so
// no inline script can run.
//
// # Authentication
//
// With tokens configured (Options.CheckToken set), /ui/ shows a login page
// that takes a token. POST /ui/login checks it and starts a session: a
// random id in an HttpOnly, SameSite=Strict cookie (Secure when the request
// came over TLS), mapped in memory to an expiry and a CSRF token. The page
// receives the CSRF token in a meta tag and sends it as X-CSRF-Token with
// every write; UI implements httpapi.SessionAuth, so the API accepts the
// cookie instead of a bearer token, and refuses a cookie-authenticated
// write without the CSRF token (403). Without tokens everything is open.
//
// # Routes
//
//	GET  /ui/             the dashboard, or the login page
//	POST /ui/login        form field "token": starts a session, 303 to /ui/
//	POST /ui/logout       ends the session (needs the CSRF token), 303 to /ui/
//	GET  /ui/static/...   the embedded scripts, style sheet and icon
//
// # The sampler
//
// Run samples the server's counters once a second and keeps 15 minutes of
// per-second rates in a ring for GET /v1/stats (Stats). Its one goroutine
// is the caller's: Run returns when its context is canceled.
package ui

import (
	"context"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"path"
	"strings"
	"time"

	"github.com/beaver-raft/beaver-raft/api"
)

// Names of the session cookie and of the CSRF header.
const (
	CookieName = "beaver_session"
	CSRFHeader = "X-CSRF-Token"
)

// Defaults of Options.
const (
	DefaultSessionTTL  = 12 * time.Hour
	DefaultMaxSessions = 1000
	// maxLoginForm bounds the body of POST /ui/login and /ui/logout.
	maxLoginForm = 8 << 10
)

// ContentSecurityPolicy is sent with every answer of the UI: scripts,
// styles, images and API calls from this origin only, no inline script or
// style, no framing, forms post only here.
const ContentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; " +
	"connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

//go:embed assets
var assets embed.FS

// Options configure a UI. Zero values take the defaults.
type Options struct {
	// CheckToken reports whether a token typed into the login page is one
	// of the server's tokens (httpapi.API.ValidToken). Nil: no tokens are
	// configured and the UI is open, as the API is.
	CheckToken func(token string) bool
	// Counters reads the cumulative counters that the sampler turns into
	// rates (see MetricsCounters). Nil: the series stay empty.
	Counters func() Counters
	// Clock gives the time of samples and session expiries. Default
	// time.Now.
	Clock func() time.Time
	// Logger receives one record per login and logout. Default: discard.
	Logger *slog.Logger
	// SessionTTL is how long a session lasts after its login (default
	// 12h); MaxSessions how many live sessions are kept (default 1000: a
	// login beyond ends the oldest one).
	SessionTTL  time.Duration
	MaxSessions int
}

// UI is the dashboard: an http.Handler for /ui/, the session check of the
// API (httpapi.SessionAuth) and the stats sampler. Create it with New.
type UI struct {
	o        Options
	log      *slog.Logger
	sessions *sessions
	sampler  *sampler
	mux      *http.ServeMux
	pages    *template.Template
	static   map[string]staticFile
}

type staticFile struct {
	body        []byte
	contentType string
	etag        string
}

// New returns a UI configured by o.
func New(o Options) *UI {
	if o.Clock == nil {
		o.Clock = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.SessionTTL <= 0 {
		o.SessionTTL = DefaultSessionTTL
	}
	if o.MaxSessions <= 0 {
		o.MaxSessions = DefaultMaxSessions
	}
	u := &UI{
		o:        o,
		log:      o.Logger,
		sessions: newSessions(o.Clock, o.SessionTTL, o.MaxSessions),
		sampler:  &sampler{read: o.Counters, clock: o.Clock, interval: SampleInterval},
		pages:    template.Must(template.ParseFS(assets, "assets/*.html")),
		static:   loadStatic(),
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /ui/{$}", u.index)
	mux.HandleFunc("GET /ui/login", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/ui/", http.StatusSeeOther) })
	mux.HandleFunc("POST /ui/login", u.login)
	mux.HandleFunc("POST /ui/logout", u.logout)
	mux.HandleFunc("GET /ui/static/{file}", u.serveStatic)
	mux.HandleFunc("/ui/", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "404 page not found: "+r.URL.Path, http.StatusNotFound)
	})
	u.mux = mux
	return u
}

// loadStatic reads the embedded static files once, with an ETag each.
func loadStatic() map[string]staticFile {
	types := map[string]string{
		".js":  "text/javascript; charset=utf-8",
		".css": "text/css; charset=utf-8",
		".svg": "image/svg+xml",
	}
	out := map[string]staticFile{}
	entries, err := fs.ReadDir(assets, "assets/static")
	if err != nil {
		panic(err) // embedded at build time: cannot fail
	}
	for _, e := range entries {
		b, err := fs.ReadFile(assets, "assets/static/"+e.Name())
		if err != nil {
			panic(err)
		}
		sum := sha256.Sum256(b)
		out[e.Name()] = staticFile{body: b, contentType: types[path.Ext(e.Name())],
			etag: `"` + base64.RawURLEncoding.EncodeToString(sum[:12]) + `"`}
	}
	return out
}

// ServeHTTP serves /ui/ with the security headers on every answer.
func (u *UI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", ContentSecurityPolicy)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "same-origin") // not no-referrer: browsers then send Origin: null with form posts
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	u.mux.ServeHTTP(w, r)
}

// Session implements httpapi.SessionAuth: r carries the cookie of a live
// session, and (csrf) that session's token in its X-CSRF-Token header.
func (u *UI) Session(r *http.Request) (ok, csrf bool) {
	token, ok := u.session(r)
	if !ok {
		return false, false
	}
	return true, sameToken(r.Header.Get(CSRFHeader), token)
}

// session returns the CSRF token of r's live session.
func (u *UI) session(r *http.Request) (csrf string, ok bool) {
	c, err := r.Cookie(CookieName)
	if err != nil {
		return "", false
	}
	return u.sessions.lookup(c.Value)
}

// Stats is the sampled part of GET /v1/stats (httpapi.Options.Stats).
func (u *UI) Stats() api.Stats { return u.sampler.stats() }

// Recovered records when the server became ready and how many jobs it
// recovered, for GET /v1/stats.
func (u *UI) Recovered(at time.Time, jobs int) { u.sampler.recovered(at, jobs) }

// Run samples the counters once a second until ctx is canceled, and then
// returns. It returns at once if Options.Counters is nil.
func (u *UI) Run(ctx context.Context) { u.sampler.run(ctx) }

func (u *UI) auth() bool { return u.o.CheckToken != nil }

type pageData struct {
	Auth  bool
	CSRF  string
	Error string
}

func (u *UI) render(w http.ResponseWriter, status int, name string, data pageData) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	if err := u.pages.ExecuteTemplate(w, name, data); err != nil {
		u.log.Error("ui: render page", "page", name, "err", err)
	}
}

// GET /ui/
func (u *UI) index(w http.ResponseWriter, r *http.Request) {
	if !u.auth() {
		u.render(w, http.StatusOK, "index.html", pageData{})
		return
	}
	csrf, ok := u.session(r)
	if !ok {
		u.render(w, http.StatusOK, "login.html", pageData{Auth: true})
		return
	}
	u.render(w, http.StatusOK, "index.html", pageData{Auth: true, CSRF: csrf})
}

// POST /ui/login
func (u *UI) login(w http.ResponseWriter, r *http.Request) {
	if !u.auth() {
		http.Redirect(w, r, "/ui/", http.StatusSeeOther)
		return
	}
	if !sameOrigin(r) {
		http.Error(w, "403 forbidden: a login must come from this server's own page", http.StatusForbidden)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxLoginForm)
	token := strings.TrimSpace(r.PostFormValue("token"))
	if token == "" || !u.o.CheckToken(token) {
		u.log.Warn("ui: login refused", "remote", r.RemoteAddr)
		u.render(w, http.StatusUnauthorized, "login.html", pageData{Auth: true, Error: "That token is not valid. Use one of the server's auth.tokens."})
		return
	}
	id, expires := u.sessions.create()
	http.SetCookie(w, &http.Cookie{
		Name:     CookieName,
		Value:    id,
		Path:     "/",
		Expires:  expires,
		MaxAge:   int(u.o.SessionTTL / time.Second),
		HttpOnly: true,
		Secure:   r.TLS != nil,
		SameSite: http.SameSiteStrictMode,
	})
	u.log.Info("ui: login", "remote", r.RemoteAddr)
	http.Redirect(w, r, "/ui/", http.StatusSeeOther)
}

// POST /ui/logout
func (u *UI) logout(w http.ResponseWriter, r *http.Request) {
	if !u.auth() {
		http.Redirect(w, r, "/ui/", http.StatusSeeOther)
		return
	}
	c, err := r.Cookie(CookieName)
	if err != nil {
		http.Redirect(w, r, "/ui/", http.StatusSeeOther)
		return
	}
	csrf, ok := u.sessions.lookup(c.Value)
	if !ok {
		http.Redirect(w, r, "/ui/", http.StatusSeeOther)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxLoginForm)
	got := r.Header.Get(CSRFHeader)
	if got == "" {
		got = r.PostFormValue("csrf_token")
	}
	if !sameToken(got, csrf) {
		http.Error(w, "403 forbidden: missing or wrong CSRF token", http.StatusForbidden)
		return
	}
	u.sessions.remove(c.Value)
	http.SetCookie(w, &http.Cookie{Name: CookieName, Value: "", Path: "/", MaxAge: -1, HttpOnly: true,
		Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode})
	u.log.Info("ui: logout", "remote", r.RemoteAddr)
	http.Redirect(w, r, "/ui/", http.StatusSeeOther)
}

// sameOrigin reports whether a form post came from this server's own
// pages, as far as the browser says: an Origin header, when present, must
// name this host. (Browsers send it with every POST; tools may not.)
func sameOrigin(r *http.Request) bool {
	o := r.Header.Get("Origin")
	if o == "" {
		return true
	}
	ou, err := url.Parse(o)
	return err == nil && ou.Host == r.Host && (ou.Scheme == "http" || ou.Scheme == "https")
}

// GET /ui/static/{file}
func (u *UI) serveStatic(w http.ResponseWriter, r *http.Request) {
	f, ok := u.static[r.PathValue("file")]
	if !ok {
		http.Error(w, "404 page not found: "+r.URL.Path, http.StatusNotFound)
		return
	}
	h := w.Header()
	h.Set("ETag", f.etag)
	h.Set("Cache-Control", "no-cache") // revalidate: the ETag makes that cheap
	if f.contentType != "" {
		h.Set("Content-Type", f.contentType)
	}
	if inm := r.Header.Get("If-None-Match"); inm != "" && inm == f.etag {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	w.Write(f.body)
}
