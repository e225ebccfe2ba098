import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { configProblems } from '../fixtures/config.js';

/** The problems of an invalid env (an error when it is valid). */
function problems(env: Record<string, string>): string[] {
  const found = configProblems(env);
  if (found.length === 0) throw new Error('expected a ConfigError');
  return found;
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
    expect(both).toEqual(['both SIDECAR_REDIS_PASSWORD and SIDECAR_REDIS_PASSWORD_FILE are set; set only one']);
    expect(problems({ SIDECAR_TOKEN_FILE: join(dir, 'missing') })[0]).toBe(`SIDECAR_TOKEN_FILE: ${join(dir, 'missing')} does not exist`);

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
    expect(c.postgres).toStrictEqual({ host: 'db.internal', port: 6543, user: 'mon@x', database: 'my db', password: 'p@ss:word', tls: undefined });
    expect(c.redis).toMatchObject({ host: 'cache', port: 6380, db: 2, password: 'explicit', tls: true });
  });
});

describe('TLS for the Postgres-protocol URLs: sslmode, sslrootcert, SIDECAR_PG_TLS_CA_FILE', () => {
  const dir = mkdtempSync(join(tmpdir(), 'cfg-tls-'));
  const pem = (name: string) => `-----BEGIN CERTIFICATE-----\nMIIB${name}\n-----END CERTIFICATE-----\n`;
  const shared = join(dir, 'shared-ca.pem');
  const own = join(dir, 'own-ca.pem');
  writeFileSync(shared, pem('shared'));
  writeFileSync(own, pem('own'));
  writeFileSync(join(dir, 'empty.pem'), '\n');
  writeFileSync(join(dir, 'not-pem.txt'), 'hello\n');
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('no sslmode, and sslmode=disable, are plain TCP as before', () => {
    const c = loadConfig({ SIDECAR_PROBE_URL: 'postgres://mon@pgbouncer:6432/poolguard_probe?sslmode=disable' });
    expect(c.pgbouncer.tls).toBeUndefined();
    expect(c.probe.tls).toBeUndefined();
    expect(c.probe.database).toBe('poolguard_probe');
    expect(c.postgres.tls).toBeUndefined();
  });

  it('sslmode=require: TLS with no CA, even when SIDECAR_PG_TLS_CA_FILE is set', () => {
    const c = loadConfig({ SIDECAR_PGBOUNCER_URL: 'postgres://stats@pgbouncer:6432/pgbouncer?sslmode=require', SIDECAR_PG_TLS_CA_FILE: shared });
    expect(c.pgbouncer).toMatchObject({ host: 'pgbouncer', port: 6432, database: 'pgbouncer', tls: { mode: 'require', ca: undefined } });
  });

  it('verify-ca and verify-full take SIDECAR_PG_TLS_CA_FILE; sslrootcert wins for its own URL', () => {
    const c = loadConfig({
      SIDECAR_PGBOUNCER_URL: 'postgres://stats@pgbouncer:6432/pgbouncer?sslmode=verify-full',
      SIDECAR_PROBE_URL: 'postgresql://mon@pgbouncer:6432/poolguard_probe?sslmode=verify-ca',
      SIDECAR_POSTGRES_URL: `postgres://mon@db.internal/app?sslmode=verify-full&sslrootcert=${encodeURIComponent(own)}`,
      SIDECAR_PG_TLS_CA_FILE: shared,
    });
    expect(c.pgbouncer.tls).toEqual({ mode: 'verify-full', ca: pem('shared') });
    expect(c.probe.tls).toEqual({ mode: 'verify-ca', ca: pem('shared') });
    expect(c.postgres).toMatchObject({ host: 'db.internal', port: 5432, database: 'app', tls: { mode: 'verify-full', ca: pem('own') } });
  });

  it('sslrootcert alone is enough (an unencoded path works too); an empty SIDECAR_PG_TLS_CA_FILE means not set', () => {
    const c = loadConfig({ SIDECAR_PGBOUNCER_URL: `postgres://stats@pgbouncer:6432/pgbouncer?sslrootcert=${own}&sslmode=verify-full`, SIDECAR_PG_TLS_CA_FILE: '' });
    expect(c.pgbouncer.tls).toEqual({ mode: 'verify-full', ca: pem('own') });
  });

  it('rejects other sslmode values and other query parameters, naming the variable and the allowed values', () => {
    expect(problems({ SIDECAR_PGBOUNCER_URL: 'postgres://pgbouncer:6432/pgbouncer?sslmode=prefer' })).toEqual([
      'SIDECAR_PGBOUNCER_URL: sslmode "prefer" is not allowed: use one of disable, require, verify-ca, verify-full (got "postgres://pgbouncer:6432/pgbouncer?sslmode=prefer")',
    ]);
    expect(problems({ SIDECAR_PROBE_URL: 'postgres://pgbouncer/p?sslmode=' })[0]).toMatch(/^SIDECAR_PROBE_URL: sslmode "" is not allowed: use one of disable, require, verify-ca, verify-full/);
    expect(problems({ SIDECAR_POSTGRES_URL: 'postgres://db/app?ssl=true' })[0]).toMatch(/^SIDECAR_POSTGRES_URL: unknown query parameter "ssl" \(allowed: sslmode, sslrootcert\)/);
    expect(problems({ SIDECAR_POSTGRES_URL: 'postgres://db/app?sslmode=require&sslmode=disable' })[0]).toMatch(/^SIDECAR_POSTGRES_URL: query parameter sslmode is given more than once/);
    // sslrootcert with require/disable would be silently unchecked (libpq even upgrades require to verify-ca).
    expect(problems({ SIDECAR_POSTGRES_URL: `postgres://db/app?sslmode=require&sslrootcert=${own}` })[0]).toMatch(
      /^SIDECAR_POSTGRES_URL: sslrootcert only applies to sslmode=verify-ca or sslmode=verify-full \(sslmode is require\)/,
    );
    expect(problems({ SIDECAR_POSTGRES_URL: `postgres://db/app?sslrootcert=${own}` })[0]).toMatch(/sslrootcert only applies .* \(sslmode is disable\)/);
  });

  it('verify-ca/verify-full with no CA at all names both ways to give one', () => {
    expect(problems({ SIDECAR_PGBOUNCER_URL: 'postgres://pgbouncer:6432/pgbouncer?sslmode=verify-full', SIDECAR_PROBE_URL: 'postgres://pgbouncer:6432/p?sslmode=verify-ca' })).toEqual([
      'SIDECAR_PGBOUNCER_URL: sslmode=verify-full needs a CA to check the server certificate against: add sslrootcert=/path/to/ca.pem to the URL or set SIDECAR_PG_TLS_CA_FILE',
      'SIDECAR_PROBE_URL: sslmode=verify-ca needs a CA to check the server certificate against: add sslrootcert=/path/to/ca.pem to the URL or set SIDECAR_PG_TLS_CA_FILE',
    ]);
  });

  it('a missing, unreadable, empty or non-PEM CA file is an error naming the path, read even if no URL verifies', () => {
    expect(problems({ SIDECAR_PG_TLS_CA_FILE: join(dir, 'missing.pem') })).toEqual([`SIDECAR_PG_TLS_CA_FILE: cannot read ${join(dir, 'missing.pem')} (ENOENT)`]);
    expect(problems({ SIDECAR_PG_TLS_CA_FILE: dir })).toEqual([`SIDECAR_PG_TLS_CA_FILE: cannot read ${dir} (EISDIR)`]);
    expect(problems({ SIDECAR_PG_TLS_CA_FILE: join(dir, 'empty.pem') })).toEqual([`SIDECAR_PG_TLS_CA_FILE: ${join(dir, 'empty.pem')} is empty`]);
    expect(problems({ SIDECAR_PG_TLS_CA_FILE: join(dir, 'not-pem.txt') })[0]).toMatch(/^SIDECAR_PG_TLS_CA_FILE: .*not-pem\.txt is not a PEM CA bundle/);
    // A bad shared CA file is reported once, not again as "needs a CA" for each URL relying on it.
    expect(problems({ SIDECAR_PG_TLS_CA_FILE: join(dir, 'missing.pem'), SIDECAR_PGBOUNCER_URL: 'postgres://pgbouncer/pgbouncer?sslmode=verify-full' })).toHaveLength(1);
    expect(problems({ SIDECAR_PROBE_URL: `postgres://pgbouncer/p?sslmode=verify-ca&sslrootcert=${join(dir, 'nope.pem')}` })).toEqual([
      `SIDECAR_PROBE_URL: sslrootcert: cannot read ${join(dir, 'nope.pem')} (ENOENT)`,
    ]);
  });

  it('collects TLS problems together with every other bad value, and knows the new variable', () => {
    const p = problems({ SIDECAR_PORT: 'eighty', SIDECAR_PG_TLS_CA_FILE: join(dir, 'missing.pem'), SIDECAR_POSTGRES_URL: 'postgres://db/app?sslmode=allow' });
    expect(p.map((x) => x.split(':')[0]).sort()).toEqual(['SIDECAR_PG_TLS_CA_FILE', 'SIDECAR_PORT', 'SIDECAR_POSTGRES_URL']);
    expect(problems({ SIDECAR_PG_TLS_CA: shared })[0]).toMatch(/^SIDECAR_PG_TLS_CA: unknown variable \(known: .*SIDECAR_PG_TLS_CA_FILE/);
  });

  it('never puts the CA text in an error', () => {
    const p = problems({ SIDECAR_PG_TLS_CA_FILE: shared, SIDECAR_PORT: 'x', SIDECAR_PROBE_URL: 'postgres://p/p?sslmode=verify-ca&x=1' });
    expect(p.join('\n')).not.toContain('MIIB');
  });
});
