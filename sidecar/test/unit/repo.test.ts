// Repository contracts: `make help` lists every target; .env.example and prod.env hold every
// variable their compose file reads (derived from the compose files themselves), with a comment
// above each; every PgBouncer setting of the template reaches the container; dev and prod
// never share a host port or an image tag; .env is created with random passwords and a project
// name of the checkout's own; make urls encodes passwords.
import { execFileSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';

const ROOT = fileURLToPath(new URL('../../..', import.meta.url));

describe('repository contracts', () => {
  it('make help lists every phony target', () => {
    const makefile = readFileSync(`${ROOT}/Makefile`, 'utf8');
    const phony = /\.PHONY:([\s\S]*?)\n\n/.exec(makefile)![1]!.replace(/\\\n/g, ' ').split(/\s+/).filter(Boolean);
    const help = execFileSync('make', ['-s', '-C', ROOT, 'help'], { encoding: 'utf8' }).replace(/\x1b\[[0-9;]*m/g, '');
    const listed = help.split('\n').map((l) => l.trim().split(/\s+/)[0]).filter(Boolean);
    expect(phony.length).toBeGreaterThan(15);
    expect(phony.filter((t) => !listed.includes(t))).toEqual([]);
  });

  it('.env.example: a comment above every variable, and every SIDECAR_ variable of the schema', () => {
    const lines = readFileSync(`${ROOT}/.env.example`, 'utf8').split('\n');
    const vars: string[] = [];
    lines.forEach((line, i) => {
      const m = /^([A-Z_][A-Z0-9_]*)=/.exec(line);
      if (!m) return;
      vars.push(m[1]!);
      expect(lines[i - 1], `comment above ${m[1]}`).toMatch(/^# \S/);
    });
    // Every SIDECAR_ variable the schema accepts, minus the _FILE forms and compose-internal URLs.
    let unknown: string[] = [];
    try {
      loadConfig({ SIDECAR_NOT_A_VARIABLE: 'x' });
    } catch (err) {
      unknown = String((err as Error).message).match(/known: ([^)]*)/)![1]!.split(', ');
    }
    // The ones compose derives from other values are listed in a comment block.
    const text = lines.join('\n');
    expect(unknown.length).toBeGreaterThan(15);
    expect(unknown.filter((v) => !vars.includes(v) && !new RegExp(`^#.*\\b${v}\\b`, 'm').test(text))).toEqual([]);
  });
});

const read = (f: string) => readFileSync(join(ROOT, f), 'utf8');
/** The variables a compose file reads: ${NAME...} (not $${...}, which the container expands) and bare NAME: keys. */
function composeReads(file: string): string[] {
  const text = read(file);
  const names = new Set<string>();
  for (const m of text.matchAll(/(^|[^$])\$\{([A-Z_][A-Z0-9_]*)/gm)) names.add(m[2]!);
  for (const m of text.matchAll(/^ +([A-Z_][A-Z0-9_]*):$/gm)) names.add(m[1]!);
  names.delete('COMPOSE_PROJECT_NAME'); // compose sets it
  return [...names].sort();
}
/** NAME= lines and "# NAME=" comment lines of an env file. */
const envMentions = (file: string) => new Set([...read(file).matchAll(/^(?:# )?([A-Z_][A-Z0-9_]*)=/gm)].map((m) => m[1]!));
const templateKeys = () => {
  const ini = read('pgbouncer/pgbouncer.ini');
  const section = ini.slice(ini.indexOf('[pgbouncer]'));
  const keys = [...section.matchAll(/^([a-z_]+) = /gm)].map((m) => m[1]!);
  const managed = /^; poolguard-managed: (.*)$/m.exec(ini)![1]!.split(' ');
  return { keys, managed };
};

describe('env files hold what the compose files read', () => {
  for (const [compose, envFile] of [['docker-compose.dev.yml', '.env.example'], ['docker-compose.prod.yml', 'prod.env']] as const) {
    it(`${envFile} names every variable ${compose} reads, each with a comment above it`, () => {
      const reads = composeReads(compose);
      expect(reads.length).toBeGreaterThan(30);
      const mentioned = envMentions(envFile);
      expect(reads.filter((v) => !mentioned.has(v))).toEqual([]);
      const lines = read(envFile).split('\n');
      lines.forEach((line, i) => {
        const m = /^([A-Z_][A-Z0-9_]*)=/.exec(line);
        if (m) expect(lines[i - 1], `comment above ${m[1]} in ${envFile}`).toMatch(/^# \S/);
      });
      // Nothing the file does not read (a stale or misspelt name would be ignored by compose).
      const set = [...read(envFile).matchAll(/^([A-Z_][A-Z0-9_]*)=/gm)].map((m) => m[1]!);
      expect(set.filter((v) => !reads.includes(v))).toEqual([]);
    });
  }

  it('both compose files pass every PgBouncer setting of the template but the managed ones, and only those', () => {
    const { keys, managed } = templateKeys();
    expect(managed).toContain('auth_file');
    const expected = keys.filter((k) => !managed.includes(k)).map((k) => `PGBOUNCER_${k.toUpperCase()}`).sort();
    expect(expected).toContain('PGBOUNCER_IGNORE_STARTUP_PARAMETERS');
    for (const compose of ['docker-compose.dev.yml', 'docker-compose.prod.yml']) {
      const text = read(compose);
      const service = text.slice(text.indexOf('\n  pgbouncer:'), text.indexOf('\n  redis:'));
      const bare = [...service.matchAll(/^ +(PGBOUNCER_[A-Z_]+):$/gm)].map((m) => m[1]!).sort();
      expect(bare, compose).toEqual(expected);
    }
  });

  it('dev and prod publish the sidecar under one variable name with different default ports, and build different image tags', () => {
    const port = (f: string) => /\$\{PUBLISH_SIDECAR_PORT:-(\d+)\}:8787/.exec(read(f))?.[1];
    expect(port('docker-compose.dev.yml')).toBe('8787');
    expect(port('docker-compose.prod.yml')).toBe('8788');
    for (const f of ['docker-compose.dev.yml', 'docker-compose.prod.yml']) expect(read(f)).not.toMatch(/SIDECAR_PUBLISH_PORT|SIDECAR_BIND_ADDR/);
    const tags = (f: string) => new Set([...read(f).matchAll(/image: poolguard\/\w+:\$\{POOLGUARD_IMAGE_TAG:-([^}]+)\}/g)].map((m) => m[1]));
    expect([...tags('docker-compose.dev.yml')]).toEqual(['0.1.0-dev']);
    expect([...tags('docker-compose.prod.yml')]).toEqual(['0.1.0']);
    // postgres-replica (profile replica) runs the postgres image in both files; prometheus and
    // alertmanager are the monitoring profile's.
    expect(read('docker-compose.dev.yml').match(/image: /g)?.length).toBe(9);
    // prod's "pgbackrest" service runs the postgres image too (the database side of pgBackRest).
    expect(read('docker-compose.prod.yml').match(/image: /g)?.length).toBe(10);
  });

  it('every volume is named after the project explicitly (data survives a key rename; prod keeps poolguard-prod_*)', () => {
    for (const f of ['docker-compose.dev.yml', 'docker-compose.prod.yml']) {
      const vols = read(f).split('\nvolumes:\n')[1]!.split(/\n[a-z]/)[0]!;
      const keys = [...vols.matchAll(/^  ([a-z_]+):$/gm)].map((m) => m[1]!);
      expect(keys).toEqual(['pgdata', 'pgdata_replica', 'pgsocket', 'redisdata', 'pgbackrest', 'pgbackrest_spool', 'backupstatus', 'prometheus_data', 'alertmanager_data']);
      for (const k of keys) expect(vols, `${f} ${k}`).toContain(`name: \${COMPOSE_PROJECT_NAME}_${k}`);
    }
    expect(read('docker-compose.prod.yml')).toMatch(/^name: \$\{POOLGUARD_PROJECT:-poolguard-prod\}$/m);
  });
});

describe('scripts', () => {
  /** A copy of the checkout's env scripts under DIR/poolguard: a checkout of its own. */
  function checkout(parent: string): string {
    const dir = join(parent, 'poolguard');
    mkdirSync(join(dir, 'scripts'), { recursive: true });
    for (const f of ['scripts/ensure-env.sh', 'scripts/lib.sh', 'scripts/urls.sh', '.env.example', 'pgbouncer/pgbouncer.ini']) cpSync(join(ROOT, f), join(dir, f));
    return dir;
  }
  const envOf = (file: string) => Object.fromEntries([...readFileSync(file, 'utf8').matchAll(/^([A-Z_][A-Z0-9_]*)=(.*)$/gm)].map((m) => [m[1]!, m[2]!]));

  it('make env: random passwords, and two checkouts of the same folder name get different project names', () => {
    const a = checkout(mkdtempSync(join(tmpdir(), 'pg-a-')));
    const b = checkout(mkdtempSync(join(tmpdir(), 'pg-b-')));
    for (const d of [a, b]) execFileSync('bash', [join(d, 'scripts/ensure-env.sh')], { stdio: 'pipe' });
    const ea = envOf(join(a, '.env'));
    const eb = envOf(join(b, '.env'));
    expect(ea.POOLGUARD_PROJECT).toMatch(/^poolguard-poolguard-[0-9a-f]{6}$/);
    expect(eb.POOLGUARD_PROJECT).toMatch(/^poolguard-poolguard-[0-9a-f]{6}$/);
    expect(ea.POOLGUARD_PROJECT).not.toBe(eb.POOLGUARD_PROJECT);
    const pw = Object.keys(ea).filter((k) => k.endsWith('_PASSWORD'));
    expect(pw.length).toBe(9);
    for (const k of pw) {
      expect(ea[k], k).toMatch(/^[A-Za-z0-9_-]{32}$/);
      expect(ea[k]).not.toBe(eb[k]);
    }
    expect(readFileSync(join(a, '.env'), 'utf8')).not.toMatch(/not-secret/);
    // A second run keeps the file as it is.
    const before = readFileSync(join(a, '.env'), 'utf8');
    execFileSync('bash', [join(a, 'scripts/ensure-env.sh')], { stdio: 'pipe' });
    expect(readFileSync(join(a, '.env'), 'utf8')).toBe(before);
    // A .env from before the replica (no REPLICATION_PASSWORD, APP_READ_PASSWORD, and no final
    // newline) gets those two appended with random values, and nothing else changes.
    const old = before.split('\n').filter((l) => !/^(REPLICATION|APP_READ)_PASSWORD=/.test(l)).join('\n').replace(/\n+$/, '');
    writeFileSync(join(a, '.env'), old);
    execFileSync('bash', [join(a, 'scripts/ensure-env.sh')], { stdio: 'pipe' });
    const after = readFileSync(join(a, '.env'), 'utf8');
    expect(after.startsWith(old + '\n')).toBe(true);
    const added = envOf(join(a, '.env'));
    expect(added.REPLICATION_PASSWORD).toMatch(/^[A-Za-z0-9_-]{32}$/);
    expect(added.APP_READ_PASSWORD).toMatch(/^[A-Za-z0-9_-]{32}$/);
    expect(added.APP_PASSWORD).toBe(ea.APP_PASSWORD);
  });

  it('make urls: derived from .env, passwords percent-encoded so they parse back exactly', () => {
    const d = checkout(mkdtempSync(join(tmpdir(), 'pg-u-')));
    const pw = `p@ss:w/rd%25#?&"dq'sq é`;
    writeFileSync(join(d, '.env'), `APP_USER=app\nAPP_DB=app\nAPP_PASSWORD=${pw}\nAPP_READ_PASSWORD=ro:${pw}\nREDIS_PASSWORD=r:${pw}\nPUBLISH_PGBOUNCER_PORT=16432\n`);
    const out = execFileSync('bash', [join(d, 'scripts/urls.sh'), join(d, '.env')], { encoding: 'utf8' });
    const urls = Object.fromEntries(out.trim().split('\n').map((l) => [l.slice(0, l.indexOf('=')), new URL(l.slice(l.indexOf('=') + 1))]));
    expect(Object.keys(urls)).toEqual(['DATABASE_URL', 'DATABASE_URL_READ', 'DATABASE_URL_DIRECT', 'REDIS_URL']);
    expect(urls.DATABASE_URL_READ!.username).toBe('app_reader');
    expect(decodeURIComponent(urls.DATABASE_URL_READ!.password)).toBe(`ro:${pw}`);
    expect(urls.DATABASE_URL_READ!.pathname).toBe('/app_ro');
    expect(urls.DATABASE_URL_READ!.port).toBe('16432');
    expect(decodeURIComponent(urls.DATABASE_URL!.password)).toBe(pw);
    expect(urls.DATABASE_URL!.port).toBe('16432');
    expect(urls.DATABASE_URL_DIRECT!.port).toBe('5432');
    expect(decodeURIComponent(urls.REDIS_URL!.password)).toBe(`r:${pw}`);
  });
});
