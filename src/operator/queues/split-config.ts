// What the operator needs to split a session's queues on a workload: the workload's RemocalSplitConfig (one per
// workload, in its namespace), the entries of the queue ids the session asked for, and for each the broker URL from
// the Secret it names. Every way this can fail is a SplitConfigError that says what is missing and who fixes it,
// since the developer who meets it usually cannot: the platform team writes the config and the Secret.
//
// The broker URL carries credentials: it is returned to the caller and never written into a message or a log.

import { KubeForbiddenError, SplitConfigError } from '../../core/errors.js';
import { apiStatus, kubeCall, kubeError, type Kube } from '../../platform/kubernetes/api.js';
import { SPLIT_CONFIG_KIND, SPLIT_GROUP, SPLIT_VERSION, type QueueType, type SplitQueuesRequest, type SplitTargetKind } from '../../protocol/split-queues.js';
import { SPLIT_CONFIG_RESOURCE } from '../split-config-crd.js';
import { checkSplitConfigObject } from './split-config-check.js';

/** A broker URL longer than this is no URL an operator should dial. */
const MAX_URL_LENGTH = 4096;
/** The URL schemes each broker's client accepts. */
const SCHEMES: Record<QueueType, readonly string[]> = { RMQ: ['amqp:', 'amqps:'], NATS: ['nats:', 'tls:', 'ws:', 'wss:'] };

export interface SplitWorkload {
  namespace: string;
  kind: SplitTargetKind;
  name: string;
}

/** One queue of the workload, ready for the splitter. */
export interface ResolvedSplitQueue {
  queueId: string;
  queueType: QueueType;
  /** The variable that holds the queue's name; `container` unset when the config left it to the pod's one container. */
  env: { container?: string; name: string };
  /** The broker URL with its credentials: never to be logged. */
  brokerUrl: string;
  /** Where the URL came from, for messages. */
  secret: { name: string; key: string };
}

export interface ResolvedSplitConfig {
  /** The RemocalSplitConfig's name. */
  name: string;
  queues: ResolvedSplitQueue[];
}

type RawObject = { metadata?: { name?: string }; spec?: { targetRef?: { kind?: unknown; name?: unknown } } };

/** The queues `request` asks of `workload`, resolved; throws SplitConfigError (or the API's error) otherwise. */
export async function readSplitConfig(kube: Kube, workload: SplitWorkload, request: SplitQueuesRequest): Promise<ResolvedSplitConfig> {
  const { namespace } = workload;
  const subject = `${workload.kind}/${workload.name} in namespace ${namespace}`;
  const list = (await kubeCall(
    kube,
    { verb: 'list', resource: `${SPLIT_CONFIG_RESOURCE.plural}.${SPLIT_GROUP}`, namespace },
    () => kube.custom.listNamespacedCustomObject({ group: SPLIT_GROUP, version: SPLIT_VERSION, namespace, plural: SPLIT_CONFIG_RESOURCE.plural }) as Promise<{ items?: RawObject[] }>,
    () =>
      new SplitConfigError(`This cluster has no ${SPLIT_CONFIG_KIND} resource (${SPLIT_GROUP}/${SPLIT_VERSION}), so no queue of ${subject} can be split.`, {
        hint: 'The platform team installs the CRD with `remocal operator setup --crds | kubectl apply -f -` (docs/queues.md).',
      }),
  )) as { items?: RawObject[] };
  const mine = (list.items ?? []).filter((item) => item.spec?.targetRef?.kind === workload.kind && item.spec.targetRef.name === workload.name);
  if (mine.length === 0) throw new SplitConfigError(`No ${SPLIT_CONFIG_KIND} in namespace ${namespace} names ${workload.kind}/${workload.name}, so its queues cannot be split.`);
  if (mine.length > 1) {
    const names = mine.map((item) => item.metadata?.name ?? '?').sort();
    throw new SplitConfigError(`${names.length} ${SPLIT_CONFIG_KIND}s in namespace ${namespace} name ${workload.kind}/${workload.name} (${names.join(', ')}); there must be one per workload.`, {
      hint: `Ask the platform team to merge them into one: \`kubectl get ${SPLIT_CONFIG_RESOURCE.plural} -n ${namespace}\`.`,
    });
  }
  const object = mine[0]!;
  const name = object.metadata?.name ?? '?';
  const checked = checkSplitConfigObject(object);
  if (!checked.ok) throw new SplitConfigError(`${SPLIT_CONFIG_KIND} ${namespace}/${name} is invalid: ${checked.errors.join(', ')}.`);
  const offered = Object.keys(checked.spec.queues).sort();
  const queues: ResolvedSplitQueue[] = [];
  for (const [queueId, asked] of Object.entries(request)) {
    // An own-property lookup: a queue id is a key the client chose.
    const entry = Object.hasOwn(checked.spec.queues, queueId) ? checked.spec.queues[queueId]! : undefined;
    if (entry === undefined) {
      throw new SplitConfigError(`${SPLIT_CONFIG_KIND} ${namespace}/${name} has no queue "${queueId}"; it has ${offered.join(', ')}.`, {
        hint: 'Use one of those ids in feature.split_queues, or ask the platform team to add the queue.',
      });
    }
    if (entry.queueType !== asked.queueType) {
      throw new SplitConfigError(`Queue "${queueId}" of ${subject} is on ${entry.queueType}, not ${asked.queueType} as feature.split_queues says.`, {
        hint: `Set "queue_type": "${entry.queueType}" for it in feature.split_queues.`,
      });
    }
    if (entry.queueName.env === undefined) {
      throw new SplitConfigError(`Queue "${queueId}" of ${subject} takes its name from a config file key, which remocal cannot split yet: only an environment variable (queueName.env) can be pointed at a temporary queue.`, {
        hint: 'Ask the platform team to have the workload read the queue name from an environment variable, and to name it in queueName.env.',
      });
    }
    const { secretRef } = entry.connection;
    const brokerUrl = await readBrokerUrl(kube, namespace, secretRef, entry.queueType, `queue "${queueId}" of ${subject}`);
    queues.push({ queueId, queueType: entry.queueType, env: { ...entry.queueName.env }, brokerUrl, secret: { ...secretRef } });
  }
  return { name, queues };
}

/** The URL in the Secret's key, checked for the broker; its text never reaches an error. */
async function readBrokerUrl(kube: Kube, namespace: string, ref: { name: string; key: string }, type: QueueType, what: string): Promise<string> {
  const where = `Secret ${namespace}/${ref.name}`;
  let data: Record<string, string> | undefined;
  try {
    data = (await kube.core.readNamespacedSecret({ name: ref.name, namespace })).data;
  } catch (error) {
    const status = apiStatus(error);
    if (status?.code === 404) throw new SplitConfigError(`The ${where}, which holds the broker URL of ${what}, does not exist.`, { hint: 'Ask the platform team to create it (docs/queues.md, "The broker Secret").' });
    if (status?.code === 403) {
      throw new KubeForbiddenError(`The operator may not read the ${where} (the broker URL of ${what}).\nThe API server said: ${status.message}`, {
        hint: `The platform team grants it in that namespace: kubectl create rolebinding remocal-operator:split-secrets -n ${namespace} --clusterrole=remocal-operator-split-secrets --serviceaccount=<operator namespace>:remocal-operator (docs/queues.md, "RBAC").`,
      });
    }
    throw kubeError(kube, { verb: 'get', resource: 'secrets', namespace, name: ref.name }, error);
  }
  const encoded = data?.[ref.key];
  if (encoded === undefined) throw new SplitConfigError(`The ${where} has no key "${ref.key}", which should hold the broker URL of ${what}.`, { hint: 'Ask the platform team to add it, or to name the right key in the RemocalSplitConfig.' });
  const text = Buffer.from(encoded, 'base64').toString('utf8').trim();
  let url: URL | undefined;
  try {
    url = text.length <= MAX_URL_LENGTH ? new URL(text) : undefined;
  } catch {
    url = undefined;
  }
  const schemes = SCHEMES[type];
  if (url === undefined || !schemes.includes(url.protocol) || url.hostname === '') {
    throw new SplitConfigError(`The key "${ref.key}" of the ${where} does not hold a ${type} broker URL (${schemes.map((scheme) => `${scheme}//…`).join(', ')}), as ${what} needs.`, {
      hint: type === 'RMQ' ? 'It should read like amqp://user:password@rabbitmq.shop:5672/vhost.' : 'It should read like nats://user:password@nats.shop:4222.',
    });
  }
  return text;
}
