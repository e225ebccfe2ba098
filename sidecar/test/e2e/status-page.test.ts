/// <reference lib="dom" />
/// <reference lib="dom.iterable" />
// The status page in a real browser: Debian's Chromium (scripts/ensure-chromium.sh), driven by
// playwright-core, against the sidecar image with a token, watching the project's own postgres,
// pgbouncer and redis images. Screenshots of each state go to sidecar/.test-output/status-page/
// (ignored by git), with figures.json (first render, weight).
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type Browser, type BrowserContext, type BrowserContextOptions, type Page, type Request } from 'playwright-core';
import type { StartedTestContainer } from 'testcontainers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PAGE_WEIGHT_BUDGET_BYTES } from '../../src/page.js';
import { ROOT, run, until } from './stack.js';
import { sidecarContainer, startBackends, type Backends } from './watched.js';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const OUT = join(ROOT, 'sidecar/.test-output/status-page');
const TOKEN = 'it-status-page-token-0123456789abcdef';
const POLL_MS = 1000;
const TIMEOUT_MS = 800;
/** The page refreshes at half the poll interval. */
const PAGE_REFRESH_MS = POLL_MS / 2;

let backends: Backends;
let sidecar: StartedTestContainer;
let browser: Browser;
let base: string;
const figures: Record<string, unknown> = {};

const api = async (path: string) => {
  const res = await fetch(`${base}${path}`, { headers: { authorization: `Bearer ${TOKEN}` } });
  return (await res.json()) as any;
};

/** A logged-in page: the login form filled as a user would, then the first render awaited. */
async function signedIn(context: BrowserContext): Promise<Page> {
  const page = await context.newPage();
  await page.goto(base);
  await page.locator('#login').waitFor({ state: 'visible' });
  await page.fill('#token', TOKEN);
  await page.click('#login button[type=submit]');
  await page.locator('body[data-rendered="1"]').waitFor();
  return page;
}

const DESKTOP = { viewport: { width: 1280, height: 900 } };

/** A fresh browser context (its own cookies) for fn, closed after it whatever happens. */
async function inContext(options: BrowserContextOptions, fn: (context: BrowserContext) => Promise<void>): Promise<void> {
  const context = await browser.newContext(options);
  try {
    await fn(context);
  } finally {
    await context.close();
  }
}

const shot = (page: Page, name: string) => page.screenshot({ path: join(OUT, `${name}.png`), fullPage: true });

const cardState = (page: Page, id: string) => page.locator(`.card[data-card="${id}"]`).getAttribute('data-state');

beforeAll(async () => {
  mkdirSync(OUT, { recursive: true });
  backends = await startBackends();
  sidecar = await sidecarContainer(backends.network, {
    SIDECAR_POLL_INTERVAL_MS: String(POLL_MS),
    SIDECAR_SOURCE_TIMEOUT_MS: String(TIMEOUT_MS),
    SIDECAR_TOKEN: TOKEN,
    SIDECAR_ALERT_FOR_MS: '0',
    // One alert that holds in a quiet stack (any Postgres connection is >= 1 % of the usable ones),
    // so the page's alert list has a row to compare with /alerts.
    SIDECAR_ALERT_RULES: JSON.stringify({ postgres_connections: { warning: 1, critical: null } }),
  }).start();
  base = `http://${sidecar.getHost()}:${sidecar.getMappedPort(8787)}`;
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    // As root in a container-less sandbox; no background traffic to hosts this machine cannot reach.
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
});

afterAll(async () => {
  await browser?.close().catch(() => undefined);
  if (Object.keys(figures).length > 0) writeFileSync(join(OUT, 'figures.json'), `${JSON.stringify(figures, null, 2)}\n`);
  await sidecar?.stop().catch(() => undefined);
  await backends?.stop();
});

describe('the status page in Chromium', () => {
  it('signs in with the token through the form: a wrong one is refused; the cookie is HttpOnly and Strict; no URL, log line or page holds the token', async () => {
    await inContext(DESKTOP, async (context) => {
      const requests: Request[] = [];
      context.on('request', (r) => void requests.push(r));
      const page = await context.newPage();
      await page.goto(base);
      await page.locator('#login').waitFor({ state: 'visible' });
      expect(await page.locator('#main').isHidden()).toBe(true);
      await shot(page, 'login');
      await page.fill('#token', `${TOKEN}-wrong`);
      await page.click('#login button[type=submit]');
      await expect.poll(() => page.locator('#login-error').textContent()).toBe('Wrong token.');
      await page.fill('#token', TOKEN);
      await page.click('#login button[type=submit]');
      await page.locator('body[data-rendered="1"]').waitFor();
      expect(await page.locator('#login').isHidden()).toBe(true);
      expect(await page.inputValue('#token')).toBe('');

      const cookies = await context.cookies();
      expect(cookies.map((c) => c.name)).toEqual(['poolguard_session']);
      expect(cookies[0]).toMatchObject({ httpOnly: true, sameSite: 'Strict', path: '/' });
      expect(cookies[0]!.value).not.toContain(TOKEN);
      // A script on the page cannot read it.
      expect(await page.evaluate(() => document.cookie)).toBe('');
      expect(await page.content()).not.toContain(TOKEN);
      expect(requests.length).toBeGreaterThan(3);
      for (const r of requests) {
        expect(r.url(), 'every request goes to the sidecar itself').toMatch(new RegExp(`^${base}/`));
        expect(r.url()).not.toContain(TOKEN);
        if (r.url() !== `${base}/login`) expect(r.postData() ?? '').not.toContain(TOKEN);
      }
      const logs = await run('docker', ['logs', sidecar.getId()]);
      expect(logs.stdout + logs.stderr).toMatch(/status page login failed/);
      expect(logs.stdout + logs.stderr).toMatch(/"msg":"status page login"/);
      expect(logs.stdout + logs.stderr).not.toContain(TOKEN);

      // Signing out drops the session: the form comes back and /status refuses the old cookie.
      await page.click('#logout');
      await page.locator('#login').waitFor({ state: 'visible' });
      expect(await context.cookies()).toEqual([]);
    });
  });

  it('first render, weight and origin: every file from the sidecar, within the weight budget', async () => {
    await inContext(DESKTOP, async (context) => {
      await signedIn(context);
      // A fresh load with the session: what a person on call sees after opening the bookmark.
      const renders: number[] = [];
      let weight = 0;
      for (let i = 0; i < 5; i++) {
        const page = await context.newPage();
        await page.goto(base);
        await page.locator('body[data-rendered="1"]').waitFor();
        const m = await page.evaluate(() => {
          const mark = performance.getEntriesByName('poolguard:first-render')[0];
          const resources = performance.getEntriesByType('resource') as PerformanceResourceTiming[];
          const nav = performance.getEntriesByType('navigation')[0] as PerformanceNavigationTiming;
          const files = resources.filter((r) => r.initiatorType !== 'fetch');
          return { render: mark?.startTime ?? -1, weight: nav.decodedBodySize + files.reduce((n, r) => n + r.decodedBodySize, 0), files: files.map((r) => r.name) };
        });
        expect(m.render).toBeGreaterThan(0);
        renders.push(m.render);
        weight = m.weight;
        expect(m.files.every((f) => f.startsWith(`${base}/page/`)), m.files.join(', ')).toBe(true);
        await page.close();
      }
      renders.sort((a, b) => a - b);
      expect(weight).toBeGreaterThan(10_000);
      expect(weight).toBeLessThanOrEqual(PAGE_WEIGHT_BUDGET_BYTES);
      Object.assign(figures, { firstRenderMs: { median: renders[2], min: renders[0], max: renders[4], runs: renders.length }, pageWeightBytes: weight });
      console.log(`status page: first render ${renders[2]!.toFixed(0)} ms median of 5 (${renders[0]!.toFixed(0)}-${renders[4]!.toFixed(0)}), ${weight} bytes uncompressed`);
    });
  });

  it('the figures on the page are those of /pool and /alerts', async () => {
    await inContext(DESKTOP, async (context) => {
      const page = await signedIn(context);
      // Both read the same snapshot between two polls; a poll in between can move a figure, so
      // compare until one read of each agrees (a quiet stack: they agree at once or next poll).
      const readPage = () => page.evaluate(() => {
        const fig = (root: ParentNode, name: string) => root.querySelector(`[data-figure="${name}"]`)?.textContent ?? null;
        return {
          clients: { used: Number(fig(document, 'clients.used')), max: Number(fig(document, 'clients.max')) },
          postgres: { connections: Number(fig(document, 'postgres.connections')), maxConnections: Number(fig(document, 'postgres.usable')) },
          pools: [...document.querySelectorAll('[data-pool]')].map((r) => ({
            pool: r.getAttribute('data-pool'),
            clientActive: Number(fig(r, 'clientActive')), clientWaiting: Number(fig(r, 'clientWaiting')),
            serverActive: Number(fig(r, 'serverActive')), serverIdle: Number(fig(r, 'serverIdle')), serverUsed: Number(fig(r, 'serverUsed')),
          })),
          alerts: [...document.querySelectorAll('[data-alert]')].map((a) => ({
            name: a.getAttribute('data-alert'), labels: JSON.parse(a.getAttribute('data-labels') ?? '{}'), severity: fig(a, 'severity'),
            value: fig(a, 'value'), threshold: fig(a, 'threshold'), since: a.querySelector('[data-figure="since"]')?.getAttribute('data-iso'),
          })),
        };
      });
      const readApi = async () => {
        const [pool, alerts] = await Promise.all([api('/pool'), api('/alerts')]);
        const n = (v: number) => (Number.isInteger(v) ? String(v) : v.toFixed(2));
        return {
          clients: { used: pool.pgbouncer.clients.used, max: pool.pgbouncer.clients.max },
          postgres: { connections: pool.postgres.connections, maxConnections: pool.postgres.maxConnections },
          pools: pool.pgbouncer.pools.map((p: any) => ({ pool: `${p.database}/${p.user}`, clientActive: p.clientActive, clientWaiting: p.clientWaiting, serverActive: p.serverActive, serverIdle: p.serverIdle, serverUsed: p.serverUsed })),
          alerts: alerts.items.map((a: any) => ({ name: a.name, labels: a.labels, severity: a.severity, value: n(a.value), threshold: n(a.threshold), since: a.since })),
        };
      };
      const agreed = await until('the page to show what /pool and /alerts say', async () => {
        const [onPage, fromApi] = [await readPage(), await readApi()];
        return JSON.stringify(onPage) === JSON.stringify(fromApi) ? onPage : undefined;
      }, 15_000, 300, async () => JSON.stringify({ page: await readPage(), api: await readApi() }));
      expect(agreed.value.pools.length).toBeGreaterThanOrEqual(2);
      expect(agreed.value.alerts.map((a) => a.name)).toContain('postgres_connections');
      expect(agreed.value.postgres.connections).toBeGreaterThan(0);
      await shot(page, 'desktop-ok');
    });
  });

  it('stopping Redis, then PgBouncer, turns its card DOWN with its error within one poll; starting it turns it back OK', async () => {
    await inContext(DESKTOP, async (context) => {
      const page = await signedIn(context);
      for (const [id, container] of [['redis', backends.redis], ['pgbouncer', backends.pgbouncer]] as const) {
        expect(await cardState(page, id)).toBe('OK');
        const stop = await run('docker', ['stop', '-t', '10', container.getId()]);
        expect(stop.code, stop.stderr).toBe(0);
        const down = await until(`${id} card DOWN`, async () => (await cardState(page, id)) === 'DOWN', POLL_MS + TIMEOUT_MS + PAGE_REFRESH_MS + 1000, 50);
        const card = page.locator(`.card[data-card="${id}"]`);
        expect(await card.locator('.badge').textContent()).toBe('DOWN');
        expect(await card.locator('[data-figure="detail"]').textContent()).toMatch(/^down: \S/);
        expect(await card.locator('.since').textContent()).toMatch(/^Down since /);
        expect(await page.locator('#overall').textContent()).toBe('DOWN');
        figures[`${id}DownSeenMs`] = down.ms;
        await shot(page, `${id}-down`);
        const start = await run('docker', ['start', container.getId()]);
        expect(start.code, start.stderr).toBe(0);
        // Back once the backend answers again (Redis and PgBouncer start in about a second here).
        const back = await until(`${id} card OK`, async () => (await cardState(page, id)) !== 'DOWN', 20_000, 50);
        figures[`${id}BackSeenMs`] = back.ms;
        console.log(`status page: ${id} DOWN ${down.ms} ms after docker stop returned, back ${back.ms} ms after docker start returned`);
      }
      await until('every card OK', async () => (await page.locator('.card[data-state="DOWN"]').count()) === 0, 20_000);
      await shot(page, 'recovered');
    });
  });

  it('a sidecar that stops answering: the figures turn STALE after twice the poll interval, never shown as live; live again after', async () => {
    await inContext(DESKTOP, async (context) => {
      const page = await signedIn(context);
      const pause = await run('docker', ['pause', sidecar.getId()]);
      expect(pause.code, pause.stderr).toBe(0);
      try {
        const stale = await until('STALE', async () => (await page.locator('#overall').textContent()) === 'STALE', 2 * POLL_MS + 3000, 100);
        figures.staleSeenMs = stale.ms;
        expect(await page.locator('#stale').isVisible()).toBe(true);
        expect(await page.locator('#stale').textContent()).toMatch(/^STALE: these figures are from .* They are not live\.$/);
        expect(await page.locator('.card .badge').first().textContent()).toMatch(/^STALE \(was (OK|WARN|DOWN)\)$/);
        expect(await page.locator('.card[data-stale="0"]').count()).toBe(0);
        await shot(page, 'stale');
      } finally {
        await run('docker', ['unpause', sidecar.getId()]);
      }
      await until('live again', async () => (await page.locator('#overall').textContent()) !== 'STALE', 10_000, 100);
      expect(await page.locator('#stale').isHidden()).toBe(true);
    });
  });

  it('at 375 px no horizontal scroll; light and dark schemes both readable (text contrast >= 4.5)', async () => {
    for (const colorScheme of ['light', 'dark'] as const) {
      for (const width of [375, 1280]) {
        await inContext({ viewport: { width, height: 800 }, colorScheme }, async (context) => {
          const page = await signedIn(context);
          const m = await page.evaluate(() => {
            const rgb = (s: string) => (s.match(/[\d.]+/g) ?? []).map(Number);
            const lum = (c: number[]) => {
              const [r, g, b] = c.slice(0, 3).map((v) => { const x = v / 255; return x <= 0.03928 ? x / 12.92 : ((x + 0.055) / 1.055) ** 2.4; }) as [number, number, number];
              return 0.2126 * r + 0.7152 * g + 0.0722 * b;
            };
            const bgOf = (e: Element | null): number[] => {
              for (let n = e; n; n = n.parentElement) {
                const c = rgb(getComputedStyle(n).backgroundColor);
                if (c.length === 3 || (c.length === 4 && c[3]! > 0)) return c;
              }
              return [255, 255, 255];
            };
            const contrast = (e: Element) => {
              const a = lum(rgb(getComputedStyle(e).color));
              const b = lum(bgOf(e));
              return (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
            };
            const checked = [...document.querySelectorAll('h1, h2, .card h3 span, .card p, .badge, td, .figure-line, .muted, .updated, .range')].filter((e) => (e as HTMLElement).offsetParent !== null && e.textContent?.trim());
            const worst = checked.map((e) => ({ text: e.textContent!.trim().slice(0, 40), ratio: contrast(e) })).sort((x, y) => x.ratio - y.ratio)[0];
            return { scrollWidth: document.documentElement.scrollWidth, innerWidth: window.innerWidth, bg: getComputedStyle(document.body).backgroundColor, checked: checked.length, worst };
          });
          expect(m.scrollWidth, `${colorScheme} ${width}px`).toBeLessThanOrEqual(m.innerWidth);
          expect(m.checked).toBeGreaterThan(20);
          expect(m.worst!.ratio, `${colorScheme} ${width}px: ${JSON.stringify(m.worst)}`).toBeGreaterThanOrEqual(4.5);
          figures[`contrast_${colorScheme}_${width}`] = Math.round(m.worst!.ratio * 100) / 100;
          figures[`background_${colorScheme}`] = m.bg;
          await shot(page, `${width === 375 ? 'phone' : 'desktop'}-${colorScheme}`);
        });
      }
    }
    expect(figures.background_light).not.toBe(figures.background_dark);
  });
});
