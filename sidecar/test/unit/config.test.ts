import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config.js';

function problems(env: Record<string, string>): string[] {
  try {
    loadConfig(env);
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
  throw new Error('expected a ConfigError');
}

describe('loadConfig', () => {
  it('has working defaults for the compose network', () => {
    const c = loadConfig({});
    expect(c.port).toBe(8787);
    expect(c.pollIntervalMs).toBe(5000);
    expect(c.pgbouncer).toMatchObject({ host: 'pgbouncer', port: 6432, user: 'pgbouncer_stats', database: 'pgbouncer' });
    expect(c.probe).toMatchObject({ host: 'pgbouncer', port: 6432, database: 'poolguard_probe' });
    expect(c.postgres).toMatchObject({ host: 'postgres', port: 5432, user: 'poolguard_monitor', database: 'app' });
    expect(c.redis).toMatchObject({ host: 'redis', port: 6379, db: 0, tls: false });
    expect(c.token).toBeUndefined();
  });

  it('reports every bad value at once, naming each variable', () => {
    const p = problems({
      SIDECAR_PORT: 'eighty',
      SIDECAR_POLL_INTERVAL_MS: '',
      SIDECAR_SOURCE_TIMEOUT_MS: '-5',
      SIDECAR_LOG_LEVEL: 'loud',
      SIDECAR_PGBOUNCER_URL: 'not a url',
      SIDECAR_REDIS_URL: 'http://redis:6379',
      SIDECAR_TOKEN: 'short',
    });
    const named = p.map((x) => x.split(':')[0]);
    expect(named).toEqual(
      expect.arrayContaining([
        'SIDECAR_PORT',
        'SIDECAR_POLL_INTERVAL_MS',
        'SIDECAR_SOURCE_TIMEOUT_MS',
        'SIDECAR_LOG_LEVEL',
        'SIDECAR_PGBOUNCER_URL',
        'SIDECAR_REDIS_URL',
        'SIDECAR_TOKEN',
      ]),
    );
    expect(p).toHaveLength(7);
  });

  it('rejects out-of-range numbers and an unknown SIDECAR_ variable', () => {
    expect(problems({ SIDECAR_PORT: '70000' })).toEqual(['SIDECAR_PORT: must be <= 65535 (got "70000")']);
    expect(problems({ SIDECAR_POL_INTERVAL_MS: '1000' })[0]).toMatch(/^SIDECAR_POL_INTERVAL_MS: unknown variable/);
    expect(problems({ SIDECAR_POLL_INTERVAL_MS: '1000', SIDECAR_SOURCE_TIMEOUT_MS: '1000' })[0]).toMatch(/SIDECAR_SOURCE_TIMEOUT_MS: must be below/);
  });

  it('SIDECAR_ALERT_RULES: a JSON object of per-rule overrides, validated', () => {
    const c = loadConfig({ SIDECAR_ALERT_RULES: '{"postgres_idle_in_transaction":{"warning":2},"redis_memory":{"enabled":false,"critical":null}}' });
    expect(c.alerts.overrides).toEqual({ postgres_idle_in_transaction: { warning: 2 }, redis_memory: { enabled: false, critical: null } });
    expect(loadConfig({}).alerts).toMatchObject({ forMs: 15000, resolveForMs: 15000, hysteresis: 0.05, overrides: {}, webhook: undefined });
    expect(problems({ SIDECAR_ALERT_RULES: '{not json' })[0]).toMatch(/^SIDECAR_ALERT_RULES: must be a JSON object/);
    expect(problems({ SIDECAR_ALERT_RULES: '{"no_such_rule":{}}' })[0]).toMatch(/^SIDECAR_ALERT_RULES/);
    expect(problems({ SIDECAR_ALERT_RULES: '{"redis_memory":{"warning":-1}}' })[0]).toMatch(/^SIDECAR_ALERT_RULES/);
    expect(problems({ SIDECAR_ALERT_HYSTERESIS: '0.9' })[0]).toMatch(/^SIDECAR_ALERT_HYSTERESIS: must be <= 0.5/);
    expect(problems({ SIDECAR_ALERT_WEBHOOK_URL: 'ftp://x' })[0]).toBe('SIDECAR_ALERT_WEBHOOK_URL: must be a URL starting with http:// or https:// and naming a host');
  });

  it('reads _FILE secrets, refuses both forms, never echoes a secret', () => {
    const dir = mkdtempSync(join(tmpdir(), 'cfg-'));
    writeFileSync(join(dir, 'pw'), 'p@ss:w/o%rd#?&"\'\n');
    const c = loadConfig({ SIDECAR_PGBOUNCER_PASSWORD_FILE: join(dir, 'pw') });
    expect(c.pgbouncer.password).toBe('p@ss:w/o%rd#?&"\'');

    const both = problems({ SIDECAR_REDIS_PASSWORD: 'x', SIDECAR_REDIS_PASSWORD_FILE: join(dir, 'pw') });
    expect(both).toEqual(['SIDECAR_REDIS_PASSWORD: both SIDECAR_REDIS_PASSWORD and SIDECAR_REDIS_PASSWORD_FILE are set; set only one']);
    expect(problems({ SIDECAR_TOKEN_FILE: join(dir, 'missing') })[0]).toMatch(/^SIDECAR_TOKEN_FILE: cannot read .*ENOENT/);

    // Optional secrets: empty means not set (how compose passes an unset variable).
    expect(loadConfig({ SIDECAR_TOKEN: '', SIDECAR_ALERT_WEBHOOK_URL: '' })).toMatchObject({ token: undefined, alerts: { webhook: undefined } });

    const secret = 'tiny-secret';
    const p = problems({ SIDECAR_TOKEN: secret });
    expect(p.join('\n')).not.toContain(secret);
  });

  it('decodes percent-encoded URL parts; a separate password wins over the URL one', () => {
    const c = loadConfig({
      SIDECAR_POSTGRES_URL: 'postgresql://mon%40x:p%40ss%3Aword@db.internal:6543/my%20db',
      SIDECAR_REDIS_URL: 'rediss://:url-pass@cache:6380/2',
      SIDECAR_REDIS_PASSWORD: 'explicit',
    });
    expect(c.postgres).toEqual({ host: 'db.internal', port: 6543, user: 'mon@x', database: 'my db', password: 'p@ss:word' });
    expect(c.redis).toMatchObject({ host: 'cache', port: 6380, db: 2, password: 'explicit', tls: true });
  });
});
