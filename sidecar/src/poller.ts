// One poll loop: a self-rescheduling timeout, never overlapping. Every source runs in parallel
// under its own timeout, so a slow or dead backend never blocks the others. The loop only
// writes the snapshot; HTTP handlers and metric collection only read it.
//
// A source is one instance of a kind (pgbouncer, postgres, ...). Each kind has a first instance
// (the specs: today's single sources, e.g. the primary for postgres) and may have more (the
// `more` lists: e.g. replicas, from configuration only). The snapshot holds both views: sources
// (kind -> first instance) and instances (kind -> instance name -> state, first instance first).
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
  /** Since when it is up (its first good poll in a row) or down (its first failed one); null before the first poll. */
  since: string | null;
}

export interface SourceSpec<T> {
  /** The instance's name (a replica's host); the kind's name when unset. */
  instance?: string;
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
/** The instances of each kind after its first one (each with its `instance` name set). */
export type MoreInstances<S extends Samples> = { [K in keyof S]?: SourceSpec<S[K]>[] };
/** kind -> instance name -> state, in target order: the first entry is the kind's first instance. */
export type InstanceStates<S extends Samples> = { [K in keyof S]: Record<string, SourceState<S[K]>> };

export interface Snapshot<S extends Samples> {
  /** The first instance of each kind (snap.sources.postgres is the primary). */
  sources: SourceStates<S>;
  /** Every instance of each kind, the first one included (the same state object as in sources). */
  instances: InstanceStates<S>;
  pollCount: number;
  lastPollAt: string | null;
}

/** One polled target: its kind, its instance name and its id (the kind for a first instance, else the instance name). */
interface Target {
  kind: string;
  instance: string;
  id: string;
  first: boolean;
  spec: SourceSpec<unknown>;
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
  return { up: false, sample: undefined, lastPollAt: null, lastSuccessAt: null, lastError: null, durationMs: 0, consecutiveFailures: 0, errorsTotal: 0, restarts: 0, lastRestartAt: null, lastRestart: null, since: null };
}

export class Poller<S extends Samples> {
  private current: Snapshot<S>;
  private readonly targets: Target[];
  /** Each target's state, by id. */
  private states = new Map<string, SourceState<unknown>>();
  private timer: NodeJS.Timeout | undefined;
  private inFlight: Promise<void> | undefined;
  private stopped = false;
  private again = false;
  private readonly now: () => number;
  /** The last good sample of each source, by id (a state's sample is cleared while it is down). */
  private readonly lastGood = new Map<string, unknown>();

  /**
   * specs: the first instance of each kind; more: further instances of a kind (each names its
   * instance). A further instance's id (its hooks' name, its metrics' source label) is its
   * instance name, which must differ from every kind name and every other instance (config.ts checks).
   */
  constructor(specs: SourceSpecs<S>, private readonly opts: PollerOptions, more: MoreInstances<S> = {}) {
    this.now = opts.now ?? Date.now;
    this.targets = [];
    for (const kind of Object.keys(specs)) {
      const first = specs[kind as keyof S] as SourceSpec<unknown>;
      this.targets.push({ kind, instance: first.instance ?? kind, id: kind, first: true, spec: first });
      for (const spec of (more[kind as keyof S] ?? []) as SourceSpec<unknown>[]) {
        const instance = spec.instance ?? kind;
        this.targets.push({ kind, instance, id: instance, first: false, spec });
      }
    }
    const ids = this.targets.map((t) => t.id);
    const dup = ids.find((id, i) => ids.indexOf(id) !== i);
    if (dup !== undefined) throw new Error(`two sources share the id ${JSON.stringify(dup)} (an instance named like a kind or another instance)`);
    for (const t of this.targets) this.states.set(t.id, emptyState());
    this.current = { ...this.assemble(), pollCount: 0, lastPollAt: null };
  }

  /** sources and instances from the current states, in target order. */
  private assemble(): Pick<Snapshot<S>, 'sources' | 'instances'> {
    const sources = {} as Record<string, SourceState<unknown>>;
    const instances = {} as Record<string, Record<string, SourceState<unknown>>>;
    for (const t of this.targets) {
      const st = this.states.get(t.id)!;
      if (t.first) sources[t.kind] = st;
      (instances[t.kind] ??= {})[t.instance] = st;
    }
    return { sources: sources as SourceStates<S>, instances: instances as InstanceStates<S> };
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
    // Only the first instances count: a replica that stays down (it is not part of /health's
    // healthy) must not keep the whole loop at the down interval.
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
    const results = await Promise.all(this.targets.map((t) => this.runOne(t)));
    const durations: Record<string, number> = {};
    const states = new Map<string, SourceState<unknown>>();
    this.targets.forEach((t, i) => {
      states.set(t.id, results[i]!);
      durations[t.id] = results[i]!.durationMs;
    });
    this.states = states;
    this.current = { ...this.assemble(), pollCount: this.current.pollCount + 1, lastPollAt: new Date(this.now()).toISOString() };
    this.opts.onPoll?.(durations);
  }

  private async runOne(target: Target): Promise<SourceState<unknown>> {
    const { spec, id: name } = target;
    const prev = this.states.get(name)!;
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
      const before = this.lastGood.get(name);
      this.lastGood.set(name, sample);
      const restart = before === undefined ? undefined : spec.restarted?.(before, sample);
      if (restart !== undefined) this.opts.onSourceRestarted?.(name, restart);
      const restarts = restart === undefined ? {} : { restarts: prev.restarts + 1, lastRestartAt: at, lastRestart: restart };
      const since = prev.up && prev.since !== null ? prev.since : at;
      return { ...prev, up: true, sample, lastPollAt: at, lastSuccessAt: at, lastError: null, durationMs: this.now() - started, consecutiveFailures: 0, since, ...restarts };
    } catch (err) {
      this.opts.onSourceError?.(name, err, prev.consecutiveFailures === 0);
      const at = new Date(this.now()).toISOString();
      return {
        ...prev,
        up: false,
        sample: undefined,
        since: prev.consecutiveFailures > 0 && prev.since !== null ? prev.since : at,
        lastPollAt: at,
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
