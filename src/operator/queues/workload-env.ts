// While a workload's queue is split, the deployed app must consume its own temporary queue, not the original (which
// the operator consumes and splits): the operator points the env var that names the queue (a RemocalSplitConfig's
// queueName.env) at the temporary queue, with a strategic-merge patch of the pod template, and undoes it when the
// last split session on the workload ends. Changing the template rolls the workload out, twice per split: that is
// the cost of a queue name read from the environment, and docs/queues.md says so.
//
// What must survive the operator lives in the cluster: the same patch writes an annotation on the workload that
// records, for each variable, its original entry (or that it had none), the value set, which session set it and
// when; and a label, so that a restarted operator finds every such workload with one selector and undoes them
// (`reconcile`). One patch carries both, with the resourceVersion read, so the record and the change land together
// or not at all, and of two concurrent writers (two sessions, two operators) one gets a 409 and reads again: the
// annotation is also the lock. A second session finds the variable already pointed where it wants it and writes
// nothing; one that wants it elsewhere while the holder lives is refused.
//
// The undo restores each variable's original entry (its value, or its valueFrom), or removes it with `$patch:
// delete` when the workload did not have it, and drops the annotation and label; a variable someone changed since
// (a redeploy, a kubectl edit) is theirs, and left alone. Undoing twice is a no-op.

import { PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';
import { SplitConfigError, SplitQueuesHeldError } from '../../core/errors.js';
import type { Logger } from '../../core/log.js';
import { apiStatus, kubeCall, kubeError, type Kube } from '../../platform/kubernetes/api.js';
import { SPLIT_TARGET_KINDS, type SplitTargetKind } from '../../protocol/split-queues.js';
import type { SplitWorkload } from './split-config.js';

export const SPLIT_ENV_ANNOTATION = 'remocal.dev/split-queues-env';
export const SPLIT_ENV_LABEL = 'remocal.dev/split-queues';

export const WORKLOAD_API: Record<SplitTargetKind, { group: string; version: string; plural: string }> = {
  Deployment: { group: 'apps', version: 'v1', plural: 'deployments' },
  StatefulSet: { group: 'apps', version: 'v1', plural: 'statefulsets' },
};
/** Conflicting writes are retried this many times before the operator gives up. */
const CONFLICT_RETRIES = 5;
/** An annotation longer than this was not written by remocal (16 variables of bounded entries fit well within). */
const MAX_RECORD_CHARS = 64 * 1024;

/** An env entry as the pod template holds it: a value, or where the value comes from. */
export interface EnvEntry {
  name: string;
  value?: string;
  valueFrom?: Record<string, unknown>;
}

/** One variable to point at a temporary queue. */
export interface EnvPointer {
  queueId: string;
  /** Unset: the pod template's only container. */
  container?: string | undefined;
  name: string;
  /** The temporary queue's name. */
  value: string;
}

/** One variable as the annotation records it. */
export interface PointedVar {
  queueId: string;
  container: string;
  name: string;
  value: string;
  /** The entry before the patch; null when the container had no such variable. */
  original: EnvEntry | null;
}

/** What the annotation holds. */
export interface PointedRecord {
  session: string;
  owner: string;
  /** ISO time of the first patch. */
  at: string;
  vars: PointedVar[];
}

type Container = { name: string; env?: EnvEntry[] };
type Workload = {
  metadata?: { name?: string; namespace?: string; resourceVersion?: string; annotations?: Record<string, string>; labels?: Record<string, string> };
  spec?: { template?: { spec?: { containers?: Container[] } } };
};

/** The record in the annotation, or null when there is none or it is not remocal's (then nothing is undone by guess). */
export function parsePointedRecord(text: string | undefined): PointedRecord | null {
  if (text === undefined || text.length > MAX_RECORD_CHARS) return null;
  try {
    const parsed = JSON.parse(text) as Partial<PointedRecord>;
    if (typeof parsed.session !== 'string' || typeof parsed.owner !== 'string' || typeof parsed.at !== 'string' || !Array.isArray(parsed.vars)) return null;
    const valid = parsed.vars.every(
      (entry: Partial<PointedVar>) =>
        typeof entry.queueId === 'string' && typeof entry.container === 'string' && typeof entry.name === 'string' && typeof entry.value === 'string' && (entry.original === null || (typeof entry.original === 'object' && typeof entry.original?.name === 'string')),
    );
    return valid ? (parsed as PointedRecord) : null;
  } catch {
    return null;
  }
}

/** The strategic-merge env items that set each variable to its value; a `valueFrom` it had is removed too. */
function pointPatch(vars: readonly PointedVar[], current: (v: PointedVar) => EnvEntry | undefined): Record<string, unknown>[] {
  return byContainer(vars, (v) => {
    const had = current(v);
    return { name: v.name, value: v.value, ...(had?.valueFrom !== undefined ? { valueFrom: null } : {}) };
  });
}

/** The env items that put each variable back: its original entry, or `$patch: delete` when it had none. */
function restorePatch(vars: readonly PointedVar[]): Record<string, unknown>[] {
  return byContainer(vars, (v) => {
    if (v.original === null) return { name: v.name, $patch: 'delete' };
    return v.original.valueFrom !== undefined ? { name: v.name, value: null, valueFrom: v.original.valueFrom } : { name: v.name, value: v.original.value ?? '' };
  });
}

function byContainer(vars: readonly PointedVar[], item: (v: PointedVar) => Record<string, unknown>): Record<string, unknown>[] {
  const containers = new Map<string, Record<string, unknown>[]>();
  for (const v of vars) {
    const env = containers.get(v.container) ?? [];
    env.push(item(v));
    containers.set(v.container, env);
  }
  return [...containers].map(([name, env]) => ({ name, env }));
}

function envOf(workload: Workload, container: string, name: string): EnvEntry | undefined {
  return workload.spec?.template?.spec?.containers?.find((each) => each.name === container)?.env?.find((entry) => entry.name === name);
}

export class WorkloadEnv {
  constructor(
    private readonly kube: Kube,
    private readonly log: Logger,
    /** Whether a session of this operator is still live: a record held by one that is not is stale. */
    private readonly isLive: (session: string) => boolean,
  ) {}

  /**
   * Points each variable at its value for `session`. `patched`: this call wrote; `already`: every variable already
   * pointed there (another session of the split did it), and nothing was written.
   */
  async point(workload: SplitWorkload, pointers: readonly EnvPointer[], session: { id: string; owner: string }): Promise<'patched' | 'already'> {
    const api = WORKLOAD_API[workload.kind];
    const action = { verb: 'patch', resource: `${api.plural}.${api.group}`, namespace: workload.namespace, name: workload.name };
    for (let attempt = 0; ; attempt++) {
      const current = await this.read(workload);
      const record = parsePointedRecord(current.metadata?.annotations?.[SPLIT_ENV_ANNOTATION]);
      const holderLive = record !== null && record.session !== session.id && this.isLive(record.session);
      const vars = [...(record?.vars ?? [])];
      let changed = false;
      for (const pointer of pointers) {
        const container = this.containerOf(current, workload, pointer);
        const at = vars.findIndex((v) => v.queueId === pointer.queueId || (v.container === container && v.name === pointer.name));
        const known = at >= 0 ? vars[at]! : undefined;
        if (known !== undefined && known.container === container && known.name === pointer.name && known.value === pointer.value && envOf(current, container, pointer.name)?.value === pointer.value) continue;
        if (known !== undefined && holderLive) {
          throw new SplitQueuesHeldError(
            `${workload.kind}/${workload.name}'s ${known.name} (queue "${known.queueId}") is pointed at ${JSON.stringify(known.value)} by session ${record.session} of ${record.owner}; it cannot be pointed at ${JSON.stringify(pointer.value)} too.`,
          );
        }
        // A stale record keeps the original it saved: what the variable holds now is a previous split's value.
        const original = known !== undefined ? known.original : (envOf(current, container, pointer.name) ?? null);
        const entry: PointedVar = { queueId: pointer.queueId, container, name: pointer.name, value: pointer.value, original: original === null ? null : { ...original } };
        if (at >= 0) vars[at] = entry;
        else vars.push(entry);
        changed = true;
      }
      // A record left by a session that is gone is taken over, so that the live one is what `reconcile` and others see.
      const stale = record !== null && record.session !== session.id && !holderLive;
      if (!changed && !stale) return 'already';
      const next: PointedRecord = holderLive ? { ...record, vars } : { session: session.id, owner: session.owner, at: record?.at ?? new Date().toISOString(), vars };
      const touched = vars.filter((v) => envOf(current, v.container, v.name)?.value !== v.value);
      const patch = {
        metadata: { resourceVersion: current.metadata?.resourceVersion, labels: { [SPLIT_ENV_LABEL]: 'true' }, annotations: { [SPLIT_ENV_ANNOTATION]: JSON.stringify(next) } },
        ...(touched.length > 0 ? { spec: { template: { spec: { containers: pointPatch(touched, (v) => envOf(current, v.container, v.name)) } } } } : {}),
      };
      try {
        await this.patch(workload, patch);
      } catch (error) {
        if (apiStatus(error)?.code === 409 && attempt < CONFLICT_RETRIES) continue;
        throw kubeError(this.kube, action, error);
      }
      this.log.info({ workload: `${workload.kind}/${workload.name}`, namespace: workload.namespace, session: session.id, vars: touched.map((v) => `${v.container}/${v.name}`), resourceVersion: current.metadata?.resourceVersion }, 'pointed the workload\'s queue variables at temporary queues');
      return 'patched';
    }
  }

  /**
   * Puts back every variable the annotation records and removes the annotation; what it restored, or null when
   * there was nothing to undo. A variable whose value is no longer the one set was changed by someone else: kept.
   */
  async restore(workload: SplitWorkload): Promise<PointedRecord | null> {
    const api = WORKLOAD_API[workload.kind];
    const action = { verb: 'patch', resource: `${api.plural}.${api.group}`, namespace: workload.namespace, name: workload.name };
    for (let attempt = 0; ; attempt++) {
      const current = await this.read(workload);
      const annotation = current.metadata?.annotations?.[SPLIT_ENV_ANNOTATION];
      if (annotation === undefined && current.metadata?.labels?.[SPLIT_ENV_LABEL] === undefined) return null;
      const record = parsePointedRecord(annotation);
      const ours = (record?.vars ?? []).filter((v) => envOf(current, v.container, v.name)?.value === v.value);
      const patch = {
        metadata: { resourceVersion: current.metadata?.resourceVersion, labels: { [SPLIT_ENV_LABEL]: null }, annotations: { [SPLIT_ENV_ANNOTATION]: null } },
        ...(ours.length > 0 ? { spec: { template: { spec: { containers: restorePatch(ours) } } } } : {}),
      };
      try {
        await this.patch(workload, patch);
      } catch (error) {
        if (apiStatus(error)?.code === 409 && attempt < CONFLICT_RETRIES) continue;
        throw kubeError(this.kube, action, error);
      }
      const kept = (record?.vars ?? []).filter((v) => !ours.includes(v));
      if (kept.length > 0) this.log.warn({ workload: `${workload.kind}/${workload.name}`, namespace: workload.namespace, vars: kept.map((v) => `${v.container}/${v.name}`) }, 'left variables someone changed since the split alone');
      this.log.info({ workload: `${workload.kind}/${workload.name}`, namespace: workload.namespace, vars: ours.map((v) => `${v.container}/${v.name}`), resourceVersion: current.metadata?.resourceVersion }, 'restored the workload\'s queue variables');
      return record;
    }
  }

  /**
   * What a previous run left: every workload whose record's session is not live gets its variables back. Says what it
   * restored, with the temporary queues the deployed app was pointed at (whose messages the splitter drains back),
   * and the workload's annotations as they were.
   */
  async reconcile(): Promise<{ workload: SplitWorkload; record: PointedRecord | null; annotations: Record<string, string> }[]> {
    const done: { workload: SplitWorkload; record: PointedRecord | null; annotations: Record<string, string> }[] = [];
    for (const kind of SPLIT_TARGET_KINDS) {
      const api = WORKLOAD_API[kind];
      const list = (await kubeCall(this.kube, { verb: 'list', resource: `${api.plural}.${api.group}`, namespace: '' }, () =>
        this.kube.custom.listClusterCustomObject({ ...api, labelSelector: SPLIT_ENV_LABEL }),
      )) as { items?: Workload[] };
      for (const item of list.items ?? []) {
        const { name, namespace } = item.metadata ?? {};
        const record = parsePointedRecord(item.metadata?.annotations?.[SPLIT_ENV_ANNOTATION]);
        if (name === undefined || namespace === undefined || (record !== null && this.isLive(record.session))) continue;
        const workload = { namespace, kind, name };
        // The annotations as they were before the restore: what else the split recorded (its sessions) is read there.
        done.push({ workload, record: await this.restore(workload), annotations: { ...item.metadata?.annotations } });
      }
    }
    return done;
  }

  private async read(workload: SplitWorkload): Promise<Workload> {
    const api = WORKLOAD_API[workload.kind];
    return (await kubeCall(this.kube, { verb: 'get', resource: `${api.plural}.${api.group}`, namespace: workload.namespace, name: workload.name }, () =>
      this.kube.custom.getNamespacedCustomObject({ ...api, namespace: workload.namespace, name: workload.name }),
    )) as Workload;
  }

  private async patch(workload: SplitWorkload, body: object): Promise<void> {
    const api = WORKLOAD_API[workload.kind];
    await this.kube.custom.patchNamespacedCustomObject({ ...api, namespace: workload.namespace, name: workload.name, body }, setHeaderOptions('Content-Type', PatchStrategy.StrategicMergePatch));
  }

  /** The container the pointer names, or the template's only one; refused in words when there is none such. */
  private containerOf(current: Workload, workload: SplitWorkload, pointer: EnvPointer): string {
    const names = (current.spec?.template?.spec?.containers ?? []).map((container) => container.name);
    if (pointer.container !== undefined) {
      if (names.includes(pointer.container)) return pointer.container;
      throw new SplitConfigError(`Queue "${pointer.queueId}": ${workload.kind}/${workload.name} has no container "${pointer.container}" (it has ${names.join(', ')}).`);
    }
    if (names.length === 1) return names[0]!;
    throw new SplitConfigError(`Queue "${pointer.queueId}": ${workload.kind}/${workload.name} has ${names.length} containers (${names.join(', ')}), and the RemocalSplitConfig does not say which one reads ${pointer.name}.`, {
      hint: 'Ask the platform team to set queueName.env.container.',
    });
  }
}
