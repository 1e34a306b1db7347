// A small SVG line chart for Beaver-Raft's dashboard: a few series of
// per-second values on one time axis that ends now. Labels are set with
// textContent only. No dependencies.
'use strict';

window.BeaverChart = (() => {
  const NS = 'http://www.w3.org/2000/svg';

  function svg(tag, attrs, text) {
    const e = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
    if (text !== undefined) e.textContent = text;
    return e;
  }

  // niceMax rounds v up to 1, 2, 2.5 or 5 times a power of ten.
  function niceMax(v) {
    if (!(v > 0)) return 1;
    const p = Math.pow(10, Math.floor(Math.log10(v)));
    for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
    return 10 * p;
  }

  function fmtTick(v) {
    if (v >= 1000) return (v / 1000).toLocaleString('en-US', { maximumFractionDigits: 1 }) + 'k';
    return v.toLocaleString('en-US', { maximumFractionDigits: 2 });
  }

  // ago formats a number of seconds before now for the time axis.
  function ago(s) {
    if (s <= 0) return 'now';
    if (s < 60) return '−' + Math.round(s) + ' s';
    const m = Math.floor(s / 60), r = Math.round(s % 60);
    return '−' + m + ' min' + (r ? ' ' + r + ' s' : '');
  }

  // draw renders the chart into box, replacing what was there.
  //   series:   [{name, cls, values}] values oldest first, the last one is now
  //   slots:    how many values the window holds (900 for 15 min of 1 s)
  //   interval: seconds between two values
  //   unit:     the unit of the values, e.g. "jobs/s"
  //   readout:  an element that shows the values under the pointer
  function draw(box, opts) {
    const { series, slots, interval, unit, readout } = opts;
    const width = Math.max(box.clientWidth || 0, 320);
    const height = opts.height || 200;
    const pad = { l: 54, r: 10, t: 10, b: 24 };
    const pw = width - pad.l - pad.r, ph = height - pad.t - pad.b;
    let top = 0;
    for (const s of series) for (const v of s.values) if (v > top) top = v;
    const ymax = niceMax(top);
    const x = (i, len) => pad.l + pw * ((slots - len + i) / Math.max(slots - 1, 1));
    const y = (v) => pad.t + ph * (1 - Math.min(v, ymax) / ymax);

    const root = svg('svg', {
      class: 'chart', viewBox: `0 0 ${width} ${height}`, width, height, role: 'img',
      'aria-label': opts.label || 'chart',
    });
    // horizontal grid lines with their values
    for (let k = 0; k <= 4; k++) {
      const v = (ymax * k) / 4, yy = y(v);
      root.append(svg('line', { class: 'grid-line', x1: pad.l, x2: width - pad.r, y1: yy, y2: yy }));
      root.append(svg('text', { class: 'axis-label', x: pad.l - 6, y: yy + 4, 'text-anchor': 'end' }, fmtTick(v)));
    }
    // time axis: every 5 minutes of the window, and now
    const span = slots * interval;
    const step = span > 600 ? 300 : span > 120 ? 60 : 10;
    for (let s = span; s >= 0; s -= step) {
      const xx = pad.l + pw * (1 - s / span);
      root.append(svg('line', { class: 'grid-line', x1: xx, x2: xx, y1: pad.t, y2: pad.t + ph }));
      const anchor = s === span ? 'start' : s === 0 ? 'end' : 'middle';
      root.append(svg('text', { class: 'axis-label', x: xx, y: height - 6, 'text-anchor': anchor }, ago(s)));
    }
    for (const s of series) {
      const n = s.values.length;
      if (n === 0) continue;
      const pts = new Array(n);
      for (let i = 0; i < n; i++) pts[i] = x(i, n).toFixed(1) + ',' + y(s.values[i]).toFixed(1);
      if (n === 1) pts.push((x(0, 1) - 1).toFixed(1) + ',' + y(s.values[0]).toFixed(1));
      root.append(svg('polyline', { class: 'series ' + s.cls, points: pts.join(' ') }));
    }
    const cursor = svg('line', { class: 'cursor', x1: 0, x2: 0, y1: pad.t, y2: pad.t + ph, visibility: 'hidden' });
    root.append(cursor);

    if (readout) {
      readout.textContent = '';
      root.addEventListener('pointermove', (ev) => {
        const r = root.getBoundingClientRect();
        const px = ((ev.clientX - r.left) / r.width) * width;
        const slot = Math.round(((px - pad.l) / pw) * (slots - 1));
        const back = slots - 1 - slot; // values before now
        if (slot < 0 || back < 0) { cursor.setAttribute('visibility', 'hidden'); readout.textContent = ''; return; }
        cursor.setAttribute('x1', px); cursor.setAttribute('x2', px);
        cursor.setAttribute('visibility', 'visible');
        const parts = [ago(back * interval) + ':'];
        for (const s of series) {
          const i = s.values.length - 1 - back;
          parts.push(s.name + ' ' + (i >= 0 ? fmtTick(s.values[i]) + ' ' + unit : 'no sample'));
        }
        readout.textContent = parts.join('  ·  ');
      });
      root.addEventListener('pointerleave', () => { cursor.setAttribute('visibility', 'hidden'); readout.textContent = ''; });
    }
    box.replaceChildren(root);
  }

  return { draw, niceMax };
})();
