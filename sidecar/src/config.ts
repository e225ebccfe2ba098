// One schema for every SIDECAR_* variable, validated once. Every bad value is reported in a
// single ConfigError; main.ts prints it and exits 1 before listening.
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { RULE_NAMES } from './alerts/names.js';
import { MAX_HISTORY_POINTS } from './history.js';
import { readSecret } from './secrets.js';
import type { Config, PgTarget, PgTls, PlanSettings, RedisTarget } from './types.js';

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

const wholeNumber = (min: number, max: number) =>
  z
    .string()
    .regex(/^\d+$/, 'must be a whole number')
    .transform(Number)
    .pipe(z.number().min(min, `must be >= ${min}`).max(max, `must be <= ${max}`));

const urlWith = (protocols: string[]) =>
  z.string().refine(
    (value) => {
      try {
        const u = new URL(value);
        return protocols.includes(u.protocol) && u.hostname !== '';
      } catch {
        return false;
      }
    },
    { message: `must be a URL starting with ${protocols.map((p) => `${p}//`).join(' or ')} and naming a host` },
  );

const SSL_MODES = ['disable', 'require', 'verify-ca', 'verify-full'] as const;
type SslMode = (typeof SSL_MODES)[number];
const PG_URL_PARAMS = ['sslmode', 'sslrootcert'];

/** A postgres:// URL whose query string holds at most libpq's sslmode and sslrootcert. */
const pgUrl = urlWith(['postgres:', 'postgresql:']).superRefine((value, ctx) => {
  let params: URLSearchParams;
  try {
    params = new URL(value).searchParams;
  } catch {
    return; // urlWith has reported it
  }
  const seen = new Set<string>();
  for (const [key, v] of params) {
    if (!PG_URL_PARAMS.includes(key)) {
      ctx.addIssue({ code: 'custom', message: `unknown query parameter ${JSON.stringify(key)} (allowed: ${PG_URL_PARAMS.join(', ')})` });
    } else if (seen.has(key)) {
      ctx.addIssue({ code: 'custom', message: `query parameter ${key} is given more than once` });
    } else if (key === 'sslmode' && !(SSL_MODES as readonly string[]).includes(v)) {
      ctx.addIssue({ code: 'custom', message: `sslmode ${JSON.stringify(v)} is not allowed: use one of ${SSL_MODES.join(', ')}` });
    } else if (key === 'sslrootcert' && v === '') {
      ctx.addIssue({ code: 'custom', message: 'sslrootcert must name a PEM CA file, such as sslrootcert=/run/secrets/pg-ca.pem' });
    }
    seen.add(key);
  }
  const mode = params.get('sslmode') ?? 'disable';
  if (params.has('sslrootcert') && (mode === 'disable' || mode === 'require')) {
    // libpq would silently turn require + sslrootcert into verify-ca; say which mode to use instead.
    ctx.addIssue({ code: 'custom', message: `sslrootcert only applies to sslmode=verify-ca or sslmode=verify-full (sslmode is ${mode})` });
  }
});

/**
 * A comma-separated list of postgres:// URLs, each checked like pgUrl; empty (or only commas and
 * blanks around them) is an empty list. Problems name the URL by its position.
 */
const splitList = (value: string) => value.split(',').map((v) => v.trim());
const pgUrlList = z.string().superRefine((value, ctx) => {
  const items = splitList(value);
  if (items.every((v) => v === '')) return;
  items.forEach((item, i) => {
    if (item === '') {
      ctx.addIssue({ code: 'custom', message: `entry ${i + 1} is empty: separate the URLs with single commas` });
      return;
    }
    const r = pgUrl.safeParse(item);
    if (!r.success) for (const issue of r.error.issues) ctx.addIssue({ code: 'custom', message: `URL ${i + 1} (${JSON.stringify(item)}): ${issue.message}` });
  });
});
const urlsOf = (value: string | undefined) => (value === undefined ? [] : splitList(value).filter((v) => v !== ''));

/** Compose profile names (compose's own rule: [a-zA-Z0-9][a-zA-Z0-9_.-]*), comma-separated; empty is none. */
const profileList = z.string().superRefine((value, ctx) => {
  for (const p of splitList(value).filter((v) => v !== '')) {
    if (!/^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/.test(p)) {
      ctx.addIssue({ code: 'custom', message: `${JSON.stringify(p)} is not a compose profile name (letters, digits, then _ . - too), such as replica` });
    }
  }
});

/** The names the poller gives its sources: a replica may not be named like one (its host names it). */
const SOURCE_NAMES = ['pgbouncer', 'probe', 'postgres', 'redis', 'disk', 'backups'];

const fraction = z
  .string()
  .regex(/^\d+(\.\d+)?$/, 'must be a number such as 0.05')
  .transform(Number)
  .pipe(z.number().min(0, 'must be >= 0').max(0.5, 'must be <= 0.5'));

const level = z.number().nonnegative().nullable().optional();
const ruleOverride = z.strictObject({ warning: level, critical: level, forMs: z.number().int().nonnegative().optional(), enabled: z.boolean().optional() });
const ruleOverrides = z
  .string()
  .transform((text, ctx) => {
    try {
      return JSON.parse(text) as unknown;
    } catch {
      ctx.addIssue({ code: 'custom', message: 'must be a JSON object such as {"pgbouncer_pool_utilization":{"warning":70,"forMs":30000}}' });
      return z.NEVER;
    }
  })
  .pipe(z.partialRecord(z.enum(RULE_NAMES), ruleOverride));

const schema = z.object({
  SIDECAR_HOST: z.string().min(1).default('0.0.0.0'),
  SIDECAR_PORT: wholeNumber(1, 65535).default(8787),
  SIDECAR_LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  SIDECAR_POLL_INTERVAL_MS: wholeNumber(100, 3_600_000).default(5000),
  SIDECAR_SOURCE_TIMEOUT_MS: wholeNumber(50, 60_000).default(2000),
  SIDECAR_DOWN_POLL_INTERVAL_MS: wholeNumber(100, 3_600_000).default(1000),
  SIDECAR_RECONNECT_MAX_MS: wholeNumber(100, 600_000).default(1000),
  SIDECAR_SUMMARY_INTERVAL_MS: wholeNumber(0, 86_400_000).default(60_000),
  SIDECAR_SHUTDOWN_GRACE_MS: wholeNumber(100, 600_000).default(10_000),
  SIDECAR_PGBOUNCER_URL: pgUrl.default('postgres://pgbouncer_stats@pgbouncer:6432/pgbouncer'),
  SIDECAR_PGBOUNCER_PASSWORD: z.string().optional(),
  SIDECAR_PROBE_URL: pgUrl.default('postgres://poolguard_monitor@pgbouncer:6432/poolguard_probe'),
  SIDECAR_POSTGRES_URL: pgUrl.default('postgres://poolguard_monitor@postgres:5432/app'),
  SIDECAR_POSTGRES_PASSWORD: z.string().optional(),
  // Streaming replicas of SIDECAR_POSTGRES_URL's server: comma-separated postgres:// URLs, each
  // checked like SIDECAR_POSTGRES_URL (sslmode, sslrootcert, SIDECAR_PG_TLS_CA_FILE), each watched
  // as one more Postgres instance named by its URL's host (the primary is named by
  // SIDECAR_POSTGRES_URL's); two instances of one name are an error. They log in with
  // SIDECAR_POSTGRES_PASSWORD (the monitoring role is replicated). Empty or unset: no replica.
  SIDECAR_POSTGRES_REPLICA_URLS: pgUrlList.optional(),
  // The compose profiles the stack runs with (the compose files pass ${COMPOSE_PROFILES:-}).
  // When SET, even to "", SIDECAR_POSTGRES_REPLICA_URLS is watched only if this comma-separated
  // list holds `replica` (so COMPOSE_PROFILES=replica alone turns the replica on); when UNSET, the
  // replica URLs are always watched.
  SIDECAR_PROFILES: profileList.optional(),
  // PgBouncer's [databases] alias that serves reads: SHOW DATABASES's host of it tells where
  // reads go (reads_on_primary, poolguard_reads_on_primary).
  SIDECAR_READ_DATABASE: z.string().regex(/^[A-Za-z0-9_][A-Za-z0-9_.$-]*$/, 'must be a PgBouncer [databases] name, such as app_ro').default('app_ro'),
  // PEM CA bundle for the Postgres-protocol URLs with sslmode=verify-ca/verify-full and no sslrootcert.
  SIDECAR_PG_TLS_CA_FILE: z.string().optional(),
  SIDECAR_REDIS_URL: urlWith(['redis:', 'rediss:']).default('redis://redis:6379/0'),
  SIDECAR_REDIS_PASSWORD: z.string().optional(),
  SIDECAR_TOKEN: z.string().min(16, 'must be at least 16 characters').max(512).optional(),
  // Per remote address (every client behind one proxy, or on the host through docker's port
  // forwarding, shares one): open sockets, and new sockets a second.
  SIDECAR_HTTP_MAX_CONNECTIONS_PER_ADDRESS: wholeNumber(1, 10_000).default(64),
  SIDECAR_HTTP_NEW_CONNECTIONS_PER_SECOND: wholeNumber(1, 100_000).default(50),
  // A read-only mount of Postgres's data volume: its free space is watched (statfs).
  SIDECAR_PGDATA_PATH: z.string().regex(/^\//, 'must be an absolute path (a read-only mount of the pgdata volume)').optional(),
  // The backup service's status file (pgbackrest info and its last run), on a read-only mount.
  SIDECAR_BACKUP_STATUS_PATH: z.string().regex(/^\//, 'must be an absolute path (the backup service writes status.json on a volume mounted read-only here)').optional(),
  // How far back the status page's sparklines and GET /history reach: one point a poll, kept in memory.
  SIDECAR_HISTORY_SECONDS: wholeNumber(60, 86_400).default(3600),
  SIDECAR_ALERT_FOR_MS: wholeNumber(0, 86_400_000).default(15_000),
  SIDECAR_ALERT_RESOLVE_FOR_MS: wholeNumber(0, 86_400_000).default(15_000),
  SIDECAR_ALERT_HYSTERESIS: fraction.default(0.05),
  SIDECAR_ALERT_RULES: ruleOverrides.default({}),
  SIDECAR_ALERT_WEBHOOK_URL: urlWith(['http:', 'https:']).optional(),
  SIDECAR_ALERT_WEBHOOK_TIMEOUT_MS: wholeNumber(100, 60_000).default(5000),
  SIDECAR_ALERT_WEBHOOK_RETRIES: wholeNumber(0, 10).default(3),
  // Alertmanager's base URL: the sidecar posts its own alerts there (API v2), with the webhook's
  // timeout and retries. Off when unset; the monitoring profile's default is Prometheus's rules.
  // Empty (as compose passes an unset variable) is unset.
  SIDECAR_ALERTMANAGER_URL: z.preprocess((v) => (v === '' ? undefined : v), urlWith(['http:', 'https:']).optional()),
  // How often firing alerts are sent to Alertmanager again (below its resolve_timeout, 5 min).
  SIDECAR_ALERTMANAGER_RESEND_MS: wholeNumber(1000, 240_000).default(60_000),
  // The status page's address as a person reaches it: the generatorURL of the alerts sent to Alertmanager.
  SIDECAR_PUBLIC_URL: urlWith(['http:', 'https:']).default('http://127.0.0.1:8787/'),
});

/** Secrets that may come from VAR or VAR_FILE (never both). */
const SECRET_VARS = ['SIDECAR_PGBOUNCER_PASSWORD', 'SIDECAR_POSTGRES_PASSWORD', 'SIDECAR_REDIS_PASSWORD', 'SIDECAR_TOKEN', 'SIDECAR_ALERT_WEBHOOK_URL'] as const;

function pgTarget(raw: string, password: string | undefined, defaultPort: number, tls: PgTls | undefined): PgTarget {
  const u = new URL(raw);
  const fromUrl = u.password === '' ? undefined : decodeURIComponent(u.password);
  return {
    host: u.hostname,
    port: u.port === '' ? defaultPort : Number(u.port),
    user: decodeURIComponent(u.username) || 'postgres',
    database: decodeURIComponent(u.pathname.replace(/^\//, '')) || 'postgres',
    password: password ?? fromUrl,
    tls,
  };
}

const PG_URL_VARS = ['SIDECAR_PGBOUNCER_URL', 'SIDECAR_PROBE_URL', 'SIDECAR_POSTGRES_URL'] as const;
type PgUrlVar = (typeof PG_URL_VARS)[number];

/** Reads a PEM CA bundle; returns a problem (without the variable name) instead of throwing. */
function readCaFile(path: string): { pem: string } | { problem: string } {
  let pem: string;
  try {
    pem = readFileSync(path, 'utf8');
  } catch (err) {
    return { problem: `cannot read ${path} (${(err as NodeJS.ErrnoException).code ?? 'error'})` };
  }
  if (pem.trim() === '') return { problem: `${path} is empty` };
  if (!pem.includes('-----BEGIN CERTIFICATE-----')) return { problem: `${path} is not a PEM CA bundle (no -----BEGIN CERTIFICATE----- block)` };
  return { pem };
}

/** A Postgres-protocol URL whose TLS settings are to be resolved: label starts every problem ("SIDECAR_POSTGRES_URL"). */
interface PgUrlEntry {
  label: string;
  /** undefined: not set, it takes its default (no query string). */
  raw: string | undefined;
}

/**
 * The TLS settings of each Postgres-protocol URL that passed the schema: sslmode, and for
 * verify-ca/verify-full the CA from sslrootcert or SIDECAR_PG_TLS_CA_FILE, read now so a bad
 * path stops startup. Problems are collected, not thrown. One result per entry, in order.
 */
function resolvePgTls(input: Record<string, string | undefined>, entries: PgUrlEntry[], problems: string[]): (PgTls | undefined)[] {
  const files = new Map<string, ReturnType<typeof readCaFile>>();
  const read = (path: string) => {
    if (!files.has(path)) files.set(path, readCaFile(path));
    return files.get(path)!;
  };
  // Empty means not set, as for the optional secrets (compose passes an unset variable as "").
  const caFile = input.SIDECAR_PG_TLS_CA_FILE === '' ? undefined : input.SIDECAR_PG_TLS_CA_FILE;
  let sharedCa: string | undefined;
  let sharedCaBad = false;
  if (caFile !== undefined) {
    const r = read(caFile);
    if ('pem' in r) sharedCa = r.pem;
    else {
      sharedCaBad = true;
      problems.push(`SIDECAR_PG_TLS_CA_FILE: ${r.problem}`);
    }
  }
  return entries.map(({ label, raw }): PgTls | undefined => {
    const params = raw === undefined ? new URLSearchParams() : new URL(raw).searchParams;
    const mode = (params.get('sslmode') ?? 'disable') as SslMode;
    if (mode === 'disable') return undefined;
    if (mode === 'require') return { mode, ca: undefined };
    const rootcert = params.get('sslrootcert');
    let ca: string | undefined;
    if (rootcert !== null) {
      const r = read(rootcert);
      if ('pem' in r) ca = r.pem;
      else problems.push(`${label}: sslrootcert: ${r.problem}`);
    } else if (sharedCa !== undefined) {
      ca = sharedCa;
    } else if (!sharedCaBad) {
      problems.push(`${label}: sslmode=${mode} needs a CA to check the server certificate against: add sslrootcert=/path/to/ca.pem to the URL or set SIDECAR_PG_TLS_CA_FILE`);
    }
    return { mode, ca };
  });
}

/**
 * The instance names of the Postgres kind: the primary's host, then each replica's. A replica
 * named like the primary, like another replica or like one of the sidecar's sources is a problem.
 */
function checkInstanceNames(primary: string, replicas: string[], problems: string[]): void {
  const seen = new Set([primary]);
  for (const name of replicas) {
    if (name === primary) {
      problems.push(`SIDECAR_POSTGRES_REPLICA_URLS: the replica ${JSON.stringify(name)} has the host of SIDECAR_POSTGRES_URL: each Postgres instance is named by its URL's host, so give the replica its own host name (such as postgres-replica)`);
    } else if (seen.has(name)) {
      problems.push(`SIDECAR_POSTGRES_REPLICA_URLS: two replicas have the host ${JSON.stringify(name)}: each Postgres instance is named by its URL's host, so list each replica once, under a host name of its own`);
    } else if (SOURCE_NAMES.includes(name)) {
      problems.push(`SIDECAR_POSTGRES_REPLICA_URLS: a replica cannot have the host ${JSON.stringify(name)}, the name of one of the sidecar's sources (${SOURCE_NAMES.join(', ')}): use another host name or a network alias`);
    }
    seen.add(name);
  }
}

function redisTarget(raw: string, password: string | undefined): RedisTarget {
  const u = new URL(raw);
  const db = u.pathname.replace(/^\//, '');
  return {
    host: u.hostname,
    port: u.port === '' ? 6379 : Number(u.port),
    db: db === '' ? 0 : Number(db),
    username: u.username === '' ? undefined : decodeURIComponent(u.username),
    password: password ?? (u.password === '' ? undefined : decodeURIComponent(u.password)),
    tls: u.protocol === 'rediss:',
  };
}

/** Reads VAR_FILE secrets into VAR (secrets.ts: the rules every image shares); problems are collected, not thrown. */
function resolveSecretFiles(env: NodeJS.ProcessEnv, problems: string[]): Record<string, string | undefined> {
  const out: Record<string, string | undefined> = {};
  for (const name of SECRET_VARS) {
    const r = readSecret(name, env);
    // Optional secrets: unset (or "", as compose passes unset variables) means "not set".
    if ('problem' in r) problems.push(r.problem);
    else if ('value' in r) out[name] = r.value;
  }
  return out;
}

export function loadConfig(env: NodeJS.ProcessEnv): Config {
  const problems: string[] = [];
  const input: Record<string, string | undefined> = {};
  for (const key of Object.keys(schema.shape)) {
    const value = env[key];
    // An empty string is a value, and a wrong one for every typed variable: report it.
    if (value !== undefined && !(SECRET_VARS as readonly string[]).includes(key)) input[key] = value;
  }
  Object.assign(input, resolveSecretFiles(env, problems));
  for (const key of Object.keys(env)) {
    if (key.startsWith('SIDECAR_') && !(key in schema.shape) && !SECRET_VARS.some((s) => key === `${s}_FILE`)) {
      problems.push(`${key}: unknown variable (known: ${Object.keys(schema.shape).join(', ')})`);
    }
  }
  const parsed = schema.safeParse(input);
  const badKeys = new Set<string>();
  if (!parsed.success) {
    for (const issue of parsed.error.issues) {
      const key = String(issue.path[0] ?? '');
      badKeys.add(key);
      const shown = (SECRET_VARS as readonly string[]).includes(key) ? '' : ` (got ${JSON.stringify(input[key])})`;
      problems.push(`${key}: ${issue.message}${shown}`);
    }
  }
  const valid = (key: string) => !badKeys.has(key);
  const fixed = PG_URL_VARS.filter(valid);
  const replicaUrls = valid('SIDECAR_POSTGRES_REPLICA_URLS') ? urlsOf(input.SIDECAR_POSTGRES_REPLICA_URLS) : [];
  const resolved = resolvePgTls(
    input,
    [
      ...fixed.map((key) => ({ label: key, raw: input[key] })),
      ...replicaUrls.map((raw, i) => ({ label: `SIDECAR_POSTGRES_REPLICA_URLS: URL ${i + 1} (${new URL(raw).hostname})`, raw })),
    ],
    problems,
  );
  const tls: Partial<Record<PgUrlVar, PgTls | undefined>> = Object.fromEntries(fixed.map((key, i) => [key, resolved[i]]));
  const replicaTls = resolved.slice(fixed.length);
  if (parsed.success && valid('SIDECAR_POSTGRES_URL')) {
    checkInstanceNames(new URL(parsed.data.SIDECAR_POSTGRES_URL).hostname, replicaUrls.map((u) => new URL(u).hostname), problems);
  }
  if (problems.length > 0 || !parsed.success) throw new ConfigError(problems);
  const c = parsed.data;
  const profiles = c.SIDECAR_PROFILES === undefined ? undefined : splitList(c.SIDECAR_PROFILES).filter((p) => p !== '');
  // SIDECAR_PROFILES set (even empty): the replicas only with the replica profile; unset: always.
  const watchReplicas = profiles === undefined || profiles.includes('replica');
  const postgresReplicas = watchReplicas ? replicaUrls.map((raw, i) => pgTarget(raw, c.SIDECAR_POSTGRES_PASSWORD, 5432, replicaTls[i])) : [];
  if (c.SIDECAR_SOURCE_TIMEOUT_MS >= c.SIDECAR_POLL_INTERVAL_MS) {
    throw new ConfigError([
      `SIDECAR_SOURCE_TIMEOUT_MS: must be below SIDECAR_POLL_INTERVAL_MS (${c.SIDECAR_SOURCE_TIMEOUT_MS} >= ${c.SIDECAR_POLL_INTERVAL_MS})`,
    ]);
  }
  const historyPoints = Math.ceil((c.SIDECAR_HISTORY_SECONDS * 1000) / c.SIDECAR_POLL_INTERVAL_MS);
  if (historyPoints > MAX_HISTORY_POINTS) {
    throw new ConfigError([
      `SIDECAR_HISTORY_SECONDS: ${c.SIDECAR_HISTORY_SECONDS} s at SIDECAR_POLL_INTERVAL_MS=${c.SIDECAR_POLL_INTERVAL_MS} is ${historyPoints} points, more than the ${MAX_HISTORY_POINTS} kept in memory: lower SIDECAR_HISTORY_SECONDS or raise SIDECAR_POLL_INTERVAL_MS`,
    ]);
  }
  return {
    host: c.SIDECAR_HOST,
    port: c.SIDECAR_PORT,
    logLevel: c.SIDECAR_LOG_LEVEL,
    pollIntervalMs: c.SIDECAR_POLL_INTERVAL_MS,
    sourceTimeoutMs: c.SIDECAR_SOURCE_TIMEOUT_MS,
    downPollIntervalMs: c.SIDECAR_DOWN_POLL_INTERVAL_MS,
    reconnectMaxMs: c.SIDECAR_RECONNECT_MAX_MS,
    summaryIntervalMs: c.SIDECAR_SUMMARY_INTERVAL_MS,
    shutdownGraceMs: c.SIDECAR_SHUTDOWN_GRACE_MS,
    pgbouncer: pgTarget(c.SIDECAR_PGBOUNCER_URL, c.SIDECAR_PGBOUNCER_PASSWORD, 6432, tls.SIDECAR_PGBOUNCER_URL),
    // The probe and the direct connection both log in as the monitoring role.
    probe: pgTarget(c.SIDECAR_PROBE_URL, c.SIDECAR_POSTGRES_PASSWORD, 6432, tls.SIDECAR_PROBE_URL),
    postgres: pgTarget(c.SIDECAR_POSTGRES_URL, c.SIDECAR_POSTGRES_PASSWORD, 5432, tls.SIDECAR_POSTGRES_URL),
    postgresReplicas,
    profiles,
    readDatabase: c.SIDECAR_READ_DATABASE,
    redis: redisTarget(c.SIDECAR_REDIS_URL, c.SIDECAR_REDIS_PASSWORD),
    token: c.SIDECAR_TOKEN,
    pgdataPath: c.SIDECAR_PGDATA_PATH,
    backupStatusPath: c.SIDECAR_BACKUP_STATUS_PATH,
    historyPoints,
    http: { maxConnectionsPerAddress: c.SIDECAR_HTTP_MAX_CONNECTIONS_PER_ADDRESS, newConnectionsPerSecondPerAddress: c.SIDECAR_HTTP_NEW_CONNECTIONS_PER_SECOND },
    alerts: {
      forMs: c.SIDECAR_ALERT_FOR_MS,
      resolveForMs: c.SIDECAR_ALERT_RESOLVE_FOR_MS,
      hysteresis: c.SIDECAR_ALERT_HYSTERESIS,
      overrides: c.SIDECAR_ALERT_RULES,
      webhook: c.SIDECAR_ALERT_WEBHOOK_URL
        ? { url: c.SIDECAR_ALERT_WEBHOOK_URL, timeoutMs: c.SIDECAR_ALERT_WEBHOOK_TIMEOUT_MS, retries: c.SIDECAR_ALERT_WEBHOOK_RETRIES }
        : undefined,
      alertmanager: c.SIDECAR_ALERTMANAGER_URL
        ? { url: c.SIDECAR_ALERTMANAGER_URL, timeoutMs: c.SIDECAR_ALERT_WEBHOOK_TIMEOUT_MS, retries: c.SIDECAR_ALERT_WEBHOOK_RETRIES, resendMs: c.SIDECAR_ALERTMANAGER_RESEND_MS, generatorURL: c.SIDECAR_PUBLIC_URL }
        : undefined,
    },
  };
}

/** PLAN_* for `make plan` before a deploy (scripts/plan.sh renders them). */
const planSchema = z.object({
  PLAN_MAX_CONNECTIONS: wholeNumber(1, 262_143).default(100),
  PLAN_SUPERUSER_RESERVED_CONNECTIONS: wholeNumber(0, 262_143).default(3),
  PLAN_RESERVED_CONNECTIONS: wholeNumber(0, 262_143).default(0),
  PLAN_DEFAULT_POOL_SIZE: wholeNumber(1, 100_000).default(25),
  PLAN_RESERVE_POOL_SIZE: wholeNumber(0, 100_000).default(5),
  PLAN_MAX_DB_CONNECTIONS: wholeNumber(0, 100_000).default(50),
  PLAN_MAX_CLIENT_CONN: wholeNumber(1, 1_000_000).default(100),
  PLAN_PGBOUNCER_INSTANCES: wholeNumber(1, 1000).default(1),
  PLAN_PROFILES: z.string().default(''),
  PLAN_APP_USER: z.string().min(1).default('app'),
  PLAN_APP_READ_USER: z.string().min(1).default('app_reader'),
  PLAN_AUTH_USER: z.string().min(1).default('pgbouncer_auth'),
  PLAN_APP_INSTANCES: wholeNumber(1, 100_000).optional(),
  PLAN_APP_POOL: wholeNumber(1, 100_000).optional(),
});

export function loadPlanSettings(env: NodeJS.ProcessEnv): PlanSettings {
  const input: Record<string, string | undefined> = {};
  const problems: string[] = [];
  for (const key of Object.keys(planSchema.shape)) if (env[key] !== undefined) input[key] = env[key];
  for (const key of Object.keys(env)) if (key.startsWith('PLAN_') && !(key in planSchema.shape)) problems.push(`${key}: unknown variable (known: ${Object.keys(planSchema.shape).join(', ')})`);
  const parsed = planSchema.safeParse(input);
  if (!parsed.success) for (const issue of parsed.error.issues) problems.push(`${String(issue.path[0])}: ${issue.message} (got ${JSON.stringify(input[String(issue.path[0])])})`);
  if (parsed.success && (parsed.data.PLAN_APP_INSTANCES === undefined) !== (parsed.data.PLAN_APP_POOL === undefined)) {
    problems.push('PLAN_APP_INSTANCES and PLAN_APP_POOL: give both (make plan APP_INSTANCES=6 APP_POOL=10) or neither');
  }
  if (problems.length > 0 || !parsed.success) throw new ConfigError(problems);
  const c = parsed.data;
  return {
    maxConnections: c.PLAN_MAX_CONNECTIONS,
    superuserReservedConnections: c.PLAN_SUPERUSER_RESERVED_CONNECTIONS,
    reservedConnections: c.PLAN_RESERVED_CONNECTIONS,
    defaultPoolSize: c.PLAN_DEFAULT_POOL_SIZE,
    reservePoolSize: c.PLAN_RESERVE_POOL_SIZE,
    maxDbConnections: c.PLAN_MAX_DB_CONNECTIONS,
    maxClientConn: c.PLAN_MAX_CLIENT_CONN,
    pgbouncerInstances: c.PLAN_PGBOUNCER_INSTANCES,
    replica: splitList(c.PLAN_PROFILES).includes('replica'),
    // The probe's entry and user: the bundle's default (the one place that names them).
    probe: (() => {
      const u = new URL(schema.shape.SIDECAR_PROBE_URL.parse(undefined));
      return { database: decodeURIComponent(u.pathname.slice(1)), user: decodeURIComponent(u.username) };
    })(),
    appUser: c.PLAN_APP_USER,
    appReadUser: c.PLAN_APP_READ_USER,
    authUser: c.PLAN_AUTH_USER,
    app: c.PLAN_APP_INSTANCES !== undefined && c.PLAN_APP_POOL !== undefined ? { instances: c.PLAN_APP_INSTANCES, pool: c.PLAN_APP_POOL } : undefined,
  };
}
