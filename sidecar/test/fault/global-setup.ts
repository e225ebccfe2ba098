// Fault suite: each run starts with no rows or settings in sidecar/.reliability/ (ignored by git).
// The run never writes docs/reliability.md: `make reliability` does, from a run whose every
// test passed (scripts/reliability-report.mjs).
import { rmSync } from 'node:fs';
import { RELIABILITY_DIR } from './harness.js';

export default function setup(): void {
  rmSync(RELIABILITY_DIR, { recursive: true, force: true });
}
