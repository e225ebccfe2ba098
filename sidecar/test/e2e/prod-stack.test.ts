// The prod compose file, end to end: generated secrets, hardening in effect on the running
// containers, nothing published but the sidecar, no secret in any container's environment.
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT, Stack, run, type DockerInspect } from './stack.js';

const SIDECAR_PORT = 28788;
let stack: Stack;
let secrets: Record<string, string> = {};
const inspected: Record<string, DockerInspect> = {};

beforeAll(async () => {
  const probe = new Stack('prod', 'poolguard-test-prod', {});
  const secretsDir = join(probe.dir, 'secrets');
  stack = new Stack('prod', 'poolguard-test-prod', { SIDECAR_PUBLISH_PORT: String(SIDECAR_PORT) }, { POOLGUARD_SECRETS_DIR: secretsDir });
  const gen = await run(join(ROOT, 'scripts/gen-secrets.sh'), [secretsDir]);
  expect(gen.code, gen.stderr).toBe(0);
  for (const f of readdirSync(secretsDir)) secrets[f] = readFileSync(join(secretsDir, f), 'utf8');
  await stack.compose(['down', '-v', '--remove-orphans']);
  const t0 = Date.now();
  await stack.up();
  console.log(`prod stack up --wait (images built): ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  for (const { service, id } of await stack.containers()) inspected[service] = await stack.inspect(id);
});

afterAll(async () => {
  await stack?.down(true);
});

describe('prod stack', () => {
  it('gen-secrets made every secret strong and refuses to overwrite without --force', async () => {
    expect(Object.keys(secrets).sort()).toEqual([
      'app_password', 'monitor_password', 'pgbouncer_admin_password', 'pgbouncer_auth_password',
      'pgbouncer_stats_password', 'postgres_password', 'redis_password', 'sidecar_token',
    ]);
    for (const v of Object.values(secrets)) expect(v).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(new Set(Object.values(secrets)).size).toBe(8);
    const dir = stack.extraEnv.POOLGUARD_SECRETS_DIR!;
    const again = await run(join(ROOT, 'scripts/gen-secrets.sh'), [dir]);
    expect(again.stderr).toMatch(/0 created, 8 kept/);
    expect(readFileSync(join(dir, 'app_password'), 'utf8')).toBe(secrets.app_password);
  });

  it('every long-running service is healthy; the sidecar answers 200', async () => {
    for (const s of ['postgres', 'pgbouncer', 'redis', 'sidecar']) expect(inspected[s]?.State.Health?.Status, s).toBe('healthy');
    expect(inspected.migrate?.State.ExitCode).toBe(0);
    const res = await fetch(`http://127.0.0.1:${SIDECAR_PORT}/health`);
    const body = (await res.json()) as { healthy: boolean };
    expect(res.status).toBe(200);
    expect(body.healthy).toBe(true);
  });

  it('publishes no port but the sidecar, on 127.0.0.1', async () => {
    for (const [service, info] of Object.entries(inspected)) {
      const bindings = Object.entries(info.NetworkSettings.Ports ?? {}).filter(([, b]) => b && b.length > 0);
      if (service === 'sidecar') {
        expect(bindings.map(([p, b]) => `${p} ${b![0]!.HostIp}:${b![0]!.HostPort}`)).toEqual([`8787/tcp 127.0.0.1:${SIDECAR_PORT}`]);
      } else {
        expect(bindings, service).toEqual([]);
      }
    }
    for (const s of ['postgres', 'pgbouncer', 'redis']) {
      const r = await stack.compose(['port', s, s === 'postgres' ? '5432' : s === 'pgbouncer' ? '6432' : '6379']);
      expect(r.stdout.trim(), s).toMatch(/^(:0)?$/);
    }
  });

  it('every container runs as a non-root user', async () => {
    for (const service of ['postgres', 'pgbouncer', 'redis', 'sidecar']) {
      const r = await stack.exec(service, ['id', '-u']);
      expect(r.code, service).toBe(0);
      expect(Number(r.stdout.trim()), service).toBeGreaterThan(0);
      expect(inspected[service]!.Config.User, service).not.toMatch(/^(root|0)?$/);
    }
    expect(inspected.migrate!.Config.User).toBe('poolguard');
  });

  it('read-only root, no capabilities, no-new-privileges, restart policy, limits', async () => {
    for (const [service, info] of Object.entries(inspected)) {
      expect(info.HostConfig.ReadonlyRootfs, service).toBe(true);
      expect(info.HostConfig.CapDrop, service).toEqual(['ALL']);
      expect(info.HostConfig.CapAdd ?? [], service).toEqual([]);
      expect(info.HostConfig.SecurityOpt, service).toContain('no-new-privileges:true');
      expect(info.HostConfig.Memory, service).toBeGreaterThan(0);
      expect(info.HostConfig.NanoCpus, service).toBeGreaterThan(0);
      expect(info.HostConfig.RestartPolicy.Name, service).toBe(service === 'migrate' ? 'no' : 'unless-stopped');
    }
  });

  it('no secret value appears in any container environment or log', async () => {
    const values = Object.values(secrets);
    for (const [service, info] of Object.entries(inspected)) {
      const env = info.Config.Env.join('\n');
      for (const v of values) expect(env.includes(v), `${service} env`).toBe(false);
      expect(env, service).not.toMatch(/PASSWORD=|TOKEN=/);
    }
    const logs = await stack.mustCompose(['logs', '--no-color']);
    for (const v of values) expect(logs.includes(v)).toBe(false);
  });
});
