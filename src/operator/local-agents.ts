// Shared agents on this host (local mode): each is a child of the operator, entered into its target's network
// namespace, with the control link on its stdio and its sessions on a unix socket in the state dir. A pid file
// beside the socket lets a restarted operator end what a killed one left behind.

import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { childExited, startChild } from '../core/child.js';
import type { Logger } from '../core/log.js';
import type { SessionPreamble } from '../protocol/shared-agent.js';
import { agentLaunch, type ResolvedLocalTarget } from '../platform/local.js';
import type { AgentLauncher, LaunchedAgent } from './agents.js';

/** How long an agent may take to finish what it accepted once its control link closed. */
const STOP_TIMEOUT_MS = 40_000;

export class LocalAgentLauncher implements AgentLauncher<ResolvedLocalTarget> {
  private readonly dir: string;

  constructor(
    stateDir: string,
    private readonly log: Logger,
  ) {
    this.dir = join(stateDir, 'agents');
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
  }

  async removeOrphans(): Promise<string[]> {
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

  async launch(key: string, target: ResolvedLocalTarget): Promise<LaunchedAgent> {
    const fileKey = key.replace(/[^A-Za-z0-9_.-]/g, '_');
    const socketPath = join(this.dir, `${fileKey}.sock`);
    const pidFile = join(this.dir, `${fileKey}.pid`);
    const launch = agentLaunch(target, { logLevel: 'info', files: 'write' });
    const child = startChild(launch.command, [...launch.args, '--sessions', socketPath], { stdio: ['pipe', 'pipe', 'pipe'], log: this.log });
    const stderrTail: string[] = [];
    child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
      stderrTail.push(chunk);
      if (stderrTail.length > 20) stderrTail.shift();
      for (const line of chunk.split('\n')) if (line.trim() !== '') this.log.debug({ target: key, agent: line }, 'agent log');
    });
    const exit = childExited(child);
    void exit.then(() => rmSync(pidFile, { force: true }));
    child.once('spawn', () => writeFileSync(pidFile, String(child.pid)));
    return {
      description: `pid ${child.pid}`,
      control: { readable: child.stdout!, writable: child.stdin! },
      openSession: (preamble) => openSessionSocket(socketPath, preamble),
      exited: exit.then(({ code, signal }) => (signal === null ? `exited with code ${code}` : `was killed by ${signal}`)),
      lastWords: () => stderrTail.join('').trim().split('\n').slice(-3).join('\n'),
      stop: async (now) => {
        child.stdin?.end();
        const timer = setTimeout(() => child.kill('SIGKILL'), now === true ? 0 : STOP_TIMEOUT_MS);
        await exit;
        clearTimeout(timer);
      },
    };
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
