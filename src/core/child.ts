// The one place remocal starts processes. Every child is logged, and every child still running when this
// process exits is killed, so a session never leaves processes behind when the CLI or intproxy stops.

import { spawn, spawnSync, type ChildProcess, type SpawnOptions, type SpawnSyncOptionsWithStringEncoding, type SpawnSyncReturns } from 'node:child_process';
import type { Logger } from './log.js';

const running = new Set<ChildProcess>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const child of running) {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    }
  });
}

export interface StartOptions extends SpawnOptions {
  log?: Logger;
  /** Leave the child running when this process exits (the user's command is reaped by its own logic). */
  keepOnExit?: boolean;
}

export function startChild(command: string, args: readonly string[], options: StartOptions = {}): ChildProcess {
  const { log, keepOnExit, ...spawnOptions } = options;
  const child = spawn(command, args, spawnOptions);
  log?.debug({ command, args, pid: child.pid }, 'started child');
  if (!keepOnExit) {
    installExitHook();
    running.add(child);
  }
  child.once('exit', (code, signal) => {
    running.delete(child);
    log?.debug({ command, pid: child.pid, code, signal }, 'child exited');
  });
  return child;
}

/** Resolves when the child has exited (immediately if it already has). */
export function childExited(child: ChildProcess): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  if (child.exitCode !== null || child.signalCode !== null) {
    return Promise.resolve({ code: child.exitCode, signal: child.signalCode });
  }
  return new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
}

/** SIGTERM, then SIGKILL if the child is still there after `graceMs`. */
export async function stopChild(child: ChildProcess, graceMs = 2000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
  await childExited(child);
  clearTimeout(timer);
}

/** A short synchronous command (a tool's one-line answer, say), logged like the others. */
export function runChildSync(command: string, args: readonly string[], options: SpawnSyncOptionsWithStringEncoding & { log?: Logger }): SpawnSyncReturns<string> {
  const { log, ...spawnOptions } = options;
  const result = spawnSync(command, args, spawnOptions);
  log?.debug({ command, args, status: result.status }, 'ran child');
  return result;
}
