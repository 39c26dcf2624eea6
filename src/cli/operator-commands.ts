// `remocal operator …` and `remocal session …`: run the operator, and see and end the sessions it holds.

import type { Command } from 'commander';
import { loadConfig, type ConfigFlags } from '../config/index.js';
import { UsageError } from '../core/errors.js';

interface PortItem {
  port: number;
  mode: string;
  filter: Record<string, unknown> | null;
  since: string | null;
  overlaps?: { session: string; owner: string; request: string }[];
}

/** The target as asked, and, for a session on a copy, the copy it runs against. */
function targetCell(item: SessionItem): string {
  const copy = item.spec.copy;
  return copy === undefined ? item.spec.target : `${item.spec.target} (copy pod/${copy.pod}${copy.scaledDown ? ', scaled down' : ''})`;
}

interface SessionItem {
  metadata: { name: string; creationTimestamp: string | null };
  spec: { owner: string; target: string; copy?: { pod: string; scaledDown: boolean } };
  status: { phase: string; lastActivity: string | null; routedRequests: number; ports: PortItem[]; closeReason: string | null };
}

/**
 * The operator these commands talk to: the local-mode one at local_operator.url when it is set, else the one in
 * the cluster of the kubeconfig, through its API server with the kubeconfig's credentials (RBAC applies), in the
 * namespace of the config (target.namespace, else the context's).
 */
export async function operatorClient(options: { configFile?: string } & ConfigFlags) {
  const { configFile, ...flags } = options;
  const { config } = loadConfig({ cwd: process.cwd(), file: configFile, env: process.env, flags });
  const { operatorAddress, operatorRequest, OPERATOR_API_PREFIX, OPERATOR_LOCAL_NAMESPACE } = await import('../platform/operator/client.js');
  let address;
  let namespace: string;
  if (config.local_operator.url !== undefined) {
    address = operatorAddress({ url: config.local_operator.url, token: config.local_operator.token, caFile: config.local_operator.ca_file });
    namespace = OPERATOR_LOCAL_NAMESPACE;
  } else {
    const [{ connectKube }, { apiServerAddress }] = await Promise.all([import('../platform/kubernetes/api.js'), import('../platform/operator/kube-platform.js')]);
    const kube = connectKube({ kubeconfig: config.kubeconfig, context: config.kube_context, namespace: config.target.namespace });
    address = await apiServerAddress(kube);
    namespace = kube.namespace;
  }
  const scoped = address;
  return {
    address: scoped,
    namespace,
    request: <T>(method: string, path: string) => operatorRequest<T>(scoped, method, `${OPERATOR_API_PREFIX}${path}`),
  };
}

function age(from: string | null, now = Date.now()): string {
  if (from === null) return '-';
  const seconds = Math.max(0, Math.round((now - Date.parse(from)) / 1000));
  if (seconds < 120) return `${seconds}s`;
  if (seconds < 7200) return `${Math.round(seconds / 60)}m`;
  return `${Math.round(seconds / 3600)}h`;
}

function formatPorts(item: SessionItem): string {
  return item.status.ports.map((port) => `${port.port}:${port.filter === null ? port.mode : `steal ${JSON.stringify(port.filter)}`}`).join(' ') || '-';
}

/** A filter as its owner wrote it, shortest first: a lone header regex as itself. */
function describeFilter(filter: Record<string, unknown>): string {
  const { ports: _ports, ...predicate } = filter;
  const keys = Object.keys(predicate);
  if (keys.length === 1 && keys[0] === 'header_filter') return `\`${String(predicate.header_filter)}\``;
  if (keys.length === 1 && keys[0] === 'path_filter') return `path \`${String(predicate.path_filter)}\``;
  if (keys.length === 1 && keys[0] === 'method_filter') return `method ${String(predicate.method_filter)}`;
  return JSON.stringify(predicate);
}

function clock(iso: string | null): string {
  if (iso === null) return '?';
  const at = new Date(iso);
  return `${String(at.getHours()).padStart(2, '0')}:${String(at.getMinutes()).padStart(2, '0')}`;
}

/**
 * Per target and port, who holds it and how: the lock of a whole steal, the filters sharing it (with the pairs of
 * sessions whose filters matched one request), the mirrors.
 *   8080  locked by alice (session 1a2b3c4d) since 10:42
 *   8080  filtered: alice `^x-dev: alice$`, bob `^x-dev: bob$` — overlap alice/bob on GET /x
 */
function portsView(items: SessionItem[]): string {
  const byTarget = new Map<string, Map<number, { item: SessionItem; held: PortItem }[]>>();
  for (const item of items) {
    if (item.status.phase === 'Closed') continue;
    const ports = byTarget.get(item.spec.target) ?? new Map<number, { item: SessionItem; held: PortItem }[]>();
    byTarget.set(item.spec.target, ports);
    for (const held of item.status.ports) ports.set(held.port, [...(ports.get(held.port) ?? []), { item, held }]);
  }
  const lines: string[] = [];
  for (const [target, ports] of byTarget) {
    if (ports.size === 0) continue;
    lines.push(target);
    for (const [port, holders] of [...ports].sort(([a], [b]) => a - b)) {
      const who = ({ item }: { item: SessionItem }) => `${item.spec.owner} (session ${item.metadata.name})`;
      const column = `  ${port}  `;
      for (const holder of holders.filter(({ held }) => held.mode === 'steal' && held.filter === null)) {
        lines.push(`${column}locked by ${who(holder)} since ${clock(holder.held.since)}`);
      }
      const filtered = holders.filter(({ held }) => held.filter !== null);
      if (filtered.length > 0) {
        const overlaps = new Map<string, string>();
        for (const { item, held } of filtered) {
          for (const other of held.overlaps ?? []) {
            const pair = [item.spec.owner, other.owner];
            const key = [item.metadata.name, other.session].sort().join(' ');
            if (!overlaps.has(key)) overlaps.set(key, `overlap ${pair.join('/')} on ${other.request}`);
          }
        }
        const filters = filtered.map(({ item, held }) => `${item.spec.owner} ${describeFilter(held.filter!)}`).join(', ');
        lines.push(`${column}filtered: ${filters}${overlaps.size === 0 ? '' : ` — ${[...overlaps.values()].join('; ')}`}`);
      }
      const mirrors = holders.filter(({ held }) => held.mode === 'mirror');
      if (mirrors.length > 0) lines.push(`${column}mirrored by ${mirrors.map(who).join(', ')}`);
    }
  }
  return lines.length === 0 ? '' : `\n${lines.join('\n')}\n`;
}

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, column) => Math.max(...rows.map((row) => row[column]!.length)));
  return rows.map((row) => row.map((cell, column) => (column === row.length - 1 ? cell : cell.padEnd(widths[column]!))).join('  ')).join('\n') + '\n';
}

export function registerOperatorCommands(program: Command, addConfigFlags: (command: Command) => Command): void {
  const operator = program.command('operator').summary('run the remocal operator, or ask it how it is').description('The operator shares one agent per target between many sessions, so that a team can steal one port, each developer with an HTTP filter. See docs/operator.md.');

  operator
    .command('serve')
    .summary('run the operator: local mode (this host\'s targets) or Kubernetes mode (behind the API server)')
    .description('Serves the operator API over HTTPS and owns one shared agent per target. In local mode (the default) its users are the ones of its config, each with a token; in Kubernetes mode (mode: kubernetes, as `remocal operator setup` installs it) it serves the aggregated API operator.remocal.dev, believing only the API server\'s front proxy, and checks access with SubjectAccessReviews. Runs until SIGINT or SIGTERM; its agents end with it.')
    .requiredOption('--config <file>', 'the operator config (YAML or JSON; docs/operator.md)')
    .addHelpText('after', '\nExample:\n  sudo remocal operator serve --config /etc/remocal/operator.yaml')
    .action(async (options: { config: string }) => {
      const { loadOperatorConfig } = await import('../operator/config.js');
      const { startOperator } = await import('../operator/server.js');
      const running = await startOperator(loadOperatorConfig(options.config));
      process.stdout.write(`remocal operator listening at ${running.url}${running.caFile === undefined ? '' : `; clients trust ${running.caFile} (local_operator.ca_file)`}\n`);
      const signal = await new Promise<NodeJS.Signals>((resolve) => {
        for (const name of ['SIGINT', 'SIGTERM'] as const) process.once(name, () => resolve(name));
      });
      running.log.info({ signal }, 'stopping: ending every agent');
      await running.close();
      process.exitCode = 0;
    });

  operator
    .command('setup')
    .summary('print the YAML that installs the operator in a cluster')
    .description('Prints the operator\'s install (the policy CRDs, namespace, RBAC, TLS secret, Deployment, Service, APIService) as one YAML stream, with a fresh CA and serving certificate made with openssl. The operator then serves operator.remocal.dev behind the API server, and `remocal exec` on a Kubernetes target uses it once its APIService is Available. See docs/operator.md.')
    .option('--namespace <ns>', 'the operator\'s namespace', 'remocal-system')
    .option('--image <image>', 'the operator image (default: remocal/operator:<this version>)')
    .option('--agent-image <image>', 'the image of the agents the operator starts next to targets (default: remocal/agent:<this version>)')
    .option('--print-certs', 'print only a new certificate, as a values file for charts/remocal-operator')
    .option('--crds', 'print only the CRDs (RemocalPolicy, RemocalClusterPolicy, RemocalSplitConfig), e.g. to upgrade those a Helm install made')
    .addHelpText('after', '\nExamples:\n  remocal operator setup | kubectl apply -f -\n  remocal operator setup --print-certs > certs.yaml && helm install remocal-operator charts/remocal-operator -f certs.yaml\n  remocal operator setup --crds | kubectl apply -f -')
    .action(async (options: { namespace: string; image?: string; agentImage?: string; printCerts?: boolean; crds?: boolean }) => {
      const { operatorInstallObjects, operatorServiceNames, installYaml, certificateValuesYaml, policyCrdsYaml, splitConfigCrdYaml } = await import('../operator/install.js');
      if (options.crds) {
        process.stdout.write(policyCrdsYaml() + splitConfigCrdYaml());
        return;
      }
      const { issueWithThrowawayCa } = await import('../operator/tls.js');
      const { packageVersion } = await import('../core/paths.js');
      // A namespace is a DNS label: anything else would give a certificate for a name the aggregator never dials.
      if (!/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/.test(options.namespace)) throw new UsageError(`--namespace ${JSON.stringify(options.namespace)} is not a namespace name (lower-case letters, digits and -, at most 63).`);
      const certificate = issueWithThrowawayCa(operatorServiceNames(options.namespace));
      if (options.printCerts) {
        process.stdout.write(certificateValuesYaml(certificate));
        return;
      }
      const objects = operatorInstallObjects({ namespace: options.namespace, image: options.image ?? `remocal/operator:${packageVersion()}`, agentImage: options.agentImage, certificate });
      process.stdout.write(installYaml(objects, options.namespace));
    });

  addConfigFlags(operator.command('status'))
    .summary('the operator\'s version, agents and sessions')
    .option('-f, --config-file <file>', 'a config file; default: .remocal/config.{json,yaml} found upwards from here')
    .option('--json', 'machine-readable output')
    .action(async (options: ConfigFlags & { configFile?: string; json?: boolean }) => {
      const { json, ...rest } = options;
      const client = await operatorClient(rest);
      const agents = await client.request<{ version: string; items: { target: string; agent: string; startedAt: string; sessions: number }[] }>('GET', '/agents');
      const sessions = await client.request<{ items: SessionItem[] }>('GET', '/sessions');
      const live = sessions.items.filter((item) => item.status.phase !== 'Closed');
      if (json) {
        process.stdout.write(`${JSON.stringify({ url: client.address.url, version: agents.version, healthy: true, agents: agents.items, sessions: live.length }, null, 2)}\n`);
        return;
      }
      process.stdout.write(`operator ${client.address.url}: healthy, version ${agents.version}\n${agents.items.length} agent(s), ${live.length} live session(s)\n`);
      if (agents.items.length > 0) process.stdout.write(table([['AGENT FOR', 'AGENT', 'SESSIONS', 'AGE'], ...agents.items.map((agent) => [agent.target, agent.agent, String(agent.sessions), age(agent.startedAt)])]));
    });

  const queues = program.command('queues').summary('queue splitting on the operator (docs/queues.md)');
  addConfigFlags(queues.command('status'))
    .summary('the queues being split, with how many messages went to each destination')
    .description('For each queue the operator splits (feature.split_queues of live sessions): the deployed app\'s destination and every session\'s, with the messages the broker confirmed to it, how many of those it had delivered before (possible duplicates), and how many went back to the queue when a session ended.')
    .option('-f, --config-file <file>', 'a config file; default: .remocal/config.{json,yaml} found upwards from here')
    .option('--json', 'machine-readable output')
    .action(async (options: ConfigFlags & { configFile?: string; json?: boolean }) => {
      const { json, ...rest } = options;
      const client = await operatorClient(rest);
      type Destination = { id: string; queue: string; active: boolean; forwarded: number; redelivered: number; drainedBack: number };
      const answer = await client.request<{ items: { spec: { workload: string; queueId: string; queue: string }; status: { destinations: Destination[] } }[] }>('GET', `/namespaces/${client.namespace}/splitqueues`);
      if (json) {
        process.stdout.write(`${JSON.stringify(answer.items, null, 2)}\n`);
        return;
      }
      if (answer.items.length === 0) {
        process.stdout.write(`no queue is being split in namespace ${client.namespace}\n`);
        return;
      }
      const rows = [['WORKLOAD', 'QUEUE', 'DESTINATION', 'FORWARDED', 'REDELIVERED', 'DRAINED BACK', 'ACTIVE']];
      for (const item of answer.items) {
        for (const destination of item.status.destinations) {
          rows.push([item.spec.workload, `${item.spec.queueId} (${item.spec.queue})`, destination.id === 'deployed' ? 'deployed app' : `session ${destination.id}`, String(destination.forwarded), String(destination.redelivered), String(destination.drainedBack), destination.active ? 'yes' : 'no']);
        }
      }
      process.stdout.write(table(rows));
    });

  const session = program.command('session').summary('list and end sessions on the operator (local_operator.url, else the one in the kubeconfig\'s cluster)');
  addConfigFlags(session.command('list'))
    .summary('the sessions on the operator, with their ports and filters')
    .description('Lists live sessions, with who owns each, its target, the ports it holds (and filters), its last activity and how many requests reached it. Closed ones are shown with --all, with why they closed.')
    .option('-f, --config-file <file>', 'a config file; default: .remocal/config.{json,yaml} found upwards from here')
    .option('--all', 'closed sessions too, with their close reasons')
    .option('--json', 'machine-readable output')
    .action(async (options: ConfigFlags & { configFile?: string; all?: boolean; json?: boolean }) => {
      const { all, json, ...rest } = options;
      const client = await operatorClient(rest);
      const answer = await client.request<{ items: SessionItem[] }>('GET', `/namespaces/${client.namespace}/sessions`);
      const items = answer.items.filter((item) => all || item.status.phase !== 'Closed');
      if (json) {
        process.stdout.write(`${JSON.stringify(items, null, 2)}\n`);
        return;
      }
      if (items.length === 0) {
        process.stdout.write(all ? 'no sessions\n' : 'no live sessions (--all shows closed ones)\n');
        return;
      }
      const rows = [['ID', 'OWNER', 'TARGET', 'PHASE', 'PORTS', 'ROUTED', 'ACTIVE', 'AGE', ...(all ? ['CLOSED BECAUSE'] : [])]];
      for (const item of items) {
        rows.push([item.metadata.name, item.spec.owner, targetCell(item), item.status.phase, formatPorts(item), String(item.status.routedRequests), `${age(item.status.lastActivity)} ago`, age(item.metadata.creationTimestamp), ...(all ? [item.status.closeReason ?? '-'] : [])]);
      }
      process.stdout.write(table(rows) + portsView(items));
    });

  addConfigFlags(session.command('kill'))
    .summary('end a session (yours; anyone\'s if you are an admin)')
    .argument('[id]', 'the session id, from `remocal session list`')
    .option('--mine', 'every live session of yours (the operator knows you by your token)')
    .option('-f, --config-file <file>', 'a config file; default: .remocal/config.{json,yaml} found upwards from here')
    .addHelpText('after', '\nExamples:\n  remocal session kill 1a2b3c4d\n  remocal session kill --mine')
    .action(async (id: string | undefined, options: ConfigFlags & { configFile?: string; mine?: boolean }) => {
      const { mine, ...rest } = options;
      if ((id === undefined) === !mine) throw new UsageError('Say which session to end: an id, or --mine for all of yours.');
      const client = await operatorClient(rest);
      let ids: string[];
      if (id !== undefined) {
        ids = [id];
      } else {
        const answer = await client.request<{ items: SessionItem[] }>('GET', `/namespaces/${client.namespace}/sessions?owner=me`);
        ids = answer.items.filter((item) => item.status.phase !== 'Closed').map((item) => item.metadata.name);
        if (ids.length === 0) process.stdout.write('you have no live session\n');
      }
      for (const each of ids) {
        await client.request('DELETE', `/namespaces/${client.namespace}/sessions/${encodeURIComponent(each)}`);
        process.stdout.write(`session ${each} ended\n`);
      }
    });
}
