// One shared agent per target: started with the target's first session, ended a grace period after its last,
// and replaced when it dies while sessions remain (those sessions are told; their links died with it).
//
// How an agent is started and reached is the launcher's (local-agents.ts: a child of the operator on this host;
// kube-agents.ts: an ephemeral container reached through port-forwards). Either way the agent ends when its
// control link closes, so an operator that dies takes its agents with it and their supervisors remove the
// iptables rules.

import type { Duplex, Readable, Writable } from 'node:stream';
import { AgentStartError } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import { Link } from '../protocol/link.js';
import { RpcClient } from '../protocol/rpc.js';
import type { AgentToOperator, ControlRequest, ControlResults, OperatorToAgent, SessionPreamble, SessionStats, SessionStateEvent } from '../protocol/shared-agent.js';

/** An agent as its launcher started it: the pool runs the control link over `control`. */
export interface LaunchedAgent {
  /** "pid 4242", "ephemeral container remocal-agent-1a2b in pod/orders-…": for status and logs. */
  description: string;
  control: { readable: Readable; writable: Writable };
  /** Opens a session's connection: the preamble is written, the rest is the session's link. */
  openSession(preamble: SessionPreamble): Promise<Duplex>;
  /** Resolves when the agent is gone, with how, to follow "the shared agent (…)": "was killed by SIGKILL". */
  exited: Promise<string>;
  /** The last lines the agent logged, when the launcher can see them. */
  lastWords(): string;
  /**
   * Ends it once the control link is closed: waits for the agent to finish what it accepted (bounded), or, with
   * `now`, ends it at once (a failed start, an agent already lost).
   */
  stop(now?: boolean): Promise<void>;
  /** How often the pool pings the control link (a port-forwarded agent drops a silent one); none for stdio. */
  pingIntervalMs?: number | undefined;
}

export interface AgentLauncher<T> {
  launch(key: string, target: T): Promise<LaunchedAgent>;
  /** Ends what a previous run of the operator left behind; says what it removed. */
  removeOrphans(): Promise<string[]>;
}

export interface SharedAgent {
  readonly key: string;
  readonly description: string;
  readonly startedAt: number;
  /** Opens a session's connection: the preamble is written, the rest is the session's link. */
  openSession(preamble: SessionPreamble): Promise<Duplex>;
  sessions(): Promise<SessionStats[]>;
  endSession(request: Omit<Extract<ControlRequest, { op: 'session.end' }>, 'op'>): Promise<boolean>;
  /** Hands a running session its new policies; false when the agent does not have the session. */
  setPolicies(request: Omit<Extract<ControlRequest, { op: 'session.policies' }>, 'op'>): Promise<boolean>;
}

export interface AgentLease {
  agent: SharedAgent;
  /** This holder is done with the agent; the last one to release starts the grace period. */
  release(): void;
}

export interface AgentPoolOptions<T> {
  launcher: AgentLauncher<T>;
  log: Logger;
  graceMs: number;
  startupTimeoutMs: number;
  /** A session's link changed state on its agent. */
  onSessionState: (event: SessionStateEvent) => void;
  /** An agent exited while it still had sessions (not because the pool ended it). */
  onAgentLost: (key: string, reason: string) => void;
}

interface Entry<T> {
  key: string;
  target: T;
  agent: Promise<RunningAgent>;
  /** The agent, once it has started. */
  running: RunningAgent | undefined;
  users: number;
  graceTimer: NodeJS.Timeout | undefined;
}

interface RunningAgent extends SharedAgent {
  launched: LaunchedAgent;
  link: Link<OperatorToAgent, AgentToOperator>;
  stopping: boolean;
}

export class AgentPool<T> {
  private readonly entries = new Map<string, Entry<T>>();

  constructor(private readonly options: AgentPoolOptions<T>) {}

  /** Ends the agents a previous run of the operator left behind (it was killed before it could). */
  removeOrphans(): Promise<string[]> {
    return this.options.launcher.removeOrphans();
  }

  /** The running agents, for `remocal operator status`. */
  running(): { key: string; description: string; startedAt: number; users: number }[] {
    return [...this.entries.values()].flatMap((entry) => {
      const agent = entry.running;
      return agent === undefined ? [] : [{ key: entry.key, description: agent.description, startedAt: agent.startedAt, users: entry.users }];
    });
  }

  /** What the target's agent knows of its sessions; none while it has no agent. */
  async statsOf(key: string): Promise<SessionStats[]> {
    const entry = this.entries.get(key);
    const agent = entry?.running;
    return agent === undefined ? [] : agent.sessions();
  }

  /** The target's agent, started if it has none, and held until the lease is released (once). */
  async acquire(key: string, target: T): Promise<AgentLease> {
    let entry = this.entries.get(key);
    if (entry === undefined) {
      const agent = this.start(key, target);
      const created: Entry<T> = { key, target, agent, running: undefined, users: 0, graceTimer: undefined };
      entry = created;
      this.entries.set(key, entry);
      agent.then(
        (running) => (created.running = running),
        () => {
          if (this.entries.get(key) === created) this.entries.delete(key);
        },
      );
    }
    entry.users++;
    clearTimeout(entry.graceTimer);
    entry.graceTimer = undefined;
    const held = entry;
    let released = false;
    const release = (): void => {
      if (released) return;
      released = true;
      this.release(held);
    };
    try {
      return { agent: await held.agent, release };
    } catch (error) {
      release();
      throw error;
    }
  }

  private release(entry: Entry<T>): void {
    const key = entry.key;
    if (--entry.users > 0 || this.entries.get(key) !== entry) return;
    entry.graceTimer = setTimeout(() => {
      if (entry.users > 0 || this.entries.get(key) !== entry) return;
      this.entries.delete(key);
      void entry.agent.then((agent) => this.stop(agent), () => undefined);
    }, this.options.graceMs);
    entry.graceTimer.unref();
  }

  /** Ends every agent (the operator stops). */
  async close(): Promise<void> {
    const agents = [...this.entries.values()];
    this.entries.clear();
    await Promise.all(agents.map(async (entry) => {
      clearTimeout(entry.graceTimer);
      await entry.agent.then((agent) => this.stop(agent), () => undefined);
    }));
  }

  private async stop(agent: RunningAgent): Promise<void> {
    agent.stopping = true;
    this.options.log.info({ target: agent.key, agent: agent.description }, 'ending the agent: no session left');
    // Closing the control link is the agent's signal to end: it removes its rules and finishes what it
    // accepted (bounded on its side).
    agent.link.close();
    await agent.launched.stop();
  }

  private async start(key: string, target: T): Promise<RunningAgent> {
    const { log } = this.options;
    const launched = await this.options.launcher.launch(key, target);
    const link = new Link<OperatorToAgent, AgentToOperator>(launched.control, { role: 'operator', streamIdParity: 'odd', info: { pid: process.pid } });
    link.on('message', (message) => {
      if (message.type === 'session') this.options.onSessionState(message);
    });
    const rpc = new RpcClient<ControlRequest, ControlResults>(link, { defaultTimeoutMs: 5000 });
    try {
      await Promise.race([link.handshake(this.options.startupTimeoutMs), launched.exited.then((reason) => Promise.reject(new Error(reason)))]);
    } catch (error) {
      link.close();
      await launched.stop(true);
      const tail = launched.lastWords();
      throw new AgentStartError(`The shared agent for ${key} did not start: ${(error as Error).message}.${tail ? `\nIts last words: ${tail}` : ''}`);
    }
    // A port-forward that died quietly is only noticed by a ping that goes unanswered; the agent's side drops a
    // silent link the same way.
    let pinger: NodeJS.Timeout | undefined;
    if (launched.pingIntervalMs !== undefined) {
      pinger = setInterval(() => {
        rpc.ping(launched.pingIntervalMs! * 2).catch(() => link.close());
      }, launched.pingIntervalMs);
      pinger.unref();
    }
    const agent: RunningAgent = {
      key,
      description: launched.description,
      startedAt: Date.now(),
      launched,
      link,
      stopping: false,
      openSession: (preamble) => launched.openSession(preamble),
      sessions: async () => {
        const answer = await rpc.request({ op: 'agent.sessions' });
        return answer.ok ? answer.value.sessions : [];
      },
      endSession: async (request) => {
        const answer = await rpc.request({ op: 'session.end', ...request });
        return answer.ok && answer.value.found;
      },
      setPolicies: async (request) => {
        const answer = await rpc.request({ op: 'session.policies', ...request });
        return answer.ok && answer.value.found;
      },
    };
    log.info({ target: key, agent: agent.description }, 'shared agent started');
    const lost = new Promise<string>((resolve) => link.once('close', () => resolve('closed its control link')));
    void Promise.race([launched.exited, lost]).then(async (why) => {
      clearInterval(pinger);
      const entry = this.entries.get(key);
      if (entry?.running === agent) this.entries.delete(key);
      if (agent.stopping) return;
      link.close();
      await launched.stop(true);
      // Its exit, once known, says more than a closed link ("was killed by SIGKILL").
      const how = await Promise.race([launched.exited, Promise.resolve(why)]);
      const reason = `the shared agent (${agent.description}) ${how}`;
      log.warn({ target: key, reason, lastWords: launched.lastWords() }, 'shared agent lost');
      this.options.onAgentLost(key, reason);
      // Its sessions were told and end; a new agent is ready for those that come back, and goes after the grace
      // period if none does.
      if (entry !== undefined && entry.users > 0) {
        this.acquire(key, target).then((lease) => lease.release(), (error: Error) => log.warn({ target: key, err: error }, 'could not start a new agent'));
      }
    });
    return agent;
  }
}
