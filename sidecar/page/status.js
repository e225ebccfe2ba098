// @ts-check
// poolguard's status page: reads GET /status and GET /history from the sidecar that serves it and
// draws them with DOM calls only (never parsed as HTML: statement texts and error messages are shown as
// text). It refreshes itself at half the poll interval; a figure older than twice the poll
// interval is drawn as STALE, never as live. Type-checked by tsc (page/tsconfig.json).

/**
 * @typedef {'OK' | 'WARN' | 'DOWN'} CardState
 * @typedef {{ id: string, title: string, state: CardState, since: string | null, version: string | null, detail: string,
 *   lastPollAt: string | null, lastSuccessAt: string | null, lastError: string | null, alerts: number }} Card
 * @typedef {{ database: string, user: string, clientActive: number, clientWaiting: number, serverActive: number, serverIdle: number,
 *   serverUsed: number, maxwaitSeconds: number, poolSize: number | null, reservePool: number | null, poolMode: string,
 *   clientUtilizationPercent: number, serverUtilizationPercent: number }} PoolRow
 * @typedef {{ name: string, severity: string, summary: string, labels: Record<string, string>, since: string, value: number, threshold: number }} Alert
 * @typedef {{ timestamp: string, lastPollAt: string | null, pollIntervalMs: number, staleAfterMs: number, healthy: boolean, degraded: boolean,
 *   isShuttingDown: boolean, cards: Card[],
 *   pgbouncer: { clients: { used: number, max: number, utilizationPercent: number }, pools: PoolRow[], serverUtilizationPercent: number, serverConnections: number, serverMax: number },
 *   postgres: { instance: string, connections: number, usable: number, utilizationPercent: number, byState: { state: string, count: number }[] } | null,
 *   replicas: { instance: string, status: string, healthy: boolean, lagSeconds: number | null, lagBytes: number | null, reason: string | null, lastError: string | null }[],
 *   redis: { isHealthy: boolean, connectedClients: number | null, maxClients: number | null, utilizationPercent: number | null, usedMemoryBytes: number | null, maxMemoryBytes: number | null, version: string | null },
 *   backups: { lastBackup: { label: string, type: string, stoppedAt: string, sizeBytes: number } | null, lastRun: { type: string, ok: boolean, finishedAt: string, error: string | null } | null,
 *     running: { type: string, startedAt: string } | null, problem: string | null } | null,
 *   slowQueries: { window: string, items: { queryid: string, user: string, datname: string, calls: number, meanExecMs: number, text: string | null }[] } | null,
 *   budget: { status: string, lines: { name: string, status: string, figures: string, advice: string }[] } | null,
 *   alerts: Alert[] }} Status
 * @typedef {{ intervalMs: number, capacity: number, windowSeconds: number, points: number, memoryBytes: number, t: number[], series: Record<string, (number | null)[]> }} HistoryBody
 */

/** The sparklines: series name (or a prefix ending in '.') -> label and unit. */
const SPARKS = [
  { key: 'pgbouncer.clients_active', label: 'App clients active', unit: '' },
  { key: 'pgbouncer.clients_waiting', label: 'Clients waiting', unit: '' },
  { key: 'pgbouncer.maxwait_seconds', label: 'Longest wait', unit: 's' },
  { key: 'pgbouncer.server_utilization_percent', label: 'App server connections', unit: '%' },
  { key: 'pgbouncer.xact_per_second', label: 'Transactions through PgBouncer', unit: '/s' },
  { key: 'probe.response_ms', label: 'Pooled SELECT 1', unit: 'ms' },
  { key: 'postgres.connections', label: 'Postgres connections', unit: '' },
  { key: 'postgres.active', label: 'Postgres active', unit: '' },
  { key: 'redis.used_memory_bytes', label: 'Redis memory', unit: 'B' },
  { key: 'redis.connected_clients', label: 'Redis clients', unit: '' },
  { key: 'alerts.firing', label: 'Firing alerts', unit: '' },
];

/** @param {string} id @returns {HTMLElement} */
const $ = (id) => {
  const e = document.getElementById(id);
  if (!e) throw new Error(`no #${id} on the page`);
  return e;
};

/**
 * @param {string} tag
 * @param {Record<string, string>} [attrs]
 * @param {(Node | string | null)[]} children
 * @returns {HTMLElement}
 */
function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  for (const c of children) if (c !== null) e.append(c);
  return e;
}

const SVG = 'http://www.w3.org/2000/svg';
/** @param {string} tag @param {Record<string, string>} attrs @returns {SVGElement} */
function svg(tag, attrs) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  return e;
}

/** @param {number} n @param {number} [digits] */
const num = (n, digits = 1) => (Number.isInteger(n) ? String(n) : n.toFixed(digits));

/** @param {number} b */
function bytes(b) {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (b >= 1024 && i < units.length - 1) {
    b /= 1024;
    i++;
  }
  return `${i === 0 ? b : b.toFixed(1)} ${units[i]}`;
}

/** @param {number} v @param {string} unit */
const withUnit = (v, unit) => (unit === 'B' ? bytes(v) : `${num(v, v < 10 ? 2 : 1)}${unit === '' ? '' : unit === '%' || unit === '/s' ? unit : ` ${unit}`}`);

/** @param {number} ms */
function duration(ms) {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
  return `${Math.floor(s / 86400)} d ${Math.floor((s % 86400) / 3600)} h`;
}

/** @param {string} iso */
const clock = (iso) => new Date(iso).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit' });

/** The page's state between refreshes. */
const state = {
  /** @type {Status | null} */ status: null,
  /** Server clock minus this browser's, ms (from the last answer's timestamp). */
  offsetMs: 0,
  /** @type {HistoryBody | null} */ history: null,
  authRequired: false,
  /** @type {string | null} */ lastFailure: null,
  firstRender: false,
  /** @type {number | undefined} */ timer: undefined,
};

const serverNow = () => Date.now() + state.offsetMs;

/**
 * @param {string} path
 * @param {RequestInit} [init]
 * @returns {Promise<{ status: number, body: any }>}
 */
async function api(path, init = {}) {
  const res = await fetch(path, { credentials: 'same-origin', cache: 'no-store', ...init });
  const text = await res.text();
  let body = null;
  try {
    body = text === '' ? null : JSON.parse(text);
  } catch {
    body = { message: text.slice(0, 200) };
  }
  return { status: res.status, body };
}

/** Shows the login form (the sidecar has a token and this browser has no session). */
function showLogin() {
  state.authRequired = true;
  $('main').hidden = true;
  $('logout').hidden = true;
  $('login').hidden = false;
  $('overall').textContent = 'SIGN IN';
  $('overall').dataset.state = '';
  $('updated').textContent = 'This sidecar needs its token.';
  /** @type {HTMLInputElement} */ ($('token')).focus();
}

async function refresh() {
  window.clearTimeout(state.timer);
  try {
    const r = await api('/status');
    if (r.status === 401) {
      showLogin();
      return;
    }
    if (r.status !== 200 && r.status !== 503) throw new Error(`GET /status answered ${r.status}: ${r.body?.message ?? ''}`);
    /** @type {Status} */
    const status = r.body;
    state.offsetMs = Date.parse(status.timestamp) - Date.now();
    state.status = status;
    state.lastFailure = null;
    await refreshHistory();
    render(status);
  } catch (err) {
    state.lastFailure = err instanceof Error ? err.message : String(err);
  }
  tick();
  const every = state.status ? Math.min(30_000, Math.max(500, state.status.pollIntervalMs / 2)) : 2000;
  state.timer = window.setTimeout(refresh, every);
}

/** Fetches the history (all of it first, then what is new) and keeps the window's worth. */
async function refreshHistory() {
  const h = state.history;
  const after = h && h.t.length > 0 ? h.t[h.t.length - 1] : undefined;
  const r = await api(after === undefined ? '/history' : `/history?after=${after}`);
  if (r.status !== 200) return;
  /** @type {HistoryBody} */
  const fresh = r.body;
  if (!h) {
    state.history = fresh;
    return;
  }
  const n = h.t.length;
  h.t.push(...fresh.t);
  for (const name of new Set([...Object.keys(h.series), ...Object.keys(fresh.series)])) {
    const old = h.series[name] ?? new Array(n).fill(null);
    old.push(...(fresh.series[name] ?? new Array(fresh.t.length).fill(null)));
    h.series[name] = old;
  }
  const from = serverNow() - fresh.windowSeconds * 1000;
  let drop = 0;
  while (drop < h.t.length && (h.t[drop] ?? 0) < from) drop++;
  if (drop > 0) {
    h.t.splice(0, drop);
    for (const s of Object.values(h.series)) s.splice(0, drop);
  }
  Object.assign(h, { intervalMs: fresh.intervalMs, capacity: fresh.capacity, windowSeconds: fresh.windowSeconds, points: fresh.points, memoryBytes: fresh.memoryBytes });
}

/** @param {string | null} at */
const ageMs = (at) => (at === null ? Infinity : serverNow() - Date.parse(at));

/** Every second: how old the figures are, and STALE once they are older than twice the poll interval. */
function tick() {
  const s = state.status;
  if (!s) {
    if (state.lastFailure) $('updated').textContent = `No answer from the sidecar: ${state.lastFailure}`;
    return;
  }
  const age = ageMs(s.lastPollAt);
  const stale = age > s.staleAfterMs;
  const overall = $('overall');
  const word = stale ? 'STALE' : !s.healthy ? 'DOWN' : s.degraded || s.alerts.length > 0 || s.cards.some((c) => c.state !== 'OK') ? 'WARN' : 'OK';
  overall.textContent = word === 'OK' ? 'ALL OK' : word;
  overall.dataset.state = word;
  $('updated').textContent = s.lastPollAt === null ? 'Not polled yet.' : `Polled ${duration(age)} ago (every ${num(s.pollIntervalMs / 1000)} s).`;
  const banner = $('stale');
  banner.hidden = !stale;
  if (stale) {
    banner.textContent = `STALE: these figures are from ${s.lastPollAt === null ? 'no poll' : clock(s.lastPollAt)}, ${duration(age)} old${state.lastFailure ? ` (the sidecar does not answer: ${state.lastFailure})` : ''}. They are not live.`;
  }
  for (const card of /** @type {NodeListOf<HTMLElement>} */ (document.querySelectorAll('.card'))) {
    const c = s.cards.find((x) => x.id === card.dataset.card);
    if (!c) continue;
    const cardStale = stale || ageMs(c.lastPollAt) > s.staleAfterMs;
    card.classList.toggle('stale', cardStale);
    const badge = /** @type {HTMLElement} */ (card.querySelector('.badge'));
    badge.textContent = cardStale ? `STALE (was ${c.state})` : c.state;
    badge.dataset.state = cardStale ? 'STALE' : c.state;
    card.dataset.stale = cardStale ? '1' : '0';
    const since = /** @type {HTMLElement} */ (card.querySelector('.since'));
    since.textContent = c.since === null ? '' : `${c.state === 'DOWN' ? 'Down' : c.state === 'WARN' ? 'Warning' : 'Up'} since ${clock(c.since)} (${duration(serverNow() - Date.parse(c.since))})`;
  }
}

/** @param {Status} s */
function render(s) {
  $('login').hidden = true;
  $('main').hidden = false;
  $('logout').hidden = !state.authRequired;

  $('cards').replaceChildren(
    ...s.cards.map((c) =>
      el('article', { class: 'card', 'data-card': c.id, 'data-state': c.state },
        el('h3', {}, el('span', {}, c.title), el('span', { class: 'badge', 'data-state': c.state, 'data-figure': 'state' }, c.state)),
        el('p', { class: 'since meta' }),
        el('div', { class: 'figures' },
          el('p', { 'data-figure': 'detail', class: c.state === 'DOWN' ? 'error' : '' }, c.detail),
          c.version ? el('p', { class: 'meta' }, `version ${c.version}`) : null,
          c.state !== 'DOWN' && c.lastError ? el('p', { class: 'meta' }, `last error: ${c.lastError}`) : null,
          c.alerts > 0 ? el('p', { class: 'meta' }, `${c.alerts} alert${c.alerts === 1 ? '' : 's'} firing`) : null),
      ),
    ),
  );

  $('alert-count').textContent = s.alerts.length > 0 ? `(${s.alerts.length})` : '';
  $('no-alerts').hidden = s.alerts.length > 0;
  const alerts = $('alerts');
  alerts.hidden = s.alerts.length === 0;
  alerts.replaceChildren(
    ...s.alerts.map((a) =>
      el('li', { 'data-alert': a.name, 'data-labels': JSON.stringify(a.labels) },
        el('span', { class: 'badge', 'data-state': a.severity.toUpperCase() === 'CRITICAL' ? 'DOWN' : 'WARN', 'data-figure': 'severity' }, a.severity.toUpperCase()), ' ',
        el('strong', {}, a.name), el('br'), a.summary, el('br'),
        el('span', { class: 'meta' },
          'since ', el('span', { 'data-figure': 'since', 'data-iso': a.since }, `${clock(a.since)} (${duration(serverNow() - Date.parse(a.since))})`),
          ' · value ', el('span', { 'data-figure': 'value' }, num(a.value, 2)),
          ' · threshold ', el('span', { 'data-figure': 'threshold' }, num(a.threshold, 2))),
      ),
    ),
  );

  renderSparks();

  const pb = s.pgbouncer;
  $('clients').replaceChildren(
    'Clients: ', el('span', { 'data-figure': 'clients.used' }, String(pb.clients.used)), ' of ', el('span', { 'data-figure': 'clients.max' }, String(pb.clients.max)),
    ` (${num(pb.clients.utilizationPercent)}%). App server connections: ${pb.serverConnections} of ${pb.serverMax} (${num(pb.serverUtilizationPercent)}%).`,
  );
  const pgbouncerDown = s.cards.find((c) => c.id === 'pgbouncer')?.state === 'DOWN';
  $('pools').hidden = pgbouncerDown;
  if (pgbouncerDown) $('clients').textContent = 'PgBouncer did not answer the last poll: no pool figures.';
  /** @type {HTMLElement} */ ($('pools').querySelector('tbody')).replaceChildren(
    ...pb.pools.map((p) =>
      el('tr', { 'data-pool': `${p.database}/${p.user}` },
        el('td', { 'data-label': 'Pool' }, `${p.database}/${p.user}`, el('br'), el('span', { class: 'muted' }, p.poolMode)),
        el('td', { 'data-label': 'Clients', 'data-figure': 'clientActive' }, String(p.clientActive)),
        el('td', { 'data-label': 'Waiting', 'data-figure': 'clientWaiting' }, String(p.clientWaiting)),
        el('td', { 'data-label': 'Max wait', 'data-figure': 'maxwaitSeconds' }, `${num(p.maxwaitSeconds, 3)} s`),
        el('td', { 'data-label': 'Servers' }, el('span', { 'data-figure': 'serverActive' }, String(p.serverActive)), ' active, ', el('span', { 'data-figure': 'serverIdle' }, String(p.serverIdle)), ' idle, ', el('span', { 'data-figure': 'serverUsed' }, String(p.serverUsed)), ' used', p.poolSize === null ? '' : ` / ${p.poolSize}+${p.reservePool ?? 0}`),
        el('td', { 'data-label': 'Client use', 'data-figure': 'clientUtilizationPercent' }, `${num(p.clientUtilizationPercent)}%`),
        el('td', { 'data-label': 'Server use', 'data-figure': 'serverUtilizationPercent' }, `${num(p.serverUtilizationPercent)}%`),
      ),
    ),
  );

  const pg = s.postgres;
  $('pg-total').replaceChildren(
    ...(pg
      ? [`${pg.instance}: `, el('span', { 'data-figure': 'postgres.connections' }, String(pg.connections)), ' of ', el('span', { 'data-figure': 'postgres.usable' }, String(pg.usable)), ` usable connections (${num(pg.utilizationPercent)}%).`]
      : ['The primary did not answer the last poll.']),
  );
  $('pg-states').replaceChildren(
    ...(pg?.byState ?? []).map((g) => {
      const bar = svg('svg', { viewBox: '0 0 100 10', preserveAspectRatio: 'none', role: 'img', 'aria-label': `${g.count} of ${pg?.usable ?? 0}` });
      bar.append(svg('rect', { class: 'track', x: '0', y: '0', width: '100', height: '10' }), svg('rect', { class: 'fill', x: '0', y: '0', width: String(pg && pg.usable > 0 ? Math.min(100, (g.count / pg.usable) * 100) : 0), height: '10' }));
      return el('div', { class: 'bar', 'data-state-name': g.state }, el('span', {}, g.state), bar, el('span', { class: 'n', 'data-figure': 'count' }, String(g.count)));
    }),
  );

  $('replicas-section').hidden = s.replicas.length === 0;
  /** @type {HTMLElement} */ ($('replicas').querySelector('tbody')).replaceChildren(
    ...s.replicas.map((r) =>
      el('tr', { 'data-replica': r.instance },
        el('td', {}, r.instance),
        el('td', {}, el('span', { class: 'badge', 'data-state': r.status === 'down' ? 'DOWN' : r.healthy ? 'OK' : 'WARN' }, r.status)),
        el('td', { 'data-figure': 'lagSeconds' }, r.lagSeconds === null ? '—' : `${num(r.lagSeconds, 2)} s`),
        el('td', {}, r.reason ?? r.lastError ?? ''),
      ),
    ),
  );

  const rd = s.redis;
  $('redis').textContent = rd.usedMemoryBytes === null
    ? 'Redis did not answer the last poll.'
    : `${bytes(rd.usedMemoryBytes)} used${rd.maxMemoryBytes ? ` of ${bytes(rd.maxMemoryBytes)}` : ' (no maxmemory)'}; ${rd.connectedClients} of ${rd.maxClients} clients.`;

  $('backups-section').hidden = s.backups === null;
  if (s.backups) {
    const b = s.backups;
    $('backups').textContent = [
      b.lastBackup ? `Last backup: ${b.lastBackup.type} ${b.lastBackup.label}, finished ${new Date(b.lastBackup.stoppedAt).toLocaleString()} (${bytes(b.lastBackup.sizeBytes)}).` : 'No backup yet.',
      b.running ? `Running: ${b.running.type} since ${clock(b.running.startedAt)}.` : '',
      b.lastRun ? `Last run: ${b.lastRun.type} ${b.lastRun.ok ? 'OK' : `FAILED: ${b.lastRun.error ?? ''}`} at ${new Date(b.lastRun.finishedAt).toLocaleString()}.` : '',
      b.problem ? `Problem: ${b.problem}` : '',
    ].filter((x) => x !== '').join(' ');
  }

  $('slow-section').hidden = s.slowQueries === null;
  if (s.slowQueries) {
    $('slow-window').textContent = `(mean time, ${s.slowQueries.window})`;
    $('no-slow').hidden = s.slowQueries.items.length > 0;
    $('slow').replaceChildren(
      ...s.slowQueries.items.map((q) =>
        el('li', { 'data-queryid': q.queryid }, `${num(q.meanExecMs, 2)} ms mean over ${q.calls} calls (${q.user}@${q.datname})`, el('code', {}, q.text ?? '(text not fetched yet)')),
      ),
    );
  }

  $('budget-section').hidden = s.budget === null;
  if (s.budget) {
    const st = $('budget-status');
    st.textContent = s.budget.status;
    st.dataset.state = s.budget.status === 'PASS' ? 'OK' : s.budget.status === 'WARN' ? 'WARN' : 'DOWN';
    $('budget').replaceChildren(
      ...s.budget.lines.map((l) => el('li', {}, el('strong', {}, `${l.status} ${l.name}: `), l.figures, l.status === 'PASS' ? null : el('br'), l.status === 'PASS' ? null : el('span', { class: 'muted' }, l.advice))),
    );
  }

  document.body.dataset.pollAt = s.lastPollAt ?? '';
  if (!state.firstRender) {
    state.firstRender = true;
    performance.mark('poolguard:first-render');
    document.body.dataset.rendered = '1';
  }
}

/** The history's sparklines: the last window, a gap where a series had no value. */
function renderSparks() {
  const h = state.history;
  if (!h) return;
  const keys = [...SPARKS];
  for (const name of Object.keys(h.series)) {
    const m = /^replica\.(.+)\.lag_seconds$/.exec(name);
    if (m) keys.push({ key: name, label: `Replica ${m[1]} lag`, unit: 's' });
  }
  const W = 200;
  const H = 40;
  const to = serverNow();
  const from = to - h.windowSeconds * 1000;
  $('sparks').replaceChildren(
    ...keys.map(({ key, label, unit }) => {
      const values = h.series[key] ?? [];
      const present = /** @type {number[]} */ (values.filter((v) => v !== null));
      const last = values.length > 0 ? values[values.length - 1] : null;
      const lo = present.length > 0 ? Math.min(0, ...present) : 0;
      const hi = present.length > 0 ? Math.max(...present) : 1;
      const span = hi - lo || 1;
      const chart = svg('svg', { viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: 'none', role: 'img', 'aria-label': `${label}, last ${duration(h.windowSeconds * 1000)}` });
      /** @type {string[]} */
      let run = [];
      const flush = () => {
        if (run.length > 0) chart.append(svg('polyline', { points: run.length === 1 ? `${run[0]} ${run[0]}` : run.join(' ') }));
        run = [];
      };
      h.t.forEach((t, i) => {
        const v = values[i];
        if (v === null || v === undefined) return flush();
        const x = ((t - from) / (to - from)) * W;
        const y = H - 1 - ((v - lo) / span) * (H - 2);
        run.push(`${x.toFixed(1)},${y.toFixed(1)}`);
      });
      flush();
      return el('div', { class: 'spark', 'data-series': key },
        el('h3', {}, label),
        el('div', { class: 'now', 'data-figure': 'now' }, last === null || last === undefined ? '—' : withUnit(last, unit)),
        chart,
        el('div', { class: 'range' }, present.length > 0 ? `min ${withUnit(Math.min(...present), unit)}, max ${withUnit(hi, unit)}` : 'no values yet'),
      );
    }),
  );
}

$('login').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const input = /** @type {HTMLInputElement} */ ($('token'));
  const token = input.value;
  void (async () => {
    const r = await api('/login', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ token }) });
    input.value = '';
    if (r.status === 200) {
      $('login-error').textContent = '';
      await refresh();
    } else {
      $('login-error').textContent = r.status === 401 ? 'Wrong token.' : r.body?.message ?? `Sign-in failed (${r.status}).`;
    }
  })();
});

$('logout').addEventListener('click', () => {
  void api('/logout', { method: 'POST' }).then(() => {
    state.status = null;
    state.history = null;
    showLogin();
  });
});

window.setInterval(tick, 1000);
void refresh();
