// One poll loop: a self-rescheduling timeout, never overlapping. Every source runs in parallel
// under its own timeout, so a slow or dead backend never blocks the others. The loop only
// writes the snapshot; HTTP handlers and metric collection only read it.
import { describeError } from './log.js';

export interface SourceState<T> {
  up: boolean;
  sample: T | undefined;
  lastPollAt: string | null;
  lastSuccessAt: string | null;
  lastError: string | null;
  durationMs: number;
  consecutiveFailures: number;
  errorsTotal: number;
  /** Restarts of the backend seen between two good samples (SourceSpec.restarted). */
  restarts: number;
  lastRestartAt: string | null;
  /** Why the last restart was counted ("pg_postmaster_start_time moved ..."). */
  lastRestart: string | null;
}

export interface SourceSpec<T> {
  run: () => Promise<T>;
  /** Called when the source exceeds its timeout (e.g. drop a connection that hangs). */
  onTimeout?: () => void;
  /**
   * Compares the last good sample with a new one: a reason when the backend restarted in
   * between (its start time or run id changed, its counters went back), else undefined. A
   * restart faster than a poll never shows as down, so this is how it is seen at all.
   */
  restarted?: (before: T, after: T) => string | undefined;
}

export type Samples = Record<string, unknown>;
export type SourceSpecs<S extends Samples> = { [K in keyof S]: SourceSpec<S[K]> };
export type SourceStates<S extends Samples> = { [K in keyof S]: SourceState<S[K]> };

export interface Snapshot<S extends Samples> {
  sources: SourceStates<S>;
  pollCount: number;
  lastPollAt: string | null;
}

export class SourceTimeoutError extends Error {
  constructor(ms: number) {
    super(`no answer within ${ms} ms (SIDECAR_SOURCE_TIMEOUT_MS): paused, overloaded, or cut off by the network`);
    this.name = 'SourceTimeoutError';
  }
}

export interface PollerOptions {
  intervalMs: number;
  /** While any source is down, poll this often instead (faster recovery detection). */
  downIntervalMs?: number;
  timeoutMs: number;
  now?: () => number;
  onPoll?: (durations: Record<string, number>) => void;
  onSourceError?: (name: string, err: unknown, firstFailure: boolean) => void;
  onSourceRecovered?: (name: string) => void;
  onSourceRestarted?: (name: string, reason: string) => void;
}

function emptyState<T>(): SourceState<T> {
  return { up: false, sample: undefined, lastPollAt: null, lastSuccessAt: null, lastError: null, durationMs: 0, consecutiveFailures: 0, errorsTotal: 0, restarts: 0, lastRestartAt: null, lastRestart: null };
}

export class Poller<S extends Samples> {
  private current: Snapshot<S>;
  private timer: NodeJS.Timeout | undefined;
  private inFlight: Promise<void> | undefined;
  private stopped = false;
  private again = false;
  private readonly now: () => number;
  /** The last good sample of each source (a state's sample is cleared while it is down). */
  private readonly lastGood: Partial<Record<keyof S, unknown>> = {};

  constructor(private readonly specs: SourceSpecs<S>, private readonly opts: PollerOptions) {
    this.now = opts.now ?? Date.now;
    const sources = {} as SourceStates<S>;
    for (const name of Object.keys(specs) as (keyof S)[]) sources[name] = emptyState();
    this.current = { sources, pollCount: 0, lastPollAt: null };
  }

  get snapshot(): Snapshot<S> {
    return this.current;
  }

  get ready(): boolean {
    return this.current.pollCount > 0;
  }

  /** Runs the first poll, then keeps polling every intervalMs after each poll ends. */
  async start(): Promise<void> {
    await this.pollOnce();
    this.schedule();
  }

  /** Stops scheduling and waits for a poll in flight to finish. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    await this.inFlight;
  }

  /** One poll of every source; concurrent calls share the poll in flight (never overlap). */
  pollOnce(): Promise<void> {
    this.inFlight ??= this.poll().finally(() => {
      this.inFlight = undefined;
    });
    return this.inFlight;
  }

  /**
   * Polls now, out of schedule (a connection was just lost): the next regular poll is counted
   * from this one's end. A poll in flight is followed by one more instead (never overlapping).
   */
  pollSoon(): void {
    if (this.stopped || this.current.pollCount === 0) return;
    if (this.inFlight) {
      this.again = true;
      return;
    }
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    void this.pollOnce().then(() => this.schedule());
  }

  private schedule(): void {
    if (this.stopped || this.timer) return;
    const anyDown = Object.values(this.current.sources).some((s) => !(s as SourceState<unknown>).up);
    const delay = this.again ? 0 : anyDown ? Math.min(this.opts.intervalMs, this.opts.downIntervalMs ?? this.opts.intervalMs) : this.opts.intervalMs;
    this.again = false;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.pollOnce().then(() => this.schedule());
    }, delay);
    this.timer.unref?.();
  }

  private async poll(): Promise<void> {
    const names = Object.keys(this.specs) as (keyof S & string)[];
    const results = await Promise.all(names.map((name) => this.runOne(name)));
    const sources = { ...this.current.sources };
    const durations: Record<string, number> = {};
    names.forEach((name, i) => {
      sources[name] = results[i] as SourceState<S[typeof name]>;
      durations[name] = results[i]!.durationMs;
    });
    this.current = { sources, pollCount: this.current.pollCount + 1, lastPollAt: new Date(this.now()).toISOString() };
    this.opts.onPoll?.(durations);
  }

  private async runOne<K extends keyof S & string>(name: K): Promise<SourceState<S[K]>> {
    const spec = this.specs[name];
    const prev = this.current.sources[name];
    const started = this.now();
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        spec.onTimeout?.();
        reject(new SourceTimeoutError(this.opts.timeoutMs));
      }, this.opts.timeoutMs);
    });
    try {
      const sample = await Promise.race([spec.run(), timeout]);
      if (prev.consecutiveFailures > 0) this.opts.onSourceRecovered?.(name);
      const at = new Date(this.now()).toISOString();
      const before = this.lastGood[name] as S[K] | undefined;
      this.lastGood[name] = sample;
      const restart = before === undefined ? undefined : spec.restarted?.(before, sample);
      if (restart !== undefined) this.opts.onSourceRestarted?.(name, restart);
      const restarts = restart === undefined ? {} : { restarts: prev.restarts + 1, lastRestartAt: at, lastRestart: restart };
      return { ...prev, up: true, sample, lastPollAt: at, lastSuccessAt: at, lastError: null, durationMs: this.now() - started, consecutiveFailures: 0, ...restarts };
    } catch (err) {
      this.opts.onSourceError?.(name, err, prev.consecutiveFailures === 0);
      return {
        ...prev,
        up: false,
        sample: undefined,
        lastPollAt: new Date(this.now()).toISOString(),
        lastError: describeError(err),
        durationMs: this.now() - started,
        consecutiveFailures: prev.consecutiveFailures + 1,
        errorsTotal: prev.errorsTotal + 1,
      };
    } finally {
      clearTimeout(timer);
    }
  }
}
