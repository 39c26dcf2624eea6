// Steals the target's incoming TCP connections, one port at a time. Each stolen port gets its own agent
// listener, because Node cannot read SO_ORIGINAL_DST: the listener a connection arrives on tells its original
// port, and its local address the original IP (REDIRECT keeps the address for loopback traffic and puts the
// receiving interface's address for traffic from outside, which for a pod is the pod IP it was sent to).
//
// The rules (iptables.ts) are set up on the first redirect: the backend the namespace already uses, the
// cleanup supervisor (supervisor.ts) started before any rule exists so that no rule can outlive the agent,
// then the session's chain. The agent joins the exempt group first, so that every connection it makes to the
// original server, passthrough included, reaches that server rather than its own listener.
//
// Another session's agent in the same target has a chain of its own, and the chain jumped to first takes the
// port: each new chain's jumps go in front, so a second steal of a port would silently take it from the first
// session. So a port another live session holds is refused (PortHeldError) before any rule is added. The read
// and the rule are two commits, so two sessions that take the same port within the same few milliseconds can
// still both pass; sharing a port for real is the operator's job.

import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { PortHeldError } from '../../core/errors.js';
import type { Logger } from '../../core/log.js';
import {
  AGENT_EXEMPT_GID,
  BACKENDS,
  addRedirect,
  chainNameFor,
  createChain,
  detectBackend,
  bypassNewConnections,
  portHolders,
  removeChain,
  saveRules,
  takeNewConnections,
  type IptablesBackend,
} from './iptables.js';
import { isAlive } from './stale.js';
import { startCleanupSupervisor, type CleanupSupervisor } from './supervisor.js';

export interface OriginalDestination {
  address: string;
  port: number;
}

export interface RedirectorOptions {
  /** Every stolen connection, with where the client meant it to go. */
  onConnection: (socket: net.Socket, original: OriginalDestination) => void;
  /** Default: the backend the namespace already uses (detectBackend). */
  backend?: IptablesBackend;
  /** 8 hex digits naming the chain; default random. */
  sessionId?: string;
  log?: Logger;
}

export interface Redirection {
  listener: net.Server;
  agentPort: number;
}

interface Rules {
  backend: IptablesBackend;
  supervisor: CleanupSupervisor;
}

export class Redirector {
  readonly chain: string;
  private readonly redirections = new Map<number, Promise<Redirection>>();
  /** Ports that take no new connections, but whose stolen connections are still served. */
  private readonly released = new Set<number>();
  private rules: Promise<Rules> | undefined;
  private closing: Promise<void> | undefined;

  constructor(private readonly options: RedirectorOptions) {
    this.chain = chainNameFor(options.sessionId ?? randomBytes(4).toString('hex'));
  }

  /** The backend in use, once the first redirect has set the rules up. */
  async backend(): Promise<IptablesBackend | undefined> {
    return this.rules === undefined ? undefined : (await this.rules).backend;
  }

  /** The cleanup supervisor's pid, once the first redirect has started it. */
  async supervisorPid(): Promise<number | undefined> {
    return this.rules === undefined ? undefined : (await this.rules).supervisor.pid;
  }

  /** Steals `port`; redirecting a port already stolen returns the same listener. */
  redirect(port: number): Promise<Redirection> {
    if (this.closing !== undefined) return Promise.reject(new Error('the redirector is closed'));
    let redirection = this.redirections.get(port);
    if (redirection === undefined) {
      redirection = this.openRedirection(port);
      this.redirections.set(port, redirection);
      // A failed redirect leaves nothing behind, so the next call may try again.
      redirection.catch(() => this.redirections.delete(port));
    } else if (this.released.delete(port)) {
      // Released earlier in this session and kept for its connections: take new ones again.
      redirection = redirection.then(async (existing) => {
        try {
          // Another session may have taken the port while this one had let it go.
          await this.refuseIfHeld(port);
          await takeNewConnections((await this.setUp()).backend, this.chain, port);
        } catch (error) {
          this.released.add(port); // Its bypass is still in front.
          throw error;
        }
        return existing;
      });
    }
    return redirection;
  }

  /**
   * Stops stealing new connections to `port`; connections already stolen go on (their REDIRECT stays until the
   * redirector closes, see iptables.ts for why), and the listener keeps serving them.
   */
  async release(port: number): Promise<void> {
    const redirection = this.redirections.get(port);
    if (redirection === undefined || this.released.has(port)) return;
    await redirection;
    this.released.add(port);
    await bypassNewConnections((await this.setUp()).backend, this.chain, port);
  }

  /** No new connection is stolen any more, on any port; those already stolen go on. */
  async stopNewConnections(): Promise<void> {
    if (this.rules === undefined || this.closing !== undefined) return;
    const { backend } = await this.rules;
    await bypassNewConnections(backend, this.chain, null);
  }

  /** Removes every rule and listener. Idempotent. */
  close(): Promise<void> {
    this.closing ??= this.tearDown();
    return this.closing;
  }

  private async tearDown(): Promise<void> {
    const redirections = await Promise.allSettled(this.redirections.values());
    this.redirections.clear();
    for (const result of redirections) if (result.status === 'fulfilled') result.value.listener.close();
    if (this.rules === undefined) return;
    let rules: Rules;
    try {
      rules = await this.rules;
    } catch {
      return; // Setup failed and undid itself.
    }
    let released = false;
    try {
      await removeChain(rules.backend, this.chain);
      released = true;
    } finally {
      // If the removal failed, the supervisor tries again on its own.
      await rules.supervisor.stop({ released });
    }
  }

  private setUp(): Promise<Rules> {
    this.rules ??= (async () => {
      joinExemptGroup();
      const backend = this.options.backend ?? (await detectBackend());
      const supervisor = startCleanupSupervisor(backend, this.chain, this.options.log);
      try {
        await createChain(backend, this.chain, process.pid);
      } catch (error) {
        await supervisor.stop();
        throw error;
      }
      this.options.log?.info({ backend, chain: this.chain }, 'incoming redirection set up');
      return { backend, supervisor };
    })();
    return this.rules;
  }

  /**
   * Throws PortHeldError if another live session's chain takes new connections to `port`. Both backends are
   * read: another agent may have chosen the other one, and its rules would win or lose by hook order alone.
   */
  private async refuseIfHeld(port: number): Promise<void> {
    const saved = await Promise.all(BACKENDS.map((backend) => saveRules(backend)));
    const holder = saved
      .flatMap((text) => portHolders(text, port))
      .find(({ chain, ownerPid }) => chain !== this.chain && ownerPid !== undefined && isAlive(ownerPid));
    if (holder === undefined) return;
    // A REDIRECT does not say whether its session steals or mirrors, hence "taken".
    throw new PortHeldError(
      `port ${port} of the target is already taken by another remocal session (chain ${holder.chain}, agent pid ${holder.ownerPid})`,
      { details: { port, chain: holder.chain, ownerPid: holder.ownerPid } },
    );
  }

  private async openRedirection(port: number): Promise<Redirection> {
    await this.refuseIfHeld(port);
    const { backend } = await this.setUp();
    const listener = net.createServer({ pauseOnConnect: false }, (socket) => {
      this.options.onConnection(socket, { address: socket.localAddress ?? '', port });
    });
    await new Promise<void>((resolve, reject) => {
      listener.once('error', reject);
      listener.listen({ host: '0.0.0.0', port: 0 }, () => {
        listener.off('error', reject);
        resolve();
      });
    });
    const agentPort = (listener.address() as net.AddressInfo).port;
    try {
      await addRedirect(backend, this.chain, port, agentPort);
    } catch (error) {
      listener.close();
      throw error;
    }
    this.options.log?.debug({ port, agentPort }, 'port redirected');
    return { listener, agentPort };
  }
}

/**
 * Adds the agent to the group the OUTPUT jump exempts (see iptables.ts). Sockets take their owner at creation,
 * so this must happen before the agent connects anywhere it could be redirected.
 */
function joinExemptGroup(): void {
  const groups = process.getgroups?.() ?? [];
  if (groups.includes(AGENT_EXEMPT_GID)) return;
  process.setgroups?.([...groups, AGENT_EXEMPT_GID]);
}
