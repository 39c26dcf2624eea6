// Split queues for sessions: what joins the pieces of docs/queues.md. A session that asks to split queues of its
// workload joins one splitter per queue (shared by every session splitting that queue), gets its own temporary
// queue, and sees the workload's variable pointing there in its view of the environment; the workload itself is
// pointed at the deployed app's temporary queue while any session splits it. The last session to leave a queue
// stops its splitter (drained back, temporary queues deleted), and the last to leave the workload restores it.
//
// The order matters for "nothing lost": a queue is consumed by the splitter (start) before the workload is pointed
// away from it, and the workload is pointed back before the splitter stops, so that messages are always read by
// someone; what waits in a temporary queue at the end goes back to the original queue (splitter.ts).

import { PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';
import { SplitConfigError } from '../../core/errors.js';
import type { Logger } from '../../core/log.js';
import type { Kube } from '../../platform/kubernetes/api.js';
import type { KubernetesTarget } from '../../platform/target.js';
import type { QueueType, SplitQueuesRequest } from '../../protocol/split-queues.js';
import type { QueueDriver } from './driver.js';
import { readSplitConfig, type ResolvedSplitQueue, type SplitWorkload } from './split-config.js';
import { QueueSplitter, type DestinationCounts } from './splitter.js';
import type { MessageFilter } from './filter.js';
import { parsePointedRecord, SPLIT_ENV_ANNOTATION, WORKLOAD_API, type WorkloadEnv } from './workload-env.js';

/**
 * Which sessions split a workload's queues, and their brokers: what a restarted operator needs to find their
 * temporary queues (`<queue>.remocal.<session>`) and drain them back, since a broker cannot be asked to list them.
 */
export const SPLIT_SESSIONS_ANNOTATION = 'remocal.dev/split-queues-sessions';

interface SessionsRecord {
  sessions: string[];
  queues: Record<string, QueueType>;
}

/** At most this many session ids are recorded per workload: more split sessions on one workload are refused. */
const MAX_RECORDED_SESSIONS = 64;

function parseSessionsRecord(text: string | undefined): SessionsRecord | null {
  if (text === undefined || text.length > 16 * 1024) return null;
  try {
    const value = JSON.parse(text) as SessionsRecord;
    if (!Array.isArray(value.sessions) || value.sessions.some((id) => typeof id !== 'string') || typeof value.queues !== 'object' || value.queues === null) return null;
    return value;
  } catch {
    return null;
  }
}

/** How often a split whose broker link dropped tries a new one (backing off to 10 s) before it gives up. */
const RECONNECT_ATTEMPTS = 10;

/** A filter nothing matches: the sessions a restarted operator drains back take no new message. */
const NOTHING: MessageFilter = { spec: {}, matches: () => false };


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
  /** Each session's filter, to add them again to the splitter of a new link. */
  filters: Map<string, Record<string, string>>;
  /** Set when the broker link dropped: the splitter is dead, and its queues are drained over a new link. */
  lost?: Error;
  /** To drain over a new link when this one was lost. */
  queueType: QueueType;
  url: string;
  original: string;
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
  /** The brokers of every queue split per workload, for the record a restart reads. */
  private readonly queueTypes = new Map<string, Record<string, QueueType>>();
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
          group.filters.set(session.id, request[queue.queueId]!.messageFilter);
          let last = group.splitter.status().destinations.find((each) => each.id === session.id)!;
          const view: SplitQueueView = {
            queueId: queue.queueId,
            queueType: queue.queueType,
            queue: current.get(queue.queueId)!,
            sessionQueue,
            // From whichever splitter serves the queue now (a lost broker link makes a new one); the last known once it ended.
            get counts() {
              last = group.splitter.status().destinations.find((each) => each.id === session.id && each.active) ?? last;
              return last;
            },
          };
          joined.push({ queue, group, view });
        }
        // Consumed by the splitters now: the workload may be pointed away from its queues.
        const deployed = (queue: ResolvedSplitQueue) => joined.find((each) => each.queue === queue)!.group.splitter;
        const pointers = [];
        for (const queue of config.queues) pointers.push({ queueId: queue.queueId, container: queue.env.container, name: queue.env.name, value: await deployed(queue).start() });
        const members = this.members.get(key) ?? new Set<string>();
        if (!members.has(session.id) && members.size >= MAX_RECORDED_SESSIONS) {
          throw new SplitConfigError(`${MAX_RECORDED_SESSIONS} sessions already split the queues of ${workload.kind}/${workload.name}.`, { hint: 'Wait for one of them to end: `remocal queues status` lists them.' });
        }
        // Recorded before the workload is pointed: a restart must find every temporary queue that may hold messages.
        const types = { ...this.queueTypes.get(key), ...Object.fromEntries(config.queues.map((queue) => [queue.queueId, queue.queueType])) };
        await this.recordSessions(workload, [...members, session.id], types);
        this.queueTypes.set(key, types);
        await this.workloads.point(workload, pointers, session);
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
            // Its queue is drained and gone: a restart need not look for it.
            if (last) this.queueTypes.delete(key);
            await this.recordSessions(workload, last ? null : [...members!], this.queueTypes.get(key) ?? {}).catch((error: unknown) => this.log.warn({ err: error, workload: key }, 'could not update the record of split sessions'));
          })),
      };
    });
  }

  /**
   * At the operator's start: every workload a previous run left split is pointed back at its own queues, and what
   * waits in the temporary queues of that run's sessions and deployed app is drained back to them, then deleted.
   * Says which workloads it recovered.
   */
  async recover(): Promise<string[]> {
    const recovered: string[] = [];
    // Pointed back first (reconcile): the deployed app reads its own queue again before anything is drained into it.
    for (const { workload, record, annotations } of await this.workloads.reconcile()) {
      const sessions = parseSessionsRecord(annotations[SPLIT_SESSIONS_ANNOTATION]);
      if (record !== null && sessions !== null) await this.drainLeftovers(workload, record.vars, sessions);
      await this.recordSessions(workload, null, {});
      recovered.push(workloadKey(workload));
    }
    return recovered;
  }

  private async drainLeftovers(workload: SplitWorkload, vars: readonly { queueId: string; original: { value?: string } | null }[], record: SessionsRecord): Promise<void> {
    const request: SplitQueuesRequest = Object.fromEntries(Object.entries(record.queues).map(([queueId, queueType]) => [queueId, { queueType, messageFilter: {} }]));
    const config = await readSplitConfig(this.kube, workload, request);
    for (const queue of config.queues) {
      const original = vars.find((each) => each.queueId === queue.queueId)?.original?.value;
      if (original === undefined) continue;
      const drained = await this.drainBack(queue.queueType, queue.brokerUrl, original, record.sessions, true);
      this.log.info({ workload: workloadKey(workload), queueId: queue.queueId, queue: original, sessions: record.sessions, drained }, 'drained back what a previous run\'s split left');
    }
  }

  /**
   * Over a new broker link, drains the temporary queues of `sessions` (and the deployed app's, at the `end`) back to
   * `original` and deletes them, with a splitter that never consumes; says how many messages went back.
   */
  private async drainBack(queueType: QueueType, url: string, original: string, sessions: readonly string[], end: boolean): Promise<number> {
    const driver = await this.connect(queueType, url);
    try {
      const splitter = new QueueSplitter({ driver, queue: original });
      for (const id of sessions) await splitter.addSession(id, NOTHING);
      if (end) await splitter.stop();
      else for (const id of sessions) await splitter.removeSession(id);
      return splitter.status().destinations.reduce((sum, each) => sum + each.drainedBack, 0);
    } finally {
      await driver.close();
    }
  }

  /** Writes (or, with null, removes) the record of the sessions splitting `workload`. */
  private async recordSessions(workload: SplitWorkload, sessions: string[] | null, queues: Record<string, QueueType>): Promise<void> {
    const value = sessions === null ? null : JSON.stringify({ sessions, queues } satisfies SessionsRecord);
    await this.kube.custom.patchNamespacedCustomObject(
      { ...WORKLOAD_API[workload.kind], namespace: workload.namespace, name: workload.name, body: { metadata: { annotations: { [SPLIT_SESSIONS_ANNOTATION]: value } } } },
      setHeaderOptions('Content-Type', PatchStrategy.StrategicMergePatch),
    );
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
        const group: Group = { splitter, driver, sessions: new Set<string>(), filters: new Map(), queueType: queue.queueType, url: queue.brokerUrl, original };
        this.watchLink(workload, queue.queueId, group);
        return group;
      })();
      this.groups.set(key, group);
      group.catch(() => this.groups.delete(key));
    }
    return group;
  }

  /** On a lost broker link, the split goes on over a new one: same queues, same sessions, in the same order. */
  private watchLink(workload: SplitWorkload, queueId: string, group: Group): void {
    const driver = group.driver;
    void driver.lost.then(async (why) => {
      if (group.driver !== driver) return;
      group.lost = why;
      const where = { workload: workloadKey(workload), queueId };
      this.log.error({ err: why, ...where }, 'lost the broker link of a split queue; connecting again');
      for (let attempt = 1; attempt <= RECONNECT_ATTEMPTS; attempt++) {
        await new Promise((resolve) => setTimeout(resolve, Math.min(10_000, 500 * 2 ** attempt)));
        // Joins and leaves wait meanwhile, so that the sessions the new splitter takes are the live ones.
        const done = await this.serial(workloadKey(workload), async () => {
          if (group.sessions.size === 0 || group.lost === undefined) return true;
          const fresh = await this.connect(group.queueType, group.url);
          try {
            const splitter = new QueueSplitter({ driver: fresh, queue: group.original });
            for (const id of group.sessions) await splitter.addSession(id, group.filters.get(id)!);
            await splitter.start();
            // The counts go on from where the lost link left them.
            const before = new Map(group.splitter.status().destinations.filter((each) => each.active).map((each) => [each.id, each]));
            for (const counts of splitter.status().destinations) {
              const old = before.get(counts.id);
              if (old !== undefined) Object.assign(counts, { forwarded: old.forwarded, redelivered: old.redelivered, drainedBack: old.drainedBack, failed: old.failed });
            }
            group.splitter = splitter;
            group.driver = fresh;
            group.lost = undefined;
            this.watchLink(workload, queueId, group);
            this.log.info({ ...where, attempt }, 'the split queue goes on over a new broker link');
            return true;
          } catch (error) {
            await fresh.close().catch(() => undefined);
            throw error;
          }
        }).catch((error: unknown) => {
          this.log.warn({ err: error, ...where, attempt }, 'could not connect to the broker again');
          return false;
        });
        if (done) return;
      }
      this.log.error(where, `gave up connecting to the broker again after ${RECONNECT_ATTEMPTS} tries: the split's sessions get no new message until they end`);
    });
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
        if (group.lost === undefined) {
          this.log.error({ err: error, workload: workloadKey(workload), queueId, session }, 'could not end a session\'s split cleanly');
          continue;
        }
        // The broker link was lost: what waits in the temporary queues is drained over a new one.
        this.log.warn({ err: error, workload: workloadKey(workload), queueId, session }, 'could not end a session\'s split over its link; draining over a new one');
        group.sessions.delete(session);
        const last = group.sessions.size === 0;
        if (last) this.groups.delete(key);
        await group.driver.close().catch(() => undefined);
        await this.drainBack(group.queueType, group.url, group.original, last ? [session, ...group.sessions] : [session], last).catch((again: unknown) =>
          this.log.error({ err: again, workload: workloadKey(workload), queueId, queues: [session, ...(last ? ['deployed'] : [])].map((id) => `${group.original}.remocal.${id}`) }, 'could not drain a split\'s temporary queues back; they keep their messages until the operator\'s next start, or a drain by hand'),
        );
      }
    }
  }

}
