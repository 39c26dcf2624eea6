// Start-up is on every `remocal exec`'s critical path. The intproxy is a Node process of its own, and loading
// it takes about as long as the CLI takes to load its own code and read the config; started first, with its
// settings sent once known, it is ready by the time they are.

import type { ChildProcess } from 'node:child_process';
import { startChild } from '../core/child.js';
import { distFile } from '../core/paths.js';

let prewarmed: ChildProcess | undefined;

/** The intproxy process, with its settings in the env, or (without) waiting for them over IPC. */
export function startIntproxy(env?: NodeJS.ProcessEnv): ChildProcess {
  return startChild(process.execPath, [distFile('intproxy.js')], { stdio: ['ignore', 'ignore', 'pipe', 'ipc'], ...(env === undefined ? {} : { env }) });
}

export function prewarmIntproxy(): void {
  prewarmed = startIntproxy();
}

/** The prewarmed intproxy, once; undefined if none was started (or it already died). */
export function takePrewarmedIntproxy(): ChildProcess | undefined {
  const child = prewarmed;
  prewarmed = undefined;
  if (child === undefined || child.exitCode !== null || child.signalCode !== null || !child.connected) return undefined;
  return child;
}

/** When the command ends without taking it (a bad config, say), it must not keep the CLI alive. */
export function discardPrewarmedIntproxy(): void {
  const child = prewarmed;
  prewarmed = undefined;
  if (child === undefined) return;
  if (child.connected) child.disconnect();
  child.kill('SIGTERM');
}
