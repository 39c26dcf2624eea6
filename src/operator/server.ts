// `remocal operator serve`: the operator as one process. It serves its API over HTTPS, owns one shared agent per
// target, and keeps the sessions' records. Local mode serves the targets of this host to the users of its
// config; Kubernetes mode serves the cluster's workloads behind the API server (the aggregated API
// operator.remocal.dev). See docs/operator.md.

import { chmodSync, mkdirSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { packageVersion } from '../core/paths.js';
import { createLogger, type Logger } from '../core/log.js';
import { AgentPool, type AgentLauncher } from './agents.js';
import { createApi } from './api.js';
import type { TargetCatalog } from './catalog.js';
import type { OperatorConfig } from './config.js';
import { frontProxyTlsOptions } from './front-proxy.js';
import { TokenAuthenticator, type Authenticator } from './identity.js';
import { LocalAgentLauncher } from './local-agents.js';
import { LocalCatalog } from './local-catalog.js';
import type { QueueDriver } from './queues/driver.js';
import type { QueueType } from '../protocol/split-queues.js';
import { NoJobSteps, type JobSteps } from './job-steps.js';
import { LocalPolicySource } from './policies/local-source.js';
import { PolicyStore, type PolicySource } from './policies/store.js';
import { SessionRegistry } from './sessions.js';
import { servingCertificate, type ServingCertificate } from './tls.js';

export { LOCAL_NAMESPACE } from './local-catalog.js';

/** A broker's driver, its client loaded only when a split of that broker's queues starts. */
async function connectQueueDriver(queueType: QueueType, url: string): Promise<QueueDriver> {
  if (queueType === 'RMQ') return (await import('./queues/rabbitmq.js')).connectRabbitMq({ url });
  return (await import('./queues/nats.js')).connectNats({ url });
}

export interface RunningOperator {
  url: string;
  caFile: string | undefined;
  log: Logger;
  close(): Promise<void>;
}

/** What differs between the modes: who the users are, what the targets are, how agents start. */
interface Mode<T> {
  auth: Authenticator;
  catalog: TargetCatalog<T>;
  launcher: AgentLauncher<T>;
  /** TLS options beyond the certificate (Kubernetes mode asks for the front proxy's client certificate). */
  tls: Record<string, unknown>;
  /** Where the policies come from: files in local mode, the custom resources in Kubernetes mode. */
  policies: PolicySource | undefined;
  /** Runs the steps of sessions' actions that run in the cluster. */
  jobSteps: JobSteps;
  /** Starts what runs beside the server (the ConfigMap reload); given the server, to swap its TLS context. */
  start?(server: Server): void;
  close?(): void;
}

function localMode(config: OperatorConfig, log: Logger): Mode<unknown> {
  return {
    auth: new TokenAuthenticator(config.users),
    catalog: new LocalCatalog(config.targets) as TargetCatalog<unknown>,
    launcher: new LocalAgentLauncher(config.state_dir, log) as AgentLauncher<unknown>,
    tls: {},
    policies: config.policies.dir === undefined ? undefined : new LocalPolicySource(config.policies.dir, config.policies.reload * 1000, log),
    jobSteps: new NoJobSteps(),
  };
}

async function kubernetesMode(config: OperatorConfig, log: Logger, certificate: ServingCertificate, isLive: (session: string) => boolean): Promise<Mode<unknown>> {
  // Loaded only in this mode: the Kubernetes client is large.
  const [{ connectKube }, { ReloadingFrontProxyAuthenticator }, { AccessReviewer, KubeCatalog }, { KubeAgentLauncher }, { KubePolicySource }, { CopyTargets }, { KubeJobSteps }, { SplitSessions }, { WorkloadEnv }] = await Promise.all([
    import('../platform/kubernetes/api.js'),
    import('./kube-auth.js'),
    import('./kube-catalog.js'),
    import('./kube-agents.js'),
    import('./policies/kube-source.js'),
    import('./copy-targets.js'),
    import('./kube-job-steps.js'),
    import('./queues/split-sessions.js'),
    import('./queues/workload-env.js'),
  ]);
  const settings = config.kubernetes;
  const kube = connectKube(settings.kubeconfig === undefined ? { inCluster: true } : { kubeconfig: settings.kubeconfig });
  const auth = await ReloadingFrontProxyAuthenticator.load(kube);
  const agent = settings.agent;
  const copies = new CopyTargets(kube, log, { startupTimeoutMs: config.agents.startup_timeout * 1000 }, isLive);
  // Sessions do not outlive the operator: what a previous run left (copies, workloads at 0) goes before the first one.
  const reconciled = await copies.reconcile();
  if (reconciled.length > 0) log.info({ reconciled }, 'removed what copy-target sessions of a previous run left');
  const splits = new SplitSessions(kube, new WorkloadEnv(kube, log, isLive), connectQueueDriver, log);
  // Likewise a workload a previous run split reads its own queue again, and what waited in that run's temporary
  // queues goes back to it. Not fatal: the operator may lack the rights to look (no split configs in this cluster),
  // and sessions that do not split need none of it.
  await splits.recover().then(
    (recovered) => recovered.length > 0 && log.info({ recovered }, 'put back the queues split-queue sessions of a previous run left split'),
    (error: unknown) => log.warn({ err: error }, 'could not look for workloads a previous run left split'),
  );
  const reviewer = new AccessReviewer(kube, log);
  return {
    auth,
    catalog: new KubeCatalog(kube, reviewer, copies, splits) as TargetCatalog<unknown>,
    jobSteps: new KubeJobSteps(kube, reviewer, log),
    launcher: new KubeAgentLauncher(kube, {
      placement: {
        image: agent.image ?? `remocal/agent:${packageVersion()}`,
        labels: { 'remocal.dev/operator': 'true' },
        annotations: {},
        tolerations: [],
        nodeSelector: {},
        resources: {},
        serviceAccount: undefined,
        privileged: agent.privileged,
        ttlSeconds: agent.ttl,
        logLevel: agent.log_level,
      },
      ephemeral: agent.ephemeral,
      startupTimeoutMs: config.agents.startup_timeout * 1000,
    }) as AgentLauncher<unknown>,
    tls: frontProxyTlsOptions(auth.frontProxy),
    policies: new KubePolicySource(kube, log),
    start: (server) =>
      auth.watch(kube, settings.authentication_reload * 1000, log, (changed) => {
        server.setSecureContext({ cert: certificate.cert, key: certificate.key, ...frontProxyTlsOptions(changed) });
      }),
    close: () => auth.close(),
  };
}

export async function startOperator(config: OperatorConfig): Promise<RunningOperator> {
  const log = createLogger('operator', { level: config.log_level });
  // Sockets of root's agents and the CA's key live here: nobody else may look.
  mkdirSync(config.state_dir, { recursive: true, mode: 0o700 });
  chmodSync(config.state_dir, 0o700);
  const certificate = servingCertificate(config.state_dir, config.tls);
  let registry: SessionRegistry<unknown> | undefined;
  const mode = config.mode === 'kubernetes' ? await kubernetesMode(config, log, certificate, (session) => registry?.isLive(session) ?? false) : localMode(config, log);
  const agents = new AgentPool<unknown>({
    launcher: mode.launcher,
    log,
    graceMs: config.agents.grace * 1000,
    startupTimeoutMs: config.agents.startup_timeout * 1000,
    onSessionState: (event) => registry?.onSessionState(event),
    onAgentLost: (key, reason) => registry?.onAgentLost(key, reason),
  });
  const orphans = await agents.removeOrphans();
  if (orphans.length > 0) log.info({ orphans }, 'ended the agents a previous run left behind');
  // Not fatal: sessions do not need it, and each step's Job carries a TTL that removes it anyway.
  await mode.jobSteps.removeOrphans().then(
    (jobs) => jobs.length > 0 && log.info({ jobs }, 'deleted the job steps a previous run left behind'),
    (error: unknown) => log.warn({ err: error }, 'could not look for the job steps a previous run left behind'),
  );
  // Loaded before the first session can open: none may start without the policies that apply to it.
  const policies = new PolicyStore();
  await mode.policies?.start(policies);
  registry = new SessionRegistry(agents, mode.catalog, config.sessions, log, policies);
  const api = createApi({ sessions: registry, agents, auth: mode.auth, jobSteps: mode.jobSteps, log });
  // HTTP/1.1: session streams are WebSockets, which the Kubernetes aggregator too dials over HTTP/1.1.
  const server = createServer({ cert: certificate.cert, key: certificate.key, minVersion: 'TLSv1.2', ...mode.tls }, api.onRequest);
  server.on('upgrade', api.onUpgrade);
  // Streams are long-lived and idle between requests: Node's request timeouts would cut them.
  server.requestTimeout = 0;
  server.headersTimeout = 10_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(config.listen.port, config.listen.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  mode.start?.(server);
  const { port } = server.address() as AddressInfo;
  const host = config.listen.host === '0.0.0.0' || config.listen.host === '::' ? '127.0.0.1' : config.listen.host;
  const url = `https://${host.includes(':') ? `[${host}]` : host}:${port}`;
  log.info({ url, mode: config.mode, caFile: certificate.caFile }, 'operator listening');
  return {
    url,
    caFile: certificate.caFile,
    log,
    async close() {
      mode.close?.();
      mode.policies?.close();
      server.close();
      server.closeAllConnections();
      registry?.close();
      await agents.close();
      await registry?.settled();
    },
  };
}
