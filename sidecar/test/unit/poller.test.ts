import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { Poller } from '../../src/poller.js';

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

describe('Poller', () => {
  it('finishes the first poll in start(), then reschedules after each poll, never overlapping', async () => {
    let running = 0;
    let maxRunning = 0;
    let calls = 0;
    const slow = async () => {
      running += 1;
      maxRunning = Math.max(maxRunning, running);
      calls += 1;
      await new Promise((r) => setTimeout(r, 300)); // longer than... nothing: interval is 100
      running -= 1;
      return calls;
    };
    const poller = new Poller({ a: { run: slow } }, { intervalMs: 100, timeoutMs: 1000, now: () => Date.now() });
    const started = poller.start();
    expect(poller.ready).toBe(false);
    await vi.advanceTimersByTimeAsync(300);
    await started;
    expect(poller.ready).toBe(true);
    expect(poller.snapshot.sources.a).toMatchObject({ up: true, sample: 1 });
    // Next poll starts 100 ms after the previous one ENDED and takes 300 ms.
    await vi.advanceTimersByTimeAsync(399);
    expect(calls).toBe(2);
    expect(poller.snapshot.pollCount).toBe(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(poller.snapshot.pollCount).toBe(2);
    await vi.advanceTimersByTimeAsync(2000);
    expect(maxRunning).toBe(1);
    await poller.stop();
    const after = calls;
    await vi.advanceTimersByTimeAsync(2000);
    expect(calls).toBe(after);
  });

  it('a hung source times out without blocking the others, and its onTimeout runs', async () => {
    const onTimeout = vi.fn();
    const poller = new Poller(
      {
        hung: { run: () => new Promise<number>(() => undefined), onTimeout },
        fast: { run: async () => 'ok' },
      },
      { intervalMs: 1000, timeoutMs: 200, now: () => Date.now() },
    );
    const p = poller.pollOnce();
    await vi.advanceTimersByTimeAsync(200);
    await p;
    const s = poller.snapshot.sources;
    expect(s.fast).toMatchObject({ up: true, sample: 'ok', lastError: null });
    expect(s.hung).toMatchObject({ up: false, sample: undefined, lastError: 'no answer within 200 ms (SIDECAR_SOURCE_TIMEOUT_MS): paused, overloaded, or cut off by the network', consecutiveFailures: 1, errorsTotal: 1 });
    expect(s.hung.durationMs).toBe(200);
    expect(onTimeout).toHaveBeenCalledTimes(1);
  });

  it('records errors and recovery, with callbacks on the first failure and on recovery', async () => {
    let fail = true;
    const onSourceError = vi.fn();
    const onSourceRecovered = vi.fn();
    const poller = new Poller(
      { s: { run: async () => { if (fail) throw new Error('connect ECONNREFUSED 10.0.0.1:5432'); return 1; } } },
      { intervalMs: 1000, timeoutMs: 200, onSourceError, onSourceRecovered },
    );
    await poller.pollOnce();
    await poller.pollOnce();
    expect(poller.snapshot.sources.s).toMatchObject({ up: false, lastError: 'connect ECONNREFUSED 10.0.0.1:5432', consecutiveFailures: 2 });
    expect(onSourceError.mock.calls.map((c) => c[2])).toEqual([true, false]);
    fail = false;
    await poller.pollOnce();
    expect(poller.snapshot.sources.s).toMatchObject({ up: true, lastError: null, consecutiveFailures: 0, errorsTotal: 2 });
    expect(onSourceRecovered).toHaveBeenCalledWith('s');
  });

  it('concurrent pollOnce calls share one poll', async () => {
    let calls = 0;
    const poller = new Poller({ s: { run: async () => ++calls } }, { intervalMs: 1000, timeoutMs: 200 });
    await Promise.all([poller.pollOnce(), poller.pollOnce(), poller.pollOnce()]);
    expect(calls).toBe(1);
  });
});

describe('Poller: faster while down, at once when a connection is lost', () => {
  it('polls at downIntervalMs while a source is down, back to intervalMs once all are up', async () => {
    let up = false;
    let calls = 0;
    const poller = new Poller(
      { s: { run: async () => { calls += 1; if (!up) throw new Error('down'); return 1; } } },
      { intervalMs: 5000, downIntervalMs: 1000, timeoutMs: 500, now: () => Date.now() },
    );
    await poller.start();
    expect(calls).toBe(1);
    await vi.advanceTimersByTimeAsync(1000);
    expect(calls).toBe(2);
    up = true;
    await vi.advanceTimersByTimeAsync(1000);
    expect(calls).toBe(3);
    expect(poller.snapshot.sources.s.up).toBe(true);
    await vi.advanceTimersByTimeAsync(4999);
    expect(calls).toBe(3);
    await vi.advanceTimersByTimeAsync(1);
    expect(calls).toBe(4);
    await poller.stop();
  });

  it('pollSoon polls now and restarts the schedule; during a poll it queues exactly one more', async () => {
    let calls = 0;
    let release: (() => void) | undefined;
    const poller = new Poller(
      { s: { run: () => { calls += 1; return calls === 3 ? new Promise<number>((r) => (release = () => r(calls))) : Promise.resolve(calls); } } },
      { intervalMs: 5000, timeoutMs: 10_000, now: () => Date.now() },
    );
    await poller.start();
    await vi.advanceTimersByTimeAsync(2000);
    poller.pollSoon();
    await vi.advanceTimersByTimeAsync(0);
    expect(calls).toBe(2);
    await vi.advanceTimersByTimeAsync(4999); // the schedule restarted from the out-of-band poll
    expect(calls).toBe(2);
    await vi.advanceTimersByTimeAsync(1); // poll 3 starts and hangs
    expect(calls).toBe(3);
    poller.pollSoon();
    poller.pollSoon();
    release!();
    await vi.advanceTimersByTimeAsync(0);
    await vi.advanceTimersByTimeAsync(0);
    expect(calls).toBe(4); // one more right after, not two
    await vi.advanceTimersByTimeAsync(4999);
    expect(calls).toBe(4);
    await poller.stop();
  });
});
