// `remocal operator serve`: the operator as one process. It serves its API over HTTPS, owns one shared agent per
// target, and keeps the sessions' records. Local mode serves the targets of this host to the users of its
// config; see docs/operator.md.

import { chmodSync, mkdirSync } from 'node:fs';
import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { createLogger, type Logger } from '../core/log.js';
import type { ResolvedLocalTarget } from '../platform/local.js';
import { AgentPool } from './agents.js';
import { createApi } from './api.js';
import type { OperatorConfig } from './config.js';
import { TokenAuthenticator } from './identity.js';
import { LocalAgentLauncher } from './local-agents.js';
import { LocalCatalog } from './local-catalog.js';
import { SessionRegistry } from './sessions.js';
import { servingCertificate } from './tls.js';

export { LOCAL_NAMESPACE } from './local-catalog.js';

export interface RunningOperator {
  url: string;
  caFile: string | undefined;
  log: Logger;
  close(): Promise<void>;
}

export async function startOperator(config: OperatorConfig): Promise<RunningOperator> {
  const log = createLogger('operator', { level: config.log_level });
  // Sockets of root's agents and the CA's key live here: nobody else may look.
  mkdirSync(config.state_dir, { recursive: true, mode: 0o700 });
  chmodSync(config.state_dir, 0o700);
  const tls = servingCertificate(config.state_dir, config.tls);
  let registry: SessionRegistry<ResolvedLocalTarget> | undefined;
  const agents = new AgentPool<ResolvedLocalTarget>({
    launcher: new LocalAgentLauncher(config.state_dir, log),
    log,
    graceMs: config.agents.grace * 1000,
    startupTimeoutMs: config.agents.startup_timeout * 1000,
    onSessionState: (event) => registry?.onSessionState(event),
    onAgentLost: (key, reason) => registry?.onAgentLost(key, reason),
  });
  const orphans = await agents.removeOrphans();
  if (orphans.length > 0) log.info({ orphans }, 'ended the agents a previous run left behind');
  registry = new SessionRegistry(agents, new LocalCatalog(config.targets), config.sessions, log);
  const api = createApi({ sessions: registry, agents, auth: new TokenAuthenticator(config.users), log });
  // HTTP/1.1: session streams are WebSockets, which the Kubernetes aggregator too dials over HTTP/1.1.
  const server = createServer({ cert: tls.cert, key: tls.key, minVersion: 'TLSv1.2' }, api.onRequest);
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
  const { port } = server.address() as AddressInfo;
  const host = config.listen.host === '0.0.0.0' || config.listen.host === '::' ? '127.0.0.1' : config.listen.host;
  const url = `https://${host.includes(':') ? `[${host}]` : host}:${port}`;
  log.info({ url, caFile: tls.caFile }, 'operator listening');
  return {
    url,
    caFile: tls.caFile,
    log,
    async close() {
      server.close();
      server.closeAllConnections();
      registry?.close();
      await agents.close();
    },
  };
}
