import type { Snapshot } from './poller.js';
import type { PgBouncerSample } from './sources/pgbouncer.js';
import type { ProbeSample } from './sources/probe.js';
import type { RedisSample } from './sources/redis.js';

/** What each source contributes to a poll. */
export type StackSamples = {
  pgbouncer: PgBouncerSample;
  probe: ProbeSample;
  redis: RedisSample;
};

export type StackSnapshot = Snapshot<StackSamples>;
