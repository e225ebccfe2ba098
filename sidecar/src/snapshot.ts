import type { Snapshot } from './poller.js';
import type { PgBouncerSample } from './sources/pgbouncer.js';
import type { PostgresSample } from './sources/postgres.js';
import type { ProbeSample } from './sources/probe.js';
import type { RedisSample } from './sources/redis.js';

/** What each source contributes to a poll. */
export type StackSamples = {
  pgbouncer: PgBouncerSample;
  probe: ProbeSample;
  postgres: PostgresSample;
  redis: RedisSample;
};

export type StackSnapshot = Snapshot<StackSamples>;
