// The `wait_for` probes of an action step: when is what it started ready? A TCP port that accepts, a line of
// its output that matches (whose named groups become the step's outputs), or an HTTP status. Each probe tries
// until it passes or `signal` aborts; the step's timeout and its process ending are the runner's business.

import { connect } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { compileConfigRegex } from '../../config/index.js';

export type ReadyProbe = { tcp: string } | { log: string } | { http: string; status: number };

/** Where the log probe reads lines from: the step's stdout and stderr, as they come. */
export interface LineSource {
  onLine(listener: (line: string) => void): () => void;
}

const RETRY_MS = 100;
const ATTEMPT_TIMEOUT_MS = 2000;

/** Resolves with the outputs the probe found (the log regex's named groups; none for the others). */
export function waitForReady(probe: ReadyProbe, lines: LineSource, signal: AbortSignal): Promise<Record<string, string>> {
  if ('tcp' in probe) return waitForTcp(probe.tcp, signal).then(() => ({}));
  if ('http' in probe) return waitForHttp(probe.http, probe.status, signal).then(() => ({}));
  return waitForLine(compileConfigRegex(probe.log), lines, signal);
}

export function describeProbe(probe: ReadyProbe): string {
  if ('tcp' in probe) return `port ${probe.tcp} accepting connections`;
  if ('http' in probe) return `${probe.http} answering ${probe.status}`;
  return `a line of its output matching /${probe.log}/`;
}

export function waitForLine(regex: RegExp, lines: LineSource, signal: AbortSignal): Promise<Record<string, string>> {
  return new Promise((resolve, reject) => {
    const done = () => {
      stop();
      signal.removeEventListener('abort', onAbort);
    };
    const onAbort = () => {
      done();
      reject(signal.reason);
    };
    const stop = lines.onLine((line) => {
      const match = regex.exec(line);
      if (match === null) return;
      done();
      resolve(Object.fromEntries(Object.entries(match.groups ?? {}).filter((entry): entry is [string, string] => entry[1] !== undefined)));
    });
    if (signal.aborted) onAbort();
    else signal.addEventListener('abort', onAbort, { once: true });
  });
}

export async function waitForTcp(address: string, signal: AbortSignal): Promise<void> {
  const at = address.lastIndexOf(':');
  const host = address.slice(0, at).replace(/^\[(.*)\]$/, '$1');
  const port = Number(address.slice(at + 1));
  for (;;) {
    signal.throwIfAborted();
    if (await tryConnect(host, port)) return;
    await sleep(RETRY_MS, undefined, { signal });
  }
}

function tryConnect(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    socket.setTimeout(ATTEMPT_TIMEOUT_MS);
    const finish = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.once('connect', () => finish(true));
    socket.once('error', () => finish(false));
    socket.once('timeout', () => finish(false));
  });
}

export async function waitForHttp(url: string, status: number, signal: AbortSignal): Promise<void> {
  for (;;) {
    signal.throwIfAborted();
    try {
      const response = await fetch(url, { redirect: 'manual', signal: AbortSignal.any([signal, AbortSignal.timeout(ATTEMPT_TIMEOUT_MS)]) });
      await response.body?.cancel();
      if (response.status === status) return;
    } catch {
      // Not listening yet, or the attempt timed out: try again.
    }
    await sleep(RETRY_MS, undefined, { signal });
  }
}
