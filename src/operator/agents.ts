// One shared agent per target: started with the target's first session, ended a grace period after its last,
// and replaced when it dies while sessions remain (those sessions are told; their links died with it).
//
// Each agent is a child of the operator with its control link on stdio, so an operator that dies takes its
// agents with it and their supervisors remove the iptables rules. The agents' sockets and pid files live in
// the state dir; a restarted operator ends any agent a previous run left there.

import type { ChildProcess } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { childExited, startChild } from '../core/child.js';
import { AgentStartError } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import { Link } from '../protocol/link.js';
import { RpcClient } from '../protocol/rpc.js';
import type { AgentToOperator, ControlRequest, ControlResults, OperatorToAgent, SessionPreamble, SessionStats, SessionStateEvent } from '../protocol/shared-agent.js';
import { agentLaunch, type ResolvedLocalTarget } from '../platform/local.js';

export interface SharedAgent {
  readonly key: string;
  readonly pid: number;
  readonly startedAt: number;
  /** Opens a session's connection: the preamble is written, the rest is the session's link. */
  openSession(preamble: SessionPreamble): Promise<Socket>;
  sessions(): Promise<SessionStats[]>;
  endSession(request: Omit<Extract<ControlRequest, { op: 'session.end' }>, 'op'>): Promise<boolean>;
}

export interface AgentLease {
  agent: SharedAgent;
  /** This holder is done with the agent; the last one to release starts the grace period. */
  release(): void;
}

export interface AgentPoolOptions {
  stateDir: string;
  log: Logger;
  graceMs: number;
  startupTimeoutMs: number;
  /** A session's link changed state on its agent. */
  onSessionState: (event: SessionStateEvent) => void;
  /** An agent exited while it still had sessions (not because the pool ended it). */
  onAgentLost: (key: string, reason: string) => void;
}

interface Entry {
  key: string;
  agent: Promise<RunningAgent>;
  /** The agent, once it has started. */
  running: RunningAgent | undefined;
  users: number;
  graceTimer: NodeJS.Timeout | undefined;
}

interface RunningAgent extends SharedAgent {
  child: ChildProcess;
  link: Link<OperatorToAgent, AgentToOperator>;
  stopping: boolean;
}

export class AgentPool {
  private readonly entries = new Map<string, Entry>();
  private readonly dir: string;

  constructor(private readonly options: AgentPoolOptions) {
    this.dir = join(options.stateDir, 'agents');
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
  }

  /** Ends the agents a previous run of the operator left behind (it was killed before it could). */
  removeOrphans(): string[] {
    const removed: string[] = [];
    for (const name of readdirSync(this.dir)) {
      const path = join(this.dir, name);
      if (name.endsWith('.pid')) {
        const pid = Number(readFileSync(path, 'utf8'));
        if (Number.isInteger(pid) && pid > 0 && isOurAgent(pid, this.dir)) {
          process.kill(pid, 'SIGTERM');
          removed.push(`pid ${pid} (${name.slice(0, -4)})`);
        }
      }
      rmSync(path, { force: true });
    }
    return removed;
  }

  /** The running agents, for `remocal operator status`. */
  running(): { key: string; pid: number; startedAt: number; users: number }[] {
    return [...this.entries.values()].flatMap((entry) => {
      const agent = entry.running;
      return agent === undefined ? [] : [{ key: entry.key, pid: agent.pid, startedAt: agent.startedAt, users: entry.users }];
    });
  }

  /** What the target's agent knows of its sessions; none while it has no agent. */
  async statsOf(key: string): Promise<SessionStats[]> {
    const entry = this.entries.get(key);
    const agent = entry?.running;
    return agent === undefined ? [] : agent.sessions();
  }

  /** The target's agent, started if it has none, and held until the lease is released (once). */
  async acquire(key: string, target: ResolvedLocalTarget): Promise<AgentLease> {
    let entry = this.entries.get(key);
    if (entry === undefined) {
      const agent = this.start(key, target);
      const created: Entry = { key, agent, running: undefined, users: 0, graceTimer: undefined };
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

  private release(entry: Entry): void {
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
    this.options.log.info({ target: agent.key, pid: agent.pid }, 'ending the agent: no session left');
    // Closing the control link is the agent's signal to end: it removes its rules and finishes what it
    // accepted (bounded on its side).
    agent.link.close();
    agent.child.stdin?.end();
    const timer = setTimeout(() => agent.child.kill('SIGKILL'), 40_000);
    await childExited(agent.child);
    clearTimeout(timer);
  }

  private async start(key: string, target: ResolvedLocalTarget): Promise<RunningAgent> {
    const { log } = this.options;
    const fileKey = key.replace(/[^A-Za-z0-9_.-]/g, '_');
    const socketPath = join(this.dir, `${fileKey}.sock`);
    const launch = agentLaunch(target, { logLevel: 'info', files: 'write' });
    const child = startChild(launch.command, [...launch.args, '--sessions', socketPath], { stdio: ['pipe', 'pipe', 'pipe'], log });
    const stderrTail: string[] = [];
    child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
      stderrTail.push(chunk);
      if (stderrTail.length > 20) stderrTail.shift();
      for (const line of chunk.split('\n')) if (line.trim() !== '') log.debug({ target: key, agent: line }, 'agent log');
    });
    const exited = childExited(child);
    const link = new Link<OperatorToAgent, AgentToOperator>({ readable: child.stdout!, writable: child.stdin! }, { role: 'operator', streamIdParity: 'odd', info: { pid: process.pid } });
    link.on('message', (message) => {
      if (message.type === 'session') this.options.onSessionState(message);
    });
    const rpc = new RpcClient<ControlRequest, ControlResults>(link, { defaultTimeoutMs: 5000 });
    try {
      await Promise.race([
        link.handshake(this.options.startupTimeoutMs),
        exited.then(({ code, signal }) => Promise.reject(new Error(signal === null ? `exited with code ${code}` : `was killed by ${signal}`))),
      ]);
    } catch (error) {
      child.kill('SIGKILL');
      const tail = stderrTail.join('').trim().split('\n').slice(-3).join('\n');
      throw new AgentStartError(`The shared agent for ${key} did not start: ${(error as Error).message}.${tail ? `\nIts last words: ${tail}` : ''}`);
    }
    writeFileSync(join(this.dir, `${fileKey}.pid`), String(child.pid));
    const agent: RunningAgent = {
      key,
      pid: child.pid!,
      startedAt: Date.now(),
      child,
      link,
      stopping: false,
      openSession: (preamble) => openSessionSocket(socketPath, preamble),
      sessions: async () => {
        const answer = await rpc.request({ op: 'agent.sessions' });
        return answer.ok ? answer.value.sessions : [];
      },
      endSession: async (request) => {
        const answer = await rpc.request({ op: 'session.end', ...request });
        return answer.ok && answer.value.found;
      },
    };
    log.info({ target: key, pid: agent.pid }, 'shared agent started');
    void exited.then(({ code, signal }) => {
      rmSync(join(this.dir, `${fileKey}.pid`), { force: true });
      const entry = this.entries.get(key);
      if (entry?.running === agent) this.entries.delete(key);
      if (agent.stopping) return;
      const tail = stderrTail.join('').trim().split('\n').slice(-2).join(' ');
      const reason = `the shared agent (pid ${agent.pid}) ${signal === null ? `exited with code ${code}` : `was killed by ${signal}`}${tail ? ` (${tail})` : ''}`;
      log.warn({ target: key, reason }, 'shared agent lost');
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

function openSessionSocket(path: string, preamble: SessionPreamble): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect(path);
    socket.once('error', reject);
    socket.once('connect', () => {
      socket.off('error', reject);
      socket.write(`${JSON.stringify(preamble)}\n`);
      resolve(socket);
    });
  });
}

/** Whether `pid` is an agent serving a socket in `dir`: a pid file may outlive its process and the pid be reused. */
function isOurAgent(pid: number, dir: string): boolean {
  try {
    const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    const at = argv.indexOf('--sessions');
    return at !== -1 && (argv[at + 1] ?? '').startsWith(`${dir}/`);
  } catch {
    return false;
  }
}
