// Redis: PING round-trip and INFO. The INFO parser is pure.
export interface RedisLike {
  ping(): Promise<string>;
  /** INFO (the default sections), or INFO of one section (commandstats is not a default one). */
  info(...sections: string[]): Promise<string>;
}

/** INFO commandstats: one entry per command ever called. */
export interface CommandStats {
  calls: number;
  usec: number;
  rejectedCalls: number;
  failedCalls: number;
}

export interface RedisSample {
  pingMs: number;
  /** INFO fields, flattened (section headers dropped). */
  info: Record<string, string>;
  /** db index -> key count, from the Keyspace section. */
  keyspace: Record<string, number>;
  /** db index -> keys with an expiry, from the Keyspace section. */
  expiring: Record<string, number>;
  /** command name (lower case, "config|get" for subcommands) -> its stats; {} when not read. */
  commands: Record<string, CommandStats>;
}

export function parseInfo(text: string): { info: Record<string, string>; keyspace: Record<string, number>; expiring: Record<string, number> } {
  const info: Record<string, string> = {};
  const keyspace: Record<string, number> = {};
  const expiring: Record<string, number> = {};
  for (const line of text.split(/\r?\n/)) {
    if (line === '' || line.startsWith('#')) continue;
    const i = line.indexOf(':');
    if (i <= 0) continue;
    const key = line.slice(0, i);
    const value = line.slice(i + 1);
    info[key] = value;
    const db = /^db(\d+)$/.exec(key);
    const keys = /(?:^|,)keys=(\d+)/.exec(value);
    if (db?.[1] !== undefined && keys?.[1] !== undefined) keyspace[db[1]] = Number(keys[1]);
    const expires = /(?:^|,)expires=(\d+)/.exec(value);
    if (db?.[1] !== undefined && expires?.[1] !== undefined) expiring[db[1]] = Number(expires[1]);
  }
  return { info, keyspace, expiring };
}

/** INFO commandstats: "cmdstat_get:calls=2,usec=15,usec_per_call=7.50,rejected_calls=0,failed_calls=0". */
export function parseCommandStats(text: string): Record<string, CommandStats> {
  const out: Record<string, CommandStats> = {};
  for (const line of text.split(/\r?\n/)) {
    const m = /^cmdstat_([^:]+):(.*)$/.exec(line);
    if (!m) continue;
    const field = (name: string) => Number(new RegExp(`(?:^|,)${name}=([\\d.]+)`).exec(m[2]!)?.[1] ?? 0);
    out[m[1]!.toLowerCase()] = { calls: field('calls'), usec: field('usec'), rejectedCalls: field('rejected_calls'), failedCalls: field('failed_calls') };
  }
  return out;
}

export async function collectRedis(client: RedisLike, now: () => number = performance.now.bind(performance)): Promise<RedisSample> {
  const started = now();
  const pong = await client.ping();
  const pingMs = Math.round((now() - started) * 100) / 100;
  if (pong !== 'PONG') throw new Error(`PING answered ${JSON.stringify(pong)}`);
  const parsed = parseInfo(await client.info());
  return { pingMs, ...parsed, commands: parseCommandStats(await client.info('commandstats')) };
}

/** Redis restarted between two samples when INFO's run_id changed (a new process). */
export function redisRestarted(before: Pick<RedisSample, 'info'>, after: Pick<RedisSample, 'info'>): string | undefined {
  const was = before.info.run_id;
  const now = after.info.run_id;
  if (!was || !now || was === now) return undefined;
  return `Redis started again (run_id ${was.slice(0, 8)}… → ${now.slice(0, 8)}…, up ${after.info.uptime_in_seconds ?? '?'} s): a crash, an OOM kill or a container restart; see its log`;
}
