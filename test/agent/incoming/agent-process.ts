// Starts a stand-in agent (redirect-agent.ts, or another script that speaks the same lines) inside a pod's network
// namespace, as the real agent is started (nsenter --net, which execs node, so the pid is the agent's own), and
// talks to it line by line.

import type { ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { childExited, startChild, stopChild } from '../../../src/core/child.js';
import type { Pod } from '../../../src/fixture/pod.js';

const redirectAgent = fileURLToPath(new URL('./redirect-agent.ts', import.meta.url));

/** What redirect-agent.ts answers on every stolen connection. */
export const STOLEN_BODY = 'stolen by the agent';

export type AgentReply = Record<string, unknown> & { event: string; error?: string };

export class AgentProcess {
  readonly child: ChildProcess;
  private readonly replies: AgentReply[] = [];
  private readonly waiters: (() => void)[] = [];
  readonly connections: AgentReply[] = [];
  /** What the stand-in reported on its own, besides connections and answers (`notice` events). */
  readonly notices: AgentReply[] = [];
  stderr = '';

  constructor(pod: Pod, script = redirectAgent) {
    this.child = startChild('nsenter', [`--net=${pod.netnsPath}`, '--', process.execPath, '--import', import.meta.resolve('tsx'), script], {
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    this.child.stderr?.setEncoding('utf8').on('data', (chunk: string) => (this.stderr += chunk));
    this.child.stdin?.on('error', () => {});
    createInterface({ input: this.child.stdout! }).on('line', (line) => {
      const reply = JSON.parse(line) as AgentReply;
      if (reply.event === 'connection') this.connections.push(reply);
      else if (reply.event === 'notice') this.notices.push(reply);
      else this.replies.push(reply);
      for (const wake of this.waiters.splice(0)) wake();
    });
  }

  get pid(): number {
    return this.child.pid!;
  }

  private async next(timeoutMs = 10_000): Promise<AgentReply> {
    const deadline = Date.now() + timeoutMs;
    while (this.replies.length === 0) {
      if (Date.now() > deadline || this.child.exitCode !== null) throw new Error(`agent did not answer: ${this.stderr}`);
      await new Promise<void>((resolve) => {
        this.waiters.push(resolve);
        setTimeout(resolve, 50);
      });
    }
    return this.replies.shift()!;
  }

  async ready(): Promise<number> {
    const reply = await this.next();
    return reply.pid as number;
  }

  /** Sends one command and returns its reply; a failed command throws. */
  async send(command: Record<string, unknown>): Promise<AgentReply> {
    this.child.stdin!.write(`${JSON.stringify(command)}\n`);
    const reply = await this.next();
    if (reply.error !== undefined) {
      throw Object.assign(new Error(`${String(command.op)} failed in the agent: ${reply.error}`), { code: reply.code, hint: reply.hint });
    }
    return reply;
  }

  async stop(): Promise<void> {
    this.child.stdin?.end();
    await Promise.race([childExited(this.child), new Promise((resolve) => setTimeout(resolve, 2000))]);
    await stopChild(this.child, 500);
  }
}
