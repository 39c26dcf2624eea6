// What the fs hooks do once the policy sent an operation to the target. Every operation is written once, as a
// generator that yields the requests it needs and gets their results back; the same generator is then driven
// synchronously (readFileSync: each request through the sync channel, the main thread blocked) or
// asynchronously (readFile, fs.promises: each request awaited). So sync, callback and promise forms cannot
// drift apart.
//
// A remote file opened by the app gets a real local fd as its stand-in (a descriptor of /dev/null), so that its
// number is unique in the process and any call the hooks do not cover acts harmlessly on /dev/null. Reads are
// served from a read-ahead buffer: a file is read in chunks of READ_AHEAD_BYTES, the first one with the open, so
// that small reads cost no round trip each.

import fs, { constants, type BigIntStats, type Dirent, type Stats } from 'node:fs';
import path from 'node:path';
import { FILE_TOO_LARGE } from '../../protocol/contracts.js';
import { MAX_FILE_CHUNK_BYTES, opensForWriting, type DirentType, type FileStats, type FsRequest, type FsResults, type RemoteFailure, type Result } from '../../protocol/messages.js';
import { uvErrno } from '../errors.js';
import type { FileIntent, FilePolicy } from '../policy.js';

/** A file operation: yields requests, receives their results, returns what the fs function returns. */
export type FsCall<T> = Generator<FsRequest, T, Result<unknown>>;

export interface FileRemote {
  request(request: FsRequest): Promise<Result<unknown>>;
  /** The same, with the calling thread blocked until the answer is there. */
  requestSync(request: FsRequest): Result<unknown>;
}

/** Node's own functions the ops need untouched: the stand-in fds are opened and closed through them. */
export interface LocalFs {
  openSync: typeof fs.openSync;
  closeSync: typeof fs.closeSync;
  statSync: typeof fs.statSync;
}

/** An operation's path, as the policy sent it to the target. */
export interface RemotePath {
  /** The path in the target. */
  absolute: string;
  /** The path as the app gave it, which its errors name. */
  shown: string;
  /** The user's not_found list holds it: it does not exist, for any operation. */
  notFound: boolean;
}

export const READ_AHEAD_BYTES = 64 * 1024;

const ENCODINGS_THAT_ARE_BUFFERS = new Set(['buffer', null, undefined]);

interface OpenFile {
  handle: number;
  path: string;
  /** Where a read or write without a position happens, as the kernel's file offset would say. */
  position: number;
  append: boolean;
  /** Bytes of the file from offset `start`; `eof`: the file ended there when they were read. */
  cache: { start: number; data: Buffer; eof: boolean } | null;
}

function* ask<R extends FsRequest>(request: R): Generator<FsRequest, Result<FsResults[R['op']]>, Result<unknown>> {
  return (yield request) as Result<FsResults[R['op']]>;
}

/** The value of a result, or the native error its failure stands for. */
function valueOf<T>(result: Result<T>, shown?: { path?: string; dest?: string }): T {
  if (result.ok) return result.value;
  throw fileError(result.error, shown);
}

/**
 * An error as Node's fs throws it (uvException: errno, code, syscall, path, dest, in that order), naming the
 * path as the app gave it rather than as the target resolved it.
 */
export function fileError(failure: RemoteFailure & { path?: string; dest?: string }, shown: { path?: string; dest?: string } = {}): NodeJS.ErrnoException & { dest?: string } {
  let message = failure.message;
  const pathShown = shown.path ?? failure.path;
  const destShown = shown.dest ?? failure.dest;
  if (failure.path !== undefined && pathShown !== undefined) message = message.replace(`'${failure.path}'`, `'${pathShown}'`);
  if (failure.dest !== undefined && destShown !== undefined) message = message.replace(`'${failure.dest}'`, `'${destShown}'`);
  const error: NodeJS.ErrnoException & { dest?: string } = new Error(message);
  error.errno = failure.errno ?? uvErrno(failure.code);
  error.code = failure.code;
  if (failure.syscall !== undefined) error.syscall = failure.syscall;
  if (pathShown !== undefined && pathShown !== '') error.path = pathShown;
  if (destShown !== undefined) error.dest = destShown;
  return error;
}

/** A native error for a failure the layer itself decides (a not_found path, a cross-target rename). */
export function nativeFileError(code: string, description: string, syscall: string, shownPath: string, shownDest?: string): NodeJS.ErrnoException {
  const where = shownDest === undefined ? `'${shownPath}'` : `'${shownPath}' -> '${shownDest}'`;
  const failure: RemoteFailure & { path: string; dest?: string } = { code, message: `${code}: ${description}, ${syscall} ${where}`, syscall, path: shownPath };
  if (shownDest !== undefined) failure.dest = shownDest;
  return fileError(failure);
}

function notFoundError(syscall: string, target: RemotePath): NodeJS.ErrnoException {
  return nativeFileError('ENOENT', 'no such file or directory', syscall, target.shown);
}

// Typed out of @types/node, present in every Node's fs.constants.
const uv = constants as unknown as Record<string, number>;
const DIRENT_TYPES: Record<DirentType, number> = {
  file: uv.UV_DIRENT_FILE!,
  directory: uv.UV_DIRENT_DIR!,
  symlink: uv.UV_DIRENT_LINK!,
  fifo: uv.UV_DIRENT_FIFO!,
  socket: uv.UV_DIRENT_SOCKET!,
  'character-device': uv.UV_DIRENT_CHAR!,
  'block-device': uv.UV_DIRENT_BLOCK!,
  unknown: uv.UV_DIRENT_UNKNOWN!,
};

type DirentConstructor = new (name: string | Buffer, type: number, parentPath: string) => Dirent;

export function makeDirent(name: string | Buffer, type: DirentType, parentPath: string): Dirent {
  return new (fs.Dirent as unknown as DirentConstructor)(name, DIRENT_TYPES[type], parentPath);
}

const STAT_NUMBERS = ['dev', 'mode', 'nlink', 'uid', 'gid', 'rdev', 'blksize', 'ino', 'size', 'blocks'] as const;
const STAT_TIMES = ['atime', 'mtime', 'ctime', 'birthtime'] as const;

/** An fs.Stats (or BigIntStats) with the target's values: a real instance of Node's class, methods included. */
export function makeStats(values: FileStats, bigint: boolean, bigintPrototype: () => object): Stats | BigIntStats {
  const stats = Object.create(bigint ? bigintPrototype() : fs.Stats.prototype) as Record<string, unknown>;
  for (const key of STAT_NUMBERS) stats[key] = bigint ? BigInt(Math.trunc(values[key])) : values[key];
  for (const key of STAT_TIMES) {
    const ms = values[`${key}Ms`];
    stats[`${key}Ms`] = bigint ? BigInt(Math.trunc(ms)) : ms;
    if (bigint) stats[`${key}Ns`] = BigInt(Math.round(ms * 1e6));
  }
  // Own data properties, as Node 20 has them (22+ computes them lazily on the prototype from the *Ms values).
  for (const key of STAT_TIMES) {
    Object.defineProperty(stats, key, { value: new Date(values[`${key}Ms`]), enumerable: true, writable: true, configurable: true });
  }
  return stats as unknown as Stats | BigIntStats;
}

/**
 * open(2) flags for fs's string flags ('r', 'w+', 'ax'…); numbers pass as they are. Undefined for a value Node
 * would reject: the hooks then leave the call to Node, whose own validation error the app should see.
 */
export function openFlags(flags: unknown, fallback = 'r'): number | undefined {
  if (typeof flags === 'number') return flags;
  const { O_RDONLY, O_RDWR, O_WRONLY, O_CREAT, O_TRUNC, O_APPEND, O_EXCL, O_SYNC } = constants;
  const table: Record<string, number> = {
    r: O_RDONLY,
    rs: O_RDONLY | O_SYNC,
    sr: O_RDONLY | O_SYNC,
    'r+': O_RDWR,
    'rs+': O_RDWR | O_SYNC,
    'sr+': O_RDWR | O_SYNC,
    w: O_TRUNC | O_CREAT | O_WRONLY,
    wx: O_TRUNC | O_CREAT | O_WRONLY | O_EXCL,
    xw: O_TRUNC | O_CREAT | O_WRONLY | O_EXCL,
    'w+': O_TRUNC | O_CREAT | O_RDWR,
    'wx+': O_TRUNC | O_CREAT | O_RDWR | O_EXCL,
    'xw+': O_TRUNC | O_CREAT | O_RDWR | O_EXCL,
    a: O_APPEND | O_CREAT | O_WRONLY,
    ax: O_APPEND | O_CREAT | O_WRONLY | O_EXCL,
    xa: O_APPEND | O_CREAT | O_WRONLY | O_EXCL,
    as: O_APPEND | O_CREAT | O_WRONLY | O_SYNC,
    sa: O_APPEND | O_CREAT | O_WRONLY | O_SYNC,
    'a+': O_APPEND | O_CREAT | O_RDWR,
    'ax+': O_APPEND | O_CREAT | O_RDWR | O_EXCL,
    'xa+': O_APPEND | O_CREAT | O_RDWR | O_EXCL,
    'as+': O_APPEND | O_CREAT | O_RDWR | O_SYNC,
    'sa+': O_APPEND | O_CREAT | O_RDWR | O_SYNC,
  };
  if (flags === undefined || flags === null) return table[fallback];
  return typeof flags === 'string' ? table[flags] : undefined;
}

export function intentOfFlags(flags: number): FileIntent {
  return opensForWriting(flags) ? 'write' : 'read';
}

/** The encoding of an fs options argument: a string, or { encoding }. */
export function encodingOf(options: unknown, fallback: BufferEncoding | 'buffer' | null = null): BufferEncoding | 'buffer' | null {
  if (typeof options === 'string') return options as BufferEncoding;
  if (options !== null && typeof options === 'object' && 'encoding' in options) {
    return ((options as { encoding?: BufferEncoding | 'buffer' | null }).encoding ?? fallback) as BufferEncoding | 'buffer' | null;
  }
  return fallback;
}

function encode(data: Buffer, encoding: BufferEncoding | 'buffer' | null): Buffer | string {
  return ENCODINGS_THAT_ARE_BUFFERS.has(encoding) ? data : data.toString(encoding as BufferEncoding);
}

function encodeName(name: string, encoding: BufferEncoding | 'buffer' | null): string | Buffer {
  return encoding === 'buffer' ? Buffer.from(name) : name;
}

/** Bytes of what writeFile and write accept: a string (in `encoding`), a Buffer, any ArrayBufferView. */
export function bytesOf(data: unknown, encoding: BufferEncoding = 'utf8'): Buffer {
  if (typeof data === 'string') return Buffer.from(data, encoding);
  if (Buffer.isBuffer(data)) return data;
  if (ArrayBuffer.isView(data)) return Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  return Buffer.from(String(data), encoding);
}

export class FileOps {
  private readonly open = new Map<number, OpenFile>();
  private bigintPrototype: object | undefined;

  constructor(
    private readonly remote: FileRemote,
    private readonly policy: FilePolicy,
    private readonly local: LocalFs,
  ) {}

  // --- routing ---------------------------------------------------------------------------------------------

  /**
   * Where a path argument goes: null keeps the call local (the policy said so, or the argument is a URL, a
   * bad value or anything Node itself must judge). URL objects stay local always: the ESM loader reads modules
   * through them, and module files are the app's own.
   */
  where(pathArgument: unknown, intent: FileIntent): RemotePath | null {
    let shown: string;
    if (typeof pathArgument === 'string') shown = pathArgument;
    else if (Buffer.isBuffer(pathArgument)) shown = pathArgument.toString('utf8');
    else return null;
    if (shown === '' || shown.includes('\0')) return null;
    const absolute = path.resolve(shown);
    const route = this.policy.route(absolute, intent);
    if (route === 'local') return null;
    return { absolute, shown, notFound: route === 'not-found' };
  }

  isRemoteFd(fd: unknown): fd is number {
    return typeof fd === 'number' && this.open.has(fd);
  }

  // --- drivers ---------------------------------------------------------------------------------------------

  runSync<T>(call: FsCall<T>): T {
    let step = call.next();
    while (!step.done) step = call.next(this.remote.requestSync(step.value));
    return step.value;
  }

  async runAsync<T>(call: FsCall<T>): Promise<T> {
    let step = call.next();
    while (!step.done) step = call.next(await this.remote.request(step.value));
    return step.value;
  }

  // --- operations on paths ---------------------------------------------------------------------------------

  *stat(target: RemotePath, options: { bigint?: boolean; throwIfNoEntry?: boolean } | undefined, syscall: 'stat' | 'lstat'): FsCall<Stats | BigIntStats | undefined> {
    if (target.notFound) {
      if (options?.throwIfNoEntry === false) return undefined;
      throw notFoundError(syscall, target);
    }
    const result = yield* ask({ op: syscall === 'stat' ? 'fs.stat' : 'fs.lstat', path: target.absolute });
    if (!result.ok && result.error.code === 'ENOENT' && options?.throwIfNoEntry === false) return undefined;
    return makeStats(valueOf(result, { path: target.shown }), options?.bigint === true, () => this.bigintStatsPrototype());
  }

  *access(target: RemotePath, mode: number | undefined): FsCall<void> {
    if (target.notFound) throw notFoundError('access', target);
    valueOf(yield* ask({ op: 'fs.access', path: target.absolute, mode: mode ?? constants.F_OK }), { path: target.shown });
  }

  *exists(target: RemotePath): FsCall<boolean> {
    if (target.notFound) return false;
    return (yield* ask({ op: 'fs.access', path: target.absolute, mode: constants.F_OK })).ok;
  }

  *readdir(target: RemotePath, options: unknown): FsCall<(string | Buffer)[] | Dirent[]> {
    if (target.notFound) throw notFoundError('scandir', target);
    const encoding = encodingOf(options, 'utf8');
    const withFileTypes = typeof options === 'object' && options !== null && (options as { withFileTypes?: boolean }).withFileTypes === true;
    const recursive = typeof options === 'object' && options !== null && (options as { recursive?: boolean }).recursive === true;
    const names: (string | Buffer)[] = [];
    const dirents: Dirent[] = [];
    // Recursive listings name entries relative to the top, directories first found first, as Node's do.
    const pending: string[] = [''];
    while (pending.length > 0) {
      const relative = pending.shift()!;
      const directory = relative === '' ? target.absolute : path.join(target.absolute, relative);
      const shownDirectory = relative === '' ? target.shown : path.join(target.shown, relative);
      const { entries } = valueOf(yield* ask({ op: 'fs.readdir', path: directory }), { path: shownDirectory });
      for (const entry of entries) {
        const name = relative === '' ? entry.name : path.join(relative, entry.name);
        if (withFileTypes) dirents.push(makeDirent(encodeName(entry.name, encoding), entry.type, shownDirectory));
        else names.push(encodeName(name, encoding));
        if (recursive && entry.type === 'directory') pending.push(name);
      }
    }
    return withFileTypes ? dirents : names;
  }

  *realpath(target: RemotePath, options: unknown): FsCall<string | Buffer> {
    if (target.notFound) throw nativeFileError('ENOENT', 'no such file or directory', 'realpath', target.shown);
    const { path: resolved } = valueOf(yield* ask({ op: 'fs.realpath', path: target.absolute }), { path: target.shown });
    return encodeName(resolved, encodingOf(options, 'utf8'));
  }

  *readlink(target: RemotePath, options: unknown): FsCall<string | Buffer> {
    if (target.notFound) throw notFoundError('readlink', target);
    const { path: link } = valueOf(yield* ask({ op: 'fs.readlink', path: target.absolute }), { path: target.shown });
    return encodeName(link, encodingOf(options, 'utf8'));
  }

  /** fs.readFile of a path: one round trip for a file that fits one message, handle reads beyond that. */
  *readFile(target: RemotePath, options: unknown): FsCall<string | Buffer> {
    if (target.notFound) throw notFoundError('open', target);
    const encoding = encodingOf(options, null);
    const whole = yield* ask({ op: 'fs.readFile', path: target.absolute });
    if (whole.ok) return encode(Buffer.from(whole.value.data, 'base64'), encoding);
    if (whole.error.code !== FILE_TOO_LARGE) throw fileError(whole.error, { path: target.shown });
    const fd = yield* this.openFile(target, constants.O_RDONLY, undefined);
    try {
      return encode(yield* this.readToEnd(fd), encoding);
    } finally {
      yield* this.close(fd);
    }
  }

  /** fs.readFile of a remote fd: the rest of the file, from the fd's position. */
  *readFileOfFd(fd: number, options: unknown): FsCall<string | Buffer> {
    return encode(yield* this.readToEnd(fd), encodingOf(options, null));
  }

  /** writeFile and appendFile of a path; `flag` other than w/a (wx, w+…) goes through a handle. */
  *writeFile(target: RemotePath, data: Buffer, options: { flag?: unknown; mode?: number | undefined }, append: boolean): FsCall<void> {
    if (target.notFound) throw notFoundError('open', target);
    const flags = openFlags(options.flag, append ? 'a' : 'w') ?? openFlags(append ? 'a' : 'w')!;
    const plain = flags === openFlags(append ? 'a' : 'w');
    if (plain && data.length <= MAX_FILE_CHUNK_BYTES) {
      const request = { path: target.absolute, data: data.toString('base64'), ...(options.mode === undefined ? {} : { mode: options.mode }) };
      valueOf(yield* ask(append ? { op: 'fs.appendFile', ...request } : { op: 'fs.writeFile', ...request }), { path: target.shown });
      return;
    }
    const fd = yield* this.openFile(target, flags, options.mode);
    try {
      yield* this.writeAll(fd, data, null);
    } finally {
      yield* this.close(fd);
    }
  }

  *mkdir(target: RemotePath, options: unknown): FsCall<string | undefined> {
    if (target.notFound) throw notFoundError('mkdir', target);
    const recursive = typeof options === 'object' && options !== null && (options as { recursive?: boolean }).recursive === true;
    const modeOption = typeof options === 'object' && options !== null ? (options as { mode?: number | string }).mode : options;
    const mode = typeof modeOption === 'number' ? modeOption : typeof modeOption === 'string' ? parseInt(modeOption, 8) : undefined;
    const { first } = valueOf(yield* ask({ op: 'fs.mkdir', path: target.absolute, recursive, ...(mode === undefined ? {} : { mode }) }), { path: target.shown });
    if (!recursive || first === null) return undefined;
    // Node answers with the first directory created, in the form the app asked (a relative path stays relative).
    return target.shown === target.absolute ? first : path.join(path.dirname(target.shown), path.relative(path.dirname(target.absolute), first));
  }

  *rm(target: RemotePath, options: { recursive?: boolean; force?: boolean } | undefined): FsCall<void> {
    if (target.notFound) {
      if (options?.force) return;
      throw notFoundError('rm', target);
    }
    const request = { op: 'fs.rm' as const, path: target.absolute, recursive: options?.recursive === true, force: options?.force === true };
    valueOf(yield* ask(request), { path: target.shown });
  }

  *unlink(target: RemotePath): FsCall<void> {
    if (target.notFound) throw notFoundError('unlink', target);
    valueOf(yield* ask({ op: 'fs.unlink', path: target.absolute }), { path: target.shown });
  }

  *rename(from: RemotePath, to: RemotePath): FsCall<void> {
    if (from.notFound || to.notFound) throw nativeFileError('ENOENT', 'no such file or directory', 'rename', from.shown, to.shown);
    valueOf(yield* ask({ op: 'fs.rename', path: from.absolute, dest: to.absolute }), { path: from.shown, dest: to.shown });
  }

  *truncate(target: RemotePath, length: number | undefined): FsCall<void> {
    if (target.notFound) throw notFoundError('open', target);
    valueOf(yield* ask({ op: 'fs.truncate', path: target.absolute, length: length ?? 0 }), { path: target.shown });
  }

  // --- operations on remote fds ----------------------------------------------------------------------------

  /** Opens in the target and returns the stand-in fd; a read-only open brings the file's first chunk along. */
  *openFile(target: RemotePath, flags: number, mode: number | undefined): FsCall<number> {
    if (target.notFound) throw notFoundError('open', target);
    const readOnly = intentOfFlags(flags) === 'read';
    const request = { op: 'fs.open' as const, path: target.absolute, flags, ...(mode === undefined ? {} : { mode }), ...(readOnly ? { prefetch: READ_AHEAD_BYTES } : {}) };
    const opened = valueOf(yield* ask(request), { path: target.shown });
    let fd: number;
    try {
      // libuv opens it close-on-exec: a child process does not inherit the stand-in.
      fd = this.local.openSync('/dev/null', constants.O_RDONLY);
    } catch (error) {
      // Out of local fds: the remote handle must not stay open for nothing.
      yield* ask({ op: 'fs.close', handle: opened.handle });
      throw error;
    }
    const head = opened.head === undefined ? null : Buffer.from(opened.head, 'base64');
    this.open.set(fd, {
      handle: opened.handle,
      path: target.shown,
      position: 0,
      append: (flags & constants.O_APPEND) !== 0,
      cache: head === null ? null : { start: 0, data: head, eof: head.length < READ_AHEAD_BYTES },
    });
    return fd;
  }

  /** read(2) on a remote fd into `buffer`; `position` null or negative reads from the fd's position. */
  *read(fd: number, buffer: ArrayBufferView, offset: number, length: number, position: number | bigint | null | undefined): FsCall<number> {
    const file = this.fileOf(fd, 'read');
    const explicit = position !== null && position !== undefined && Number(position) >= 0;
    const at = explicit ? Number(position) : file.position;
    const target = Buffer.from(buffer.buffer, buffer.byteOffset, buffer.byteLength);
    let cache = file.cache;
    const cachedEnd = cache === null ? -1 : cache.start + cache.data.length;
    // Served from the buffer when it holds all of it, or the rest of a file that ended there. At the end of
    // what was read, ask again: the file may have grown since.
    const served = cache !== null && at >= cache.start && at < cachedEnd && (at + length <= cachedEnd || cache.eof);
    if (!served && length > 0) {
      const want = Math.min(Math.max(length, READ_AHEAD_BYTES), MAX_FILE_CHUNK_BYTES);
      const { data } = valueOf(yield* ask({ op: 'fs.read', handle: file.handle, length: want, position: at }), { path: file.path });
      const bytes = Buffer.from(data, 'base64');
      cache = file.cache = { start: at, data: bytes, eof: bytes.length < want };
    }
    let count = 0;
    if (cache !== null && at >= cache.start) count = cache.data.copy(target, offset, at - cache.start, Math.min(at - cache.start + length, cache.data.length));
    if (!explicit) file.position = at + count;
    return count;
  }

  *write(fd: number, data: Buffer, position: number | bigint | null | undefined): FsCall<number> {
    const file = this.fileOf(fd, 'write');
    const explicit = position !== null && position !== undefined && Number(position) >= 0;
    return yield* this.writeAll(fd, data, explicit ? Number(position) : null, file);
  }

  *fstat(fd: number, options: { bigint?: boolean } | undefined): FsCall<Stats | BigIntStats> {
    const file = this.fileOf(fd, 'fstat');
    return makeStats(valueOf(yield* ask({ op: 'fs.fstat', handle: file.handle }), { path: file.path }), options?.bigint === true, () =>
      this.bigintStatsPrototype(),
    );
  }

  *close(fd: number): FsCall<void> {
    const file = this.fileOf(fd, 'close');
    this.open.delete(fd);
    try {
      this.local.closeSync(fd);
    } catch {
      // The stand-in is gone already (closed behind the layer's back): the remote handle still must go.
    }
    valueOf(yield* ask({ op: 'fs.close', handle: file.handle }), { path: file.path });
  }

  private *readToEnd(fd: number): FsCall<Buffer> {
    const chunks: Buffer[] = [];
    const chunk = Buffer.alloc(MAX_FILE_CHUNK_BYTES);
    for (;;) {
      const count = yield* this.read(fd, chunk, 0, chunk.length, null);
      if (count === 0) break;
      chunks.push(Buffer.from(chunk.subarray(0, count)));
    }
    return Buffer.concat(chunks);
  }

  private *writeAll(fd: number, data: Buffer, position: number | null, known?: OpenFile): FsCall<number> {
    const file = known ?? this.fileOf(fd, 'write');
    file.cache = null;
    let written = 0;
    do {
      const piece = data.subarray(written, written + MAX_FILE_CHUNK_BYTES);
      const at = position !== null ? position + written : file.append ? undefined : file.position;
      const request = { op: 'fs.write' as const, handle: file.handle, data: piece.toString('base64'), ...(at === undefined ? {} : { position: at }) };
      const { written: count } = valueOf(yield* ask(request), { path: file.path });
      written += count;
      if (position === null && !file.append) file.position += count;
      if (count < piece.length) break;
    } while (written < data.length);
    return written;
  }

  private fileOf(fd: number, syscall: string): OpenFile {
    const file = this.open.get(fd);
    if (file !== undefined) return file;
    // Closed while this call waited for its turn: what the kernel says of a closed fd.
    const error: NodeJS.ErrnoException = new Error(`EBADF: bad file descriptor, ${syscall}`);
    Object.assign(error, { errno: uvErrno('EBADF'), code: 'EBADF', syscall });
    throw error;
  }

  private bigintStatsPrototype(): object {
    this.bigintPrototype ??= Object.getPrototypeOf(this.local.statSync('/', { bigint: true })) as object;
    return this.bigintPrototype;
  }
}
