// The monitor: clients, poll loop, alert engine, metrics registry and the periodic summary,
// wired together. main.ts owns the process; tests can build one against real backends.
import type { Logger } from 'pino';
import { Registry, collectDefaultMetrics } from 'prom-client';
import { AlertEngine, type Transition } from './alerts/engine.js';
import { DEFAULT_RULES, applyOverrides } from './alerts/rules.js';
import { createAlertmanager } from './alerts/alertmanager.js';
import { createWebhook } from './alerts/webhook.js';
import { createClients, createMoreInstances, createSources, type StackClients } from './clients.js';
import { healthBody } from './health.js';
import { History } from './history.js';
import { registerMetrics } from './metrics.js';
import { Poller } from './poller.js';
import { poolScope } from './pools.js';
import { postgresInstances, type StackSamples, type StackSnapshot } from './snapshot.js';
import type { Config } from './types.js';
import { liveSettingsOf, plan, planInputFromLive } from './views/plan.js';
import { StatementHistory } from './views/queries.js';
import { REPLICA_LAGGING_SECONDS, replicasHealth } from './views/replication.js';
import { historyFigures } from './views/status.js';

export interface Monitor {
  poller: Poller<StackSamples>;
  engine: AlertEngine;
  registry: Registry;
  clients: StackClients;
  /** The lag from which /health calls a replica lagging: replica_lag's WARNING level (after SIDECAR_ALERT_RULES). */
  replicaLaggingSeconds: number;
  /** Each Postgres instance's recent pg_stat_statements counters (GET /queries?since=). */
  statementHistory(instance: string): StatementHistory | undefined;
  /** The figures that move, one point a poll (GET /history, the status page). */
  history: History;
  start(): Promise<void>;
  stop(): Promise<void>;
}

export function createMonitor(config: Config, logger: Logger): Monitor {
  // A connection lost between polls triggers a poll right away, so /health says so at once.
  const clients = createClients(config, logger, () => poller.pollSoon());
  const pools = poolScope(config);
  const rules = applyOverrides(DEFAULT_RULES, config.alerts.overrides);
  // Each Postgres instance's pg_stat_statements history (GET /queries?since=, slow_statement).
  const histories = new Map<string, StatementHistory>();
  const replicaLaggingSeconds = rules.find((r) => r.name === 'replica_lag')?.warning ?? REPLICA_LAGGING_SECONDS;
  const engine = new AlertEngine(rules, {
    defaultForMs: config.alerts.forMs,
    resolveForMs: config.alerts.resolveForMs,
    hysteresis: config.alerts.hysteresis,
    context: { pools, statementHistory: (instance) => histories.get(instance) },
  });
  const history = new History(config.historyPoints, config.pollIntervalMs);
  let previous: StackSnapshot | undefined;
  const webhook = config.alerts.webhook ? createWebhook({ ...config.alerts.webhook, logger }) : undefined;
  const alertmanager = config.alerts.alertmanager ? createAlertmanager({ ...config.alerts.alertmanager, logger }) : undefined;

  const onTransition = (t: Transition) => {
    const { alert } = t;
    const fields = { alert: alert.name, severity: alert.severity, labels: alert.labels, value: alert.value, threshold: alert.threshold, since: alert.since, previousSeverity: t.previousSeverity };
    if (t.kind === 'resolved') logger.info(fields, `alert resolved: ${alert.summary}`);
    else logger.warn(fields, `alert ${t.kind === 'firing' ? 'firing' : 'severity changed'}: ${alert.severity}: ${alert.summary}`);
    void webhook?.send(t);
    void alertmanager?.transition(t);
  };

  const poller: Poller<StackSamples> = new Poller<StackSamples>(
    createSources(clients, {
      sourceTimeoutMs: config.sourceTimeoutMs,
      knownDatabases: () => poller.snapshot.sources.pgbouncer.sample?.databases.map((d) => d.name),
      pgdataPath: config.pgdataPath,
      backupStatusPath: config.backupStatusPath,
      postgresInstance: config.postgres.host,
    }),
    {
    intervalMs: config.pollIntervalMs,
    downIntervalMs: config.downPollIntervalMs,
    timeoutMs: config.sourceTimeoutMs,
    onPoll: () => {
      const now = Date.now();
      for (const { instance, state } of postgresInstances(poller.snapshot)) {
        let h = histories.get(instance);
        if (!h) histories.set(instance, (h = new StatementHistory()));
        h.record(now, state.sample?.statements);
      }
      for (const t of engine.evaluate(poller.snapshot, now)) onTransition(t);
      history.record(now, historyFigures(poller.snapshot, previous, pools, engine.firing().length));
      previous = poller.snapshot;
    },
    onSourceError: (source, err, first) => {
      if (first) logger.warn({ source, err }, `${source} down`);
    },
    onSourceRecovered: (source) => logger.info({ source }, `${source} up`),
    onSourceRestarted: (source, reason) => logger.warn({ source, reason }, `${source} restarted: ${reason}`),
    },
    createMoreInstances(clients, config),
  );

  const registry = new Registry();
  registerMetrics(registry, () => ({ snapshot: poller.snapshot, alerts: engine }), pools);
  // The sidecar's own process_* and nodejs_* series (prom-client's defaults), as every Prometheus
  // exporter serves its own: dashboard 9628's exporter panels read process_*. They are read from
  // /proc at render time, which cachedRender does once per poll.
  collectDefaultMetrics({ register: registry });

  let summaryTimer: NodeJS.Timeout | undefined;
  let resendTimer: NodeJS.Timeout | undefined;
  const summary = () => {
    const h = healthBody(poller.snapshot, { isShuttingDown: false, redisStatus: clients.redis.status, now: new Date(), pools, replicaLaggingSeconds });
    const redisInfo = poller.snapshot.sources.redis.sample?.info;
    logger.info(
      {
        healthy: h.healthy,
        database: { healthy: h.database.healthy, ...h.database.connectionPool, isShuttingDown: undefined },
        postgres: { healthy: h.postgres.healthy, connections: h.postgres.connections, max: h.postgres.maxConnections },
        redis: { status: h.redis.status, available: h.redis.available, connectedClients: redisInfo ? Number(redisInfo.connected_clients) : null },
        ...(config.postgresReplicas.length > 0
          ? { degraded: h.degraded, replicas: replicasHealth(poller.snapshot, replicaLaggingSeconds).map((r) => ({ instance: r.instance, status: r.status, lagSeconds: r.lagSeconds })) }
          : {}),
        alerts: engine.firing().length,
      },
      'summary',
    );
  };

  return {
    poller,
    engine,
    registry,
    clients,
    replicaLaggingSeconds,
    statementHistory: (instance) => histories.get(instance),
    history,
    async start() {
      await poller.start();
      // The connection budget on the live settings, once at start (connection_budget alerts on it later).
      const input = planInputFromLive(liveSettingsOf(poller.snapshot, pools.readDatabase));
      for (const line of input ? plan(input).lines : []) {
        if (line.status !== 'PASS') logger.warn({ budget: line.name, status: line.status, figures: line.figures }, `connection budget ${line.status}: ${line.name}: ${line.figures}. ${line.advice}`);
      }
      if (alertmanager && config.alerts.alertmanager) {
        resendTimer = setInterval(() => void alertmanager.resend(engine.firing()), config.alerts.alertmanager.resendMs);
        resendTimer.unref();
      }
      if (config.summaryIntervalMs > 0) {
        summaryTimer = setInterval(summary, config.summaryIntervalMs);
        summaryTimer.unref();
      }
    },
    async stop() {
      if (summaryTimer) clearInterval(summaryTimer);
      if (resendTimer) clearInterval(resendTimer);
      await poller.stop();
      await webhook?.idle();
      await alertmanager?.idle();
      await clients.close();
    },
  };
}
