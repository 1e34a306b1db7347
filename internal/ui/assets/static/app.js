// Beaver-Raft dashboard. Plain JavaScript, no dependencies but chart.js.
//
// Everything comes from the public v1 API. Data is only ever rendered as
// text: through el() (textContent and text nodes) and setAttribute with
// values this file builds. Nothing here parses HTML.
'use strict';

(() => {
  const meta = (name) => {
    const m = document.querySelector('meta[name="' + name + '"]');
    return m ? m.getAttribute('content') : '';
  };
  const AUTH = meta('beaver-auth') === 'on';
  const CSRF = meta('beaver-csrf');
  const STATES = ['pending', 'scheduled', 'in_flight', 'blocked', 'completed', 'failed', 'canceled'];
  const LABEL = {
    pending: 'pending', scheduled: 'scheduled', in_flight: 'in flight', blocked: 'blocked',
    completed: 'completed', failed: 'failed', canceled: 'canceled',
  };
  const RETRYABLE = ['failed', 'canceled', 'scheduled'];
  const CANCELABLE = ['pending', 'scheduled', 'in_flight', 'blocked'];
  const PAYLOAD_CAP = 64 * 1024; // characters of pretty-printed JSON shown
  const BULK_LIMIT = 10000; // the server's default limit of one bulk call
  const main = document.getElementById('main');

  // ---------------------------------------------------------------- DOM

  // el builds an element. Strings among kids become text nodes; props set
  // attributes (class, text, dataset, on* listeners).
  function el(tag, props, ...kids) {
    const e = document.createElement(tag);
    if (props) {
      for (const [k, v] of Object.entries(props)) {
        if (v === undefined || v === null || v === false) continue;
        if (k === 'class') e.className = v;
        else if (k === 'text') e.textContent = v;
        else if (k === 'dataset') Object.assign(e.dataset, v);
        else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
        else if (v === true) e.setAttribute(k, '');
        else e.setAttribute(k, String(v));
      }
    }
    for (const c of kids.flat(Infinity)) {
      if (c === undefined || c === null || c === false) continue;
      e.append(c instanceof Node ? c : String(c));
    }
    return e;
  }

  function facts(rows) {
    const dl = el('dl', { class: 'facts' });
    for (const [label, value, opts] of rows) {
      dl.append(el('dt', null, label), el('dd', opts || null, value));
    }
    return dl;
  }

  function panel(title, unit, ...body) {
    return el('section', { class: 'panel' }, el('h2', null, title, unit ? el('span', { class: 'unit' }, ' ' + unit) : null), body);
  }

  function stateBadge(s) {
    return el('span', { class: 'state state-' + (STATES.includes(s) ? s : 'unknown'), dataset: { state: s } }, LABEL[s] || s);
  }

  // ---------------------------------------------------------- formatting

  const NF = new Intl.NumberFormat('en-US');
  const count = (n) => NF.format(n);
  const plural = (n, one, many) => count(n) + ' ' + (n === 1 ? one : many);

  function rate(v) {
    if (!(v > 0)) return '0';
    if (v < 10) return v.toFixed(2);
    if (v < 100) return v.toFixed(1);
    return NF.format(Math.round(v));
  }

  function bytes(n) {
    const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    let v = n, i = 0;
    while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
    return (i === 0 ? NF.format(v) : v.toFixed(v < 10 ? 2 : 1)) + ' ' + units[i];
  }

  // parseDuration reads a Go duration string ("1h2m3.5s", "850µs") as
  // seconds; NaN when it is not one.
  function parseDuration(s) {
    if (typeof s !== 'string' || s === '') return NaN;
    if (s === '0' || s === '0s') return 0;
    const units = { ns: 1e-9, us: 1e-6, 'µs': 1e-6, 'μs': 1e-6, ms: 1e-3, s: 1, m: 60, h: 3600 };
    const re = /^(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)/;
    let rest = s, sign = 1, total = 0;
    if (rest[0] === '-') { sign = -1; rest = rest.slice(1); }
    while (rest.length) {
      const m = re.exec(rest);
      if (!m) return NaN;
      total += parseFloat(m[1]) * units[m[2]];
      rest = rest.slice(m[0].length);
    }
    return sign * total;
  }

  // fixed is toFixed without trailing zeros: 8 not 8.00, 8.5 not 8.50.
  const fixed = (v, digits) => String(Number(v.toFixed(digits)));

  // seconds formats a number of seconds with its unit.
  function seconds(s) {
    if (!isFinite(s)) return '—';
    const a = Math.abs(s), sign = s < 0 ? '−' : '';
    if (a === 0) return '0 s';
    if (a < 1e-3) return sign + fixed(a * 1e6, a < 1e-5 ? 1 : 0) + ' µs';
    if (a < 1) return sign + fixed(a * 1e3, a < 0.01 ? 2 : a < 0.1 ? 1 : 0) + ' ms';
    if (a < 60) return sign + fixed(a, a < 10 ? 2 : 1) + ' s';
    let r = Math.round(a);
    const d = Math.floor(r / 86400); r -= d * 86400;
    const h = Math.floor(r / 3600); r -= h * 3600;
    const m = Math.floor(r / 60); r -= m * 60;
    const parts = [];
    if (d) parts.push(d + ' d');
    if (h) parts.push(h + ' h');
    if (m && !d) parts.push(m + ' min');
    if (r && !d && !h) parts.push(r + ' s');
    return sign + parts.join(' ');
  }
  const duration = (str) => seconds(parseDuration(str));

  // skew is the server's clock minus ours, from the last /v1/stats answer:
  // relative times are computed against the server's now.
  let skew = 0;
  const serverNow = () => Date.now() + skew;

  const pad2 = (n) => String(n).padStart(2, '0');
  function clockTime(iso) {
    const d = new Date(iso);
    if (isNaN(d)) return '—';
    return d.getFullYear() + '-' + pad2(d.getMonth() + 1) + '-' + pad2(d.getDate()) + ' ' +
      pad2(d.getHours()) + ':' + pad2(d.getMinutes()) + ':' + pad2(d.getSeconds());
  }
  function ago(iso) {
    const d = new Date(iso);
    if (isNaN(d)) return '';
    const s = (serverNow() - d.getTime()) / 1000;
    if (Math.abs(s) < 1) return 'just now';
    return s > 0 ? seconds(s) + ' ago' : 'in ' + seconds(-s);
  }
  // when shows a time as local date and time, with how long ago it was.
  function when(iso) {
    if (!iso) return el('span', { class: 'muted' }, '—');
    return el('span', { title: iso }, clockTime(iso), ' ', el('span', { class: 'muted' }, '(' + ago(iso) + ')'));
  }

  // --------------------------------------------------------------- the API

  class APIError extends Error {
    constructor(status, code, message) {
      super(message);
      this.status = status;
      this.code = code;
    }
  }

  // request calls the v1 API with the session cookie (and the CSRF token
  // for writes) and returns the answer's text.
  async function request(method, path, body) {
    const init = { method, credentials: 'same-origin', cache: 'no-store', headers: { Accept: 'application/json' } };
    if (method !== 'GET') {
      init.headers['Content-Type'] = 'application/json';
      if (CSRF) init.headers['X-CSRF-Token'] = CSRF;
      init.body = JSON.stringify(body || {});
    }
    let resp;
    try {
      resp = await fetch(path, init);
    } catch (e) {
      throw new APIError(0, 'network', 'cannot reach the server (' + e.message + ')');
    }
    const text = await resp.text();
    if (resp.ok) return text;
    let err = null;
    try { err = JSON.parse(text).error; } catch (_) { /* not a JSON error */ }
    if (resp.status === 401 && AUTH) {
      // the session ended (expired, logged out elsewhere, server restarted)
      location.replace('/ui/');
    }
    throw new APIError(resp.status, err ? err.code : 'http_' + resp.status, err ? err.message : resp.status + ' ' + resp.statusText);
  }
  const call = async (method, path, body) => JSON.parse(await request(method, path, body));

  // every runs fn now, and again ms after each run ends, while the page is
  // visible, until the returned function is called.
  function every(ms, fn) {
    let timer = null, stopped = false;
    const tick = async () => {
      timer = null;
      if (stopped) return;
      if (!document.hidden) {
        try { await fn(); } catch (e) { console.error(e); }
      }
      if (!stopped) timer = setTimeout(tick, ms);
    };
    tick();
    return () => { stopped = true; if (timer !== null) clearTimeout(timer); };
  }

  // ------------------------------------------------- status, banners, header

  const feed = { status: null, error: null, listeners: new Set() };

  function onStatus(fn) {
    feed.listeners.add(fn);
    if (feed.status || feed.error) fn(feed.status, feed.error);
    return () => feed.listeners.delete(fn);
  }

  async function pollStatus() {
    try {
      feed.status = await call('GET', '/v1/status');
      feed.error = null;
    } catch (e) {
      feed.error = e;
    }
    renderBanners();
    renderHeader();
    for (const fn of feed.listeners) fn(feed.status, feed.error);
  }

  function renderBanners() {
    const box = document.getElementById('banners');
    const out = [];
    const e = feed.error, st = e ? null : feed.status;
    if (e && e.status === 503 && e.message === 'recovering') {
      out.push(el('p', { class: 'banner banner-warn', id: 'banner-recovering' }, 'The server is recovering its data: the figures appear once it is ready.'));
    } else if (e) {
      out.push(el('p', { class: 'banner banner-error', id: 'banner-unreachable' }, 'Cannot read the server status: ' + e.message + '. Retrying every second.'));
    }
    if (st && st.failed) {
      out.push(el('p', { class: 'banner banner-error', id: 'banner-log-failed' },
        'The write-ahead log failed: ' + st.failed + '. The server refuses every write until it is restarted.'));
    }
    if (st && st.disk_full) {
      out.push(el('p', { class: 'banner banner-error', id: 'banner-disk-full' },
        'Disk full: enqueues are refused (507) until space is freed on the data directory\'s disk; completions keep working.'));
    }
    box.replaceChildren(...out);
  }

  function renderHeader() {
    const box = document.getElementById('server-info');
    const st = feed.status;
    if (!st) return;
    box.replaceChildren(
      el('span', null, 'role ', el('b', { id: 'role' }, st.role)),
      el('span', null, 'version ', el('b', null, st.version || '—')),
      el('span', null, 'up ', el('b', null, duration(st.uptime))),
    );
  }

  // -------------------------------------------------------------- routing

  let stopPage = null;

  function jobsHref(f) {
    const q = new URLSearchParams();
    for (const k of ['queue', 'state', 'type', 'order', 'limit']) if (f[k]) q.set(k, f[k]);
    const s = q.toString();
    return '#/jobs' + (s ? '?' + s : '');
  }

  function route() {
    if (stopPage) { stopPage(); stopPage = null; }
    const hash = location.hash.replace(/^#/, '') || '/';
    const qi = hash.indexOf('?');
    const path = qi < 0 ? hash : hash.slice(0, qi);
    const params = new URLSearchParams(qi < 0 ? '' : hash.slice(qi + 1));
    let nav = '', page;
    let m;
    if (path === '/' || path === '') { nav = 'overview'; page = overviewPage; }
    else if ((m = /^\/jobs\/(\d+)$/.exec(path))) { nav = 'jobs'; page = () => jobPage(m[1]); }
    else if (path === '/jobs') { nav = 'jobs'; page = () => jobsPage(params); }
    else if (path === '/queues') { nav = 'queues'; page = queuesPage; }
    else page = () => notFoundPage(path);
    for (const a of document.querySelectorAll('[data-nav]')) a.classList.toggle('active', a.dataset.nav === nav);
    main.replaceChildren();
    stopPage = page() || null;
  }

  function notFoundPage(path) {
    document.title = 'Not found · Beaver-Raft';
    main.append(el('h1', null, 'Not found'), el('p', null, 'Nothing lives at ', el('code', null, '#' + path), '. ', el('a', { href: '#/' }, 'Back to the overview')));
  }

  // -------------------------------------------------------------- overview

  function overviewPage() {
    document.title = 'Overview · Beaver-Raft';
    const counts = el('div', { class: 'table-wrap', id: 'counts' }, el('p', { class: 'muted' }, 'Loading…'));
    const chart = el('div', { class: 'chart-box', id: 'throughput-chart' });
    const legend = el('div', { class: 'legend', id: 'throughput-legend' });
    const readout = el('div', { class: 'readout' });
    const note = el('p', { class: 'muted small', id: 'throughput-note' });
    const walChart = el('div', { class: 'chart-box', id: 'fsync-chart' });
    const walReadout = el('div', { class: 'readout' });
    const walFacts = el('div', { id: 'wal' });
    const snapFacts = el('div', { id: 'snapshot' });
    const recFacts = el('div', { id: 'recovery' });
    const srvFacts = el('div', { id: 'server' });
    const clusterBox = el('section', { class: 'panel wide', id: 'panel-cluster', hidden: true });
    main.append(
      el('section', { class: 'panel wide', id: 'panel-counts' },
        el('h2', null, 'Jobs by state', el('span', { class: 'unit' }, ' (number of jobs per queue; live)')), counts),
      el('section', { class: 'panel wide', id: 'panel-throughput' },
        el('h2', null, 'Throughput', el('span', { class: 'unit' }, ' (per second, last 15 minutes)')), chart, legend, readout, note),
      el('div', { class: 'grid' },
        panel('Write-ahead log', null, walFacts, el('h2', { class: 'small' }, 'fsyncs', el('span', { class: 'unit' }, ' (per second)')), walChart, walReadout),
        panel('Last snapshot', null, snapFacts),
        panel('Last recovery', null, recFacts),
        panel('Server', null, srvFacts)),
      clusterBox,
    );

    let stats = null, statsError = null, status = null;

    function renderFacts() {
      renderWAL(walFacts, status, stats);
      renderSnapshot(snapFacts, status);
      renderRecovery(recFacts, status, stats);
      renderServer(srvFacts, status);
      renderCluster(clusterBox, status);
    }
    function renderCharts() {
      if (statsError) {
        chart.replaceChildren(el('p', { class: 'banner banner-warn' }, 'Cannot load the live figures: ' + statsError.message));
        return;
      }
      if (!stats) return;
      renderThroughput(chart, legend, readout, note, stats);
      const interval = parseDuration(stats.interval) || 1;
      BeaverChart.draw(walChart, {
        series: [{ name: 'fsyncs', cls: 's-fsyncs', values: stats.series.fsyncs }],
        slots: Math.round((parseDuration(stats.window) || 900) / interval), interval, unit: 'fsyncs/s',
        readout: walReadout, height: 120, label: 'WAL fsyncs per second over the last 15 minutes',
      });
    }

    const unsub = onStatus((st) => {
      status = st;
      if (st) renderCounts(counts, st);
      renderFacts();
    });
    const stop = every(2000, async () => {
      try {
        stats = await call('GET', '/v1/stats');
        statsError = null;
        skew = new Date(stats.time).getTime() - Date.now();
      } catch (e) {
        statsError = e;
      }
      renderCharts();
      renderFacts();
    });
    let resizeTimer = null;
    const onResize = () => { clearTimeout(resizeTimer); resizeTimer = setTimeout(renderCharts, 100); };
    window.addEventListener('resize', onResize);
    return () => { unsub(); stop(); clearTimeout(resizeTimer); window.removeEventListener('resize', onResize); };
  }

  function renderCounts(box, st) {
    const queues = Object.keys(st.queues || {}).sort();
    const depth = (c) => (c.pending || 0) + (c.scheduled || 0) + (c.in_flight || 0);
    const row = (name, c, total) => {
      const q = total ? '*' : name;
      return el('tr', { class: total ? 'total' : null, dataset: { queue: q } },
        el('td', null, total ? 'All queues' : el('a', { href: jobsHref({ queue: name }) }, name)),
        STATES.map((s) => {
          const n = c[s] || 0;
          const link = el('a', { href: jobsHref({ queue: total ? '' : name, state: s }) }, count(n));
          return el('td', { class: 'num' + (n ? '' : ' zero'), dataset: { queue: q, state: s } }, link);
        }),
        el('td', { class: 'num', dataset: { queue: q, state: 'depth' } }, count(depth(c))));
    };
    const table = el('table', { class: 'counts' },
      el('thead', null, el('tr', null,
        el('th', null, 'Queue'),
        STATES.map((s) => el('th', { class: 'num st-' + s }, LABEL[s])),
        el('th', { class: 'num', title: 'unfinished jobs: pending + scheduled + in flight' }, 'depth'))),
      el('tbody', null, queues.map((q) => row(q, st.queues[q], false)), row('', st.jobs || {}, true)));
    const kids = [table];
    if (!queues.length) {
      kids.push(el('p', { class: 'muted' }, 'No jobs yet. Enqueue one: ', el('code', null, 'bin/beaver-raft enqueue --type noop')));
    }
    box.replaceChildren(...kids);
  }

  function avgLast(values, n) {
    const part = values.slice(-n);
    return part.length ? part.reduce((a, b) => a + b, 0) / part.length : 0;
  }

  function renderThroughput(box, legend, readout, note, stats) {
    const interval = parseDuration(stats.interval) || 1;
    const slots = Math.round((parseDuration(stats.window) || 900) / interval);
    const series = [
      { name: 'enqueued', cls: 's-enqueued', values: stats.series.enqueued, unit: 'jobs/s' },
      { name: 'completed', cls: 's-completed', values: stats.series.completed, unit: 'jobs/s' },
      { name: 'failed attempts', cls: 's-failed', values: stats.series.failed, unit: 'attempts/s' },
    ];
    BeaverChart.draw(box, {
      series, slots, interval, unit: 'per s', readout,
      label: 'Jobs enqueued and completed, and attempts failed, per second over the last 15 minutes',
    });
    legend.replaceChildren(...series.map((s) => el('span', { dataset: { series: s.name } },
      el('span', { class: 'swatch sw-' + s.cls.slice(2) }), s.name + ': ',
      el('b', null, rate(avgLast(s.values, 10)) + ' ' + s.unit), el('span', { class: 'muted' }, ' (last 10 s)'))));
    const n = stats.series.enqueued.length;
    note.textContent = n < slots
      ? 'Sampled every ' + seconds(interval) + ' since the server started ' + seconds(n * interval) + ' ago: the chart fills from the right.'
      : 'One sample every ' + seconds(interval) + '.';
  }

  function renderWAL(box, st, stats) {
    if (!st) return;
    const w = st.wal, r = stats ? stats.wal : null;
    const rows = [
      ['Segments', plural(w.segments, 'file', 'files')],
      ['Size on disk', bytes(w.bytes)],
      ['LSNs held', w.last_lsn ? count(w.first_lsn) + ' – ' + count(w.last_lsn) : 'none'],
      ['Applied LSN', count(st.applied_lsn)],
    ];
    if (r) {
      rows.push(
        ['fsyncs', rate(r.fsyncs_per_second) + ' fsyncs/s (last ' + duration(r.over) + ')', { id: 'wal-fsyncs' }],
        ['Records per fsync', r.records_per_fsync > 0 ? r.records_per_fsync.toFixed(2) + ' records/fsync' : '— (no fsync in the last ' + duration(r.over) + ')', { id: 'wal-records-per-fsync' }],
        ['Written', bytes(r.bytes_per_second) + '/s'],
      );
    }
    const kids = [facts(rows)];
    if (st.cluster) {
      kids.push(el('p', { class: 'muted small' }, 'In cluster mode the log is raft\'s (see Cluster below): the segment and fsync figures of the single-node WAL do not apply.'));
    }
    box.replaceChildren(...kids);
  }

  function renderSnapshot(box, st) {
    if (!st) return;
    const s = st.snapshot;
    const rows = [
      ['Last snapshot', s.last_time ? when(s.last_time) : 'none since the server started'],
      ['Covers', s.last_lsn ? 'LSN ' + count(s.last_lsn) : '—'],
      ['Size', s.last_time ? bytes(s.last_size) : '—'],
      ['Took', s.last_time && parseDuration(s.last_duration) > 0 ? duration(s.last_duration) : '—'],
      ['Files kept', plural(s.count, 'file', 'files')],
      ['Taken since start', plural(s.taken, 'snapshot', 'snapshots')],
      ['Failed since start', plural(s.failures, 'snapshot', 'snapshots'), s.failures ? { class: 'bad' } : null],
    ];
    if (s.last_error) rows.push(['Last error', s.last_error, { class: 'bad' }]);
    box.replaceChildren(facts(rows));
  }

  function renderRecovery(box, st, stats) {
    if (!st) return;
    const r = st.recovery;
    const rows = [
      ['Finished', stats && stats.ready_at ? when(stats.ready_at) : '—'],
      ['Took', duration(r.duration)],
      ['Jobs recovered', stats ? plural(stats.jobs_recovered, 'job', 'jobs') : '—', { id: 'recovery-jobs' }],
      ['From the snapshot', r.snapshot_lsn ? plural(r.snapshot_jobs, 'job', 'jobs') + ' at LSN ' + count(r.snapshot_lsn) : 'no snapshot loaded'],
      ['WAL replayed', plural(r.records_replayed, 'record', 'records')],
      ['Torn bytes cut', bytes(r.torn_bytes) + (r.torn_file ? ' from ' + r.torn_file : ''), { id: 'recovery-torn' }],
      ['In-flight jobs requeued', plural(r.requeued, 'job', 'jobs')],
    ];
    if (r.skipped_snapshots && r.skipped_snapshots.length) {
      rows.push(['Corrupt snapshots skipped', r.skipped_snapshots.join(', '), { class: 'bad' }]);
    }
    box.replaceChildren(facts(rows));
  }

  function renderServer(box, st) {
    if (!st) return;
    box.replaceChildren(facts([
      ['Role', st.role, { id: 'server-role' }],
      ['Version', st.version || '—'],
      ['Up for', duration(st.uptime)],
      ['Jobs held', plural(Object.values(st.jobs || {}).reduce((a, b) => a + b, 0), 'job', 'jobs')],
    ]));
  }

  // renderCluster shows the raft figures of a node in cluster mode: what
  // this node knows of itself and of the configured servers.
  function renderCluster(box, st) {
    const c = st && st.cluster;
    box.hidden = !c;
    if (!c) { box.replaceChildren(); return; }
    const rows = c.servers.map((v) => el('tr', { dataset: { node: v.id } },
      el('td', null, v.id, v.id === c.node_id ? el('span', { class: 'muted' }, ' (this node)') : null),
      el('td', null, v.leader ? 'leader' : v.voter ? 'follower' : 'non-voter'),
      el('td', { class: 'mono' }, v.raft_addr)));
    box.replaceChildren(
      el('h2', null, 'Cluster', el('span', { class: 'unit' }, ' (as node ' + c.node_id + ' sees it)')),
      el('div', { class: 'grid' },
        facts([
          ['This node', c.node_id + ', ' + c.role, { id: 'cluster-role' }],
          ['Leader', c.leader_id ? c.leader_id + ' at ' + c.leader_addr : 'none known', c.leader_id ? null : { class: 'bad' }],
          ['Term', count(c.term)],
          ['Leader changes', plural(c.leader_changes, 'change', 'changes') + ' since start'],
        ]),
        facts([
          ['Commit index', count(c.commit_index)],
          ['Applied index', count(c.applied_index)],
          ['Lag', plural(c.lag, 'entry', 'entries') + ' committed, not applied yet', { id: 'cluster-lag' }],
          ['Last contact', c.role === 'leader' ? '— (leader)' : duration(c.last_contact) + ' ago'],
        ])),
      el('div', { class: 'table-wrap' }, el('table', null,
        el('thead', null, el('tr', null, el('th', null, 'Node'), el('th', null, 'Role'), el('th', null, 'Raft address'))),
        el('tbody', null, rows))),
      el('p', { class: 'muted small' }, 'Each node reports only its own term and lag; open the dashboard of another node to see its figures.'));
  }

  // ------------------------------------------------------------------ jobs

  function jobsPage(params) {
    document.title = 'Jobs · Beaver-Raft';
    const limit = Math.min(Math.max(parseInt(params.get('limit'), 10) || 50, 1), 1000);
    const f = {
      queue: params.get('queue') || '',
      state: STATES.includes(params.get('state')) ? params.get('state') : '',
      type: params.get('type') || '',
      order: params.get('order') === 'asc' ? 'asc' : 'desc',
      limit: String(limit),
    };

    const queues = el('datalist', { id: 'queue-names' });
    const qIn = el('input', { name: 'queue', id: 'filter-queue', list: 'queue-names', value: f.queue, placeholder: 'any', size: 14 });
    const sIn = el('select', { name: 'state', id: 'filter-state' },
      el('option', { value: '' }, 'any'), STATES.map((s) => el('option', { value: s, selected: s === f.state }, LABEL[s])));
    const tIn = el('input', { name: 'type', id: 'filter-type', value: f.type, placeholder: 'any', size: 14 });
    const oIn = el('select', { name: 'order', id: 'filter-order' },
      el('option', { value: 'desc', selected: f.order === 'desc' }, 'newest first'),
      el('option', { value: 'asc', selected: f.order === 'asc' }, 'oldest first'));
    const lIn = el('select', { name: 'limit', id: 'filter-limit' },
      [25, 50, 100, 250].map((n) => el('option', { value: n, selected: n === limit }, n + ' jobs')));
    const form = el('form', { class: 'filters', id: 'job-filters' },
      el('label', null, 'Queue', qIn), el('label', null, 'State', sIn), el('label', null, 'Type', tIn),
      el('label', null, 'Order', oIn), el('label', null, 'Per page', lIn),
      el('button', { type: 'submit' }, 'Show'),
      el('button', { type: 'button', class: 'secondary', id: 'jobs-refresh', onclick: () => load() }, 'Refresh'),
      queues);
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      location.hash = jobsHref({ queue: qIn.value.trim(), state: sIn.value, type: tIn.value.trim(), order: oIn.value, limit: lIn.value });
    });

    const list = el('div', { class: 'table-wrap', id: 'jobs-list' }, el('p', { class: 'muted' }, 'Loading…'));
    const prev = el('button', { type: 'button', class: 'secondary', id: 'jobs-prev', disabled: true }, '← Previous page');
    const next = el('button', { type: 'button', class: 'secondary', id: 'jobs-next', disabled: true }, 'Next page →');
    const pageInfo = el('span', { class: 'muted' });
    const bulk = el('div', { id: 'bulk' });
    main.append(el('h1', null, 'Jobs'), form,
      el('section', { class: 'panel' }, bulk, list, el('div', { class: 'pager' }, prev, next, pageInfo)));

    const unsub = onStatus((st) => {
      if (!st) return;
      queues.replaceChildren(...Object.keys(st.queues || {}).sort().map((q) => el('option', { value: q })));
    });

    // cursors[i] is the cursor of page i; the first page has none.
    const cursors = [''];
    let pageIndex = 0, nextCursor = '';

    async function load() {
      const q = new URLSearchParams();
      for (const k of ['queue', 'state', 'type']) if (f[k]) q.set(k, f[k]);
      q.set('order', f.order);
      q.set('limit', f.limit);
      if (cursors[pageIndex]) q.set('cursor', cursors[pageIndex]);
      let data;
      try {
        data = await call('GET', '/v1/jobs?' + q.toString());
      } catch (e) {
        list.replaceChildren(el('p', { class: 'banner banner-warn' }, 'Cannot list jobs: ' + e.message));
        return;
      }
      nextCursor = data.next_cursor;
      renderJobs(list, data.jobs, f);
      prev.disabled = pageIndex === 0;
      next.disabled = !nextCursor;
      pageInfo.textContent = 'page ' + (pageIndex + 1) + ' · ' + plural(data.jobs.length, 'job', 'jobs') + ' shown · ' +
        (f.order === 'desc' ? 'newest first' : 'oldest first');
    }
    prev.addEventListener('click', () => { if (pageIndex > 0) { pageIndex--; load(); } });
    next.addEventListener('click', () => {
      if (!nextCursor) return;
      cursors[pageIndex + 1] = nextCursor;
      pageIndex++;
      load();
    });
    renderBulk(bulk, f, load);
    const stop = every(5000, load);
    return () => { stop(); unsub(); };
  }

  function renderJobs(box, jobs, f) {
    if (!jobs.length) {
      box.replaceChildren(el('p', { class: 'muted', id: 'jobs-empty' }, 'No job matches these filters.'));
      return;
    }
    const rows = jobs.map((j) => {
      let t = j.run_at, tl = 'runnable';
      if (j.finished_at) { t = j.finished_at; tl = 'finished'; }
      else if (j.state === 'in_flight') { t = j.started_at; tl = 'started'; }
      return el('tr', { dataset: { jobId: j.id } },
        el('td', { class: 'num' }, el('a', { href: '#/jobs/' + encodeURIComponent(j.id) }, j.id)),
        el('td', null, j.queue),
        el('td', null, j.type),
        el('td', null, stateBadge(j.state)),
        el('td', { class: 'num' }, count(j.attempt) + ' of ' + count(j.max_attempts)),
        el('td', null, when(j.created_at)),
        el('td', null, el('span', { class: 'muted' }, tl + ' '), when(t)),
        el('td', { class: 'error-cell', title: j.last_error || null }, j.last_error || ''));
    });
    box.replaceChildren(el('table', null,
      el('thead', null, el('tr', null, el('th', { class: 'num' }, 'ID'), el('th', null, 'Queue'), el('th', null, 'Type'),
        el('th', null, 'State'), el('th', { class: 'num' }, 'Attempts'), el('th', null, 'Created'), el('th', null, 'Last change'),
        el('th', null, 'Last error'))),
      el('tbody', null, rows)));
  }

  // renderBulk offers the bulk actions that fit the filters: retry every
  // failed, canceled or scheduled job, cancel every unfinished one.
  function renderBulk(box, f, reload) {
    if (!f.state) {
      box.replaceChildren(el('p', { class: 'muted small' },
        'Choose a state to act on every matching job at once (retry all failed jobs of a queue, cancel all scheduled jobs of a type, …).'));
      return;
    }
    const what = LABEL[f.state] + ' jobs' + (f.queue ? ' of queue “' + f.queue + '”' : ' of every queue') + (f.type ? ' of type “' + f.type + '”' : '');
    const message = el('p', { class: 'message', id: 'bulk-message', role: 'status' });
    const buttons = el('div', { class: 'actions' });
    const offer = () => {
      const kids = [];
      if (RETRYABLE.includes(f.state)) kids.push(el('button', { type: 'button', id: 'bulk-retry', onclick: () => ask('retry') }, 'Retry all ' + what));
      if (CANCELABLE.includes(f.state)) kids.push(el('button', { type: 'button', id: 'bulk-cancel', class: 'danger', onclick: () => ask('cancel') }, 'Cancel all ' + what));
      buttons.replaceChildren(...kids);
    };
    const ask = (action) => {
      buttons.replaceChildren(
        el('span', null, (action === 'retry' ? 'Retry' : 'Cancel') + ' up to ' + count(BULK_LIMIT) + ' ' + what + '?'),
        el('button', { type: 'button', id: 'bulk-confirm', class: action === 'cancel' ? 'danger' : null, onclick: () => run(action) }, 'Yes, ' + action + ' them'),
        el('button', { type: 'button', class: 'secondary', onclick: offer }, 'No'));
    };
    const run = async (action) => {
      buttons.replaceChildren(el('span', { class: 'muted' }, 'Working…'));
      try {
        const r = await call('POST', '/v1/jobs/bulk', { action, queue: f.queue || undefined, state: f.state, type: f.type || undefined });
        const verb = action === 'retry' ? 'Retried' : 'Canceled';
        let text = verb + ' ' + plural(r.changed, 'job', 'jobs') + ' (' + count(r.matched) + ' matched, ' + count(r.errors) + ' refused).';
        if (r.first_error) text += ' First refusal: ' + r.first_error.message;
        if (r.more) text += ' Stopped at the limit of ' + count(BULK_LIMIT) + ' jobs: run it again for the rest.';
        message.className = 'message banner ' + (r.errors ? 'banner-warn' : 'banner-ok');
        message.textContent = text;
      } catch (e) {
        message.className = 'message banner banner-error';
        message.textContent = 'The bulk ' + action + ' failed: ' + e.message;
      }
      offer();
      reload();
    };
    offer();
    box.replaceChildren(el('div', { class: 'bulk' }, buttons, message));
  }

  // ------------------------------------------------------------------ a job

  // A lossless JSON reader: it keeps numbers as they were written (no
  // rounding beyond 2^53) and keys in their order, for pretty-printing
  // payloads and results exactly. Strings are decoded with JSON.parse.
  function parseLossless(text) {
    let i = 0;
    const ws = () => { while (i < text.length && ' \t\n\r'.includes(text[i])) i++; };
    const fail = () => { throw new SyntaxError('bad JSON at ' + i); };
    function value() {
      ws();
      const c = text[i];
      if (c === '{') {
        i++;
        const entries = [];
        ws();
        if (text[i] === '}') { i++; return { obj: entries }; }
        for (;;) {
          ws();
          const k = string();
          ws();
          if (text[i++] !== ':') fail();
          const start = i;
          const v = value();
          entries.push([k, v, start, i]);
          ws();
          if (text[i] === ',') { i++; continue; }
          if (text[i] === '}') { i++; return { obj: entries }; }
          fail();
        }
      }
      if (c === '[') {
        i++;
        const items = [];
        ws();
        if (text[i] === ']') { i++; return { arr: items }; }
        for (;;) {
          items.push(value());
          ws();
          if (text[i] === ',') { i++; continue; }
          if (text[i] === ']') { i++; return { arr: items }; }
          fail();
        }
      }
      if (c === '"') return { str: string() };
      const lit = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?|true|false|null/y;
      lit.lastIndex = i;
      const m = lit.exec(text);
      if (!m) fail();
      i += m[0].length;
      return { lit: m[0] };
    }
    function string() {
      if (text[i] !== '"') fail();
      let j = i + 1;
      while (j < text.length && text[j] !== '"') j += text[j] === '\\' ? 2 : 1;
      const s = JSON.parse(text.slice(i, j + 1));
      i = j + 1;
      return s;
    }
    const v = value();
    ws();
    if (i !== text.length) fail();
    return v;
  }

  // pretty prints a lossless value with two-space indents.
  function pretty(v, indent = '') {
    if (v.lit !== undefined) return v.lit;
    if (v.str !== undefined) return JSON.stringify(v.str);
    const inner = indent + '  ';
    if (v.arr) {
      if (!v.arr.length) return '[]';
      return '[\n' + v.arr.map((x) => inner + pretty(x, inner)).join(',\n') + '\n' + indent + ']';
    }
    if (!v.obj.length) return '{}';
    return '{\n' + v.obj.map(([k, x]) => inner + JSON.stringify(k) + ': ' + pretty(x, inner)).join(',\n') + '\n' + indent + '}';
  }

  const utf8Length = (s) => new TextEncoder().encode(s).length;

  // jsonBlock renders a JSON value of the job (its source text src) as a
  // pretty-printed block, cut at PAYLOAD_CAP characters.
  function jsonBlock(id, v, src) {
    let text = pretty(v);
    const kids = [];
    if (text.length > PAYLOAD_CAP) {
      text = text.slice(0, PAYLOAD_CAP);
      kids.push(el('p', { class: 'muted small', id: id + '-cut' },
        'Showing the first ' + bytes(PAYLOAD_CAP) + ' of ' + bytes(utf8Length(src)) + ' (pretty-printed). The whole value: ',
        el('code', null, 'GET /v1/jobs/{id}'), '.'));
    }
    return [el('pre', { class: 'data', id }, text), ...kids];
  }

  function jobPage(id) {
    document.title = 'Job ' + id + ' · Beaver-Raft';
    const badge = el('span', { id: 'job-state' });
    const cancelBtn = el('button', { type: 'button', id: 'job-cancel', class: 'danger', disabled: true }, 'Cancel');
    const retryBtn = el('button', { type: 'button', id: 'job-retry', disabled: true }, 'Retry now');
    const message = el('span', { class: 'message', id: 'job-message', role: 'status' });
    const info = el('div', { class: 'grid' });
    const blocks = el('div', { id: 'job-blocks', class: 'stack' });
    main.append(
      el('p', null, el('a', { href: '#/jobs' }, '← Jobs')),
      el('div', { class: 'job-head' }, el('h1', null, 'Job ' + id), badge),
      el('div', { class: 'actions' }, retryBtn, cancelBtn, message),
      info, blocks);

    let job = null, lastBlocks = '';

    function show(text) {
      const j = JSON.parse(text);
      job = j;
      badge.replaceChildren(stateBadge(j.state));
      retryBtn.disabled = !RETRYABLE.includes(j.state);
      cancelBtn.disabled = !CANCELABLE.includes(j.state);
      info.replaceChildren(
        panel('Job', null, facts([
          ['Queue', el('a', { href: jobsHref({ queue: j.queue }) }, j.queue), { id: 'job-queue' }],
          ['Type', j.type, { id: 'job-type' }],
          ['Priority', count(j.priority) + ' (higher runs first)'],
          ['Attempts', count(j.attempt) + ' of ' + count(j.max_attempts) + ' attempts', { id: 'job-attempts' }],
          ['Timeout', duration(j.timeout) + ' per attempt'],
          ['Unique key', j.unique_key || '—', { id: 'job-unique-key' }],
        ])),
        panel('Times', null, facts([
          ['Created', when(j.created_at)],
          ['Runnable', when(j.run_at)],
          ['Started', when(j.started_at)],
          ['Finished', when(j.finished_at)],
        ])),
        panel('Lease', null, facts([
          ['Lease', j.lease_id ? 'lease ' + j.lease_id : 'not leased', { id: 'job-lease' }],
          ['Deadline', when(j.lease_deadline)],
          ['Worker', j.worker || '—', { id: 'job-worker' }],
        ])));
      // The blocks are rebuilt only when they change, so that a selection
      // in them survives the refreshes.
      const key = JSON.stringify([j.last_error, j.result, j.payload]);
      if (key === lastBlocks) return;
      lastBlocks = key;
      let field;
      try {
        const doc = parseLossless(text);
        field = (name) => doc.obj.find((e) => e[0] === name);
      } catch (e) {
        // Not expected: the API's JSON is valid. Fall back to the parsed
        // values (numbers beyond 2^53 may be rounded then).
        console.warn('job ' + id + ': ' + e.message);
        field = (name) => {
          if (j[name] === undefined) return undefined;
          const src = JSON.stringify(j[name]);
          return [name, parseLossless(src), 0, src.length];
        };
      }
      const kids = [];
      kids.push(el('section', { class: 'panel' }, el('h2', null, 'Last error'),
        j.last_error ? el('pre', { class: 'data error-text', id: 'job-error' }, j.last_error) : el('p', { class: 'muted', id: 'job-error' }, 'none')));
      const res = field('result');
      kids.push(el('section', { class: 'panel' }, el('h2', null, 'Result'),
        res ? jsonBlock('job-result', res[1], text.slice(res[2], res[3])) : el('p', { class: 'muted', id: 'job-result' }, 'none')));
      const pay = field('payload');
      const paySrc = pay ? text.slice(pay[2], pay[3]) : 'null';
      kids.push(el('section', { class: 'panel' }, el('h2', null, 'Payload', el('span', { class: 'unit' }, ' (' + bytes(utf8Length(paySrc)) + ' of JSON)')),
        pay ? jsonBlock('job-payload', pay[1], paySrc) : el('p', { class: 'muted' }, 'none')));
      blocks.replaceChildren(...kids);
    }

    async function refresh() {
      try {
        show(await request('GET', '/v1/jobs/' + encodeURIComponent(id)));
      } catch (e) {
        if (e.status === 404) {
          badge.replaceChildren();
          retryBtn.disabled = cancelBtn.disabled = true;
          info.replaceChildren(el('p', { class: 'banner banner-warn', id: 'job-missing' },
            'Job ' + id + ' was not found: it never existed, or it was purged after its retention.'));
          blocks.replaceChildren();
          lastBlocks = '';
        } else {
          message.textContent = 'Cannot load the job: ' + e.message;
        }
      }
    }

    async function act(action) {
      retryBtn.disabled = cancelBtn.disabled = true;
      try {
        show(await request('POST', '/v1/jobs/' + encodeURIComponent(id) + '/' + action));
        message.textContent = (action === 'retry' ? 'Retried: the job went back to ' + LABEL[job.state] : 'Canceled') + ' at ' + clockTime(new Date().toISOString()).slice(11) + '.';
      } catch (e) {
        message.textContent = (action === 'retry' ? 'Retry refused: ' : 'Cancel refused: ') + e.message;
        refresh();
      }
    }
    retryBtn.addEventListener('click', () => act('retry'));
    cancelBtn.addEventListener('click', () => act('cancel'));
    return every(1000, refresh);
  }

  // ---------------------------------------------------------------- queues

  function queuesPage() {
    document.title = 'Queues · Beaver-Raft';
    const box = el('div', { class: 'table-wrap', id: 'queues' }, el('p', { class: 'muted' }, 'Loading…'));
    const message = el('p', { class: 'muted small', id: 'queue-message', role: 'status' });
    main.append(el('h1', null, 'Queues'), el('section', { class: 'panel' }, box, message),
      el('p', { class: 'muted small' }, 'Depth counts the unfinished jobs: pending, scheduled and in flight. ' +
        'The oldest pending job is the runnable job that has waited longest for a worker. ' +
        'A paused queue hands out no job (enqueues still work); limits are set with ',
        el('code', null, 'beaver-raft queues set'), ' or the ', el('code', null, 'queues:'), ' section of the configuration.'));
    let status = null, stats = null, controls = {};
    const HELD = { paused: 'paused', concurrency: 'at its concurrency limit', rate: 'rate window used up' };
    const limits = (c) => {
      const parts = [];
      if (c && c.concurrency) parts.push('at most ' + count(c.concurrency) + ' in flight');
      if (c && c.rate && c.rate.limit) parts.push(count(c.rate.limit) + ' per ' + c.rate.period);
      return parts.length ? parts.join(', ') : '—';
    };
    async function toggle(name, pause, btn) {
      btn.disabled = true;
      try {
        const q = await call('POST', '/v1/queues/' + encodeURIComponent(name) + (pause ? '/pause' : '/resume'));
        controls[name] = q;
        message.textContent = (pause ? 'Paused' : 'Resumed') + ' queue “' + name + '” at ' + clockTime(new Date().toISOString()).slice(11) + '.';
      } catch (e) {
        message.textContent = (pause ? 'Pause' : 'Resume') + ' refused: ' + e.message;
      }
      render();
    }
    const render = () => {
      if (!stats) return;
      const byName = {};
      for (const q of stats.queues) byName[q.queue] = q;
      const names = [...new Set([...Object.keys(byName), ...Object.keys(controls)])].sort();
      if (!names.length) {
        box.replaceChildren(el('p', { class: 'muted' }, 'No queue holds jobs yet.'));
        return;
      }
      const sc = (status && status.queues) || {};
      box.replaceChildren(el('table', null,
        el('thead', null, el('tr', null,
          el('th', null, 'Queue'), el('th', { class: 'num' }, 'Depth ', el('span', { class: 'unit' }, '(jobs)')),
          el('th', { class: 'num st-pending' }, 'Pending ', el('span', { class: 'unit' }, '(jobs)')),
          el('th', { class: 'num st-scheduled' }, 'Scheduled ', el('span', { class: 'unit' }, '(jobs)')),
          el('th', { class: 'num st-in_flight' }, 'In flight ', el('span', { class: 'unit' }, '(jobs)')),
          el('th', { class: 'num' }, 'Oldest pending job waiting ', el('span', { class: 'unit' }, '(time)')),
          el('th', null, 'Runnable since'), el('th', null, 'Limits'), el('th', null, 'Leases'))),
        el('tbody', null, names.map((name) => {
          const q = byName[name] || { queue: name, depth: 0, pending: 0 };
          const c = sc[name] || {};
          const ctl = controls[name] || {};
          const held = ctl.blocked ? HELD[ctl.blocked] || ctl.blocked : 'running';
          const btn = el('button', { class: ctl.paused ? null : 'secondary', dataset: { action: ctl.paused ? 'resume' : 'pause' } },
            ctl.paused ? 'Resume' : 'Pause');
          btn.addEventListener('click', () => toggle(name, !ctl.paused, btn));
          return el('tr', { dataset: { queue: name } },
            el('td', null, el('a', { href: jobsHref({ queue: name }) }, name)),
            el('td', { class: 'num', dataset: { field: 'depth' } }, count(q.depth)),
            el('td', { class: 'num' }, el('a', { href: jobsHref({ queue: name, state: 'pending', order: 'asc' }) }, count(q.pending))),
            el('td', { class: 'num' }, count(c.scheduled || 0)),
            el('td', { class: 'num' }, count(c.in_flight || 0)),
            el('td', { class: 'num', dataset: { field: 'oldest-age' } }, q.oldest_pending_age ? duration(q.oldest_pending_age) : '—'),
            el('td', null, q.oldest_pending_since ? el('span', { title: q.oldest_pending_since }, clockTime(q.oldest_pending_since)) : '—'),
            el('td', { dataset: { field: 'limits' } }, limits(ctl)),
            el('td', { dataset: { field: 'leases' } }, el('span', { class: ctl.paused ? 'st-failed' : null }, held), ' ', btn));
        }))));
    };
    const unsub = onStatus((st) => { status = st; render(); });
    const stop = every(2000, async () => {
      try {
        const [st, ql] = await Promise.all([call('GET', '/v1/stats'), call('GET', '/v1/queues')]);
        stats = st;
        skew = new Date(stats.time).getTime() - Date.now();
        controls = {};
        for (const q of ql.queues || []) controls[q.name] = q;
      } catch (e) {
        box.replaceChildren(el('p', { class: 'banner banner-warn' }, 'Cannot load the queues: ' + e.message));
        return;
      }
      render();
    });
    return () => { stop(); unsub(); };
  }

  // ------------------------------------------------------------------ start

  const logout = document.getElementById('logout');
  if (AUTH) {
    logout.hidden = false;
    logout.addEventListener('click', async () => {
      try {
        await fetch('/ui/logout', { method: 'POST', credentials: 'same-origin', headers: { 'X-CSRF-Token': CSRF } });
      } finally {
        location.replace('/ui/');
      }
    });
  }
  window.addEventListener('hashchange', route);
  every(1000, pollStatus);
  route();
})();
