package ui_test

// The browser test drives Debian's chromium with chromedp against a real
// server (internal/server, a temporary data directory, a token): log in,
// watch the counts move, open a job, retry a failed one, and check that
// hostile data renders as text.
//
//	go test -run TestBrowser -v ./internal/ui/
//
// Without a chromium binary the test skips, unless CI is set: then it
// fails. BEAVER_CHROMIUM names the binary; screenshots go to
// $BEAVER_UI_SCREENSHOTS, or to a new temporary directory that the test
// logs. -ui.load=30s runs a load of sleep jobs for that long before the
// overview screenshot (for the pictures of docs/ui.md).

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/beaver-raft/beaver-raft/api"
	"github.com/beaver-raft/beaver-raft/client"
	"github.com/beaver-raft/beaver-raft/internal/config"
	"github.com/beaver-raft/beaver-raft/internal/handlers"
	"github.com/beaver-raft/beaver-raft/internal/server"
)

var uiLoad = flag.Duration("ui.load", 0, "run a load of sleep jobs for this long before the overview screenshot")

const (
	browserToken = "browser-test-token-7f3a"
	hostileError = `<img src=x onerror=alert(2)>`
)

// chromium finds the browser, or skips the test (fails it in CI).
func chromium(t *testing.T) string {
	t.Helper()
	candidates := []string{os.Getenv("BEAVER_CHROMIUM"), "/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome", "google-chrome-stable"}
	for _, c := range candidates {
		if c == "" {
			continue
		}
		if p, err := exec.LookPath(c); err == nil {
			return p
		}
	}
	if ci := os.Getenv("CI"); ci != "" && ci != "false" && ci != "0" {
		t.Fatal("CI is set but no chromium binary was found: install it (apt-get install -y chromium) or set BEAVER_CHROMIUM")
	}
	t.Skip("no chromium binary found (apt-get install -y chromium, or set BEAVER_CHROMIUM): skipping the browser test")
	return ""
}

func screenshotDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("BEAVER_UI_SCREENSHOTS")
	if dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	} else {
		var err error
		if dir, err = os.MkdirTemp("", "beaver-ui-screenshots-"); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("screenshots in %s", dir)
	return dir
}

// runningServer starts a server with a token and two test handlers:
// "flaky" fails the first attempt of each job (with a hostile error) and
// completes the next; "slow" sleeps as long as its payload says.
type runningServer struct {
	s    *server.Server
	c    *client.Client
	base string
}

func startServer(t *testing.T) *runningServer {
	t.Helper()
	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	cfg.Listen = "127.0.0.1:0"
	cfg.MetricsListen = "127.0.0.1:0"
	cfg.Auth.Tokens = []string{browserToken}
	cfg.Workers = 4
	var mu sync.Mutex
	seen := map[string]int{}
	hs := map[string]handlers.Handler{
		"flaky": handlers.HandlerFunc(func(ctx context.Context, j *handlers.Job) ([]byte, error) {
			mu.Lock()
			seen[j.ID]++
			n := seen[j.ID]
			mu.Unlock()
			if n == 1 {
				return nil, errors.New(hostileError)
			}
			return []byte(`{"sent":true,"provider":"smtp.example.com","run":` + strconv.Itoa(n) + `}`), nil
		}),
	}
	s, err := server.New(server.Options{Config: cfg, Handlers: hs, Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	select {
	case <-s.Ready():
	case err := <-done:
		cancel()
		t.Fatal(err)
	}
	base := "http://" + s.Addr().String()
	c := client.New(base, client.WithToken(browserToken))
	t.Cleanup(func() {
		cancel()
		c.Close()
		if err := <-done; err != nil {
			t.Errorf("server: %v", err)
		}
	})
	return &runningServer{s: s, c: c, base: base}
}

// waitState waits, on the replica's changes, until job id is in state.
func (r *runningServer) waitState(t *testing.T, id, state string) {
	t.Helper()
	deadline := time.NewTimer(20 * time.Second)
	defer deadline.Stop()
	for {
		ch := r.s.Replica().Changed()
		j, err := r.c.Get(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if j.State == state {
			return
		}
		select {
		case <-ch:
		case <-deadline.C:
			t.Fatalf("job %s is %s, want %s", id, j.State, state)
		}
	}
}

func (r *runningServer) enqueue(t *testing.T, req api.EnqueueRequest) string {
	t.Helper()
	res, err := r.c.Enqueue(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	return res.ID
}

// browser is one chromium tab, with what the page did that it must not:
// dialogs, uncaught exceptions, CSP violations.
type browser struct {
	t     *testing.T
	ctx   context.Context
	shots string

	dialogs atomic.Int32
	mu      sync.Mutex
	faults  []string
}

func (b *browser) fault(s string) {
	b.mu.Lock()
	b.faults = append(b.faults, s)
	b.mu.Unlock()
}

func startBrowser(t *testing.T, path, shots string) *browser {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("hide-scrollbars", true),
		chromedp.WindowSize(1280, 1000),
		// no UserDataDir: chromedp makes a fresh one and removes it
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTab := chromedp.NewContext(allocCtx, chromedp.WithLogf(t.Logf))
	b := &browser{t: t, ctx: ctx, shots: shots}
	if err := chromedp.Do(ctx); err != nil { // starts the browser
		cancelTab()
		cancelAlloc()
		t.Fatalf("start chromium: %v", err)
	}
	// Subscribe before any page loads. The goroutine answers dialogs (an
	// alert would stall the page) and ends when the tab closes.
	dialogs := chromedp.Events(ctx, page.JavascriptDialogOpening)
	exceptions := chromedp.Events(ctx, runtime.ExceptionThrown)
	logs := chromedp.Events(ctx, cdplog.EntryAdded)
	var wg sync.WaitGroup
	wg.Add(3)
	go func() {
		defer wg.Done()
		for ev, err := range dialogs {
			if err != nil {
				return
			}
			b.dialogs.Add(1)
			b.fault("a JavaScript dialog opened: " + ev.Message)
			chromedp.Call(ctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: false})
		}
	}()
	go func() {
		defer wg.Done()
		for ev, err := range exceptions {
			if err != nil {
				return
			}
			b.fault("uncaught exception: " + (&chromedp.ExceptionError{ExceptionDetails: ev.ExceptionDetails}).Error())
		}
	}()
	go func() {
		defer wg.Done()
		for ev, err := range logs {
			if err != nil {
				return
			}
			if e := ev.Entry; e.Source == "security" || strings.Contains(e.Text, "Content Security Policy") {
				b.fault("security log: " + e.Text)
			}
		}
	}()
	if _, err := chromedp.Call(ctx, cdplog.Enable, cdp.Empty{}); err != nil {
		t.Fatalf("enable the log domain: %v", err)
	}
	t.Cleanup(func() {
		if err := chromedp.Cancel(ctx); err != nil {
			t.Logf("close chromium: %v", err)
		}
		cancelTab()
		cancelAlloc()
		wg.Wait()
	})
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(1280, 1000)); err != nil {
		t.Fatal(err)
	}
	return b
}

func (b *browser) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		b.failed(what, err)
	}
}

func (b *browser) eval(what, expr string) string {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[string](expr))
	if err != nil {
		b.failed(what, err)
	}
	return v
}

// wait polls a JavaScript condition until it holds (chromedp's polling, in
// the page, on every animation frame).
func (b *browser) wait(what, cond string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	if _, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](cond, chromedp.WithPollingTimeout(15*time.Second))); err != nil {
		b.failed(what, err)
	}
}

// failed saves a screenshot and the page's text, then fails.
func (b *browser) failed(what string, err error) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
	defer cancel()
	if png, serr := chromedp.Run(ctx, chromedp.CaptureScreenshot()); serr == nil {
		os.WriteFile(filepath.Join(b.shots, "failure.png"), png, 0o644)
	}
	text, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : ""`))
	b.t.Fatalf("%s: %v\nfaults: %v\npage text:\n%s", what, err, b.faults, text)
}

func (b *browser) screenshot(name string, full bool) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 15*time.Second)
	defer cancel()
	shot := chromedp.CaptureScreenshot()
	if full {
		shot = chromedp.FullScreenshot(100)
	}
	png, err := chromedp.Run(ctx, shot)
	if err != nil {
		b.t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.WriteFile(filepath.Join(b.shots, name+".png"), png, 0o644); err != nil {
		b.t.Fatal(err)
	}
}

// hash moves the single-page app to a route, without a page load.
func (b *browser) hash(route string) {
	b.t.Helper()
	b.eval("go to "+route, "location.hash = "+jsString(route))
}

func jsString(s string) string {
	q, _ := json.Marshal(s)
	return string(q)
}

// cell is the expression of the text of a count of the overview.
func cell(queue, state string) string {
	return fmt.Sprintf(`(document.querySelector('#counts td[data-queue=%s][data-state=%s]') || {}).textContent`, jsString(queue), jsString(state))
}

func TestBrowser(t *testing.T) {
	path := chromium(t)
	start := time.Now()
	shots := screenshotDir(t)
	srv := startServer(t)
	b := startBrowser(t, path, shots)

	// GET / redirects to the login page; a wrong token is refused.
	b.do("open the login page", chromedp.Navigate(srv.base+"/"), chromedp.WaitVisible(chromedp.ID("token")))
	if loc := b.eval("location", "location.pathname"); loc != "/ui/" {
		t.Errorf("/ went to %s, want /ui/", loc)
	}
	b.screenshot("login", false)
	resp, err := chromedp.RunResponse(b.ctx, chromedp.SendKeys(chromedp.ID("token"), "wrong-token"), chromedp.Click(chromedp.ID("login-submit")))
	if err != nil {
		b.failed("submit a wrong token", err)
	}
	if resp.Status != 401 {
		t.Errorf("wrong token: status %d, want 401", resp.Status)
	}
	b.do("see the refusal", chromedp.WaitVisible(chromedp.ID("login-error")))

	// Log in with the token.
	resp, err = chromedp.RunResponse(b.ctx, chromedp.SendKeys(chromedp.ID("token"), browserToken), chromedp.Click(chromedp.ID("login-submit")))
	if err != nil {
		b.failed("log in", err)
	}
	if resp.Status != 200 {
		t.Fatalf("login: status %d", resp.Status)
	}
	b.wait("the overview shows the counts", `document.querySelector('#counts table') !== null`)
	if c := b.eval("cookies", "document.cookie"); strings.Contains(c, "beaver_session") {
		t.Errorf("the session cookie is readable from JavaScript: %q", c)
	}
	b.wait("the role is shown", `(document.getElementById('server-role') || {}).textContent === 'single'`)

	// The counts move as jobs are enqueued, with no page reload.
	b.eval("mark the page", `window.beaverMark = 'still here'; 'ok'`)
	for range 3 {
		srv.enqueue(t, api.EnqueueRequest{Queue: "emails", Type: "held"}) // no handler: stays pending
	}
	b.wait("3 pending jobs in queue emails", cell("emails", "pending")+` === '3'`)
	for range 4 {
		srv.enqueue(t, api.EnqueueRequest{Queue: "emails", Type: "held"})
	}
	b.wait("7 pending jobs in queue emails", cell("emails", "pending")+` === '7'`)
	b.wait("7 pending jobs overall", cell("*", "pending")+` === '7'`)
	if m := b.eval("the mark", `String(window.beaverMark)`); m != "still here" {
		t.Errorf("the page reloaded to show the counts (mark %q)", m)
	}

	// Work runs: the throughput chart and its legend show it.
	batch := api.BatchRequest{}
	for i := range 40 {
		batch.Jobs = append(batch.Jobs, api.EnqueueRequest{Type: "sleep", Payload: json.RawMessage(`{"duration":"` + strconv.Itoa(5+i%20) + `ms"}`)})
	}
	if _, err := srv.c.EnqueueBatch(context.Background(), batch); err != nil {
		t.Fatal(err)
	}
	if *uiLoad > 0 {
		// The screenshot is taken while the load still runs.
		ctx, stop := context.WithCancel(context.Background())
		ran, done := make(chan struct{}), make(chan error, 1)
		go func() { done <- runLoad(ctx, srv, *uiLoad, ran) }()
		<-ran
		defer func() {
			stop()
			if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
				t.Errorf("load: %v", err)
			}
		}()
	}
	b.wait("the chart shows enqueued jobs", `(() => {
		const b = document.querySelector('#throughput-legend [data-series="enqueued"] b');
		return b && b.textContent !== '0 jobs/s' && document.querySelector('#throughput-chart polyline.s-enqueued') !== null;
	})()`)
	b.wait("the completions reach the counts", `Number((`+cell("default", "completed")+` || '0').replace(/,/g, '')) >= 40`)
	b.wait("the WAL panel shows fsyncs", `/fsyncs\/s/.test((document.getElementById('wal-fsyncs') || {}).textContent || '')`)
	b.screenshot("overview", false)
	b.do("dark mode", func(ctx context.Context, tg *chromedp.Target) (chromedp.Void, error) {
		_, err := chromedp.Call(ctx, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
			Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: "dark"}}})
		return chromedp.Void{}, err
	})
	b.screenshot("overview-dark", false)
	b.do("light mode", func(ctx context.Context, tg *chromedp.Target) (chromedp.Void, error) {
		_, err := chromedp.Call(ctx, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{})
		return chromedp.Void{}, err
	})

	// A job fails; its page shows the hostile error as text; retry runs
	// it again and the page follows it to completed.
	flaky := srv.enqueue(t, api.EnqueueRequest{Queue: "emails", Type: "flaky", MaxAttempts: 1,
		Payload: json.RawMessage(`{"to":"ada@example.com","template":"welcome","vars":{"name":"Ada","plan":"pro"}}`)})
	srv.waitState(t, flaky, api.StateFailed)
	b.hash("#/jobs/" + flaky)
	b.wait("the job page shows failed", `(document.querySelector('#job-state [data-state]') || {dataset: {}}).dataset.state === 'failed'`)
	if got := b.eval("the error", `document.getElementById('job-error').textContent`); got != hostileError {
		t.Errorf("last error shown as %q, want %q", got, hostileError)
	}
	b.do("retry", chromedp.Click(chromedp.ID("job-retry")))
	b.wait("the retried job completes", `(document.querySelector('#job-state [data-state]') || {dataset: {}}).dataset.state === 'completed'`)
	b.wait("the result is shown", `/"sent": true/.test((document.getElementById('job-result') || {}).textContent || '')`)
	if got := b.eval("the attempts", `document.getElementById('job-attempts').textContent`); got != "1 of 1 attempts" {
		t.Errorf("attempts shown as %q", got)
	}
	b.screenshot("job", true)

	// A hostile payload renders as text.
	hostile := srv.enqueue(t, api.EnqueueRequest{Queue: "emails", Type: "held", UniqueKey: `<b id="injected">key</b>`,
		Payload: json.RawMessage(`{"html":"<script>alert(1)</script>","img":"<img src=x onerror=alert(1)>","big":12345678901234567890}`)})
	b.hash("#/jobs/" + hostile)
	b.wait("the payload is shown", `/alert\(1\)<\/script>/.test((document.getElementById('job-payload') || {}).textContent || '')`)
	payload := b.eval("the payload", `document.getElementById('job-payload').textContent`)
	for _, want := range []string{`"html": "<script>alert(1)</script>"`, `"img": "<img src=x onerror=alert(1)>"`, `"big": 12345678901234567890`} {
		if !strings.Contains(payload, want) {
			t.Errorf("payload text lacks %s:\n%s", want, payload)
		}
	}
	if got := b.eval("the unique key", `document.getElementById('job-unique-key').textContent`); got != `<b id="injected">key</b>` {
		t.Errorf("unique key shown as %q", got)
	}
	if n := b.eval("injected elements", `String(document.querySelectorAll('img[src="x"], #injected').length + [...document.scripts].filter(s => !s.src.includes('/ui/static/')).length)`); n != "0" {
		t.Errorf("%s elements were injected into the page", n)
	}
	if n := b.eval("visible", `String(document.getElementById('job-payload').getBoundingClientRect().height > 0)`); n != "true" {
		t.Error("the payload is not visible")
	}
	b.screenshot("job-hostile", true)

	// The jobs list, filtered; a bulk cancel says how many jobs it touched.
	b.hash("#/jobs?queue=emails&state=pending")
	b.wait("the list shows the 8 pending jobs", `document.querySelectorAll('#jobs-list tbody tr').length === 8`)
	if first := b.eval("first row", `document.querySelector('#jobs-list tbody tr').dataset.jobId`); first != hostile {
		t.Errorf("newest first: first row is job %s, want %s", first, hostile)
	}
	b.screenshot("jobs", false)
	b.do("bulk cancel", chromedp.Click(chromedp.ID("bulk-cancel")), chromedp.WaitVisible(chromedp.ID("bulk-confirm")), chromedp.Click(chromedp.ID("bulk-confirm")))
	b.wait("the bulk cancel reports", `/^Canceled 8 jobs \(8 matched, 0 refused\)/.test((document.getElementById('bulk-message') || {}).textContent || '')`)
	b.wait("the list empties", `document.getElementById('jobs-empty') !== null`)
	b.hash("#/")
	b.wait("the overview counts the canceled jobs", cell("emails", "canceled")+` === '8'`)

	// Queues: depth and the oldest pending job.
	srv.enqueue(t, api.EnqueueRequest{Queue: "reports", Type: "held"})
	b.hash("#/queues")
	b.wait("the queues page shows reports", `(document.querySelector('#queues tr[data-queue="reports"] td[data-field="depth"]') || {}).textContent === '1'`)
	b.wait("and the age of its oldest pending job", `/\d/.test((document.querySelector('#queues tr[data-queue="reports"] td[data-field="oldest-age"]') || {}).textContent || '')`)
	b.screenshot("queues", false)

	// Pause and resume a queue from the queues page: the state machine
	// says paused, and the page shows it.
	b.do("pause reports", chromedp.Click(chromedp.CSS(`#queues tr[data-queue="reports"] button[data-action="pause"]`)))
	b.wait("the page shows reports paused", `(document.querySelector('#queues tr[data-queue="reports"] td[data-field="leases"]') || {}).textContent === 'paused Resume'`)
	if q, err := srv.c.Queue(context.Background(), "reports"); err != nil || !q.Paused {
		t.Errorf("after Pause in the page, the queue is %+v (%v), want paused", q, err)
	}
	if _, err := srv.c.SetQueue(context.Background(), "reports", api.QueueSettings{Paused: ptr(true), Concurrency: ptr(3)}); err != nil {
		t.Fatal(err)
	}
	b.wait("the page shows the concurrency limit", `(document.querySelector('#queues tr[data-queue="reports"] td[data-field="limits"]') || {}).textContent === 'at most 3 in flight'`)
	b.do("resume reports", chromedp.Click(chromedp.CSS(`#queues tr[data-queue="reports"] button[data-action="resume"]`)))
	b.wait("the page shows reports running", `/^running Pause$|^at its concurrency limit Pause$/.test((document.querySelector('#queues tr[data-queue="reports"] td[data-field="leases"]') || {}).textContent)`)
	if q, err := srv.c.Queue(context.Background(), "reports"); err != nil || q.Paused {
		t.Errorf("after Resume in the page, the queue is %+v (%v), want running", q, err)
	}

	if n := b.dialogs.Load(); n != 0 {
		t.Errorf("%d JavaScript dialogs opened", n)
	}
	b.mu.Lock()
	for _, f := range b.faults {
		t.Error(f)
	}
	b.mu.Unlock()
	t.Logf("browser test ran in %v", time.Since(start).Round(time.Millisecond))
}

// runLoad enqueues sleep jobs in bursts until ctx ends, for screenshots
// with a chart worth looking at; ran is closed after d. (The ticker paces
// the load; it synchronises nothing.)
func runLoad(ctx context.Context, srv *runningServer, d time.Duration, ran chan<- struct{}) error {
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	end := time.Now().Add(d)
	for i := 0; ; i++ {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
		if end.Before(time.Now()) && ran != nil {
			close(ran)
			ran = nil
		}
		n := 20 + 15*(i/8%4)
		var batch api.BatchRequest
		for k := range n {
			batch.Jobs = append(batch.Jobs, api.EnqueueRequest{Type: "sleep", Payload: json.RawMessage(`{"duration":"` + strconv.Itoa(10+k%30) + `ms"}`)})
		}
		if i%9 == 0 {
			batch.Jobs = append(batch.Jobs, api.EnqueueRequest{Type: "flaky", MaxAttempts: 2})
		}
		if _, err := srv.c.EnqueueBatch(ctx, batch); err != nil {
			return err
		}
	}
}

func ptr[T any](v T) *T { return &v }
