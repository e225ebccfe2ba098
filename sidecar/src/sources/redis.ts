// Redis: PING round-trip and INFO. The INFO parser is pure.
export interface RedisLike {
  ping(): Promise<string>;
  info(): Promise<string>;
}

export interface RedisSample {
  pingMs: number;
  /** INFO fields, flattened (section headers dropped). */
  info: Record<string, string>;
  /** db index -> key count, from the Keyspace section. */
  keyspace: Record<string, number>;
}

export function parseInfo(text: string): { info: Record<string, string>; keyspace: Record<string, number> } {
  const info: Record<string, string> = {};
  const keyspace: Record<string, number> = {};
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
  }
  return { info, keyspace };
}

export async function collectRedis(client: RedisLike, now: () => number = performance.now.bind(performance)): Promise<RedisSample> {
  const started = now();
  const pong = await client.ping();
  const pingMs = Math.round((now() - started) * 100) / 100;
  if (pong !== 'PONG') throw new Error(`PING answered ${JSON.stringify(pong)}`);
  return { pingMs, ...parseInfo(await client.info()) };
}

/** Redis restarted between two samples when INFO's run_id changed (a new process). */
export function redisRestarted(before: Pick<RedisSample, 'info'>, after: Pick<RedisSample, 'info'>): string | undefined {
  const was = before.info.run_id;
  const now = after.info.run_id;
  if (!was || !now || was === now) return undefined;
  return `Redis started again (run_id ${was.slice(0, 8)}… → ${now.slice(0, 8)}…, up ${after.info.uptime_in_seconds ?? '?'} s): a crash, an OOM kill or a container restart; see its log`;
}
