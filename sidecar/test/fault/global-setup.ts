// Fault suite: start with an empty set of report rows; render docs/reliability.md at the end.
import { rmSync } from 'node:fs';
import { ROWS_FILE, writeReport } from './harness.js';

export default function setup(): () => void {
  rmSync(ROWS_FILE, { force: true });
  return () => {
    writeReport(
      `Run ${new Date().toISOString()} on ${process.env.CI ? 'CI' : 'a developer machine'} (2 shared cores), dev compose file. ` +
        'PgBouncer defaults (transaction pooling, pool 25 + reserve 5, max_client_conn 100, query_wait_timeout 120 s; ' +
        'idle_transaction_timeout 20 s in the fault stack), sidecar poll interval 5 s (1 s while a backend is down), alert for/resolve 5 s. ' +
        'Load: our generator (sidecar/test/loadgen/loadgen.mjs) in a container on the compose network, each client running ' +
        'BEGIN; INSERT INTO ledger; COMMIT in a loop and recording every acknowledged id; "lost" counts acknowledged ids missing from the table afterwards.',
    );
  };
}
