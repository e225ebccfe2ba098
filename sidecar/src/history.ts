// The last hour (by default) of the figures that move, for the status page's sparklines and
// GET /history: a ring buffer fed once after each poll. Its memory is fixed when it is made: one
// Float64Array of timestamps and one per series, each of `capacity` slots; a series is created
// the first time it is recorded, up to maxSeries, so the whole stays within bytesAt(capacity, maxSeries).
// No imports: any layer may hold one; views/status.ts decides what goes in.

/** The most points a history may hold (config.ts refuses a SIDECAR_HISTORY_SECONDS that needs more). */
export const MAX_HISTORY_POINTS = 20_000;

/** A point's figures by series name; null (or a missing name) is "no value at this poll". */
export type Figures = Record<string, number | null>;

export interface HistoryBody {
  /** The poll interval the ring was sized for, ms. */
  intervalMs: number;
  /** Points it holds at most, and the window that is at the poll interval. */
  capacity: number;
  windowSeconds: number;
  /** Points held now. */
  points: number;
  /** Bytes of the typed arrays behind it (timestamps and every series). */
  memoryBytes: number;
  /** Epoch ms of each point returned, oldest first. */
  t: number[];
  /** Each series' value at each point of t (null: none then). */
  series: Record<string, (number | null)[]>;
}

/** Rounds to 3 decimals (the JSON stays small; no figure here needs more). */
const round3 = (v: number) => Math.round(v * 1000) / 1000;

export class History {
  private readonly times: Float64Array;
  private readonly values = new Map<string, Float64Array>();
  /** The slot the next point goes to, and how many slots hold a point. */
  private next = 0;
  private size = 0;
  /** Names refused because maxSeries was reached (each counted once). */
  private readonly refused = new Set<string>();

  constructor(
    readonly capacity: number,
    readonly intervalMs: number,
    readonly maxSeries = 64,
  ) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new Error(`history capacity must be a whole number >= 1 (got ${capacity})`);
    this.times = new Float64Array(capacity);
  }

  /** The bytes a full ring of this many points and series takes (its typed arrays). */
  static bytesAt(capacity: number, series: number): number {
    return capacity * 8 * (series + 1);
  }

  get length(): number {
    return this.size;
  }

  get memoryBytes(): number {
    return this.times.byteLength + [...this.values.values()].reduce((n, a) => n + a.byteLength, 0);
  }

  /** Series names refused because the ring already held maxSeries. */
  get refusedSeries(): string[] {
    return [...this.refused];
  }

  /** Adds one point; the oldest is overwritten when the ring is full. A time before the last point's is ignored. */
  record(atMs: number, figures: Figures): void {
    if (this.size > 0 && atMs < this.times[(this.next - 1 + this.capacity) % this.capacity]!) return;
    const slot = this.next;
    this.times[slot] = atMs;
    for (const arr of this.values.values()) arr[slot] = Number.NaN;
    for (const [name, value] of Object.entries(figures)) {
      if (value === null || !Number.isFinite(value)) continue;
      let arr = this.values.get(name);
      if (!arr) {
        if (this.values.size >= this.maxSeries) {
          this.refused.add(name);
          continue;
        }
        arr = new Float64Array(this.capacity).fill(Number.NaN);
        this.values.set(name, arr);
      }
      arr[slot] = value;
    }
    this.next = (slot + 1) % this.capacity;
    this.size = Math.min(this.size + 1, this.capacity);
  }

  /** The points after afterMs (all when undefined), oldest first. */
  body(afterMs?: number): HistoryBody {
    const start = (this.next - this.size + this.capacity) % this.capacity;
    const slots: number[] = [];
    for (let i = 0; i < this.size; i++) {
      const slot = (start + i) % this.capacity;
      if (afterMs === undefined || this.times[slot]! > afterMs) slots.push(slot);
    }
    const series: Record<string, (number | null)[]> = {};
    for (const [name, arr] of this.values) {
      series[name] = slots.map((s) => (Number.isNaN(arr[s]!) ? null : round3(arr[s]!)));
    }
    return {
      intervalMs: this.intervalMs,
      capacity: this.capacity,
      windowSeconds: Math.round((this.capacity * this.intervalMs) / 1000),
      points: this.size,
      memoryBytes: this.memoryBytes,
      t: slots.map((s) => this.times[s]!),
      series,
    };
  }
}
