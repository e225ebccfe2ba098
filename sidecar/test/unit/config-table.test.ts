// Every SIDECAR_ variable with a wrong type, an out-of-range value, an empty value and (for
// URLs) a malformed URL: loadConfig names that variable; the real process exits 1 with the
// name in its message and never listens.
import { execFileSync, spawnSync } from 'node:child_process';
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config.js';

const DIR = fileURLToPath(new URL('../..', import.meta.url));

const BAD: Record<string, string[]> = {
  SIDECAR_HOST: [''],
  SIDECAR_PORT: ['http', '0', '65536', '', '80.5'],
  SIDECAR_LOG_LEVEL: ['verbose', ''],
  SIDECAR_POLL_INTERVAL_MS: ['5s', '99', '3600001', ''],
  SIDECAR_DOWN_POLL_INTERVAL_MS: ['fast', '0', ''],
  SIDECAR_SOURCE_TIMEOUT_MS: ['2s', '10', '60001', ''],
  SIDECAR_RECONNECT_MAX_MS: ['x', '1', ''],
  SIDECAR_SUMMARY_INTERVAL_MS: ['-1', 'hourly', ''],
  SIDECAR_SHUTDOWN_GRACE_MS: ['ten', '5', ''],
  SIDECAR_PGBOUNCER_URL: ['pgbouncer:6432', 'mysql://h/db', 'postgres://', '', 'postgres://u@[bad/db', 'postgres://h/db?sslmode=prefer', 'postgres://h/db?sslmode=verify-full'],
  SIDECAR_PROBE_URL: ['nohost', 'http://h/db', '', 'postgres://h/db?ssl=true', 'postgres://h/db?sslmode=verify-ca&sslrootcert=/nonexistent/ca.pem'],
  SIDECAR_POSTGRES_URL: ['postgres//h/db', '', 'postgres://h/db?sslmode=REQUIRE', 'postgres://h/db?sslmode=require&sslrootcert=/etc/hostname'],
  SIDECAR_POSTGRES_REPLICA_URLS: ['mysql://h/db', 'postgres://r1/db,,postgres://r2/db', 'postgres://r/db?sslmode=verify-full', 'postgres://postgres:5433/app', 'postgres://r/db,postgres://r/db'],
  SIDECAR_PROFILES: ['-replica', 'replica,a b'],
  SIDECAR_READ_DATABASE: ['', 'app ro'],
  SIDECAR_PG_TLS_CA_FILE: ['/nonexistent/ca.pem', '/etc/hostname', '/'],
  SIDECAR_REDIS_URL: ['redis//h', 'postgres://h/0', ''],
  SIDECAR_TOKEN: ['too-short', 'x'.repeat(513)],
  SIDECAR_PGDATA_PATH: ['pgdata', './var/lib/postgresql/data'],
  SIDECAR_HTTP_MAX_CONNECTIONS_PER_ADDRESS: ['many', '0', '10001', ''],
  SIDECAR_HTTP_NEW_CONNECTIONS_PER_SECOND: ['fast', '0', ''],
  SIDECAR_ALERT_FOR_MS: ['soon', '-5', ''],
  SIDECAR_ALERT_RESOLVE_FOR_MS: ['later', ''],
  SIDECAR_ALERT_HYSTERESIS: ['five', '0.6', '-0.1', ''],
  SIDECAR_ALERT_RULES: ['{', '[]', '{"nope":{}}', '{"redis_memory":{"warning":"high"}}', ''],
  SIDECAR_ALERT_WEBHOOK_URL: ['hooks.example', 'ftp://x/y'],
  SIDECAR_ALERT_WEBHOOK_TIMEOUT_MS: ['1s', '1', ''],
  SIDECAR_ALERT_WEBHOOK_RETRIES: ['three', '11', ''],
};

const cases = Object.entries(BAD).flatMap(([name, values]) => values.map((value) => ({ name, value })));

describe('every variable, every kind of bad value', () => {
  it.each(cases)('$name=$value is named in the error', ({ name, value }) => {
    let problems: string[] = [];
    try {
      loadConfig({ [name]: value });
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      problems = err.problems;
    }
    expect(problems.some((p) => p.startsWith(`${name}:`)), problems.join('; ')).toBe(true);
  });
});

describe('the process refuses to start', () => {
  beforeAll(() => {
    execFileSync('npx', ['tsc', '-p', 'tsconfig.build.json'], { cwd: DIR, stdio: 'pipe' });
  }, 60_000);

  it('exits 1 naming the variable and never listens, for one bad value of each variable', async () => {
    const probe = createServer();
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', () => r()));
    const port = (probe.address() as AddressInfo).port;
    await new Promise<void>((r) => probe.close(() => r()));
    for (const [name, values] of Object.entries(BAD)) {
      const env = { PATH: process.env.PATH ?? '', SIDECAR_HOST: '127.0.0.1', SIDECAR_PORT: String(port), [name]: values[0]! };
      const r = spawnSync(process.execPath, ['dist/main.js'], { cwd: DIR, env, encoding: 'utf8', timeout: 10_000 });
      expect(r.status, `${name}: ${r.stderr}`).toBe(1);
      expect(r.stderr, name).toContain(`${name}:`);
      expect(r.stdout, name).not.toMatch(/Server listening/);
    }
  }, 120_000);
});
