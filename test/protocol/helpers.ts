// Real sockets for the protocol tests: unix sockets in a fresh temp dir, so nothing leaves the machine.
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FrameDecoder, type Frame } from '../../src/protocol/frames.js';
import { Link, type LinkOptions } from '../../src/protocol/link.js';
import type { AgentToIntproxy, IntproxyToAgent } from '../../src/protocol/messages.js';

export type IntproxyLink = Link<IntproxyToAgent, AgentToIntproxy>;
export type AgentLink = Link<AgentToIntproxy, IntproxyToAgent>;

export interface SocketPair {
  client: net.Socket;
  server: net.Socket;
  dispose(): void;
}

export async function socketPair(): Promise<SocketPair> {
  const dir = mkdtempSync(join(tmpdir(), 'remocal-protocol-'));
  const path = join(dir, 'link.sock');
  const listener = net.createServer();
  listener.listen(path);
  await once(listener, 'listening');
  const accepted = once(listener, 'connection') as Promise<[net.Socket]>;
  const client = net.connect(path);
  await once(client, 'connect');
  const [server] = await accepted;
  listener.close();
  return {
    client,
    server,
    dispose() {
      client.destroy();
      server.destroy();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export interface LinkPair {
  /** The side that initiated the connection (odd stream ids), as the intproxy is. */
  intproxy: IntproxyLink;
  /** The other side (even stream ids), as the agent is. */
  agent: AgentLink;
  sockets: SocketPair;
  dispose(): void;
}

export async function linkPair(
  options: Partial<Pick<LinkOptions, 'initialWindow' | 'maxFrameBytes'>> = {},
): Promise<LinkPair> {
  const sockets = await socketPair();
  const intproxy: IntproxyLink = new Link(
    { readable: sockets.client, writable: sockets.client },
    { role: 'intproxy', streamIdParity: 'odd', ...options },
  );
  const agent: AgentLink = new Link(
    { readable: sockets.server, writable: sockets.server },
    { role: 'agent', streamIdParity: 'even', ...options },
  );
  const [agentHello, intproxyHello] = await Promise.all([intproxy.handshake(2000), agent.handshake(2000)]);
  if (agentHello.role !== 'agent' || intproxyHello.role !== 'intproxy') throw new Error('hello roles crossed');
  return {
    intproxy,
    agent,
    sockets,
    dispose() {
      intproxy.close();
      agent.close();
      sockets.dispose();
    },
  };
}

/** Collects the frames a raw socket receives, for tests that play the peer by hand. */
export function collectFrames(socket: net.Socket): { frames: Frame[]; next(kind: Frame['kind'], timeoutMs?: number): Promise<Frame> } {
  const frames: Frame[] = [];
  const waiters: Array<() => void> = [];
  let pieces: Buffer[] = [];
  const decoder = new FrameDecoder({
    onMessage: (message) => add({ kind: 'message', message }),
    onData: (streamId, data, lastPiece) => {
      pieces.push(data);
      if (!lastPiece) return;
      add({ kind: 'data', streamId, data: Buffer.concat(pieces) });
      pieces = [];
    },
    onCredit: (streamId, bytes) => add({ kind: 'credit', streamId, bytes }),
    onEnd: (streamId) => add({ kind: 'end', streamId }),
    onReset: (streamId, reason) => add({ kind: 'reset', streamId, reason }),
  });
  function add(frame: Frame) {
    frames.push(frame);
    for (const wake of waiters.splice(0)) wake();
  }
  socket.on('data', (chunk: Buffer) => decoder.push(chunk));
  let taken = 0;
  return {
    frames,
    async next(kind, timeoutMs = 2000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        while (taken < frames.length) {
          const frame = frames[taken++]!;
          if (frame.kind === kind) return frame;
        }
        if (Date.now() > deadline) throw new Error(`no ${kind} frame within ${timeoutMs} ms`);
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, Math.max(1, deadline - Date.now()));
          waiters.push(() => (clearTimeout(timer), resolve()));
        });
      }
    },
  };
}

/** A seeded PRNG (mulberry32), so that a failing fuzz run can be replayed from its seed. */
export function prng(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
