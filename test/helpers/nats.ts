// A real nats-server with JetStream for the tests of the NATS queue driver: built from Debian's source by
// scripts/nats-server.sh on first use, listening on loopback only, its store in a temp dir removed at stop.

import type { ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { connect } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
import { childExited, startChild, stopChild } from '../../src/core/child.js';
import { freePort } from './net.js';

const script = fileURLToPath(new URL('../../scripts/nats-server.sh', import.meta.url));
// The first call of a fresh checkout compiles the server: about half a minute on two cores, more under load.
const BUILD_TIMEOUT_MS = 300_000;
const READY_TIMEOUT_MS = 20_000;

export interface NatsServer {
  url: string;
  /** kill -9: the store stays, for restart(). */
  kill(): Promise<void>;
  /** Starts it again on the same port and store, and waits until it serves JetStream. */
  restart(): Promise<void>;
  /** Stops it and removes its store. */
  stop(): Promise<void>;
}

export async function startNatsServer(): Promise<NatsServer> {
  const binary = await buildServer();
  const dir = await mkdtemp(join(tmpdir(), 'remocal-nats-'));
  const port = await freePort();
  const url = `nats://127.0.0.1:${port}`;
  let child: ChildProcess | undefined;
  const start = async (): Promise<void> => {
    child = startChild(binary, ['-js', '-sd', dir, '-a', '127.0.0.1', '-p', String(port)], { stdio: ['ignore', 'ignore', 'pipe'] });
    let log = '';
    child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (log = (log + chunk).slice(-4000)));
    await waitServing(url, child, () => log);
  };
  try {
    await start();
  } catch (error) {
    if (child !== undefined) await stopChild(child);
    await rm(dir, { recursive: true, force: true });
    throw error;
  }
  return {
    url,
    kill: async () => {
      if (child === undefined) return;
      child.kill('SIGKILL');
      await childExited(child);
    },
    restart: start,
    stop: async () => {
      if (child !== undefined) await stopChild(child);
      await rm(dir, { recursive: true, force: true });
    },
  };
}

async function buildServer(): Promise<string> {
  const build = startChild('bash', [script], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  build.stdout!.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
  build.stderr!.setEncoding('utf8').on('data', (chunk: string) => (err += chunk));
  const timer = setTimeout(() => build.kill('SIGKILL'), BUILD_TIMEOUT_MS);
  const { code } = await childExited(build);
  clearTimeout(timer);
  if (code !== 0) throw new Error(`scripts/nats-server.sh failed (${code ?? 'killed'}): ${err.trim()}`);
  return out.trim();
}

/** Ready means a client gets JetStream's account answer, not merely a listening socket. */
async function waitServing(url: string, child: ChildProcess, log: () => string): Promise<void> {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`nats-server exited: ${log()}`);
    try {
      const nc = await connect({ servers: url, reconnect: false, timeout: 1_000 });
      try {
        await jetstreamManager(nc, { timeout: 1_000 });
        return;
      } finally {
        await nc.close();
      }
    } catch (error) {
      if (Date.now() > deadline) throw new Error(`nats-server did not serve JetStream at ${url} within ${READY_TIMEOUT_MS} ms: ${String(error)}\n${log()}`);
      // A refused connect comes back at once: pace the next try.
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
}
