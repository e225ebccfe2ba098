// Alert state: pending -> firing -> resolved, per rule and label set. A rule fires only after
// its condition held for `for`; once firing it keeps its severity until the value drops below
// threshold x (1 - hysteresis), and resolves only after staying clear for resolveForMs. So one
// noisy poll neither fires nor flaps an alert.
import type { StackSnapshot } from '../snapshot.js';
import type { Rule, RuleContext, Severity } from './rules.js';

export interface AlertItem {
  name: string;
  severity: Severity;
  summary: string;
  labels: Record<string, string>;
  since: string;
  value: number;
  threshold: number;
}

export interface Transition {
  kind: 'firing' | 'resolved' | 'severity_changed';
  alert: AlertItem;
  previousSeverity?: Severity | undefined;
}

interface State {
  rule: Rule;
  labels: Record<string, string>;
  severity: Severity | null;
  pendingSince: number | undefined;
  firingSince: number | undefined;
  clearSince: number | undefined;
  value: number;
  summary: string;
}

export interface EngineOptions {
  defaultForMs: number;
  resolveForMs: number;
  /** Relative margin below a threshold before a firing level clears (0.05 = 5 %). */
  hysteresis: number;
  /** Handed to every rule's observe(): which pools are the application's. */
  context: RuleContext;
}

const RANK = { WARNING: 1, CRITICAL: 2 } as const;

function level(rule: Rule, value: number, factor: number): Severity | null {
  if (rule.critical !== undefined && value >= rule.critical * factor) return 'CRITICAL';
  if (rule.warning !== undefined && value >= rule.warning * factor) return 'WARNING';
  return null;
}

const higher = (a: Severity | null, b: Severity | null) => (a === null ? b : b === null ? a : RANK[a] >= RANK[b] ? a : b);
const lower = (a: Severity | null, b: Severity | null) => (a === null || b === null ? null : RANK[a] <= RANK[b] ? a : b);

const keyOf = (rule: string, labels: Record<string, string>) =>
  `${rule}|${Object.entries(labels).sort(([a], [b]) => a.localeCompare(b)).map(([k, v]) => `${k}=${v}`).join(',')}`;

export class AlertEngine {
  private states = new Map<string, State>();
  private prev: StackSnapshot | undefined;
  /** Each rule's observations at the last evaluation (values below the thresholds included). */
  private lastObserved = new Map<string, { labels: Record<string, string>; value: number }[]>();

  constructor(readonly rules: Rule[], private readonly opts: EngineOptions) {}

  /** Evaluates every rule against a new snapshot; returns the transitions it caused. */
  evaluate(snap: StackSnapshot, now: number): Transition[] {
    const transitions: Transition[] = [];
    const seen = new Set<string>();
    this.lastObserved = new Map();
    for (const rule of this.rules) {
      const observations = rule.observe(snap, this.prev, this.opts.context);
      this.lastObserved.set(rule.name, observations.map((o) => ({ labels: o.labels, value: o.value })));
      for (const obs of observations) {
        const key = keyOf(rule.name, obs.labels);
        seen.add(key);
        let st = this.states.get(key);
        if (!st) {
          st = { rule, labels: obs.labels, severity: null, pendingSince: undefined, firingSince: undefined, clearSince: undefined, value: obs.value, summary: '' };
          this.states.set(key, st);
        }
        st.value = obs.value;
        st.summary = obs.describe(obs.value);
        this.step(st, now, transitions);
      }
    }
    // Instances that vanished (a pool gone, a session ended) count as clear.
    for (const [key, st] of this.states) {
      if (seen.has(key)) continue;
      st.value = 0;
      this.step(st, now, transitions);
    }
    this.prev = snap;
    return transitions;
  }

  private step(st: State, now: number, out: Transition[]): void {
    const { rule } = st;
    // A firing level holds while the value stays above its lowered threshold; rising to a
    // higher level needs the full threshold.
    const held = st.severity ? lower(level(rule, st.value, 1 - this.opts.hysteresis), st.severity) : null;
    const desired = higher(level(rule, st.value, 1), held);

    if (st.severity === null) {
      if (desired === null) {
        this.states.delete(keyOf(rule.name, st.labels));
        return;
      }
      st.pendingSince ??= now;
      if (now - st.pendingSince >= (rule.forMs ?? this.opts.defaultForMs)) {
        st.severity = desired;
        st.firingSince = now;
        st.clearSince = undefined;
        out.push({ kind: 'firing', alert: this.item(st) });
      }
      return;
    }
    if (desired === null) {
      st.clearSince ??= now;
      if (now - st.clearSince >= this.opts.resolveForMs) {
        out.push({ kind: 'resolved', alert: this.item(st) });
        this.states.delete(keyOf(rule.name, st.labels));
      }
      return;
    }
    st.clearSince = undefined;
    if (desired !== st.severity) {
      const previousSeverity = st.severity;
      st.severity = desired;
      out.push({ kind: 'severity_changed', alert: this.item(st), previousSeverity });
    }
  }

  private item(st: State): AlertItem {
    const severity = st.severity ?? 'WARNING';
    return {
      name: st.rule.name,
      severity,
      summary: st.summary,
      labels: st.labels,
      since: new Date(st.firingSince ?? st.pendingSince ?? 0).toISOString(),
      value: Math.round(st.value * 1000) / 1000,
      threshold: (severity === 'CRITICAL' ? st.rule.critical : st.rule.warning) ?? 0,
    };
  }

  /**
   * What a rule observed at the last evaluation: its value per label set, below its thresholds
   * too (the metrics that let Prometheus's rules see what this rule sees: metrics.ts RULE_VALUES).
   */
  observed(rule: string): { labels: Record<string, string>; value: number }[] {
    return this.lastObserved.get(rule) ?? [];
  }

  /** Alerts firing now, most severe first. */
  firing(): AlertItem[] {
    return [...this.states.values()]
      .filter((s) => s.severity !== null)
      .map((s) => this.item(s))
      .sort((a, b) => RANK[b.severity] - RANK[a.severity] || a.name.localeCompare(b.name));
  }

  /** Per rule: how many instances fire at each severity (for the alert-state metric). */
  countsByRule(): { rule: string; severity: Severity; count: number }[] {
    const out: { rule: string; severity: Severity; count: number }[] = [];
    for (const rule of this.rules) {
      for (const severity of ['WARNING', 'CRITICAL'] as const) {
        let count = 0;
        for (const s of this.states.values()) if (s.rule.name === rule.name && s.severity === severity) count += 1;
        out.push({ rule: rule.name, severity, count });
      }
    }
    return out;
  }
}
