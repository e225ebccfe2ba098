// End-to-end check: a real query through PgBouncer to Postgres, as an application does it.
import type { Queryable } from '../pg-connection.js';

export interface ProbeSample {
  responseTimeMs: number;
}

export async function collectProbe(db: Queryable, now: () => number = performance.now.bind(performance)): Promise<ProbeSample> {
  const started = now();
  const rows = await db.query('SELECT 1 AS ok');
  if (rows[0]?.ok !== 1) throw new Error(`probe query returned ${JSON.stringify(rows)}`);
  return { responseTimeMs: Math.round((now() - started) * 100) / 100 };
}
