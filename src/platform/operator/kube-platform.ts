// Kubernetes targets through the operator in the cluster: the session's requests and its stream go to the API
// server with the user's own kubeconfig credentials, and the API server proxies them to the operator (the
// aggregated API operator.remocal.dev), so the cluster's authentication and RBAC apply as for kubectl. The
// layer and the intproxy do not change: the launch is operator-link, as for a local-mode operator.
//
// `operator: auto` takes this path when the APIService exists and is Available, and the direct one otherwise,
// saying which it took and why.

import { ApiregistrationV1Api } from '@kubernetes/client-node';
import type { RequestOptions } from 'node:https';
import { CopyTargetUnsupportedError, OperatorUnavailableError, SplitConfigError } from '../../core/errors.js';
import type { CopyTargetRequest } from '../../protocol/copy-target.js';
import type { SplitQueuesRequest } from '../../protocol/split-queues.js';
import { apiStatus, connectKube, type Kube } from '../kubernetes/api.js';
import { kubernetesPlatform, type KubePlatformSettings } from '../kubernetes/session.js';
import type { Platform } from '../platform.js';
import { formatTarget, type KubernetesTarget } from '../target.js';
import { OPERATOR_API_PREFIX, operatorRequest, type OperatorAddress } from './client.js';
import { describeOthers, notePolicies, prepareOperatorSession, preparedFrom } from './session.js';

export const OPERATOR_APISERVICE = 'v1.operator.remocal.dev';

/** Whether the cluster's operator can take sessions, and if not, why not (for the progress line or the error). */
export async function clusterOperator(kube: Kube): Promise<{ available: true } | { available: false; why: string }> {
  try {
    const service = await kube.config.makeApiClient(ApiregistrationV1Api).readAPIService({ name: OPERATOR_APISERVICE });
    const condition = (service.status?.conditions ?? []).find((entry) => entry.type === 'Available');
    if (condition?.status === 'True') return { available: true };
    return { available: false, why: `the APIService ${OPERATOR_APISERVICE} is not Available (${condition?.reason ?? 'no condition yet'}${condition?.message ? `: ${condition.message}` : ''})` };
  } catch (error) {
    const status = apiStatus(error);
    if (status?.code === 404) return { available: false, why: `the cluster has no APIService ${OPERATOR_APISERVICE}` };
    if (status?.code === 403) return { available: false, why: `you may not read the APIService ${OPERATOR_APISERVICE} (403), so whether an operator runs is unknown` };
    return { available: false, why: `the APIService ${OPERATOR_APISERVICE} could not be read: ${status?.message ?? (error as Error).message}` };
  }
}

/** The API server as the address of the operator behind it, with the kubeconfig's credentials. */
export async function apiServerAddress(kube: Kube): Promise<OperatorAddress> {
  const options: RequestOptions = {};
  await kube.config.applyToHTTPSOptions(options);
  const headers = Object.fromEntries(Object.entries(options.headers ?? {}).map(([name, value]) => [name, String(value)]));
  const pem = (value: unknown): string | undefined => (value === undefined || value === null ? undefined : Buffer.isBuffer(value) ? value.toString('utf8') : String(value));
  return {
    url: kube.server.replace(/\/+$/, ''),
    token: undefined,
    ca: pem(options.ca),
    cert: pem(options.cert),
    key: pem(options.key),
    headers,
    rejectUnauthorized: options.rejectUnauthorized,
    label: `the operator behind the API server ${kube.server}`,
  };
}

/** What a session's split queues brought it, as the operator counted: one line per queue. */
async function splitSummary(address: OperatorAddress, namespace: string, session: string): Promise<string[]> {
  try {
    const answer = await operatorRequest<{ status: { splitQueues?: { queueId: string; queue: string; sessionQueue: string; forwarded: number; drainedBack: number }[] } }>(
      address,
      'GET',
      `${OPERATOR_API_PREFIX}/namespaces/${encodeURIComponent(namespace)}/sessions/${encodeURIComponent(session)}`,
    );
    return (answer.status.splitQueues ?? []).map(
      (queue) => `queue ${queue.queueId} (${queue.queue}): ${queue.forwarded} message(s) came to this session's ${queue.sessionQueue}${queue.drainedBack > 0 ? `, ${queue.drainedBack} unread went back to ${queue.queue}` : ''}`,
    );
  } catch {
    // A summary is a courtesy: the session's outcome stands without it.
    return [];
  }
}

export function kubeOperatorPlatform(
  settings: KubePlatformSettings,
  operator: { use: true | 'auto'; purpose?: 'exec' | 'port-forward' | undefined; copy?: CopyTargetRequest | undefined; split?: SplitQueuesRequest | undefined },
  connect: typeof connectKube = connectKube,
): Platform<KubernetesTarget> {
  const { use, purpose = 'exec', copy, split } = operator;
  return {
    async prepare(target, request) {
      // The operator shares running pods; a targetless session, or a CronJob's run, has none to share.
      if (use === 'auto' && copy === undefined && (target.kind === 'targetless' || target.kind === 'cronjob')) return kubernetesPlatform(settings, connect).prepare(target, request);
      const kube = connect(settings.kube);
      const looking = request.onStep(`looking for the remocal operator in the cluster (context ${kube.contextName})`);
      const found = await clusterOperator(kube);
      if (!found.available) {
        if (copy !== undefined) {
          throw new CopyTargetUnsupportedError(`feature.copy_target is set, but ${found.why}: copies are made by the remocal operator.`, {
            hint: 'Install it with `remocal operator setup | kubectl apply -f -` (docs/operator.md), or run against the target itself.',
          });
        }
        if (split !== undefined) {
          throw new SplitConfigError(`feature.split_queues is set, but ${found.why}: queues are split by the remocal operator.`, {
            hint: 'Install it with `remocal operator setup | kubectl apply -f -` (docs/operator.md, docs/queues.md), or leave feature.split_queues out.',
          });
        }
        if (use === true) {
          throw new OperatorUnavailableError(`\`operator: true\`, but ${found.why}.`, {
            hint: 'Install it with `remocal operator setup | kubectl apply -f -` (docs/operator.md), or set `operator: auto` to fall back to a session of your own.',
          });
        }
        looking.done(`no operator: ${found.why}; this session starts an agent of its own`);
        return kubernetesPlatform(settings, connect).prepare(target, request);
      }
      looking.done(`found: ${OPERATOR_APISERVICE} is Available`);
      const address = await apiServerAddress(kube);
      const asking = request.onStep(`asking the operator for ${copy === undefined ? '' : 'a copy of '}${formatTarget(target)} in namespace ${kube.namespace}`);
      const session = await prepareOperatorSession(address, kube.namespace, target, { files: request.files, startupTimeoutMs: request.startupTimeoutMs, purpose, copy, split });
      asking.done(`through the operator: ${session.description}; ${describeOthers(session)}`);
      notePolicies(session, target, request.onNote);
      const prepared = { ...preparedFrom(session), ...(split === undefined ? {} : { summary: (id: string) => splitSummary(address, kube.namespace, id) }) };
      // The operator makes the copy when the session's stream opens: the wait shows as this step.
      return copy === undefined ? prepared : { ...prepared, linkStep: `the operator copies ${formatTarget(target)}${copy.scaleDown ? ' and scales it down' : ''}, then connects the session to the copy` };
    },
  };
}
