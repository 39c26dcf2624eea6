// A link: typed messages and many byte streams over one byte stream (a socket, or an agent's stdio).
//
// Lifecycle: each side sends a hello first and checks the peer's (`handshake`); after that, messages flow as
// MESSAGE frames and streams as DATA/CREDIT/END/RESET frames. Any malformed input closes the whole link with a
// ProtocolError: after one bad frame nothing that follows can be trusted to be framed right.
//
// Streams. Ids are chosen by the side that opens a stream, odd on the side that initiated the connection and
// even on the other (as in HTTP/2), so both sides can open streams without agreeing first. Every stream starts
// with no credit in either direction; each side grants its receive window with a CREDIT frame as soon as it
// has the stream (the opener in openStream, the acceptor in acceptStream). So nothing is ever sent to a side
// that is not ready for it, and neither side needs to know the other's window size. The opener's first CREDIT
// travels before the request that names the stream, so it may arrive before the stream is accepted: it is
// kept until then, and so is a RESET that overtakes the accept.
//
// Flow control. A side may have at most `window` bytes per stream that its peer has not consumed yet. The link
// always reads its transport and pushes each stream's data into that stream's buffer at once, so one slow
// consumer never holds up the others, and it is the window, not the link, that bounds each buffer. Credit
// goes back as the consumer reads, in batches of at least a quarter window, so there are few CREDIT frames
// but the sender never runs dry while the consumer keeps up. On the sending side a stream waits for credit
// and for the transport's 'drain', so a fast producer cannot fill memory either.

import { EventEmitter } from 'node:events';
import { Duplex, type Readable, type Writable } from 'node:stream';
import { ProtocolError } from '../core/errors.js';
import {
  DEFAULT_MAX_FRAME_BYTES,
  FrameDecoder,
  encodeCredit,
  encodeDataHeader,
  encodeEnd,
  encodeMessage,
  encodeReset,
  type FrameSink,
  type WireMessage,
} from './frames.js';
import { PROTOCOL_MIN_VERSION, PROTOCOL_VERSION, type Hello, type Role } from './messages.js';

export const DEFAULT_INITIAL_WINDOW = 4 * 1024 * 1024;
/** Big enough that per-frame costs vanish, small enough that streams interleave finely on the transport. */
const MAX_DATA_FRAME_BYTES = 256 * 1024;
/** Streams the peer has announced but we have not accepted yet; a bound against a bad peer. */
const MAX_ANNOUNCED_STREAMS = 4096;
const MAX_STREAM_ID = 0xffffffff;

export interface LinkTransport {
  readable: Readable;
  writable: Writable;
}

export interface LinkOptions {
  role: Role;
  /** 'odd' on the side that initiated the connection, 'even' on the other. */
  streamIdParity: 'odd' | 'even';
  /** Bytes per stream the peer may send before we have consumed them. */
  initialWindow?: number;
  /** The largest frame payload accepted from the peer (and, as both sides use the same, sent to it). */
  maxFrameBytes?: number;
  info?: Hello['info'];
}

export type LinkEvents<In> = {
  message: [message: In];
  close: [error: Error | undefined];
};

// Stream internals the link drives; symbols keep them off the stream's public surface.
const kReceiveData = Symbol('receiveData');
const kReceiveCredit = Symbol('receiveCredit');
const kReceiveEnd = Symbol('receiveEnd');
const kReceiveReset = Symbol('receiveReset');
const kResumeAfterDrain = Symbol('resumeAfterDrain');
const kGrantInitialWindow = Symbol('grantInitialWindow');

/** The sending half of a link, shared by the link and its streams. */
class FrameWriter {
  closed = false;
  /** The transport said "no more" (write() returned false); data waits for its 'drain'. */
  blocked = false;
  private drainWaiters: LinkStream[] = [];

  constructor(
    private readonly writable: Writable,
    readonly maxDataPayload: number,
  ) {}

  /** Control frames and messages skip the queue: they are small, and credit must flow even when data waits. */
  control(frame: Buffer): void {
    if (this.closed) return;
    if (!this.writable.write(frame)) this.blocked = true;
  }

  data(streamId: number, payload: Buffer): void {
    if (this.closed) return;
    const writable = this.writable;
    // Corked, the header and the payload leave in one writev and the payload is never copied into a frame.
    writable.cork();
    writable.write(encodeDataHeader(streamId, payload.length));
    if (!writable.write(payload)) this.blocked = true;
    writable.uncork();
  }

  awaitDrain(stream: LinkStream): void {
    this.drainWaiters.push(stream);
  }

  onDrain(): void {
    this.blocked = false;
    const waiters = this.drainWaiters;
    this.drainWaiters = [];
    let resumed = 0;
    while (resumed < waiters.length && !this.blocked && !this.closed) waiters[resumed++]![kResumeAfterDrain]();
    // Those not reached go first next time, ahead of those that just wrote: the transport is shared fairly.
    if (resumed < waiters.length) this.drainWaiters = waiters.slice(resumed).concat(this.drainWaiters);
  }

  close(): void {
    this.closed = true;
    this.drainWaiters = [];
  }
}

/** What arrived for a stream before we accepted it: its first credit, and maybe already its RESET. */
interface AnnouncedStream {
  credit: number;
  resetReason: string | undefined;
}

interface StreamHost {
  readonly writer: FrameWriter;
  readonly window: number;
  forget(stream: LinkStream): void;
}

interface PendingWrite {
  chunk: Buffer;
  offset: number;
  callback: (error?: Error | null) => void;
}

function resetError(streamId: number, reason: string): Error {
  return Object.assign(new Error(`stream ${streamId} was reset by the peer (${reason})`), {
    code: 'ECONNRESET',
    reason,
  });
}

function resetReasonFor(error: Error | null): string {
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code === 'string' && code.length > 0) return code;
  return error ? 'ERROR' : 'CANCEL';
}

/** One byte stream of a link. Create it with Link.openStream or Link.acceptStream, never directly. */
export class LinkStream extends Duplex {
  readonly id: number;
  private readonly host: StreamHost;
  private readonly grantThreshold: number;
  private sendCredit: number;
  private pendingWrite: PendingWrite | undefined;
  private awaitingDrain = false;
  private receivedTotal = 0;
  private grantedTotal = 0;
  private localEnded = false;
  private remoteEnded = false;
  private resetByPeer = false;

  /** @internal */
  constructor(id: number, host: StreamHost, initialSendCredit: number) {
    super({ allowHalfOpen: true, readableHighWaterMark: 64 * 1024, writableHighWaterMark: 256 * 1024 });
    this.id = id;
    this.host = host;
    this.sendCredit = initialSendCredit;
    this.grantThreshold = Math.max(1, Math.floor(host.window / 4));
  }

  /** Grants the peer its first window, once the link has registered the stream. */
  [kGrantInitialWindow](): void {
    this.grantedTotal = this.host.window;
    this.host.writer.control(encodeCredit(this.id, this.host.window));
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.pendingWrite = { chunk, offset: 0, callback };
    this.pump();
  }

  override _final(callback: (error?: Error | null) => void): void {
    this.localEnded = true;
    this.host.writer.control(encodeEnd(this.id));
    if (this.remoteEnded) this.host.forget(this);
    callback();
  }

  override _read(): void {
    this.grantCredit();
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.host.forget(this);
    this.pendingWrite = undefined;
    const finishedBothWays = this.localEnded && this.remoteEnded;
    if (!this.resetByPeer && !finishedBothWays) this.host.writer.control(encodeReset(this.id, resetReasonFor(error)));
    callback(error);
  }

  /** Sends as much of the pending chunk as credit and the transport allow; calls back once it is all out. */
  private pump(): void {
    const pending = this.pendingWrite;
    if (pending === undefined || this.destroyed) return;
    const writer = this.host.writer;
    const chunk = pending.chunk;
    for (;;) {
      if (writer.closed) return;
      // The callback, too, waits for 'drain': calling back earlier would invite the producer to write more.
      if (writer.blocked) {
        if (!this.awaitingDrain) {
          this.awaitingDrain = true;
          writer.awaitDrain(this);
        }
        return;
      }
      if (pending.offset === chunk.length) break;
      if (this.sendCredit === 0) return;
      const size = Math.min(chunk.length - pending.offset, this.sendCredit, writer.maxDataPayload);
      const payload = size === chunk.length ? chunk : chunk.subarray(pending.offset, pending.offset + size);
      pending.offset += size;
      this.sendCredit -= size;
      writer.data(this.id, payload);
    }
    this.pendingWrite = undefined;
    pending.callback();
  }

  /** Returns credit for what the consumer has taken, once enough is owed to be worth a frame. */
  private grantCredit(): void {
    if (this.remoteEnded || this.destroyed) return;
    const consumed = this.receivedTotal - this.readableLength;
    const owed = consumed + this.host.window - this.grantedTotal;
    if (owed < this.grantThreshold) return;
    this.grantedTotal += owed;
    this.host.writer.control(encodeCredit(this.id, owed));
  }

  [kReceiveData](data: Buffer): void {
    if (data.length === 0) return;
    if (this.remoteEnded) throw new ProtocolError(`the peer sent DATA on stream ${this.id} after its END`);
    const received = this.receivedTotal + data.length;
    if (received > this.grantedTotal) {
      throw new ProtocolError(
        `the peer sent ${received - this.grantedTotal} bytes beyond its credit on stream ${this.id}`,
      );
    }
    this.receivedTotal = received;
    // Whatever push() says, the data is taken: the window, not the transport, bounds this buffer.
    this.push(data);
    this.grantCredit();
  }

  [kReceiveCredit](bytes: number): void {
    this.sendCredit += bytes;
    if (this.pendingWrite !== undefined && !this.awaitingDrain) this.pump();
  }

  [kReceiveEnd](): void {
    if (this.remoteEnded) return;
    this.remoteEnded = true;
    this.push(null);
    if (this.localEnded) this.host.forget(this);
  }

  [kReceiveReset](reason: string): void {
    this.resetByPeer = true;
    this.host.forget(this);
    this.destroy(resetError(this.id, reason));
  }

  [kResumeAfterDrain](): void {
    this.awaitingDrain = false;
    this.pump();
  }
}

function isVersionNumber(value: unknown): value is number {
  return typeof value === 'number' && Number.isInteger(value) && value >= 0;
}

function linkClosedError(): Error {
  return Object.assign(new Error('the link closed'), { code: 'ECONNRESET' });
}

export class Link<Out extends WireMessage, In extends WireMessage> extends EventEmitter<LinkEvents<In>> {
  readonly role: Role;
  readonly window: number;
  readonly maxFrameBytes: number;
  /** The peer's hello, once it has arrived and was found compatible. */
  peerHello: Hello | undefined;
  /** The protocol version both sides speak: the lower of the two. */
  version: number | undefined;

  private readonly readable: Readable;
  private readonly writable: Writable;
  /** A socket is usually both ends; stdin/stdout are two objects. */
  private readonly oneTransportObject: boolean;
  private readonly info: Hello['info'];
  private readonly parity: 0 | 1;
  private readonly writer: FrameWriter;
  private readonly decoder: FrameDecoder;
  private readonly streams = new Map<number, LinkStream>();
  private readonly announced = new Map<number, AnnouncedStream>();
  private readonly host: StreamHost;
  private highestPeerStreamId = 0;
  private nextStreamId: number;
  private helloSent = false;
  private handshakeResult: Promise<Hello> | undefined;
  private helloWaiter: { resolve(hello: Hello): void; reject(error: Error): void } | undefined;
  private isClosed = false;
  private closeReason: Error | undefined;

  constructor(transport: LinkTransport, options: LinkOptions) {
    super();
    const window = options.initialWindow ?? DEFAULT_INITIAL_WINDOW;
    if (!Number.isInteger(window) || window < 1 || window > 0x7fffffff) {
      throw new RangeError(`initialWindow must be an integer from 1 to ${0x7fffffff}, got ${window}`);
    }
    const maxFrameBytes = options.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES;
    if (!Number.isInteger(maxFrameBytes) || maxFrameBytes < 256 || maxFrameBytes > 0xffffffff) {
      throw new RangeError(`maxFrameBytes must be an integer from 256 to ${0xffffffff}, got ${maxFrameBytes}`);
    }
    this.role = options.role;
    this.window = window;
    this.maxFrameBytes = maxFrameBytes;
    this.info = options.info;
    this.parity = options.streamIdParity === 'odd' ? 1 : 0;
    this.nextStreamId = options.streamIdParity === 'odd' ? 1 : 2;
    this.readable = transport.readable;
    this.writable = transport.writable;
    this.oneTransportObject = (transport.readable as object) === transport.writable;
    this.writer = new FrameWriter(this.writable, Math.min(maxFrameBytes - 16, MAX_DATA_FRAME_BYTES));
    this.host = { writer: this.writer, window, forget: (stream) => this.forget(stream) };
    this.decoder = new FrameDecoder(this.createSink(), maxFrameBytes);
    this.attachTransport();
  }

  get closed(): boolean {
    return this.isClosed;
  }

  /** Streams open on this link, for diagnostics. */
  get streamCount(): number {
    return this.streams.size;
  }

  /** The error the link closed with (undefined while open, or after a clean close). */
  get closeError(): Error | undefined {
    return this.closeReason;
  }

  /** Sends our hello and waits for the peer's; calling it again returns the same outcome. */
  handshake(timeoutMs: number): Promise<Hello> {
    this.handshakeResult ??= new Promise<Hello>((resolve, reject) => {
      if (this.isClosed) {
        reject(this.closeReason ?? new ProtocolError('the link closed before the handshake'));
        return;
      }
      this.sendHello();
      if (this.peerHello !== undefined) {
        resolve(this.peerHello);
        return;
      }
      const timer = setTimeout(() => {
        this.close(new ProtocolError(`the peer sent no hello within ${timeoutMs} ms`));
      }, timeoutMs);
      this.helloWaiter = {
        resolve: (hello) => (clearTimeout(timer), resolve(hello)),
        reject: (error) => (clearTimeout(timer), reject(error)),
      };
    });
    return this.handshakeResult;
  }

  /** Sends one message; false when the link has closed (the 'close' event has said so already). */
  send(message: Out): boolean {
    if (this.isClosed) return false;
    if (!this.helloSent) throw new ProtocolError(`cannot send '${message.type}' before handshake(): the hello goes first`);
    this.writer.control(encodeMessage(message, this.maxFrameBytes));
    return true;
  }

  /** A new stream with an id of our parity; tell the peer about it (in a request) for it to accept. */
  openStream(): LinkStream {
    this.requireHelloSent('openStream');
    const id = this.nextStreamId;
    if (id > MAX_STREAM_ID) throw new ProtocolError('this link has used up its stream ids');
    this.nextStreamId += 2;
    return this.register(new LinkStream(id, this.host, 0));
  }

  /** The local end of a stream the peer opened with this id. */
  acceptStream(id: number): LinkStream {
    this.requireHelloSent('acceptStream');
    if (!Number.isInteger(id) || id < 1 || id > MAX_STREAM_ID || id % 2 === this.parity) {
      throw new ProtocolError(`stream id ${id} is not one the peer could have opened`);
    }
    if (this.streams.has(id)) throw new ProtocolError(`stream ${id} is already open`);
    const announced = this.announced.get(id);
    this.announced.delete(id);
    if (id > this.highestPeerStreamId) this.highestPeerStreamId = id;
    const stream = new LinkStream(id, this.host, announced?.credit ?? 0);
    // The opener gave up before we got here (its app closed the connection, say): the stream is born reset,
    // so whoever accepts it lets go of what it holds for it instead of waiting for credit forever.
    if (announced?.resetReason !== undefined) {
      stream[kReceiveReset](announced.resetReason);
      return stream;
    }
    return this.register(stream);
  }

  /** Closes the link and destroys its streams; with an error, the transport is torn down at once. */
  close(error?: Error): void {
    if (this.isClosed) return;
    this.isClosed = true;
    this.closeReason = error;
    this.writer.close();
    this.decoder.stop();
    this.announced.clear();
    const streamError = error ?? linkClosedError();
    const streams = [...this.streams.values()];
    this.streams.clear();
    for (const stream of streams) stream.destroy(streamError);
    if (this.helloWaiter !== undefined) {
      this.helloWaiter.reject(error ?? new ProtocolError('the link closed before the handshake finished'));
      this.helloWaiter = undefined;
    }
    if (error !== undefined) {
      this.readable.destroy();
      this.writable.destroy();
    } else {
      this.writable.end();
      if (!this.oneTransportObject) this.readable.destroy();
      // Whatever still arrives is dropped, but read, so a half-open socket cannot stall.
      else this.readable.resume();
    }
    this.emit('close', error);
  }

  private requireHelloSent(operation: string): void {
    if (!this.helloSent) throw new ProtocolError(`cannot ${operation}() before handshake(): the hello goes first`);
  }

  private sendHello(): void {
    if (this.helloSent) return;
    this.helloSent = true;
    const hello: Hello = {
      type: 'hello',
      protocol: 'remocal',
      role: this.role,
      version: PROTOCOL_VERSION,
      minVersion: PROTOCOL_MIN_VERSION,
      ...(this.info === undefined ? {} : { info: this.info }),
    };
    this.writer.control(encodeMessage(hello, this.maxFrameBytes));
  }

  private register(stream: LinkStream): LinkStream {
    if (this.isClosed) {
      stream.destroy(this.closeReason ?? linkClosedError());
      return stream;
    }
    this.streams.set(stream.id, stream);
    stream[kGrantInitialWindow]();
    return stream;
  }

  private forget(stream: LinkStream): void {
    if (this.streams.get(stream.id) === stream) this.streams.delete(stream.id);
  }

  private attachTransport(): void {
    const readable = this.readable;
    const writable = this.writable;
    readable.on('data', (chunk: Buffer) => {
      if (this.isClosed) return;
      try {
        this.decoder.push(chunk);
      } catch (error) {
        this.close(error instanceof Error ? error : new ProtocolError(String(error)));
      }
    });
    readable.on('end', () => {
      if (this.isClosed) return;
      try {
        this.decoder.end();
      } catch (error) {
        this.close(error as Error);
        return;
      }
      this.close(this.peerHello === undefined ? new ProtocolError('the peer closed the link before its hello') : undefined);
    });
    const onError = (error: Error) => this.close(error);
    const onClose = () => this.close(new ProtocolError('the transport closed under the link'));
    // The error listeners stay after close: a late EPIPE on a closed link must not become an uncaught error.
    readable.on('error', onError);
    readable.on('close', onClose);
    if (!this.oneTransportObject) {
      writable.on('error', onError);
      writable.on('close', onClose);
    }
    writable.on('drain', () => this.writer.onDrain());
  }

  private createSink(): FrameSink {
    const expectHello = (what: string) => {
      if (this.peerHello === undefined) throw new ProtocolError(`expected a hello as the first frame, got ${what}`);
    };
    return {
      onMessage: (message) => {
        if (this.peerHello === undefined) {
          this.acceptHello(message);
          return;
        }
        if (message.type === 'hello') throw new ProtocolError('the peer sent a second hello');
        this.emit('message', message as In);
      },
      onData: (streamId, data, lastPiece) => {
        const stream = this.streams.get(streamId);
        if (stream !== undefined) {
          stream[kReceiveData](data);
          return;
        }
        expectHello('a DATA frame');
        // A stream we no longer (or never) had: tell the sender to stop, once per frame.
        if (lastPiece) this.writer.control(encodeReset(streamId, 'UNKNOWN_STREAM'));
      },
      onCredit: (streamId, bytes) => {
        expectHello('a CREDIT frame');
        const stream = this.streams.get(streamId);
        if (stream !== undefined) {
          stream[kReceiveCredit](bytes);
          return;
        }
        const announced = this.announced.get(streamId);
        if (announced !== undefined) {
          announced.credit += bytes;
        } else if (streamId % 2 !== this.parity && streamId > this.highestPeerStreamId) {
          // The peer allocates ids in order and grants before it names the stream, so only an id above all
          // seen so far can be a stream yet to be accepted; a lower one is a late credit for a finished stream.
          this.highestPeerStreamId = streamId;
          this.announced.set(streamId, { credit: bytes, resetReason: undefined });
          // The oldest entry goes first: most likely a stream the peer gave up on and we never accepted.
          if (this.announced.size > MAX_ANNOUNCED_STREAMS) this.announced.delete(this.announced.keys().next().value!);
        }
      },
      onEnd: (streamId) => {
        expectHello('an END frame');
        this.streams.get(streamId)?.[kReceiveEnd]();
      },
      onReset: (streamId, reason) => {
        expectHello('a RESET frame');
        const stream = this.streams.get(streamId);
        if (stream !== undefined) {
          stream[kReceiveReset](reason);
          return;
        }
        const announced = this.announced.get(streamId);
        if (announced !== undefined) announced.resetReason = reason;
      },
    };
  }

  private acceptHello(message: WireMessage): void {
    if (message.type !== 'hello') {
      throw new ProtocolError(`expected a hello as the first frame, got a '${message.type}' message`);
    }
    const hello = message as Partial<Hello>;
    if (hello.protocol !== 'remocal') {
      throw new ProtocolError(`the peer speaks protocol ${JSON.stringify(hello.protocol)}, not "remocal"`);
    }
    if (!isVersionNumber(hello.version) || !isVersionNumber(hello.minVersion)) {
      throw new ProtocolError(
        `the peer's hello has no valid versions (version ${JSON.stringify(hello.version)}, minVersion ${JSON.stringify(hello.minVersion)})`,
      );
    }
    if (hello.minVersion > PROTOCOL_VERSION || PROTOCOL_MIN_VERSION > hello.version) {
      throw new ProtocolError(
        `protocol versions do not overlap: this ${this.role} speaks version ${PROTOCOL_VERSION} ` +
          `(down to ${PROTOCOL_MIN_VERSION}), the peer (${String(hello.role)}) speaks version ${hello.version} ` +
          `(down to ${hello.minVersion})`,
      );
    }
    this.peerHello = hello as Hello;
    this.version = Math.min(PROTOCOL_VERSION, hello.version);
    if (this.helloWaiter !== undefined) {
      this.helloWaiter.resolve(this.peerHello);
      this.helloWaiter = undefined;
    }
  }
}
