// Split queues for sessions: what joins the pieces of docs/queues.md. A session that asks to split queues of its
// workload joins one splitter per queue (shared by every session splitting that queue), gets its own temporary
// queue, and sees the workload's variable pointing there in its view of the environment; the workload itself is
// pointed at the deployed app's temporary queue while any session splits it. The last session to leave a queue
// stops its splitter (drained back, temporary queues deleted), and the last to leave the workload restores it.
//
// The order matters for "nothing lost": a queue is consumed by the splitter (start) before the workload is pointed
// away from it, and the workload is pointed back before the splitter stops, so that messages are always read by
// someone; what waits in a temporary queue at the end goes back to the original queue (splitter.ts).

import { SplitConfigError } from '../../core/errors.js';
import type { Logger } from '../../core/log.js';
import type { Kube } from '../../platform/kubernetes/api.js';
import type { KubernetesTarget } from '../../platform/target.js';
import type { QueueType, SplitQueuesRequest } from '../../protocol/split-queues.js';
import type { QueueDriver } from './driver.js';
import { readSplitConfig, type ResolvedSplitQueue, type SplitWorkload } from './split-config.js';
import { QueueSplitter, type DestinationCounts } from './splitter.js';
import { parsePointedRecord, SPLIT_ENV_ANNOTATION, type WorkloadEnv } from './workload-env.js';

/** One queue a session splits, as `remocal session list` shows it (its counts are live). */
export interface SplitQueueView {
  queueId: string;
  queueType: QueueType;
  /** The queue the workload consumes. */
  queue: string;
  /** The session's own temporary queue. */
  sessionQueue: string;
  counts: DestinationCounts;
}

/** One queue being split, as `remocal queues status` shows it. */
export interface SplitStatus {
  namespace: string;
  /** `deployment/orders` */
  workload: string;
  queueId: string;
  /** The original queue. */
  queue: string;
  /** The deployed app's destination first, then the sessions' (those that ended too, with their final counts). */
  destinations: DestinationCounts[];
}

export interface JoinedSplit {
  /** The variables the session's app sees, pointing at its temporary queues. */
  env: Record<string, string>;
  queues: SplitQueueView[];
  /** Leaves every queue; the last session out restores the workload. Never throws (failures are logged). */
  leave(): Promise<void>;
}

/** How a driver is made for a broker URL; the tests and the operator give the real ones. */
export type DriverFactory = (queueType: QueueType, url: string) => Promise<QueueDriver>;

interface Group {
  splitter: QueueSplitter;
  driver: QueueDriver;
  sessions: Set<string>;
}

const workloadKey = (workload: SplitWorkload): string => `${workload.namespace}/${workload.kind}/${workload.name}`;

/** The workload a split session's target names: a split patches its pod template, so only these two kinds. */
export function splitWorkload(namespace: string, target: KubernetesTarget): SplitWorkload {
  if (target.kind === 'deployment') return { namespace, kind: 'Deployment', name: target.name };
  if (target.kind === 'statefulset') return { namespace, kind: 'StatefulSet', name: target.name };
  throw new SplitConfigError(`Queues are split for a Deployment or a StatefulSet, whose pod template holds the queue's name; ${target.kind}/${'name' in target ? target.name : ''} is neither.`, {
    hint: 'Name the workload as the target (-t deployment/<name>), as its RemocalSplitConfig does.',
  });
}

export class SplitSessions {
  private readonly groups = new Map<string, Promise<Group>>();
  /** Sessions per workload, to know the last one out. */
  private readonly members = new Map<string, Set<string>>();
  // Joins and leaves of one workload run one at a time: a leave must not restore what a join is pointing.
  private readonly chains = new Map<string, Promise<unknown>>();

  constructor(
    private readonly kube: Kube,
    private readonly workloads: WorkloadEnv,
    private readonly connect: DriverFactory,
    private readonly log: Logger,
  ) {}

  private serial<T>(key: string, work: () => Promise<T>): Promise<T> {
    const next = (this.chains.get(key) ?? Promise.resolve()).then(work);
    this.chains.set(key, next.catch(() => undefined));
    return next;
  }

  async join(session: { id: string; owner: string }, workload: SplitWorkload, request: SplitQueuesRequest): Promise<JoinedSplit> {
    const key = workloadKey(workload);
    const config = await readSplitConfig(this.kube, workload, request);
    return this.serial(key, async () => {
      const joined: { queue: ResolvedSplitQueue; group: Group; view: SplitQueueView }[] = [];
      try {
        const current = await this.originalNames(workload, config.queues);
        for (const queue of config.queues) {
          const group = await this.group(workload, queue, current.get(queue.queueId)!);
          const sessionQueue = await group.splitter.addSession(session.id, request[queue.queueId]!.messageFilter);
          group.sessions.add(session.id);
          const counts = group.splitter.status().destinations.find((each) => each.id === session.id)!;
          joined.push({ queue, group, view: { queueId: queue.queueId, queueType: queue.queueType, queue: current.get(queue.queueId)!, sessionQueue, counts } });
        }
        // Consumed by the splitters now: the workload may be pointed away from its queues.
        const deployed = (queue: ResolvedSplitQueue) => joined.find((each) => each.queue === queue)!.group.splitter;
        const pointers = [];
        for (const queue of config.queues) pointers.push({ queueId: queue.queueId, container: queue.env.container, name: queue.env.name, value: await deployed(queue).start() });
        await this.workloads.point(workload, pointers, session);
        const members = this.members.get(key) ?? new Set<string>();
        members.add(session.id);
        this.members.set(key, members);
      } catch (error) {
        await this.leaveGroups(workload, session.id, joined.map((each) => ({ queueId: each.queue.queueId, group: each.group })));
        throw error;
      }
      let left: Promise<void> | undefined;
      return {
        env: Object.fromEntries(joined.map((each) => [each.queue.env.name, each.view.sessionQueue])),
        queues: joined.map((each) => each.view),
        leave: () =>
          (left ??= this.serial(key, async () => {
            const members = this.members.get(key);
            members?.delete(session.id);
            const last = members === undefined || members.size === 0;
            if (last) {
              this.members.delete(key);
              // Pointed back first, so that the deployed app reads its own queue again before the splitter stops.
              await this.workloads.restore(workload).catch((error: unknown) => this.log.error({ err: error, workload: key }, 'could not restore the workload\'s queue variables; the operator tries again at its next start'));
            }
            await this.leaveGroups(workload, session.id, joined.map((each) => ({ queueId: each.queue.queueId, group: each.group })));
          })),
      };
    });
  }

  /** Every queue being split now, with the counts of each destination (`remocal queues status`). */
  async status(): Promise<SplitStatus[]> {
    const all: SplitStatus[] = [];
    for (const [key, pending] of this.groups) {
      const group = await pending.catch(() => undefined);
      if (group === undefined) continue;
      const [namespace, kind, name, queueId] = key.split('/') as [string, string, string, string];
      const { queue, destinations } = group.splitter.status();
      all.push({ namespace, workload: `${kind.toLowerCase()}/${name}`, queueId, queue, destinations: destinations.map((each) => ({ ...each })) });
    }
    return all;
  }

  /** What each queue's variable holds in the workload: its own value, or the original a split saved. */
  private async originalNames(workload: SplitWorkload, queues: readonly ResolvedSplitQueue[]): Promise<Map<string, string>> {
    const object = (workload.kind === 'Deployment'
      ? await this.kube.apps.readNamespacedDeployment({ name: workload.name, namespace: workload.namespace })
      : await this.kube.apps.readNamespacedStatefulSet({ name: workload.name, namespace: workload.namespace })) as {
      metadata?: { annotations?: Record<string, string> };
      spec?: { template?: { spec?: { containers?: { name: string; env?: { name: string; value?: string }[] }[] } } };
    };
    const record = parsePointedRecord(object.metadata?.annotations?.[SPLIT_ENV_ANNOTATION]);
    const containers = object.spec?.template?.spec?.containers ?? [];
    const names = new Map<string, string>();
    for (const queue of queues) {
      const container = queue.env.container === undefined ? (containers.length === 1 ? containers[0] : undefined) : containers.find((each) => each.name === queue.env.container);
      const saved = record?.vars.find((each) => each.queueId === queue.queueId);
      const value = saved !== undefined ? saved.original?.value : container?.env?.find((entry) => entry.name === queue.env.name)?.value;
      if (value === undefined || value === '') {
        throw new SplitConfigError(
          `${workload.kind}/${workload.name} holds no queue name in ${queue.env.name}${queue.env.container === undefined ? '' : ` of container ${queue.env.container}`} (queue "${queue.queueId}"): it is missing, empty, or comes from a ConfigMap or Secret (valueFrom), which a split cannot follow yet.`,
          { hint: 'Set the queue\'s name as a plain value of that variable in the pod template, or fix the RemocalSplitConfig\'s queueName.' },
        );
      }
      names.set(queue.queueId, value);
    }
    return names;
  }

  private group(workload: SplitWorkload, queue: ResolvedSplitQueue, original: string): Promise<Group> {
    const key = `${workloadKey(workload)}/${queue.queueId}`;
    let group = this.groups.get(key);
    if (group === undefined) {
      group = (async () => {
        const driver = await this.connect(queue.queueType, queue.brokerUrl);
        const splitter = new QueueSplitter({ driver, queue: original });
        this.log.info({ workload: workloadKey(workload), queueId: queue.queueId, queue: original }, 'splitting a queue');
        return { splitter, driver, sessions: new Set<string>() };
      })();
      this.groups.set(key, group);
      group.catch(() => this.groups.delete(key));
    }
    return group;
  }

  private async leaveGroups(workload: SplitWorkload, session: string, joined: { queueId: string; group: Group }[]): Promise<void> {
    for (const { queueId, group } of joined) {
      const key = `${workloadKey(workload)}/${queueId}`;
      try {
        await group.splitter.removeSession(session);
        group.sessions.delete(session);
        if (group.sessions.size === 0) {
          this.groups.delete(key);
          await group.splitter.stop();
          await group.driver.close();
          this.log.info({ workload: workloadKey(workload), queueId }, 'stopped splitting a queue');
        }
      } catch (error) {
        this.log.error({ err: error, workload: workloadKey(workload), queueId, session }, 'could not end a session\'s split cleanly');
      }
    }
  }
}
