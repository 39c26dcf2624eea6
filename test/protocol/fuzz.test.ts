// Random and mutated frames against the decoder and against live links. Replay a failure with the seed it
// prints: REMOCAL_FUZZ_SEED=<seed> node scripts/test.mjs test/protocol/fuzz.test.ts
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { PassThrough, Writable } from 'node:stream';
import { describe, it } from 'node:test';
import { ProtocolError } from '../../src/core/errors.js';
import { DEFAULT_MAX_FRAME_BYTES, FrameDecoder, encodeFrame, encodeMessage, type Frame } from '../../src/protocol/frames.js';
import { Link } from '../../src/protocol/link.js';
import { prng, socketPair, type AgentLink } from './helpers.js';

const seed = Number(process.env.REMOCAL_FUZZ_SEED ?? Math.floor(Math.random() * 2 ** 32));
const CASES = 10_000;

const interestingLengths = [0, 1, 2, 4, 5, 8, 9, 10, 255, 256, 257, 4095, 4096, 4097, 0x7fffffff, 0xfffffffe, 0xffffffff];

function makeGenerator(random: () => number) {
  const int = (below: number) => Math.floor(random() * below);
  const pick = <T>(items: readonly T[]): T => items[int(items.length)]!;
  const bytes = (length: number) => {
    const buffer = Buffer.allocUnsafe(length);
    for (let i = 0; i < length; i++) buffer[i] = int(256);
    return buffer;
  };
  const streamId = () => (random() < 0.8 ? pick([1, 2, 3, 4, 5, 99]) : int(2 ** 32));
  const jsonValue = (depth: number): unknown => {
    switch (int(depth > 2 ? 4 : 6)) {
      case 0: return int(1000) - 500;
      case 1: return pick(['', 'ping', 'ü✓', 'x'.repeat(int(300))]);
      case 2: return pick([true, false, null]);
      case 3: return random() * 1e6;
      case 4: return Array.from({ length: int(4) }, () => jsonValue(depth + 1));
      default: return Object.fromEntries(Array.from({ length: int(4) }, (_, i) => [`k${i}`, jsonValue(depth + 1)]));
    }
  };
  const frame = (): Frame => {
    switch (int(5)) {
      case 0: {
        const message = { type: pick(['hello', 'ping', 'request', 'response', 'event', '']), id: int(100), body: jsonValue(0) };
        if (message.type === 'hello') Object.assign(message, { protocol: 'remocal', version: 1, minVersion: 1 });
        return { kind: 'message', message };
      }
      case 1: return { kind: 'data', streamId: streamId(), data: bytes(random() < 0.9 ? int(200) : int(3000)) };
      case 2: return { kind: 'credit', streamId: streamId(), bytes: random() < 0.5 ? int(5000) : int(2 ** 32) };
      case 3: return { kind: 'end', streamId: streamId() };
      default: return { kind: 'reset', streamId: streamId(), reason: pick(['', 'ECONNRESET', 'CANCEL', 'ü'.repeat(int(20))]) };
    }
  };
  const valid = () => Buffer.concat(Array.from({ length: 1 + int(4) }, () => Buffer.concat(encodeFrame(frame()))));

  /** One fuzz case: valid frames, mutated in one of several ways. */
  const input = (): Buffer => {
    const base = valid();
    switch (int(8)) {
      case 0: return base;
      case 1: {
        const flipped = Buffer.from(base);
        for (let n = 1 + int(5); n > 0; n--) flipped[int(flipped.length)]! ^= 1 + int(255);
        return flipped;
      }
      case 2: return base.subarray(0, int(base.length));
      case 3: {
        const other = valid();
        return Buffer.concat([base.subarray(0, int(base.length)), other.subarray(int(other.length))]);
      }
      case 4: {
        const relengthed = Buffer.from(base);
        relengthed.writeUInt32BE(random() < 0.5 ? pick(interestingLengths) : int(2 ** 32), 0);
        return relengthed;
      }
      case 5: {
        const rekinded = Buffer.from(base);
        rekinded[4] = random() < 0.5 ? int(8) : int(256);
        return rekinded;
      }
      case 6: return bytes(int(64));
      default: {
        const inserted = bytes(1 + int(8));
        const at = int(base.length);
        return Buffer.concat([base.subarray(0, at), inserted, base.subarray(at)]);
      }
    }
  };

  /** Splits input into random chunks, as a transport might deliver it. */
  const chunks = (buffer: Buffer): Buffer[] => {
    const pieces: Buffer[] = [];
    let offset = 0;
    while (offset < buffer.length) {
      const size = random() < 0.3 ? 1 + int(4) : 1 + int(buffer.length);
      pieces.push(buffer.subarray(offset, offset + size));
      offset += size;
    }
    return pieces;
  };

  return { input, chunks, limit: () => pick([256, 4096, DEFAULT_MAX_FRAME_BYTES]) };
}

/** Records the largest buffer requested while `during` runs. */
async function largestAllocation(during: () => Promise<void> | void): Promise<number> {
  const original = { alloc: Buffer.alloc, allocUnsafe: Buffer.allocUnsafe, allocUnsafeSlow: Buffer.allocUnsafeSlow, concat: Buffer.concat };
  let largest = 0;
  const note = (size: unknown) => {
    if (typeof size === 'number' && size > largest) largest = size;
  };
  Buffer.alloc = ((size: number, ...rest: unknown[]) => (note(size), (original.alloc as Function)(size, ...rest))) as typeof Buffer.alloc;
  Buffer.allocUnsafe = ((size: number) => (note(size), original.allocUnsafe(size))) as typeof Buffer.allocUnsafe;
  Buffer.allocUnsafeSlow = ((size: number) => (note(size), original.allocUnsafeSlow(size))) as typeof Buffer.allocUnsafeSlow;
  Buffer.concat = ((list: readonly Uint8Array[], totalLength?: number) => {
    note(totalLength ?? list.reduce((sum, item) => sum + item.length, 0));
    return original.concat(list, totalLength);
  }) as typeof Buffer.concat;
  try {
    await during();
  } finally {
    Object.assign(Buffer, original);
  }
  return largest;
}

function replayable(caseIndex: number, error: unknown): Error {
  const message = `fuzz failure at case ${caseIndex}; replay with REMOCAL_FUZZ_SEED=${seed}: ${String(error)}`;
  console.error(message);
  return new Error(message, { cause: error });
}

const peerHello = encodeMessage({ type: 'hello', protocol: 'remocal', role: 'intproxy', version: 1, minVersion: 1 });

/** A handshaken agent-side link with streams 1 and 3 accepted and 2 and 4 opened, so frames reach them. */
async function liveLink(readable: PassThrough | import('node:net').Socket, writable: Writable | import('node:net').Socket, maxFrameBytes: number) {
  const link: AgentLink = new Link({ readable, writable }, { role: 'agent', streamIdParity: 'even', maxFrameBytes, initialWindow: 2048 });
  const closed = once(link, 'close') as Promise<[Error | undefined]>;
  const streamErrors: Error[] = [];
  const handshake = link.handshake(2000);
  if (readable instanceof PassThrough) readable.write(peerHello);
  await handshake;
  for (const stream of [link.acceptStream(1), link.acceptStream(3), link.openStream(), link.openStream()]) {
    stream.on('error', (error) => streamErrors.push(error));
    stream.on('data', () => {});
  }
  return { link, closed, streamErrors };
}

function checkOutcome(closeError: Error | undefined, streamErrors: Error[]): void {
  if (closeError !== undefined && !(closeError instanceof ProtocolError)) {
    throw new Error(`the link closed with a non-protocol error: ${String(closeError)}`);
  }
  for (const error of streamErrors) {
    const expected = error === closeError || (error as NodeJS.ErrnoException).code === 'ECONNRESET';
    if (!expected) throw new Error(`a stream failed with an unexpected error: ${String(error)}`);
  }
}

describe(`fuzz (seed ${seed})`, () => {
  it('has an allocation spy that sees allocations', async () => {
    assert.equal(await largestAllocation(() => void Buffer.concat([Buffer.alloc(10), Buffer.allocUnsafe(5000)])), 5010);
  });

  it(`feeds ${CASES} random and mutated frame sequences to the decoder`, async () => {
    const generate = makeGenerator(prng(seed));
    let rejected = 0;
    for (let i = 0; i < CASES; i++) {
      const limit = generate.limit();
      const input = generate.input();
      const pieces = generate.chunks(input);
      let dataInFrame = 0;
      let largestData = 0;
      const decoder = new FrameDecoder(
        {
          onMessage: (message) => assert.equal(typeof message.type, 'string'),
          onData: (_id, data, lastPiece) => {
            dataInFrame += data.length;
            largestData = Math.max(largestData, dataInFrame);
            if (lastPiece) dataInFrame = 0;
          },
          onCredit: () => {},
          onEnd: () => {},
          onReset: () => {},
        },
        limit,
      );
      try {
        const largest = await largestAllocation(() => {
          try {
            for (const piece of pieces) decoder.push(piece);
            decoder.end();
          } catch (error) {
            if (!(error instanceof ProtocolError)) throw error;
            rejected++;
          }
        });
        assert.ok(largest <= limit, `allocated ${largest} bytes with a ${limit}-byte frame limit`);
        assert.ok(largestData <= limit, `a DATA frame carried ${largestData} bytes with a ${limit}-byte limit`);
      } catch (error) {
        throw replayable(i, error);
      }
    }
    assert.ok(rejected > CASES / 4 && rejected < CASES, `${rejected} of ${CASES} inputs were rejected`);
  });

  it(`feeds ${CASES} random and mutated frame sequences to live links`, async () => {
    const generate = makeGenerator(prng(seed ^ 0x5eed));
    let closedWithError = 0;
    for (let i = 0; i < CASES; i++) {
      const limit = generate.limit();
      const input = generate.input();
      const pieces = generate.chunks(input);
      try {
        const readable = new PassThrough();
        const writable = new Writable({ write: (_chunk, _encoding, callback) => callback() });
        const live = await liveLink(readable, writable, limit);
        const largest = await largestAllocation(async () => {
          for (const piece of pieces) readable.write(piece);
          readable.end();
          const [error] = await live.closed;
          if (error !== undefined) closedWithError++;
          checkOutcome(error, live.streamErrors);
        });
        assert.ok(largest <= limit, `allocated ${largest} bytes with a ${limit}-byte frame limit`);
      } catch (error) {
        throw replayable(i, error);
      }
    }
    assert.ok(closedWithError > CASES / 4, `only ${closedWithError} of ${CASES} links failed`);
  });

  it('feeds 300 mutated sequences to links over real unix sockets', async () => {
    const generate = makeGenerator(prng(seed ^ 0x50c7));
    for (let i = 0; i < 300; i++) {
      const limit = generate.limit();
      const pieces = generate.chunks(generate.input());
      const sockets = await socketPair();
      try {
        sockets.client.on('error', () => {});
        sockets.client.write(peerHello);
        const live = await liveLink(sockets.server, sockets.server, limit);
        for (const piece of pieces) sockets.client.write(piece);
        sockets.client.end();
        const [error] = await live.closed;
        checkOutcome(error, live.streamErrors);
      } catch (error) {
        throw replayable(i, error);
      } finally {
        sockets.dispose();
      }
    }
  });
});
