// The operator's sessions: who opened each, on which target, what it holds, and why it ended. A session is
// one client stream joined to one connection on its target's shared agent. The registry enforces the limits of
// the operator's config (setup deadline, idle time, maximum duration) and kills on request; each time, the
// session's CLI is told what happened, why, and what to do, through the agent (a `session_closed` event).

import { randomBytes } from 'node:crypto';
import type { Duplex } from 'node:stream';
import type { Logger } from '../core/log.js';
import { MAX_PREAMBLE_BYTES, MAX_SESSION_POLICIES, type SessionStateEvent, type SubscriptionStats } from '../protocol/shared-agent.js';
import { formatTarget, type Target } from '../platform/target.js';
import { CopyTargetUnsupportedError, PolicyBlockedError, SplitConfigError } from '../core/errors.js';
import type { CopyTargetRequest } from '../protocol/copy-target.js';
import type { SplitQueuesRequest } from '../protocol/split-queues.js';
import type { JoinedSplit, SplitQueueView } from './queues/split-sessions.js';
import { checkSplitQueuePolicies } from './queues/split-policy.js';
import type { AppliedPolicy } from '../protocol/policy.js';
import type { AgentPool, SharedAgent } from './agents.js';
import type { CopyForSession, ResolvedForSession, TargetCatalog } from './catalog.js';
import { applicablePolicies, type PolicyScope } from './policies/select.js';
import type { CopyRecord as CopyRecordView } from './copy-targets.js';
import { PolicyStore } from './policies/store.js';
import type { OperatorConfig } from './config.js';
import type { Identity } from './identity.js';

export type SessionPhase = 'Starting' | 'Ready' | 'Closed';

/** The client's side of a session: its bytes, and a way to end it with words when the agent cannot say them. */
export interface ClientStream {
  stream: Duplex;
  /** Ends the stream, telling the client the error code and reason (a WebSocket close code and reason). */
  endWith(code: string, reason: string): void;
}

export interface SessionRecord {
  id: string;
  owner: string;
  namespace: string;
  /** `pid/4242`, `deployment/orders`: as the user named it. */
  target: string;
  /** What it resolved to: "pod/orders-… (picked from deployment/orders)". */
  resolvedTo: string;
  files: 'off' | 'read' | 'write';
  startedAt: number;
  phase: SessionPhase;
  readyAt: number | undefined;
  lastActivity: number;
  routed: number;
  subscriptions: SubscriptionStats[];
  closedAt: number | undefined;
  closeReason: string | undefined;
  /** The policies in force for the session (`namespace/name`). */
  policies: string[];
  /** The copy the session runs against (copy target). */
  copy?: { pod: string; source: string; scaledDown: boolean } | undefined;
  /** The queues it splits, with their live counts. */
  splitQueues?: SplitQueueView[] | undefined;
}

export interface SessionOptions {
  files: SessionRecord['files'];
  /** `port-forward`: the session is `remocal port-forward`'s (a policy may block those). */
  purpose: 'exec' | 'port-forward';
  /** Run against a copy of the target (Kubernetes mode). */
  copy?: CopyTargetRequest | undefined;
  /** Variables set in the session's view of the target's environment (SessionPreamble.env). */
  env?: Record<string, string> | undefined;
  /** Take this session's share of the workload's queues (Kubernetes mode, docs/queues.md). */
  split?: SplitQueuesRequest | undefined;
}

/** Close reasons the CLI shows, by the error code it shows them with. */
export const SESSION_CLOSED = 'REMOCAL_SESSION_CLOSED';

interface Live {
  record: SessionRecord;
  agentKey: string;
  agent: SharedAgent;
  /** What the session's policies are chosen by, and the ones it has (JSON), to hand it only real changes. */
  scope: PolicyScope;
  applied: string;
  end(code: string, reason: string, hint: string): void;
}

const STATS_INTERVAL_MS = 1000;
/** How long a session whose agent side closed unannounced waits for the pool's word that the agent died. */
const AGENT_LOSS_GRACE_MS = 1000;

export class SessionRegistry<T> {
  private readonly live = new Map<string, Live>();
  /** Sessions being set up (their copy being made): live for the scale-down lock, though not yet in `live`. */
  private readonly starting = new Set<string>();
  /** Copies being removed after their session: an operator that stops waits for them. */
  private readonly releasing = new Set<Promise<void>>();
  private readonly closed: SessionRecord[] = [];
  private readonly sweeper: NodeJS.Timeout;
  private readonly stopWatchingPolicies: () => void;

  constructor(
    private readonly pool: AgentPool<T>,
    readonly catalog: TargetCatalog<T>,
    private readonly limits: OperatorConfig['sessions'],
    private readonly log: Logger,
    private readonly policies: PolicyStore = new PolicyStore(),
  ) {
    this.sweeper = setInterval(() => void this.sweep(), STATS_INTERVAL_MS);
    this.sweeper.unref();
    this.stopWatchingPolicies = policies.onChange(() => void this.reapplyPolicies());
  }

  /**
   * The target as `identity` may open a session on it, and the policies that would apply: what a session starts
   * with, and what `remocal policy check` shows.
   */
  async policiesFor(identity: Identity, namespace: string, target: Target): Promise<{ resolved: ResolvedForSession<T>; policies: AppliedPolicy[] }> {
    this.catalog.checkNamespace(namespace);
    await this.catalog.authorize(identity, namespace, target);
    const resolved = await this.catalog.resolve(namespace, target);
    return { resolved, policies: applicablePolicies(this.policies.current(), scopeOf(namespace, resolved)) };
  }

  /** Whether a session of this operator is live or being set up: a copy or a scale-down it holds is not stale. */
  isLive(id: string): boolean {
    return this.live.has(id) || this.starting.has(id);
  }

  /**
   * For a session on a copy: whether `identity` may copy `target` as `request` asks. The policies of the target
   * itself decide that (a copy made against their block would be the very thing they forbid); those that bind the
   * copy's session are the ones with appliesToCopyTargets, chosen when the copy exists.
   */
  async checkCopy(identity: Identity, namespace: string, target: Target, request: CopyTargetRequest): Promise<{ policies: AppliedPolicy[] }> {
    const copies = this.catalog.copies;
    if (copies === undefined || target.platform !== 'kubernetes') {
      throw new CopyTargetUnsupportedError(`This operator cannot copy ${formatTarget(target)}: copy targets need the operator on Kubernetes, and this one serves the targets of a host.`);
    }
    this.catalog.checkNamespace(namespace);
    await this.catalog.authorize(identity, namespace, target, { copy: true, scaleDown: request.scaleDown });
    const scope = await copies.scopeOf(namespace, target);
    checkCopyBlocks(applicablePolicies(this.policies.current(), { namespace, ...scope, copy: false }), request, target);
    return { policies: applicablePolicies(this.policies.current(), { namespace, ...scope, copy: true }) };
  }

  /** The copies that exist now, for the API's copytargets. */
  copies(): CopyRecordView[] {
    return this.catalog.copies?.list() ?? [];
  }

  /** The policies changed: each running session gets those that now apply to it, for its next operations. */
  private async reapplyPolicies(): Promise<void> {
    await Promise.all([...this.live.values()].map((entry) => this.reapplyTo(entry)));
  }

  /**
   * Hands the session the policies that apply now, if they differ from those its agent has. A session the agent has
   * not taken yet (its connection is still on the way) gets them when the agent reports it ready.
   */
  private async reapplyTo(entry: Live): Promise<void> {
    const policies = applicablePolicies(this.policies.current(), entry.scope);
    const applied = JSON.stringify(policies);
    if (applied === entry.applied) return;
    const delivered = await entry.agent.setPolicies({ session: entry.record.id, policies }).catch(() => false);
    if (delivered) {
      entry.applied = applied;
      entry.record.policies = policies.map((policy) => policy.name);
    }
    this.log.info({ session: entry.record.id, policies: policies.map((policy) => policy.name), delivered }, 'session policies changed');
  }

  list(): SessionRecord[] {
    return [...[...this.live.values()].map((entry) => entry.record), ...this.closed];
  }

  get(id: string): SessionRecord | undefined {
    return this.live.get(id)?.record ?? this.closed.find((record) => record.id === id);
  }

  /** The agent reports a session's link state. */
  onSessionState(event: SessionStateEvent): void {
    const entry = this.live.get(event.session);
    if (entry === undefined || event.state !== 'ready') return;
    entry.record.phase = 'Ready';
    entry.record.readyAt = Date.now();
    // Policies that changed while the session's connection was on its way could not be delivered then.
    void this.reapplyTo(entry);
  }

  /** A target's agent died: its sessions' links died with it. */
  onAgentLost(agentKey: string, reason: string): void {
    for (const entry of this.live.values()) {
      if (entry.agentKey === agentKey) entry.end('REMOCAL_AGENT_LOST', `${reason}`, 'The operator started a new agent for the target: run the command again.');
    }
  }

  /**
   * Opens a session on `target` for `identity` and joins it to the client's stream, which `attach` provides
   * once the agent's side is ready (the WebSocket upgrade happens only then, so that a refusal is still an
   * HTTP answer). Resolves once attached; the session then lives until either side ends it.
   */
  async open(identity: Identity, namespace: string, target: Target, options: SessionOptions, attach: () => Promise<ClientStream>): Promise<SessionRecord> {
    const { files, purpose } = options;
    const key = formatTarget(target);
    const id = randomBytes(4).toString('hex');
    let copy: CopyForSession<T> | undefined;
    let split: JoinedSplit | undefined;
    let resolved: ResolvedForSession<T>;
    let policies: AppliedPolicy[];
    let lease: Awaited<ReturnType<AgentPool<T>['acquire']>> | undefined;
    let socket: Duplex;
    this.starting.add(id);
    try {
      if (options.copy !== undefined && target.platform === 'kubernetes') {
        await this.checkCopy(identity, namespace, target, options.copy);
        copy = await this.catalog.copies!.create({ id, owner: identity.user }, namespace, target, options.copy);
        resolved = copy.resolved;
        policies = applicablePolicies(this.policies.current(), scopeOf(namespace, resolved, true));
      } else if (options.copy !== undefined) {
        await this.checkCopy(identity, namespace, target, options.copy);
        throw new Error('unreachable: checkCopy refuses a target off Kubernetes');
      } else {
        ({ resolved, policies } = await this.policiesFor(identity, namespace, target));
      }
      checkPurpose(policies, purpose, target);
      checkCarried(policies, target);
      let env = options.env;
      if (options.split !== undefined) {
        if (this.catalog.splits === undefined || target.platform !== 'kubernetes') {
          throw new SplitConfigError(`This operator cannot split the queues of ${key}: split queues need the operator on Kubernetes, and this one serves the targets of a host.`);
        }
        checkSplitQueuePolicies(policies, options.split, key);
        split = await this.catalog.splits.join({ id, owner: identity.user }, namespace, target, options.split);
        env = { ...env, ...split.env };
      }
      lease = await this.pool.acquire(resolved.agentKey, resolved.target);
      socket = await lease.agent.openSession({ kind: 'session', session: id, owner: identity.user, files, policies, ...(env === undefined ? {} : { env }) });
    } catch (error) {
      lease?.release();
      await split?.leave();
      await copy?.release();
      throw error;
    } finally {
      this.starting.delete(id);
    }
    const agentKey = resolved.agentKey;
    const held = lease;
    const now = Date.now();
    const record: SessionRecord = {
      id,
      owner: identity.user,
      namespace,
      target: key,
      resolvedTo: resolved.description,
      files,
      startedAt: now,
      phase: 'Starting',
      readyAt: undefined,
      lastActivity: now,
      routed: 0,
      subscriptions: [],
      closedAt: undefined,
      closeReason: undefined,
      policies: policies.map((policy) => policy.name),
      copy: copy === undefined ? undefined : { pod: copy.record.name, source: copy.record.source, scaledDown: copy.record.scaledDown },
      splitQueues: split?.queues,
    };
    let closeReason: string | undefined;
    let client: ClientStream | undefined;
    let toldClient = false;
    let agentTold = false;
    const entry: Live = {
      record,
      agentKey,
      agent: held.agent,
      scope: scopeOf(namespace, resolved, copy !== undefined),
      applied: JSON.stringify(policies),
      end: (code, reason, hint) => {
        if (closeReason !== undefined) return;
        closeReason = reason;
        // Not (or no longer) on the agent, or the agent is gone: the client's stream says it instead.
        const tellClient = (): void => {
          if (client === undefined) socket.destroy();
          else {
            toldClient = true;
            client.endWith(code, reason);
          }
        };
        void held.agent.endSession({ session: id, code, reason, hint }).then((found) => {
          if (found) agentTold = true;
          else tellClient();
        }, tellClient);
      },
    };
    this.live.set(id, entry);
    const finish = (why: string): void => {
      if (!this.live.delete(id)) return;
      record.phase = 'Closed';
      record.closedAt = Date.now();
      record.closeReason = closeReason ?? why;
      this.closed.unshift(record);
      this.closed.splice(this.limits.keep_closed);
      held.release();
      // Its queues go back: what it had not read returns to the workload's queue (docs/queues.md).
      if (split !== undefined) {
        const leaving = split.leave();
        this.releasing.add(leaving);
        void leaving.finally(() => this.releasing.delete(leaving));
      }
      // The copy goes with its session (and the workload it scaled down comes back).
      if (copy !== undefined) {
        const releasing = copy.release();
        this.releasing.add(releasing);
        void releasing.finally(() => this.releasing.delete(releasing));
      }
      this.log.info({ session: id, owner: record.owner, target: key, agent: agentKey, reason: record.closeReason }, 'session closed');
    };
    let stream: Duplex;
    try {
      client = await attach();
      stream = client.stream;
    } catch (error) {
      socket.destroy();
      finish(`the client's stream could not be opened: ${(error as Error).message}`);
      throw error;
    }
    // Not ended with the agent's side: whether the client hears a plain end or the operator's words is decided below.
    socket.pipe(stream, { end: false });
    stream.pipe(socket);
    socket.on('error', () => stream.destroy());
    stream.on('error', () => socket.destroy());
    let agentClosed = false;
    socket.once('close', () => {
      agentClosed = true;
      // The agent told the session why (a session_closed event) before it closed, or the words for the client are on
      // their way in the WebSocket's close: the stream ends with them, and the session is over now.
      if (agentTold || toldClient) {
        if (agentTold) stream.end();
        return finish('the agent closed the session');
      }
      // The agent's side closed unannounced: if the agent died, the pool says so in a moment (onAgentLost) and the
      // client hears those words rather than a dropped stream.
      setTimeout(() => toldClient || stream.end(), AGENT_LOSS_GRACE_MS).unref();
    });
    stream.once('close', () => {
      socket.destroy();
      finish(agentClosed ? 'the agent closed the session' : 'the client ended the session');
    });
    this.log.info({ session: id, owner: record.owner, target: key, agent: agentKey }, 'session opened');
    return record;
  }

  /** Ends a session at someone's request. */
  kill(id: string, by: Identity): boolean {
    const entry = this.live.get(id);
    if (entry === undefined) return false;
    const self = by.user === entry.record.owner;
    entry.end(
      SESSION_CLOSED,
      self ? 'you ended this session (remocal session kill)' : `the session was killed by ${by.user}`,
      self ? 'Start it again when you need it.' : `Ask ${by.user} why, or start the session again.`,
    );
    return true;
  }

  close(): void {
    clearInterval(this.sweeper);
    this.stopWatchingPolicies();
  }

  /** Resolves once the copies of ended sessions are removed. */
  async settled(): Promise<void> {
    await Promise.all([...this.releasing]);
  }

  /** Updates what the agents know of their sessions, and ends those past a limit. */
  private async sweep(): Promise<void> {
    const byAgent = new Map<string, Live[]>();
    for (const entry of this.live.values()) {
      const entries = byAgent.get(entry.agentKey);
      if (entries === undefined) byAgent.set(entry.agentKey, [entry]);
      else entries.push(entry);
    }
    await Promise.all(
      [...byAgent.values()].map(async (entries) => {
        const stats = await this.pool.statsOf(entries[0]!.agentKey).catch(() => []);
        const byId = new Map(stats.map((stat) => [stat.session, stat]));
        for (const entry of entries) {
          const stat = byId.get(entry.record.id);
          if (stat === undefined) continue;
          entry.record.lastActivity = Math.max(entry.record.lastActivity, stat.lastActivity);
          entry.record.routed = stat.routed;
          entry.record.subscriptions = stat.subscriptions;
        }
      }),
    );
    const now = Date.now();
    for (const entry of this.live.values()) this.enforceLimits(entry, now);
  }

  private enforceLimits(entry: Live, now: number): void {
    const { record } = entry;
    const { setup_timeout: setup, idle_timeout: idle, max_duration: max } = this.limits;
    if (record.phase === 'Starting' && now - record.startedAt > setup * 1000) {
      entry.end(SESSION_CLOSED, `the session missed its setup deadline: its link was not up within ${setup} s (sessions.setup_timeout)`, 'Check the network between you and the operator, and run again.');
    } else if (now - record.lastActivity > idle * 1000) {
      entry.end(SESSION_CLOSED, `the session was unused for ${idle} s, the operator's limit (sessions.idle_timeout)`, 'Run the command again when you need it.');
    } else if (now - record.startedAt > max * 1000) {
      entry.end(SESSION_CLOSED, `the session reached the operator's maximum session time of ${max} s (sessions.max_duration)`, 'Run the command again to start a new session.');
    }
  }
}

function scopeOf(namespace: string, resolved: Pick<ResolvedForSession<unknown>, 'names' | 'labels'>, copy = false): PolicyScope {
  return { namespace, names: resolved.names, labels: resolved.labels, copy };
}

/** Refuses a copy (or its scale-down) that a policy of the target blocks, naming the policy. */
export function checkCopyBlocks(policies: readonly AppliedPolicy[], request: CopyTargetRequest, target: Target): void {
  const blocking = (block: 'copy-target' | 'copy-target-scale-down') => policies.find((policy) => policy.spec.block?.includes(block))?.name;
  const copying = blocking('copy-target');
  if (copying !== undefined) throw new PolicyBlockedError(`Policy ${copying} forbids copies of ${formatTarget(target)} (block: copy-target).`);
  const scaling = request.scaleDown ? blocking('copy-target-scale-down') : undefined;
  if (scaling !== undefined) throw new PolicyBlockedError(`Policy ${scaling} forbids scaling ${formatTarget(target)} down for a copy (block: copy-target-scale-down).`, { hint: 'Copy it without scale_down, or ask the policy\'s owner.' });
}

/**
 * Refuses a session whose policies are more than its preamble may carry (the agent would drop the connection),
 * in words the user can pass on: the admins' policies need merging, nothing is wrong with the session.
 */
function checkCarried(policies: readonly AppliedPolicy[], target: Target): void {
  const bytes = Buffer.byteLength(JSON.stringify(policies));
  // The rest of the preamble (session, owner, files) is a few hundred bytes at most.
  if (policies.length <= MAX_SESSION_POLICIES && bytes <= MAX_PREAMBLE_BYTES - 1024) return;
  throw new PolicyBlockedError(`${policies.length} policies (${bytes} bytes) apply to ${formatTarget(target)}: more than a session carries (${MAX_SESSION_POLICIES} policies, ${MAX_PREAMBLE_BYTES - 1024} bytes).`, {
    hint: 'Ask the admins to merge policies: one policy may hold many rules. `remocal policy check -t <target>` lists them.',
  });
}

/** Refuses a session whose purpose a policy blocks (`remocal port-forward`). */
export function checkPurpose(policies: readonly AppliedPolicy[], purpose: SessionOptions['purpose'], target: Target): void {
  if (purpose !== 'port-forward') return;
  const refusal = policies.find((policy) => policy.spec.block?.includes('port-forward'))?.name;
  if (refusal !== undefined) throw new PolicyBlockedError(`Policy ${refusal} forbids remocal port-forward on ${formatTarget(target)} (block: port-forward).`);
}
