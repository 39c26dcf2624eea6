// A session behind the operator: the operator resolves the target and owns its shared agent, so preparing the
// session is asking the operator about the target (which also proves the token and the address), and the
// launch the intproxy runs is operator-link, which opens the session's stream.

import { distFile } from '../../core/paths.js';
import type { AgentLaunch } from '../../protocol/contracts.js';
import type { AppliedPolicy } from '../../protocol/policy.js';
import { COPY_TARGET_PARAM, encodeCopyTargetRequest, type CopyTargetRequest } from '../../protocol/copy-target.js';
import { encodeSplitQueuesRequest, SPLIT_QUEUES_PARAM, type SplitQueuesRequest } from '../../protocol/split-queues.js';
import type { PreparedSession } from '../platform.js';
import { formatTarget, type Target } from '../target.js';
import { OPERATOR_API_PREFIX, operatorRequest, type OperatorAddress } from './client.js';
import { OPERATOR_LINK_ENV, type OperatorLinkSettings } from './link-settings.js';
import { targetResourceName } from './target-names.js';

export interface OperatorSession {
  launch: AgentLaunch;
  description: string;
  hasProcess: boolean;
  /** The sessions already on the target, for the user to know who else is there. */
  others: { id: string; owner: string }[];
  /** The admins' policies the session will meet (the operator enforces them). */
  policies: AppliedPolicy[];
}

/** How often the intproxy pings a session behind the operator: the path crosses a network. */
const OPERATOR_PING_INTERVAL_MS = 5000;

export async function prepareOperatorSession(
  address: OperatorAddress,
  namespace: string,
  target: Target,
  options: { files: 'off' | 'read' | 'write'; startupTimeoutMs: number; purpose: 'exec' | 'port-forward'; copy?: CopyTargetRequest | undefined; split?: SplitQueuesRequest | undefined },
): Promise<OperatorSession> {
  const name = targetResourceName(target);
  const targetPath = `${OPERATOR_API_PREFIX}/namespaces/${encodeURIComponent(namespace)}/targets/${encodeURIComponent(name)}`;
  const container = target.platform === 'kubernetes' && target.kind !== 'targetless' && target.container !== null ? target.container : undefined;
  const copy: Record<string, string> = options.copy === undefined ? {} : { [COPY_TARGET_PARAM]: encodeCopyTargetRequest(options.copy) };
  const query = (extra: Record<string, string>): string => {
    const params = new URLSearchParams({ ...extra, ...(container === undefined ? {} : { container }), ...copy }).toString();
    return params === '' ? '' : `?${params}`;
  };
  const answer = await operatorRequest<{ spec: { description: string; hasProcess: boolean }; status: { sessions: { id: string; owner: string }[]; policies?: AppliedPolicy[] } }>(
    address,
    'GET',
    `${targetPath}${query(options.purpose === 'exec' ? {} : { purpose: options.purpose })}`,
  );
  const link: OperatorLinkSettings = {
    // The split is made when the session opens, with it: only the session's request carries it.
    url: `${address.url}${targetPath}/portforward${query({ files: options.files, ...(options.purpose === 'exec' ? {} : { purpose: options.purpose }), ...(options.split === undefined ? {} : { [SPLIT_QUEUES_PARAM]: encodeSplitQueuesRequest(options.split) }) })}`,
    token: address.token,
    ca: address.ca,
    cert: address.cert,
    key: address.key,
    headers: address.headers,
    rejectUnauthorized: address.rejectUnauthorized,
    // A copy is made before the session's stream opens: its pod's start (an image pull, say) comes on top.
    timeoutMs: Math.max(1000, options.startupTimeoutMs - 3000) + (options.copy === undefined ? 0 : options.startupTimeoutMs),
  };
  return {
    launch: {
      command: process.execPath,
      args: [distFile('operator-link.js')],
      env: { [OPERATOR_LINK_ENV]: JSON.stringify(link) },
      target: `${formatTarget(target)} (through ${address.label ?? `the operator at ${address.url}`})`,
      pingIntervalMs: OPERATOR_PING_INTERVAL_MS,
    },
    description: answer.spec.description,
    hasProcess: answer.spec.hasProcess,
    others: answer.status.sessions,
    policies: answer.status.policies ?? [],
  };
}

export function describeOthers(session: Pick<OperatorSession, 'others'>): string {
  return session.others.length === 0 ? 'no other session on it' : `also there: ${session.others.map((other) => `${other.owner} (session ${other.id})`).join(', ')}`;
}

/** The session as the CLI runs it: nothing was created on this side, so there is nothing to clean up. */
export function preparedFrom(session: OperatorSession): PreparedSession {
  const all = (list: 'readOnly' | 'local' | 'notFound') => session.policies.flatMap((policy) => policy.spec.fs?.[list] ?? []);
  return {
    launch: session.launch,
    description: session.description,
    linkStep: 'connecting to the session',
    hasProcess: session.hasProcess,
    policyFiles: { readOnly: all('readOnly'), local: all('local'), notFound: all('notFound') },
    cleanup: async () => undefined,
  };
}

/** Says which policies the session meets, so that a refusal later is no surprise. */
export function notePolicies(session: Pick<OperatorSession, 'policies'>, target: Target, note: (text: string) => void): void {
  if (session.policies.length === 0) return;
  const names = session.policies.map((policy) => policy.name);
  const shown = names.length > 6 ? `${names.slice(0, 5).join(', ')} and ${names.length - 5} more` : names.join(', ');
  note(`policies in force: ${shown} (\`remocal policy check -t ${formatTarget(target)}\` shows what they allow)`);
}
