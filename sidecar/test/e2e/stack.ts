// Drives the project's real compose files under a test project name and test host ports.
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';

export const ROOT = fileURLToPath(new URL('../../../', import.meta.url)).replace(/\/$/, '');
const COMPOSE = join(ROOT, 'scripts/compose.sh');

/**
 * The tag the tests build and run (scripts/test.sh exports it): neither dev's (0.1.0-dev) nor
 * prod's (0.1.0), so a test run never replaces the images a user's stack runs.
 */
export const IMAGE_TAG = process.env.POOLGUARD_IMAGE_TAG ?? '0.1.0-test';
export const image = (name: 'postgres' | 'pgbouncer' | 'redis' | 'migrate' | 'sidecar') => `poolguard/${name}:${IMAGE_TAG}`;

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

export function run(cmd: string, args: string[], opts: { env?: NodeJS.ProcessEnv; timeoutMs?: number; input?: string; cwd?: string } = {}): Promise<RunResult> {
  return new Promise((resolvePromise) => {
    const child = execFile(
      cmd,
      args,
      { cwd: opts.cwd ?? ROOT, env: { ...process.env, ...opts.env }, maxBuffer: 64 * 1024 * 1024, timeout: opts.timeoutMs ?? 300_000 },
      (err, stdout, stderr) => {
        const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1) : 0;
        resolvePromise({ code, stdout: String(stdout), stderr: String(stderr) });
      },
    );
    if (opts.input !== undefined) child.stdin?.end(opts.input);
    else child.stdin?.end();
  });
}

/** Parses a compose .env file (KEY=value lines) into an object. */
export function readEnvFile(path: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of readFileSync(path, 'utf8').split('\n')) {
    const m = /^([A-Z_][A-Z0-9_]*)=(.*)$/.exec(line);
    if (m?.[1]) out[m[1]] = m[2] ?? '';
  }
  return out;
}

export interface HostPorts {
  postgres: number;
  pgbouncer: number;
  redis: number;
  sidecar: number;
}

/** The dev file's PUBLISH_* variables for a test stack's own host ports. */
export function publish(ports: HostPorts): Record<string, string> {
  return {
    PUBLISH_POSTGRES_PORT: String(ports.postgres),
    PUBLISH_PGBOUNCER_PORT: String(ports.pgbouncer),
    PUBLISH_REDIS_PORT: String(ports.redis),
    PUBLISH_SIDECAR_PORT: String(ports.sidecar),
  };
}

export class Stack {
  readonly envFile: string;
  readonly dir: string;

  constructor(
    readonly kind: 'dev' | 'prod',
    readonly project: string,
    readonly env: Record<string, string>,
    readonly extraEnv: Record<string, string> = {},
  ) {
    this.dir = mkdtempSync(join(tmpdir(), `${project}-`));
    this.envFile = join(this.dir, 'env');
    this.writeEnv(env);
  }

  /** (Re)writes the stack's env file; the project name and image tag are always the test's. */
  writeEnv(env: Record<string, string>): void {
    const all = { ...env, POOLGUARD_PROJECT: this.project, POOLGUARD_IMAGE_TAG: IMAGE_TAG };
    writeFileSync(this.envFile, Object.entries(all).map(([k, v]) => `${k}=${v}`).join('\n') + '\n');
  }

  /** A dev stack configured from .env.example with the given overrides. */
  static dev(project: string, overrides: Record<string, string> = {}): Stack {
    return new Stack('dev', project, { ...readEnvFile(join(ROOT, '.env.example')), ...overrides });
  }

  /** A prod stack configured from prod.env with the given overrides, its secrets in secretsDir. */
  static prod(project: string, overrides: Record<string, string> = {}, secretsDir?: string): Stack {
    return new Stack('prod', project, { ...readEnvFile(join(ROOT, 'prod.env')), ...overrides }, secretsDir ? { POOLGUARD_SECRETS_DIR: secretsDir } : {});
  }

  get file(): string {
    return join(ROOT, `docker-compose.${this.kind}.yml`);
  }

  compose(args: string[], timeoutMs?: number): Promise<RunResult> {
    return run(COMPOSE, ['-p', this.project, '-f', this.file, '--env-file', this.envFile, ...args], { env: this.extraEnv, timeoutMs });
  }

  async mustCompose(args: string[], timeoutMs?: number): Promise<string> {
    const r = await this.compose(args, timeoutMs);
    if (r.code !== 0) throw new Error(`compose ${args.join(' ')} failed (${r.code}):\n${r.stdout}\n${r.stderr}`);
    return r.stdout;
  }

  async up(): Promise<string> {
    let r = await this.compose(['up', '-d', '--wait'], 300_000);
    if (r.code !== 0 && /address already in use/.test(r.stderr)) {
      // Docker 20.10's userland proxy of a container just removed can hold its host port for a
      // moment: say who holds it, wait, try once more.
      const who = await run('ss', ['-ltnp']);
      console.warn(`${this.project}: a host port was still taken; retrying in 5 s.\n${r.stderr.split('\n').filter((l) => /address already in use/.test(l)).join('\n')}\n${who.stdout}`);
      await sleep(5000);
      r = await this.compose(['up', '-d', '--wait'], 300_000);
    }
    if (r.code === 0) return r.stdout;
    const logs = await this.compose(['logs', '--no-color', '--tail', '20']);
    throw new Error(`compose up -d --wait failed (${r.code}):\n${r.stderr}\n--- last log lines ---\n${logs.stdout}`);
  }

  down(volumes = true): Promise<string> {
    return this.mustCompose(['down', '--remove-orphans', ...(volumes ? ['-v'] : [])]);
  }

  /** Container ids of the project's services (all states). */
  async containers(): Promise<{ service: string; id: string }[]> {
    const out = await this.mustCompose(['ps', '-a', '--format', '{{.Service}} {{.ID}}']);
    return out
      .trim()
      .split('\n')
      .filter(Boolean)
      .map((l) => {
        const [service = '', id = ''] = l.split(' ');
        return { service, id };
      });
  }

  async inspect(id: string): Promise<DockerInspect> {
    const r = await run('docker', ['inspect', id]);
    if (r.code !== 0) throw new Error(r.stderr);
    return (JSON.parse(r.stdout) as DockerInspect[])[0]!;
  }

  async exec(service: string, cmd: string[]): Promise<RunResult> {
    return this.compose(['exec', '-T', service, ...cmd]);
  }
}

export interface DockerInspect {
  Id: string;
  Name: string;
  Config: { User: string; Env: string[]; Labels: Record<string, string> };
  State: { Status: string; ExitCode: number; Pid: number; OOMKilled: boolean; Health?: { Status: string } };
  RestartCount?: number;
  HostConfig: {
    ReadonlyRootfs: boolean;
    CapDrop: string[] | null;
    CapAdd: string[] | null;
    SecurityOpt: string[] | null;
    PortBindings: Record<string, { HostIp: string; HostPort: string }[] | null> | null;
    RestartPolicy: { Name: string };
    Memory: number;
    NanoCpus: number;
  };
  NetworkSettings: { Ports: Record<string, { HostIp: string; HostPort: string }[] | null> };
}

export async function pgClient(cfg: pg.ClientConfig): Promise<pg.Client> {
  const c = new pg.Client({ host: '127.0.0.1', connectionTimeoutMillis: 10_000, ...cfg });
  c.on('error', () => undefined);
  await c.connect();
  return c;
}

export async function pgConnectError(cfg: pg.ClientConfig): Promise<Error | undefined> {
  const c = new pg.Client({ host: '127.0.0.1', connectionTimeoutMillis: 10_000, ...cfg });
  c.on('error', () => undefined);
  try {
    await c.connect();
    await c.end();
    return undefined;
  } catch (err) {
    return err as Error;
  }
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Polls fn every stepMs until it returns a value; returns it with the ms it took. On timeout
 * the error carries what was awaited and, when given, context() (e.g. the sidecar's /health).
 */
export async function until<T>(
  what: string,
  fn: () => Promise<T | undefined | false>,
  timeoutMs: number,
  stepMs = 100,
  context?: () => Promise<string>,
): Promise<{ value: T; ms: number }> {
  const t0 = Date.now();
  for (;;) {
    const v = await fn();
    if (v) return { value: v, ms: Date.now() - t0 };
    if (Date.now() - t0 > timeoutMs) {
      const extra = context ? ` (${await context().catch((e: Error) => e.message)})` : '';
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${extra}`);
    }
    await sleep(stepMs);
  }
}

/** GET /health of a sidecar on a host port; undefined when it does not answer. */
export async function health(port: number): Promise<{ status: number; body: any } | undefined> {
  try {
    const res = await fetch(`http://127.0.0.1:${port}/health`, { signal: AbortSignal.timeout(2000) });
    return { status: res.status, body: await res.json() };
  } catch {
    return undefined;
  }
}
