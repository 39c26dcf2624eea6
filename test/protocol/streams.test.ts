import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { describe, it } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { ProtocolError } from '../../src/core/errors.js';
import { DEFAULT_INITIAL_WINDOW, type LinkStream } from '../../src/protocol/link.js';
import { linkPair } from './helpers.js';

const MiB = 1024 * 1024;
const MAX_DATA_FRAME = 256 * 1024;

/** Writes `count` chunks from `chunkAt`, respecting backpressure, then ends. */
async function writeAll(stream: LinkStream, count: number, chunkAt: (index: number) => Buffer): Promise<void> {
  for (let i = 0; i < count; i++) {
    if (!stream.write(chunkAt(i))) await once(stream, 'drain');
  }
  stream.end();
}

/** Reads a stream to its end through 'data' events (async iteration would destroy it, half-open, at the end). */
function readAll(stream: LinkStream): Promise<{ bytes: number; sha256: string }> {
  const hash = createHash('sha256');
  let bytes = 0;
  stream.on('data', (chunk: Buffer) => {
    bytes += chunk.length;
    hash.update(chunk);
  });
  return once(stream, 'end').then(() => ({ bytes, sha256: hash.digest('hex') }));
}

function countAll(stream: LinkStream): Promise<number> {
  let bytes = 0;
  stream.on('data', (chunk: Buffer) => (bytes += chunk.length));
  return once(stream, 'end').then(() => bytes);
}

describe('link streams', () => {
  it('holds data written before the peer accepts the stream, and delivers it after', async () => {
    const pair = await linkPair();
    try {
      const out = pair.intproxy.openStream();
      out.write('early bytes');
      out.end();
      await delay(30);
      const accepted = pair.agent.acceptStream(out.id);
      accepted.end();
      assert.equal((await readAll(accepted)).bytes, 'early bytes'.length);
    } finally {
      pair.dispose();
    }
  });

  it('hands out an already reset stream when the opener gave up before the accept', async () => {
    const pair = await linkPair();
    try {
      const out = pair.intproxy.openStream();
      out.write('never delivered');
      out.destroy();
      await delay(30);
      const accepted = pair.agent.acceptStream(out.id);
      const [error] = (await once(accepted, 'error')) as [NodeJS.ErrnoException];
      assert.equal(error.code, 'ECONNRESET');
      assert.equal(pair.agent.streamCount, 0);
    } finally {
      pair.dispose();
    }
  });

  it('keeps streaming on one stream while another stream\'s consumer does not read', async () => {
    const pair = await linkPair();
    try {
      const slowOut = pair.intproxy.openStream();
      const fastOut = pair.intproxy.openStream();
      const slowIn = pair.agent.acceptStream(slowOut.id);
      const fastIn = pair.agent.acceptStream(fastOut.id);
      // Receivers only receive: their direction ends at once, so the streams can finish cleanly.
      slowIn.end();
      fastIn.end();

      // Four windows' worth on the stream nobody reads: only one window may cross.
      const slowTotal = 4 * DEFAULT_INITIAL_WINDOW;
      slowOut.write(Buffer.alloc(slowTotal, 1));

      const fastTotal = 32 * MiB;
      const block = randomBytes(MiB);
      const received = readAll(fastIn);
      await writeAll(fastOut, fastTotal / MiB, () => block);
      const fast = await received;
      assert.equal(fast.bytes, fastTotal);

      await delay(50);
      assert.ok(slowIn.readableLength > 0, 'the slow stream got its window');
      assert.ok(
        slowIn.readableLength <= DEFAULT_INITIAL_WINDOW + MAX_DATA_FRAME,
        `the slow stream's receiver buffers ${slowIn.readableLength} bytes, beyond its window`,
      );
      assert.ok(slowOut.writableLength >= slowTotal - DEFAULT_INITIAL_WINDOW - MAX_DATA_FRAME, 'the sender holds the rest');

      // Once read, the held stream catches up completely.
      const slowReceived = countAll(slowIn);
      slowOut.end();
      assert.equal(await slowReceived, slowTotal);
    } finally {
      pair.dispose();
    }
  });

  it('carries 64 MiB intact over a unix socket link', async (t) => {
    const pair = await linkPair();
    try {
      const out = pair.intproxy.openStream();
      const inbound = pair.agent.acceptStream(out.id);
      inbound.end();
      const sent = createHash('sha256');
      const blocks = 64;
      const received = readAll(inbound);
      const started = performance.now();
      await writeAll(out, blocks, () => {
        // Odd sizes, so frames and socket reads never line up with writes.
        const block = randomBytes(MiB - 1 + Math.floor(Math.random() * 3));
        sent.update(block);
        return block;
      });
      const result = await received;
      const seconds = (performance.now() - started) / 1000;
      assert.equal(result.sha256, sent.digest('hex'));
      t.diagnostic(`64 MiB with sha256 on both sides: ${(result.bytes / MiB / seconds).toFixed(0)} MiB/s`);
    } finally {
      pair.dispose();
    }
  });

  it('measures single-stream throughput over a unix socket link', async (t) => {
    const pair = await linkPair();
    try {
      const out = pair.intproxy.openStream();
      const inbound = pair.agent.acceptStream(out.id);
      inbound.end();
      const block = Buffer.alloc(MiB, 0x5a);
      const blocks = 1024;
      const received = countAll(inbound);
      const started = performance.now();
      await writeAll(out, blocks, () => block);
      assert.equal(await received, blocks * MiB);
      const seconds = (performance.now() - started) / 1000;
      const rate = `${((blocks * MiB) / seconds / 1e9).toFixed(2)} GB/s`;
      t.diagnostic(`single stream, 1 GiB, sender and receiver in this one process: ${rate}`);
    } finally {
      pair.dispose();
    }
  });

  it('half-closes: one side ends, the other keeps sending, then both finish cleanly', async () => {
    const pair = await linkPair();
    try {
      const client = pair.intproxy.openStream();
      const server = pair.agent.acceptStream(client.id);
      const errors: unknown[] = [];
      client.on('error', (error) => errors.push(error));
      server.on('error', (error) => errors.push(error));
      const bothClosed = Promise.all([once(client, 'close'), once(server, 'close')]);

      const request = readAll(server);
      client.end('the whole request');
      const got = await request;
      assert.equal(got.bytes, 'the whole request'.length);

      // The server's direction is still open after the client's END.
      const response = readAll(client);
      await writeAll(server, 20, (i) => Buffer.alloc(100_000, i));
      assert.equal((await response).bytes, 2_000_000);

      await bothClosed;
      assert.deepEqual(errors, []);
      assert.equal(pair.intproxy.streamCount, 0);
      assert.equal(pair.agent.streamCount, 0);
    } finally {
      pair.dispose();
    }
  });

  it('propagates a RESET as ECONNRESET with the reason', async () => {
    const pair = await linkPair();
    try {
      const client = pair.intproxy.openStream();
      const server = pair.agent.acceptStream(client.id);
      server.on('error', () => {});
      const failed = once(client, 'error');
      server.destroy(Object.assign(new Error('refused'), { code: 'ECONNREFUSED' }));
      const [error] = (await failed) as [NodeJS.ErrnoException & { reason: string }];
      assert.equal(error.code, 'ECONNRESET');
      assert.equal(error.reason, 'ECONNREFUSED');
      assert.match(error.message, new RegExp(`stream ${client.id} was reset by the peer \\(ECONNREFUSED\\)`));

      // A plain destroy() without an error resets too.
      const other = pair.intproxy.openStream();
      const otherServer = pair.agent.acceptStream(other.id);
      const otherFailed = once(otherServer, 'error');
      other.destroy();
      const [otherError] = (await otherFailed) as [NodeJS.ErrnoException & { reason: string }];
      assert.equal(otherError.code, 'ECONNRESET');
      assert.equal(otherError.reason, 'CANCEL');
      assert.equal(pair.agent.streamCount, 0);
      assert.equal(pair.intproxy.closed, false);
    } finally {
      pair.dispose();
    }
  });

  it('destroys every stream, on both sides, when the link closes', async () => {
    const pair = await linkPair();
    try {
      const local = [pair.intproxy.openStream(), pair.intproxy.openStream()];
      const remote = local.map((stream) => pair.agent.acceptStream(stream.id));
      const localErrors = local.map((stream) => once(stream, 'error'));
      const remoteErrors = remote.map((stream) => once(stream, 'error'));
      const reason = new ProtocolError('the test closes the link');
      pair.intproxy.close(reason);
      for (const pending of localErrors) assert.equal((await pending)[0], reason);
      for (const pending of remoteErrors) assert.equal(((await pending)[0] as NodeJS.ErrnoException).code, 'ECONNRESET');
      assert.equal(pair.agent.closed, true);
      // A stream asked of a closed link comes back already failing.
      const late = pair.intproxy.openStream();
      assert.equal((await once(late, 'error'))[0], reason);
    } finally {
      pair.dispose();
    }
  });

  it('interleaves many concurrent streams in both directions', async () => {
    const pair = await linkPair({ initialWindow: 256 * 1024 });
    try {
      const tasks = Array.from({ length: 16 }, async (_, i) => {
        const opener = i % 2 === 0 ? pair.intproxy : pair.agent;
        const acceptor = i % 2 === 0 ? pair.agent : pair.intproxy;
        const a = opener.openStream();
        const b = acceptor.acceptStream(a.id);
        const payload = randomBytes(1 * MiB + i * 1000);
        const expected = createHash('sha256').update(payload).digest('hex');
        const [atB, atA] = await Promise.all([readAll(b), readAll(a), a.end(payload), b.end(payload)]);
        assert.equal(atB.sha256, expected);
        assert.equal(atA.sha256, expected);
      });
      await Promise.all(tasks);
    } finally {
      pair.dispose();
    }
  });
});
