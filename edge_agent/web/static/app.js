// edge-agent site view: a read-only page over /api/v1. No framework, no build step.
// Every value shown comes from the API (the agent's twin, poll loops, outbox, detector).
// Updates are short polls, and only while the tab is visible: nobody looking costs nothing.
'use strict';

const POLL_MS = { overview: 2000, tags: 1000, assets: 2000, trend: 5000, config: 0 };
const RANGES = [['15m', 900], ['1h', 3600], ['6h', 21600], ['24h', 86400], ['7d', 604800]];
let token = sessionStorage.getItem('edge-agent-token') || '';
let current = null;  // {name, refresh, arg}
let timer = null;
let generation = 0;  // a view left while its fetch was in flight must not draw

// ---------- small helpers ----------
function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === 'class') node.className = value;
    else if (key === 'text') node.textContent = value;
    else if (key.startsWith('on')) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? '' : value);
  }
  for (const child of children.flat(Infinity)) {
    if (child !== null && child !== undefined) {
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
  }
  return node;
}
const view = () => document.getElementById('view');
const badge = (text, kind) => el('span', { class: `badge ${kind || text}`, text });
const num = (v, digits = 3) => (v === null || v === undefined ? '—' : Number(v).toPrecision(digits));
function age(seconds) {
  if (seconds === null || seconds === undefined) return '—';
  if (seconds < 120) return `${seconds.toFixed(seconds < 10 ? 1 : 0)} s`;
  if (seconds < 7200) return `${(seconds / 60).toFixed(0)} min`;
  if (seconds < 172800) return `${(seconds / 3600).toFixed(1)} h`;
  return `${(seconds / 86400).toFixed(1)} d`;
}
function clock(ts) {
  if (!ts) return '—';
  const d = new Date(ts * 1000);
  const today = new Date().toDateString() === d.toDateString();
  return today ? d.toLocaleTimeString() : d.toLocaleString();
}
function table(headers, rows, empty) {
  if (!rows.length) return el('p', { class: 'empty', text: empty || 'none' });
  return el('table', {}, el('thead', {}, el('tr', {}, headers.map((h) => el('th', { text: h })))),
    el('tbody', {}, rows));
}

// ---------- API ----------
class Unauthorised extends Error {}
async function api(path) {
  const headers = token ? { Authorization: `Bearer ${token}` } : {};
  const response = await fetch(`/api/v1/${path}`, { headers, cache: 'no-store' });
  if (response.status === 401) throw new Unauthorised('token needed');
  if (!response.ok) throw new Error(`${path}: HTTP ${response.status}`);
  return response.json();
}
function showBanner(text) {
  const banner = document.getElementById('banner');
  banner.textContent = text || '';
  banner.hidden = !text;
}
function askToken() {
  const form = document.getElementById('token-form');
  form.hidden = false;
  document.getElementById('token').focus();
}
document.addEventListener('DOMContentLoaded', () => {
  document.getElementById('token-form').addEventListener('submit', (event) => {
    event.preventDefault();
    token = document.getElementById('token').value.trim();
    sessionStorage.setItem('edge-agent-token', token);
    document.getElementById('token-form').hidden = true;
    route();
  });
});

// ---------- live polling, only while visible ----------
function schedule() {
  clearTimeout(timer);
  timer = null;
  const live = document.getElementById('live');
  const every = current ? POLL_MS[current.name] : 0;
  if (document.visibilityState !== 'visible' || !every) {
    live.textContent = every ? 'paused' : '';
    live.className = 'paused';
    return;
  }
  timer = setTimeout(tick, every);
}
async function tick() {
  const mine = generation;
  const live = document.getElementById('live');
  try {
    await current.refresh();
    if (mine !== generation) return;
    live.textContent = 'live';
    live.className = '';
    showBanner('');
  } catch (error) {
    if (mine !== generation) return;
    live.textContent = 'offline';
    live.className = 'error';
    if (error instanceof Unauthorised) askToken();
    else showBanner(`Cannot reach the agent: ${error.message}`);
  }
  if (mine === generation) schedule();
}
document.addEventListener('visibilitychange', () => {
  if (document.visibilityState === 'visible' && current) tick();
  else schedule();
});

// ---------- router ----------
const VIEWS = { overview: overviewView, tags: tagsView, assets: assetsView, trend: trendView,
  config: configView };
function route() {
  const [name, ...rest] = (location.hash.replace(/^#\/?/, '') || 'overview').split('/');
  const make = VIEWS[name] || overviewView;
  generation += 1;
  clearTimeout(timer);
  for (const link of document.querySelectorAll('header nav a')) {
    link.classList.toggle('active', link.dataset.view === (VIEWS[name] ? name : 'overview'));
  }
  view().replaceChildren();
  current = make(decodeURIComponent(rest.join('/')));
  tick();
}
window.addEventListener('hashchange', route);
window.addEventListener('DOMContentLoaded', route);

// ---------- overview ----------
function overviewView() {
  const root = view();
  const alerts = el('section', { id: 'open-alerts' });
  const sources = el('section', { id: 'sources' });
  const sinks = el('section', { id: 'sinks' });
  root.append(el('h2', { text: 'Open alerts' }), alerts, el('h2', { text: 'Sources' }), sources,
    el('h2', { text: 'Sinks' }), sinks);
  return {
    name: 'overview',
    async refresh() {
      const [status, open] = await Promise.all([api('status'), api('alerts?state=open')]);
      header(status);
      alerts.replaceChildren(alertTable(open.alerts, 'No open alerts.'));
      sources.replaceChildren(table(['source', 'type', 'link', 'read', 'last good read',
        'last error', 'samples', 'skipped ticks', 'outages', 'link detail'], status.sources.map((s) => el('tr',
        { class: s.link === 'down' || s.units.some((u) => u.backoff) ? 'problem' : null, 'data-source': s.name },
        el('td', { text: s.name }), el('td', { text: s.type }), el('td', {}, badge(s.link)),
        el('td', { class: 'num', text: `${s.read_ms.toFixed(1)} ms` }),
        el('td', { text: s.last_good_read_at ? `${age(status.now - s.last_good_read_at)} ago` : 'never' }),
        el('td', { class: 'err', text: s.last_error ? `${clock(s.last_error_at)}: ${s.last_error}` : '' }),
        el('td', { class: 'num', text: s.samples }), el('td', { class: 'num', text: s.skipped_ticks }),
        el('td', { class: 'num', text: s.outages }), el('td', { class: 'detail', text: linkDetail(s) })))));
      sinks.replaceChildren(table(['sink', 'type', 'connection', 'backlog', 'oldest', 'dropped',
        'rejected', 'last error'], status.sinks.map((s) => el('tr',
        { class: s.connection === 'connected' ? null : 'problem', 'data-sink': s.name },
        el('td', { text: s.name }), el('td', { text: s.type }), el('td', {}, badge(s.connection)),
        el('td', { class: 'num', text: s.backlog_rows }), el('td', { text: age(s.oldest_age_s) }),
        el('td', { class: 'num', text: s.dropped }), el('td', { class: 'num', text: s.rejected }),
        el('td', { class: 'err', text: s.last_error ? `${clock(s.last_error_at)}: ${s.last_error}` : '' })))));
    },
  };
}
// Per Modbus unit: requests, failures, mean reply time or backoff; per OPC UA source: what went wrong.
function linkDetail(s) {
  if (s.opcua) {
    const o = s.opcua;
    const parts = [[o.reconnects, 'reconnects'], [o.keepalive_misses, 'keep-alive misses'],
      [o.subscriptions_recreated, 'subscriptions rebuilt'], [o.read_splits, 'reads split']];
    return parts.filter(([n]) => n).map(([n, what]) => `${n} ${what}`).join(', ')
      || `${o.data_changes} data changes`;
  }
  return s.units.map((u) => {
    const refused = Object.values(u.exceptions).reduce((a, b) => a + b, 0);
    const failed = u.timeouts + refused + u.malformed + u.connection_lost;
    const head = `unit ${u.unit}: ${u.requests} requests, ${failed} failed`;
    if (u.backoff) return `${head}, backed off since ${clock(u.backoff_since)}`;
    return u.mean_response_ms === null ? head : `${head}, ${u.mean_response_ms.toFixed(1)} ms`;
  }).join('; ');
}
function header(status) {
  document.getElementById('agent-id').textContent =
    `${status.agent.id} · v${status.agent.version} · up ${age(status.agent.uptime_s)}`;
}
function alertTable(alerts, empty) {
  return table(['severity', 'asset', 'cause', 'reason', 'raised', 'cleared'], alerts.map((a) =>
    el('tr', { class: 'alert', 'data-alert': a.id },
      el('td', {}, badge(a.severity)),
      el('td', {}, el('a', { href: `#/assets/${encodeURIComponent(a.asset)}`, text: a.asset })),
      el('td', { text: `${a.kind}: ${a.cause}` }), el('td', { class: 'err', text: a.reason }),
      el('td', { text: clock(a.raised_at) }), el('td', { text: a.state === 'open' ? 'open' : clock(a.cleared_at) }))),
  empty);
}

// ---------- tags ----------
function tagsView() {
  const search = el('input', { type: 'search', id: 'search', placeholder: 'search signals' });
  const problems = el('input', { type: 'checkbox', id: 'problems' });
  const count = el('span', { class: 'muted', id: 'tag-count' });
  const body = el('tbody');
  const rows = new Map();
  view().append(el('section', {},
    el('div', { class: 'toolbar' }, search, el('label', {}, problems, ' problems only'), count),
    el('table', { id: 'tags' }, el('thead', {}, el('tr', {}, ['signal', 'value', 'unit', 'quality',
      'age', 'source', 'asset', 'register'].map((h) => el('th', { text: h, class: ['source', 'asset', 'register'].includes(h) ? 'hide-small' : null })))), body)));
  let last = [];
  const apply = () => filterTags(rows, last, search.value.trim().toLowerCase(), problems.checked, count);
  search.addEventListener('input', apply);
  problems.addEventListener('change', apply);
  return {
    name: 'tags',
    async refresh() {
      const data = await api('signals');
      last = data.signals;
      for (const signal of last) updateTagRow(rows, body, signal);
      apply();
    },
  };
}
const isProblem = (s) => s.stale || s.quality !== 'good';
function updateTagRow(rows, body, s) {
  let row = rows.get(s.name);
  if (!row) {
    const cells = Array.from({ length: 8 }, (_, i) => el('td', { class: [5, 6, 7].includes(i) ? 'hide-small' : null }));
    cells[0].append(el('a', { href: `#/trend/${encodeURIComponent(s.name)}`, text: s.name }));
    cells[1].className = 'num';
    row = { tr: el('tr', { 'data-signal': s.name }, cells), cells, key: '' };
    rows.set(s.name, row);
    body.append(row.tr);
  }
  const quality = s.value === null && s.quality === null ? 'missing' : s.quality;
  const words = (s.words || []).map((w) => w.toString(16).toUpperCase().padStart(4, '0')).join(' ');
  const key = `${s.value}|${s.quality}|${s.stale}|${Math.round(s.age_s || 0)}|${words}`;
  if (key === row.key) return;
  row.key = key;
  const [, value, unit, qual, ageCell, source, asset, register] = row.cells;
  value.textContent = s.value === null ? '—' : num(s.value, 5);
  unit.textContent = s.unit;
  qual.replaceChildren(badge(quality), s.stale ? badge('stale') : '');
  ageCell.textContent = age(s.age_s);
  source.textContent = s.source;
  asset.textContent = s.asset;
  register.textContent = words ? `${s.register} = 0x${words}` : s.register || '';
  row.tr.classList.toggle('problem', isProblem(s));
}
function filterTags(rows, signals, text, problemsOnly, count) {
  let shown = 0;
  for (const s of signals) {
    const visible = (!text || s.name.includes(text) || (s.asset || '').includes(text))
      && (!problemsOnly || isProblem(s));
    rows.get(s.name).tr.hidden = !visible;
    if (visible) shown += 1;
  }
  count.textContent = `${shown} of ${signals.length} signals`;
}

// ---------- assets ----------
function assetsView(name) {
  return name ? assetDetail(name) : assetList();
}
function assetList() {
  const cards = el('div', { class: 'cards', id: 'asset-list' });
  view().append(el('h2', { text: 'Assets' }), cards);
  return {
    name: 'assets',
    async refresh() {
      const data = await api('assets');
      cards.replaceChildren(...data.assets.map((a) => el('a', { class: 'card', href: `#/assets/${encodeURIComponent(a.name)}`, 'data-asset': a.name },
        el('div', { class: 'muted', text: a.name }),
        el('div', { class: 'health', text: a.health === null ? '—' : a.health.toFixed(0) }),
        el('div', { text: a.score === null ? 'rules only' : `score ${num(a.score)} / ${num(a.threshold)}` }),
        el('div', {}, a.open_alerts.length ? badge(`${a.open_alerts.length} open`, 'critical') : badge('no alerts', 'good')))));
      if (!data.assets.length) cards.replaceChildren(el('p', { class: 'empty', text: 'No assets configured.' }));
    },
  };
}
function assetDetail(name) {
  const summary = el('section', { id: 'asset-summary' });
  const health = el('div', { class: 'chart', id: 'health-chart' });
  const score = el('div', { class: 'chart', id: 'score-chart' });
  const alerts = el('div', { id: 'asset-alerts' });
  view().append(el('h2', {}, el('a', { href: '#/assets', text: 'Assets' }), ` / ${name}`), summary,
    el('h2', { text: 'Open alerts and the window that raised them' }), alerts,
    el('h2', { text: 'Health, last hour' }), el('section', {}, health),
    el('h2', { text: 'Score against threshold, last hour' }), el('section', {}, score));
  let drawn = '';
  return {
    name: 'assets',
    async refresh() {
      const data = await api('assets');
      const asset = data.assets.find((a) => a.name === name);
      if (!asset) { summary.replaceChildren(el('p', { text: `No asset ${name}.` })); return; }
      summary.replaceChildren(table(['health', 'score', 'threshold', 'mode', 'signals', 'rules'], [el('tr', {},
        el('td', { text: asset.health === null ? '—' : asset.health.toFixed(0) }),
        el('td', { text: num(asset.score) }), el('td', { text: num(asset.threshold) }),
        el('td', { text: asset.mode || 'rules' }),
        el('td', {}, asset.signals.map((s) => [el('a', { href: `#/trend/${encodeURIComponent(s)}`, text: s }), ' '])),
        el('td', { text: asset.rules.join(', ') }))]));
      const key = asset.open_alerts.map((a) => a.id).join();
      if (key !== drawn) {
        drawn = key;
        alerts.replaceChildren(...(asset.open_alerts.length ? asset.open_alerts.map(alertWindow) : [el('p', { class: 'empty', text: 'No open alerts.' })]));
      }
      await drawSignals(health, [`detect.${name}.health`], 3600, false);
      if (asset.score !== null) await drawSignals(score, [`detect.${name}.score`], 3600, false, asset.threshold);
    },
  };
}
function alertWindow(alert) {
  const chart = el('div', { class: 'chart' });
  const box = el('section', { class: 'alert-window', 'data-alert': alert.id },
    el('div', {}, badge(alert.severity), ` ${alert.kind}: ${alert.cause} — ${alert.reason}`),
    el('div', { class: 'muted', text: `raised ${clock(alert.raised_at)}; signals, most contributing first: ${alert.signals.join(', ')}` }),
    chart);
  const margin = Math.max(30, (alert.window_end - alert.window_start) * 0.25);
  const since = alert.window_start - margin;
  drawSignals(chart, alert.signals.slice(0, 4), null, false, null, [since, alert.window_end + margin]).catch(() => {});
  return box;
}

// ---------- trend ----------
function trendView(signal) {
  const input = el('input', { list: 'signal-names', id: 'trend-signal', placeholder: 'signal name', value: signal || '' });
  const names = el('datalist', { id: 'signal-names' });
  const chart = el('div', { class: 'chart', id: 'trend-chart' });
  const note = el('p', { class: 'muted', text: 'Drag across the chart to zoom in, double-click to zoom out.' });
  let range = 3600;
  let rollups = false;
  const rangeButtons = RANGES.map(([label, seconds]) => el('button', { type: 'button', 'data-range': label,
    class: seconds === range ? 'active' : null, onclick: () => { range = seconds; mark(); redraw(); } , text: label }));
  const rollButton = el('button', { type: 'button', id: 'rollups', onclick: () => { rollups = !rollups; mark(); redraw(); }, text: 'minute rollups' });
  function mark() {
    for (const b of rangeButtons) b.classList.toggle('active', RANGES.find(([l]) => l === b.dataset.range)[1] === range);
    rollButton.classList.toggle('active', rollups);
  }
  input.addEventListener('change', () => { location.hash = `#/trend/${encodeURIComponent(input.value.trim())}`; });
  view().append(el('section', {}, el('div', { class: 'toolbar' }, input, names, ...rangeButtons, rollButton), note, chart));
  const redraw = () => (input.value ? drawSignals(chart, [input.value], range, rollups).catch((e) => showBanner(e.message)) : null);
  api('signals').then((d) => names.replaceChildren(...d.signals.map((s) => el('option', { value: s.name })))).catch(() => {});
  return {
    name: 'trend',
    async refresh() {
      if (input.value) await drawSignals(chart, [input.value], range, rollups);
    },
  };
}

// ---------- config ----------
function configView() {
  const pre = el('pre', { id: 'config-json' });
  const hash = el('p', { class: 'muted' });
  view().append(el('h2', { text: 'Effective config (secrets redacted)' }), hash, el('section', {}, pre));
  return {
    name: 'config',
    async refresh() {
      const data = await api('config');
      hash.textContent = `config hash ${data.config_hash}`;
      pre.textContent = JSON.stringify(data.config, null, 2);
    },
  };
}

// ---------- charts (uPlot) ----------
const COLOURS = ['#1f5fbf', '#c62828', '#1a7f37', '#b26b00'];
async function drawSignals(box, signals, seconds, rollups, threshold, window) {
  const now = Date.now() / 1000;
  const [since, until] = window || [now - seconds, null];
  const query = (s) => `signals/${encodeURIComponent(s)}/history?since=${since}${until ? `&until=${until}` : ''}${rollups ? '&rollups=true' : ''}`;
  const histories = await Promise.all(signals.map((s) => api(query(s))));
  const tables = histories.map((h) => [h.ts, rollups ? h.mean : h.value]);
  const data = tables.length > 1 ? uPlot.join(tables) : tables[0];
  const series = [{}, ...histories.map((h, i) => ({ label: `${h.signal}${h.unit ? ` (${h.unit})` : ''}`,
    stroke: COLOURS[i % COLOURS.length], width: 1.5, spanGaps: false }))];
  if (threshold !== null && threshold !== undefined) {
    data.push(data[0].map(() => threshold));
    series.push({ label: 'threshold', stroke: '#888', dash: [6, 4], width: 1 });
  }
  const width = Math.max(280, box.clientWidth || 600);
  const key = `${signals.join()}|${seconds}|${rollups}|${width}`;
  if (box.plot && box.plotKey === key) {
    box.plot.setData(data, !box.zoomed);
    return;
  }
  if (box.plot) box.plot.destroy();
  box.plotKey = key;
  box.zoomed = false;
  box.plot = new uPlot({ width, height: 220, series, scales: { x: { time: true } },
    legend: { live: true }, cursor: { drag: { x: true, y: false } },
    hooks: { setSelect: [() => { box.zoomed = true; }] } }, data, box);
  box.addEventListener('dblclick', () => { box.zoomed = false; });
}
