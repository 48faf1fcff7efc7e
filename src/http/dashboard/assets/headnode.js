// The head node page, live: each `counters` event (every 2 s, HeadNodeCounters) updates the
// counter tables in place, and the difference with the previous tick over the time between
// them gives the rates (DHCP packets/s, TFTP transfers/s and bytes/s, HTTP bytes/s), charted
// with uPlot (https://github.com/leeoniya/uPlot) over the last ten minutes, with the number of
// boots in flight. The boots-in-flight table is drawn by the server: it is re-fetched on a
// boot or node event, at most once a second, and its "for" column ticks every second.
(function () {
  'use strict';
  const WINDOW_S = 600;
  const rates = document.getElementById('rates');
  const inflight = document.getElementById('inflight');

  /** `dhcp.received` -> c.dhcp.received; undefined when the service is off or the field absent. */
  function pick(c, path) {
    let v = c;
    for (const k of path.split('.')) v = v === null || v === undefined ? undefined : v[k];
    return typeof v === 'number' ? v : undefined;
  }

  // ---------------------------------------------------------------- counters in place
  function updateCounters(c) {
    for (const td of document.querySelectorAll('td[data-counter]')) {
      const v = pick(c, td.dataset.counter);
      if (v === undefined || td.textContent === String(v)) continue;
      td.textContent = String(v);
      td.classList.remove('flash');
      void td.offsetWidth; // restart the animation
      td.classList.add('flash');
    }
  }

  // ---------------------------------------------------------------- boots in flight
  const inflightCount = () => (inflight ? inflight.querySelectorAll('tr[data-node]').length : 0);
  function tickSince() {
    if (!inflight) return;
    const now = Date.now();
    for (const td of inflight.querySelectorAll('td[data-since]')) td.textContent = Math.max(0, Math.round((now - Number(td.dataset.since)) / 1000)) + ' s';
  }
  let inflightPending = null;
  function refreshInflight() {
    if (!inflight || inflightPending) return;
    inflightPending = setTimeout(async () => {
      try {
        const res = await fetch('/ui/headnode/inflight', { credentials: 'same-origin', cache: 'no-store' });
        if (res.ok) {
          inflight.innerHTML = await res.text();
          tickSince();
        }
      } finally {
        inflightPending = null;
      }
    }, 1000);
  }
  document.addEventListener('fb:boot', refreshInflight);
  document.addEventListener('fb:node', refreshInflight);
  setInterval(tickSince, 1000);

  // ---------------------------------------------------------------- rates and charts
  // Each series: the counter it is the rate of (null: a level, not a rate), its label and colour.
  const CHARTS = [
    {
      el: 'chart-packets',
      series: [
        { label: 'DHCP packets/s', counter: 'dhcp.received', stroke: '#7a5bd1' },
        { label: 'TFTP transfers/s', counter: 'tftp.served', stroke: '#d1873a' },
      ],
    },
    {
      el: 'chart-bytes',
      series: [
        { label: 'TFTP bytes/s', counter: 'tftp.bytesServed', stroke: '#d1873a' },
        { label: 'HTTP bytes/s', counter: 'http.platformBytesSent', stroke: '#2f6fd1' },
      ],
    },
    { el: 'chart-inflight', series: [{ label: 'boots in flight', level: inflightCount, stroke: '#2f9e5b' }] },
  ];
  const xs = [];
  const ys = CHARTS.map((ch) => ch.series.map(() => []));
  let prev = null;
  let plots = [];

  function rateOf(path, c, p, dt) {
    const now = pick(c, path);
    const before = pick(p, path);
    // A counter absent or gone backwards (the head node restarted) gives no rate for this tick.
    if (now === undefined || before === undefined || now < before) return null;
    return (now - before) / dt;
  }

  function sample(c) {
    const t = Date.parse(c.at) / 1000;
    if (!Number.isFinite(t)) return;
    if (prev && t <= prev.t) return;
    const dt = prev ? t - prev.t : 0;
    xs.push(t);
    CHARTS.forEach((ch, i) =>
      ch.series.forEach((s, j) => {
        ys[i][j].push(s.level ? s.level() : prev ? rateOf(s.counter, c, prev.c, dt) : null);
      }),
    );
    while (xs.length && xs[0] < t - WINDOW_S) {
      xs.shift();
      for (const chart of ys) for (const col of chart) col.shift();
    }
    prev = { t, c };
  }

  /** 1234567 -> "1.2 M": the latest value of a series, for the line under its chart. */
  function short(v) {
    if (v === null || v === undefined) return '—';
    const units = ['', ' k', ' M', ' G'];
    let i = 0;
    while (Math.abs(v) >= 1000 && i < units.length - 1) {
      v /= 1000;
      i++;
    }
    return (i === 0 && Number.isInteger(v) ? String(v) : v.toFixed(1)) + units[i];
  }

  /** The line under each chart: every series' latest value and its peak in the window (span[data-series] per series). */
  function showLatest() {
    CHARTS.forEach((ch, i) => {
      const el = document.getElementById(ch.el);
      if (!el) return;
      let line = el.parentElement.querySelector('.latest');
      if (!line) {
        line = document.createElement('p');
        line.className = 'latest';
        for (const s of ch.series) {
          const span = document.createElement('span');
          span.dataset.series = s.counter || 'inflight';
          line.appendChild(span);
        }
        el.after(line);
      }
      ch.series.forEach((s, j) => {
        const col = ys[i][j];
        const seen = col.filter((v) => v !== null);
        const peak = seen.length ? Math.max(...seen) : null;
        line.children[j].textContent = s.label + ': ' + short(col.length ? col[col.length - 1] : null) + ' (peak ' + short(peak) + ')';
      });
    });
  }

  function width(el) {
    return Math.max(240, Math.floor(el.getBoundingClientRect().width) || 320);
  }

  function draw() {
    if (!window.uPlot || !rates) return;
    if (plots.length === 0) {
      plots = CHARTS.map((ch, i) => {
        const el = document.getElementById(ch.el);
        const opts = {
          width: width(el),
          height: 160,
          // The x axis always spans the window, ending at the newest tick; y starts at 0.
          scales: {
            x: { time: true, range: (_u, _min, max) => [max - WINDOW_S, max] },
            y: { range: (_u, _min, max) => [0, Math.max(1, max * 1.1)] },
          },
          legend: { show: false },
          series: [{}, ...ch.series.map((s) => ({ label: s.label, stroke: s.stroke, width: 1.5, spanGaps: false }))],
          axes: [{}, { size: 56, values: (_u, ticks) => ticks.map(short) }],
        };
        return { el, plot: new window.uPlot(opts, [xs, ...ys[i]], el) };
      });
      window.addEventListener('resize', () => {
        for (const p of plots) p.plot.setSize({ width: width(p.el), height: 160 });
      });
      return;
    }
    plots.forEach((p, i) => p.plot.setData([xs, ...ys[i]]));
  }

  if (rates && rates.dataset.seed) {
    try {
      sample(JSON.parse(rates.dataset.seed));
    } catch {
      // a seed that does not parse: the first tick starts the series instead
    }
  }
  draw();
  showLatest();
  document.addEventListener('fb:counters', (e) => {
    updateCounters(e.detail);
    sample(e.detail);
    draw();
    showLatest();
  });
})();
