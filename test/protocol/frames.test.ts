import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ProtocolError } from '../../src/core/errors.js';
import {
  DEFAULT_MAX_FRAME_BYTES,
  FrameDecoder,
  decodeFrames,
  encodeFrame,
  type Frame,
  type FrameSink,
} from '../../src/protocol/frames.js';

const everyKind: Frame[] = [
  { kind: 'message', message: { type: 'hello', text: 'grüße ✓', nested: { list: [1, 2, 3] } } as { type: string } },
  { kind: 'data', streamId: 1, data: Buffer.from('some stream bytes') },
  { kind: 'data', streamId: 0xffffffff, data: Buffer.alloc(0) },
  { kind: 'data', streamId: 7, data: Buffer.alloc(3000, 0xab) },
  { kind: 'credit', streamId: 2, bytes: 4 * 1024 * 1024 },
  { kind: 'credit', streamId: 3, bytes: 0xffffffff },
  { kind: 'end', streamId: 5 },
  { kind: 'reset', streamId: 6, reason: 'ECONNREFUSED' },
  { kind: 'reset', streamId: 8, reason: '' },
];

const encoded = Buffer.concat(everyKind.flatMap((frame) => encodeFrame(frame)));

function collectingSink(frames: Frame[]): FrameSink {
  let pieces: Buffer[] = [];
  return {
    onMessage: (message) => frames.push({ kind: 'message', message }),
    onData: (streamId, data, lastPiece) => {
      pieces.push(data);
      if (!lastPiece) return;
      frames.push({ kind: 'data', streamId, data: Buffer.concat(pieces) });
      pieces = [];
    },
    onCredit: (streamId, bytes) => frames.push({ kind: 'credit', streamId, bytes }),
    onEnd: (streamId) => frames.push({ kind: 'end', streamId }),
    onReset: (streamId, reason) => frames.push({ kind: 'reset', streamId, reason }),
  };
}

function frameOf(kind: number, body: Buffer, declaredLength = 1 + body.length): Buffer {
  const header = Buffer.alloc(5);
  header.writeUInt32BE(declaredLength, 0);
  header[4] = kind;
  return Buffer.concat([header, body]);
}

function decodeError(input: Buffer, maxFrameBytes = DEFAULT_MAX_FRAME_BYTES): ProtocolError {
  try {
    decodeFrames(input, maxFrameBytes);
  } catch (error) {
    assert.ok(error instanceof ProtocolError, `expected a ProtocolError, got ${String(error)}`);
    return error;
  }
  assert.fail('the input decoded without error');
}

describe('frames', () => {
  it('round-trips every frame kind', () => {
    assert.deepEqual(decodeFrames(encoded), everyKind);
  });

  it('decodes the same frames whatever the byte boundary of a split', () => {
    for (let split = 0; split <= encoded.length; split++) {
      const frames: Frame[] = [];
      const decoder = new FrameDecoder(collectingSink(frames));
      decoder.push(encoded.subarray(0, split));
      decoder.push(encoded.subarray(split));
      decoder.end();
      assert.deepEqual(frames, everyKind, `split at byte ${split}`);
    }
  });

  it('decodes input delivered one byte at a time', () => {
    const frames: Frame[] = [];
    const decoder = new FrameDecoder(collectingSink(frames));
    for (let i = 0; i < encoded.length; i++) decoder.push(encoded.subarray(i, i + 1));
    decoder.end();
    assert.deepEqual(frames, everyKind);
  });

  it('hands DATA payloads on as slices of the input, never copies', () => {
    const input = Buffer.concat(encodeFrame({ kind: 'data', streamId: 9, data: Buffer.alloc(1000, 1) }));
    const pieces: Buffer[] = [];
    const decoder = new FrameDecoder({
      ...collectingSink([]),
      onData: (_streamId, data) => pieces.push(data),
    });
    decoder.push(input.subarray(0, 500));
    decoder.push(input.subarray(500));
    assert.equal(pieces.length, 2);
    for (const piece of pieces) assert.equal(piece.buffer, input.buffer);
  });

  it('rejects a header of 0xFFFFFFFF bytes at once, without allocating it', () => {
    const before = process.memoryUsage().arrayBuffers;
    const decoder = new FrameDecoder(collectingSink([]));
    assert.throws(
      () => decoder.push(Buffer.from([0xff, 0xff, 0xff, 0xff])),
      (error: unknown) =>
        error instanceof ProtocolError && error.message === 'frame of 4294967295 bytes exceeds the 1048576-byte limit',
    );
    assert.ok(process.memoryUsage().arrayBuffers - before < 1024 * 1024);
    // It stays failed: a broken framing cannot be resynchronised.
    assert.throws(() => decoder.push(Buffer.from([0, 0, 0, 1, 1])), ProtocolError);
  });

  it('does not allocate a frame declared within the limit before its bytes arrive', () => {
    const before = process.memoryUsage().arrayBuffers;
    const decoders = Array.from({ length: 200 }, () => new FrameDecoder(collectingSink([])));
    for (const decoder of decoders) decoder.push(frameOf(0x01, Buffer.from('{"ty'), DEFAULT_MAX_FRAME_BYTES));
    // 200 decoders each waiting for a 1 MiB message would hold 200 MiB if they allocated up front.
    assert.ok(process.memoryUsage().arrayBuffers - before < 16 * 1024 * 1024);
  });

  it('says what was wrong with a malformed frame', () => {
    const cases: Array<[string, Buffer, RegExp]> = [
      ['over-size', frameOf(0x01, Buffer.from('{}'), 2_000_000), /frame of 2000000 bytes exceeds the 1048576-byte limit/],
      ['empty', Buffer.from([0, 0, 0, 0]), /empty payload/],
      ['unknown kind', frameOf(0x09, Buffer.from('x')), /unknown frame kind 0x09/],
      ['short DATA', frameOf(0x02, Buffer.from([0, 0])), /DATA frame of 3 bytes is shorter than its minimum of 5/],
      ['long CREDIT', frameOf(0x03, Buffer.alloc(9)), /CREDIT frame of 10 bytes, expected exactly 9/],
      ['short END', frameOf(0x04, Buffer.alloc(2)), /END frame of 3 bytes/],
      ['bad JSON', frameOf(0x01, Buffer.from('{"type":')), /not valid JSON/],
      ['bad UTF-8', frameOf(0x01, Buffer.from([0x7b, 0xff, 0x7d])), /not valid UTF-8/],
      ['JSON array', frameOf(0x01, Buffer.from('[1,2]')), /holds an array, not a message/],
      ['JSON number', frameOf(0x01, Buffer.from('42')), /holds a number/],
      ['no type', frameOf(0x01, Buffer.from('{"kind":"x"}')), /without a string "type"/],
      ['numeric type', frameOf(0x01, Buffer.from('{"type":3}')), /without a string "type"/],
      ['truncated', frameOf(0x01, Buffer.from('{"type":"x"}')).subarray(0, 9), /input ended inside a frame: 9 of 17 bytes/],
      ['truncated header', Buffer.from([0, 0]), /input ended inside a frame: 2 of at least 5/],
    ];
    for (const [name, input, expected] of cases) {
      assert.match(decodeError(input).message, expected, name);
    }
  });

  it('honours a smaller frame limit', () => {
    const data = Buffer.concat(encodeFrame({ kind: 'data', streamId: 1, data: Buffer.alloc(300) }));
    assert.match(decodeError(data, 256).message, /frame of 305 bytes exceeds the 256-byte limit/);
    assert.throws(() => encodeFrame({ kind: 'data', streamId: 1, data: Buffer.alloc(300) }, 256), ProtocolError);
    assert.throws(() => encodeFrame({ kind: 'message', message: { type: 'x'.repeat(300) } }, 256), ProtocolError);
  });

  it('refuses to encode ids and credits that do not fit 32 bits', () => {
    assert.throws(() => encodeFrame({ kind: 'end', streamId: 2 ** 32 }), ProtocolError);
    assert.throws(() => encodeFrame({ kind: 'credit', streamId: 1, bytes: -1 }), ProtocolError);
  });
});
