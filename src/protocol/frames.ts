// The wire framing of a link: `u32 BE payloadLength`, then the payload, whose first byte is the frame kind.
//
//   MESSAGE 0x01  UTF-8 JSON of one message object
//   DATA    0x02  u32 streamId, then the stream's bytes
//   CREDIT  0x03  u32 streamId, u32 bytes   (the receiver lets the sender send that many more bytes)
//   END     0x04  u32 streamId              (the sender will send no more bytes: a half-close, like FIN)
//   RESET   0x05  u32 streamId, UTF-8 reason code (both directions are aborted, like RST)
//
// The decoder is a state machine fed with whatever chunks the transport delivers. It never trusts a length
// before checking it against the limit, and it never allocates from a header: control frames are collected
// from the chunks that actually arrived, and DATA payloads are handed on as slices of those chunks, so the
// bulk of the traffic is never copied. A DATA frame may therefore reach its consumer in several pieces.

import { ProtocolError } from '../core/errors.js';

export const FrameKind = {
  Message: 0x01,
  Data: 0x02,
  Credit: 0x03,
  End: 0x04,
  Reset: 0x05,
} as const;
export type FrameKind = (typeof FrameKind)[keyof typeof FrameKind];

export const DEFAULT_MAX_FRAME_BYTES = 1024 * 1024;

/** Bytes before a DATA frame's payload: length, kind, stream id. */
const DATA_HEADER_BYTES = 9;

/** Longest reason code a RESET carries; longer ones are cut, so a reason can never make a frame too big. */
const MAX_RESET_REASON_BYTES = 256;

export interface WireMessage {
  type: string;
}

export type Frame =
  | { kind: 'message'; message: WireMessage }
  | { kind: 'data'; streamId: number; data: Buffer }
  | { kind: 'credit'; streamId: number; bytes: number }
  | { kind: 'end'; streamId: number }
  | { kind: 'reset'; streamId: number; reason: string };

/** What the decoder calls for each frame. Throwing from a callback stops the decoder for good. */
export interface FrameSink {
  onMessage(message: WireMessage): void;
  /**
   * One piece of a DATA frame's payload, in order; `lastPiece` marks the frame's end. A frame with no data
   * bytes arrives as one empty piece.
   */
  onData(streamId: number, data: Buffer, lastPiece: boolean): void;
  onCredit(streamId: number, bytes: number): void;
  onEnd(streamId: number): void;
  onReset(streamId: number, reason: string): void;
}

// --- encoding --------------------------------------------------------------------------------------------

function checkStreamId(streamId: number): void {
  if (!Number.isInteger(streamId) || streamId < 0 || streamId > 0xffffffff) {
    throw new ProtocolError(`stream id ${streamId} is not a 32-bit unsigned integer`);
  }
}

/** A MESSAGE frame as one buffer: messages are small, and one write keeps them whole on the wire. */
export function encodeMessage<M extends WireMessage>(message: M, maxFrameBytes = DEFAULT_MAX_FRAME_BYTES): Buffer {
  const json = JSON.stringify(message);
  const jsonBytes = Buffer.byteLength(json);
  const payloadLength = 1 + jsonBytes;
  if (payloadLength > maxFrameBytes) {
    throw new ProtocolError(
      `a '${message.type}' message of ${payloadLength} bytes exceeds the ${maxFrameBytes}-byte frame limit`,
    );
  }
  const frame = Buffer.allocUnsafe(5 + jsonBytes);
  frame.writeUInt32BE(payloadLength, 0);
  frame[4] = FrameKind.Message;
  frame.write(json, 5, 'utf8');
  return frame;
}

/** Only the header of a DATA frame: the payload is written after it as it is, never copied into a frame. */
export function encodeDataHeader(streamId: number, dataBytes: number): Buffer {
  checkStreamId(streamId);
  const header = Buffer.allocUnsafe(DATA_HEADER_BYTES);
  header.writeUInt32BE(5 + dataBytes, 0);
  header[4] = FrameKind.Data;
  header.writeUInt32BE(streamId, 5);
  return header;
}

export function encodeCredit(streamId: number, bytes: number): Buffer {
  checkStreamId(streamId);
  if (!Number.isInteger(bytes) || bytes < 0 || bytes > 0xffffffff) {
    throw new ProtocolError(`a credit of ${bytes} bytes is not a 32-bit unsigned integer`);
  }
  const frame = Buffer.allocUnsafe(13);
  frame.writeUInt32BE(9, 0);
  frame[4] = FrameKind.Credit;
  frame.writeUInt32BE(streamId, 5);
  frame.writeUInt32BE(bytes, 9);
  return frame;
}

export function encodeEnd(streamId: number): Buffer {
  checkStreamId(streamId);
  const frame = Buffer.allocUnsafe(9);
  frame.writeUInt32BE(5, 0);
  frame[4] = FrameKind.End;
  frame.writeUInt32BE(streamId, 5);
  return frame;
}

export function encodeReset(streamId: number, reason: string): Buffer {
  checkStreamId(streamId);
  let reasonBytes = Buffer.from(reason, 'utf8');
  if (reasonBytes.length > MAX_RESET_REASON_BYTES) reasonBytes = reasonBytes.subarray(0, MAX_RESET_REASON_BYTES);
  const frame = Buffer.allocUnsafe(9 + reasonBytes.length);
  frame.writeUInt32BE(5 + reasonBytes.length, 0);
  frame[4] = FrameKind.Reset;
  frame.writeUInt32BE(streamId, 5);
  reasonBytes.copy(frame, 9);
  return frame;
}

/** Any frame as the buffers to write in order (a DATA frame's payload stays a separate, uncopied buffer). */
export function encodeFrame(frame: Frame, maxFrameBytes = DEFAULT_MAX_FRAME_BYTES): Buffer[] {
  switch (frame.kind) {
    case 'message':
      return [encodeMessage(frame.message, maxFrameBytes)];
    case 'data': {
      if (5 + frame.data.length > maxFrameBytes) {
        throw new ProtocolError(
          `a DATA frame of ${5 + frame.data.length} bytes exceeds the ${maxFrameBytes}-byte frame limit`,
        );
      }
      const header = encodeDataHeader(frame.streamId, frame.data.length);
      return frame.data.length === 0 ? [header] : [header, frame.data];
    }
    case 'credit':
      return [encodeCredit(frame.streamId, frame.bytes)];
    case 'end':
      return [encodeEnd(frame.streamId)];
    case 'reset':
      return [encodeReset(frame.streamId, frame.reason)];
  }
}

// --- decoding --------------------------------------------------------------------------------------------

const READING_HEADER = 0;
const READING_DATA = 1;
const READING_CONTROL = 2;
const FAILED = 3;
const STOPPED = 4;

const KIND_NAMES: Record<number, string> = {
  [FrameKind.Message]: 'MESSAGE',
  [FrameKind.Data]: 'DATA',
  [FrameKind.Credit]: 'CREDIT',
  [FrameKind.End]: 'END',
  [FrameKind.Reset]: 'RESET',
};

// The fewest payload bytes each kind can have (kind byte included); CREDIT and END have exactly that many.
const MIN_PAYLOAD: Record<number, number> = {
  [FrameKind.Message]: 2,
  [FrameKind.Data]: 5,
  [FrameKind.Credit]: 9,
  [FrameKind.End]: 5,
  [FrameKind.Reset]: 5,
};

const EMPTY = Buffer.alloc(0);
const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

function hex(byte: number): string {
  return `0x${byte.toString(16).padStart(2, '0')}`;
}

function describeJson(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'object') return 'an object without a string "type"';
  return `a ${typeof value}`;
}

export class FrameDecoder {
  private state = READING_HEADER;
  private failure: Error | undefined;
  // A header split across chunks is gathered here; DATA's is the longest at 9 bytes.
  private readonly header = Buffer.alloc(DATA_HEADER_BYTES);
  private headerFill = 0;
  private headerNeeded = 5;
  private payloadLength = 0;
  private kind = 0;
  private streamId = 0;
  private remaining = 0;
  private controlParts: Buffer[] = [];

  constructor(
    private readonly sink: FrameSink,
    readonly maxFrameBytes = DEFAULT_MAX_FRAME_BYTES,
  ) {}

  /** True between frames: the input so far ended on a frame boundary. */
  get atFrameBoundary(): boolean {
    return this.state === READING_HEADER && this.headerFill === 0;
  }

  /** Ignores all further input; used once the link has closed. */
  stop(): void {
    if (this.state !== FAILED) this.state = STOPPED;
    this.controlParts = [];
  }

  /** Feeds one chunk; throws a ProtocolError (and keeps throwing it) once the input is malformed. */
  push(chunk: Buffer): void {
    if (this.state === STOPPED) return;
    if (this.state === FAILED) throw this.failure;
    try {
      this.consume(chunk);
    } catch (error) {
      this.state = FAILED;
      this.failure = error instanceof Error ? error : new ProtocolError(String(error));
      this.controlParts = [];
      throw this.failure;
    }
  }

  /** Signals the end of input: ending inside a frame means the peer or the transport cut it short. */
  end(): void {
    if (this.state === STOPPED) return;
    if (this.state === FAILED) throw this.failure;
    if (this.atFrameBoundary) return;
    const received =
      this.state === READING_HEADER ? this.headerFill : 4 + this.payloadLength - this.remaining;
    const expected = this.state === READING_HEADER ? `at least ${this.headerNeeded}` : String(4 + this.payloadLength);
    this.state = FAILED;
    this.failure = new ProtocolError(
      `the input ended inside a frame: ${received} of ${expected} bytes arrived`,
    );
    throw this.failure;
  }

  private consume(chunk: Buffer): void {
    const length = chunk.length;
    let offset = 0;
    while (offset < length) {
      switch (this.state) {
        case READING_HEADER: {
          const header = this.header;
          while (this.headerFill < this.headerNeeded && offset < length) {
            header[this.headerFill++] = chunk[offset++]!;
            if (this.headerFill === 4) this.checkLength(header.readUInt32BE(0));
            else if (this.headerFill === 5) this.checkKind(header[4]!);
          }
          if (this.headerFill < this.headerNeeded) return;
          this.headerFill = 0;
          this.headerNeeded = 5;
          if (this.kind === FrameKind.Data) {
            this.streamId = header.readUInt32BE(5);
            this.remaining = this.payloadLength - 5;
            if (this.remaining > 0) this.state = READING_DATA;
            else this.sink.onData(this.streamId, EMPTY, true);
          } else {
            this.remaining = this.payloadLength - 1;
            this.state = READING_CONTROL;
          }
          break;
        }
        case READING_DATA: {
          const take = Math.min(this.remaining, length - offset);
          const piece = offset === 0 && take === length ? chunk : chunk.subarray(offset, offset + take);
          offset += take;
          this.remaining -= take;
          const lastPiece = this.remaining === 0;
          if (lastPiece) this.state = READING_HEADER;
          this.sink.onData(this.streamId, piece, lastPiece);
          break;
        }
        case READING_CONTROL: {
          const take = Math.min(this.remaining, length - offset);
          const piece = chunk.subarray(offset, offset + take);
          offset += take;
          this.remaining -= take;
          if (this.remaining > 0) {
            this.controlParts.push(piece);
            return;
          }
          let body = piece;
          if (this.controlParts.length > 0) {
            this.controlParts.push(piece);
            body = Buffer.concat(this.controlParts, this.payloadLength - 1);
            this.controlParts = [];
          }
          this.state = READING_HEADER;
          this.dispatchControl(body);
          break;
        }
        default:
          return;
      }
    }
  }

  private checkLength(payloadLength: number): void {
    if (payloadLength === 0) throw new ProtocolError('a frame declared an empty payload (length 0)');
    if (payloadLength > this.maxFrameBytes) {
      throw new ProtocolError(
        `frame of ${payloadLength} bytes exceeds the ${this.maxFrameBytes}-byte limit`,
      );
    }
    this.payloadLength = payloadLength;
  }

  private checkKind(kind: number): void {
    const min = MIN_PAYLOAD[kind];
    if (min === undefined) throw new ProtocolError(`unknown frame kind ${hex(kind)}`);
    const name = KIND_NAMES[kind]!;
    if (this.payloadLength < min) {
      throw new ProtocolError(`${name} frame of ${this.payloadLength} bytes is shorter than its minimum of ${min}`);
    }
    if ((kind === FrameKind.Credit || kind === FrameKind.End) && this.payloadLength !== min) {
      throw new ProtocolError(`${name} frame of ${this.payloadLength} bytes, expected exactly ${min}`);
    }
    this.kind = kind;
    if (kind === FrameKind.Data) this.headerNeeded = DATA_HEADER_BYTES;
  }

  private dispatchControl(body: Buffer): void {
    switch (this.kind) {
      case FrameKind.Message:
        this.sink.onMessage(parseMessage(body));
        return;
      case FrameKind.Credit:
        this.sink.onCredit(body.readUInt32BE(0), body.readUInt32BE(4));
        return;
      case FrameKind.End:
        this.sink.onEnd(body.readUInt32BE(0));
        return;
      case FrameKind.Reset: {
        let reason: string;
        try {
          reason = strictUtf8.decode(body.subarray(4));
        } catch {
          throw new ProtocolError('RESET frame reason is not valid UTF-8');
        }
        this.sink.onReset(body.readUInt32BE(0), reason);
        return;
      }
    }
  }
}

function parseMessage(body: Buffer): WireMessage {
  let text: string;
  try {
    text = strictUtf8.decode(body);
  } catch {
    throw new ProtocolError(`MESSAGE frame of ${body.length} bytes is not valid UTF-8`);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new ProtocolError(
      `MESSAGE frame is not valid JSON (${error instanceof Error ? error.message : String(error)})`,
    );
  }
  if (
    typeof value !== 'object' ||
    value === null ||
    Array.isArray(value) ||
    typeof (value as { type?: unknown }).type !== 'string'
  ) {
    throw new ProtocolError(`MESSAGE frame holds ${describeJson(value)}, not a message with a string "type"`);
  }
  return value as WireMessage;
}

/** Decodes complete frames held in memory (tests, tools); DATA pieces of one frame are joined back. */
export function decodeFrames(input: Buffer, maxFrameBytes = DEFAULT_MAX_FRAME_BYTES): Frame[] {
  const frames: Frame[] = [];
  let pieces: Buffer[] = [];
  const decoder = new FrameDecoder(
    {
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
    },
    maxFrameBytes,
  );
  decoder.push(input);
  decoder.end();
  return frames;
}
