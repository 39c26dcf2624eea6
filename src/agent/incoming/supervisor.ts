// Removes a session's chain when its agent exits for any reason, SIGKILL and OOM kills included, when no code
// of the agent gets to run. The supervisor is a detached child that stays in the agent's network namespace and
// holds the read end of a pipe whose only write end is the agent's: the kernel closes that end whenever the
// agent dies, the supervisor reads EOF, removes the chain and exits. A normal close() ends the pipe the same
// way, so the supervisor never outlives its agent.
//
// Detached, so a signal to the agent's process group (Ctrl-C in a terminal) does not take it down before it
// has cleaned up; its stdout and stderr go nowhere, so it never holds the agent's protocol link or log pipe
// open after the agent is gone.

import type { ChildProcess } from 'node:child_process';
import type { Socket } from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { childExited, startChild } from '../../core/child.js';
import type { Logger } from '../../core/log.js';
import type { IptablesBackend } from './iptables.js';

export interface CleanupSupervisor {
  readonly pid: number | undefined;
  /**
   * Lets the supervisor go and resolves once it has exited. With `released`, the caller has removed the chain
   * itself and the supervisor exits at once; without, it removes the chain first.
   */
  stop(options?: { released?: boolean }): Promise<void>;
}

// The entry next to this file: supervisor-entry.ts when running from source, .js once built.
const entryPath = fileURLToPath(
  new URL(`./supervisor-entry${path.extname(fileURLToPath(import.meta.url))}`, import.meta.url),
);

/** The loader flags of this process (tsx from source), without the test runner's or inspector's flags. */
function loaderArgs(): string[] {
  const kept: string[] = [];
  const argv = process.execArgv;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] ?? '';
    if (['--import', '--loader', '--require', '--experimental-loader'].includes(arg) && i + 1 < argv.length) {
      kept.push(arg, argv[++i] ?? '');
    } else if (/^--(import|loader|require|experimental-loader)=/.test(arg)) {
      kept.push(arg);
    }
  }
  return kept;
}

export function startCleanupSupervisor(backend: IptablesBackend, chain: string, log?: Logger): CleanupSupervisor {
  const child: ChildProcess = startChild(process.execPath, [...loaderArgs(), entryPath, backend, chain], {
    detached: true,
    stdio: ['pipe', 'ignore', 'ignore'],
    // The exit hook of child.ts would SIGKILL it at the very moment its cleanup is needed.
    keepOnExit: true,
    ...(log === undefined ? {} : { log }),
  });
  child.once('error', (error) => log?.error({ err: error }, 'cleanup supervisor failed to start'));
  child.stdin?.on('error', () => {
    // EPIPE if the supervisor died first; nothing to deliver anyway.
  });
  // Neither the process nor the pipe may keep the agent's event loop alive.
  child.unref();
  (child.stdin as Socket | null)?.unref();
  return {
    pid: child.pid,
    async stop(options = {}) {
      child.stdin?.end(options.released ? 'released\n' : undefined);
      await childExited(child);
    },
  };
}
