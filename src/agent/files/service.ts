// The agent's side of remote files: the target's file system, as the target's processes see it, for one
// session. Every path is the target's own; it is resolved inside the target's root (root.ts) and only then
// touched on the host. Failures are values carrying the native errno code and the target's path, so the layer
// can rebuild the very error Node would have thrown inside the target.
//
// Metadata calls and whole-file reads (at most MAX_FILE_CHUNK_BYTES) are synchronous: on the target's local
// disk each takes microseconds, where a hop through libuv's thread pool costs tens, and a small read would pay
// several. Reads and writes through handles, which may be large or slow, stay asynchronous.
//
// Permission checks are the agent's (it runs as root), not those of the target's user: a file the target's
// user could not read is readable here. The file policy on the layer side decides what is asked at all.

import { accessSync, closeSync, constants, lstatSync, openSync, readdirSync, readlinkSync, readSync, statSync, type Dirent, type Stats } from 'node:fs';
import { appendFile, mkdir, open, rename, rm, truncate, unlink, writeFile } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { escapeRegex } from '../../config/regex.js';
import { FILE_TOO_LARGE } from '../../protocol/contracts.js';
import { MAX_FILE_CHUNK_BYTES, opensForWriting, type DirEntry, type DirentType, type FileFailure, type FileResult, type FileStats } from '../../protocol/messages.js';
import { resolveInTarget, targetError, targetPathOf, type ResolveOptions } from './root.js';

export interface TargetFilesOptions {
  /** `write` mode: the writing operations are allowed; otherwise they fail with EROFS. Default false. */
  writable?: boolean;
  /** Open handles one session may hold; one more fails with EMFILE. Default 1024. */
  maxHandles?: number;
  /** The largest file readFile returns in one answer; larger ones are read through open/read. Default MAX_FILE_CHUNK_BYTES. */
  maxReadFileBytes?: number;
  /** The most one read returns, so one answer never holds a whole large file. Default MAX_FILE_CHUNK_BYTES. */
  maxReadBytes?: number;
  /**
   * Asked before each operation touches the host, with the target's paths it touches (as asked and as resolved):
   * an error to fail with instead (a policy's refusal), or null. Asked each time, since policies change.
   */
  refuse?: (access: 'read' | 'write', paths: readonly string[], syscall: string, targetPath: string) => NodeJS.ErrnoException | null;
}

const DEFAULT_MAX_HANDLES = 1024;
// One answer must fit one message of the link.
const DEFAULT_MAX_READ_FILE_BYTES = MAX_FILE_CHUNK_BYTES;
const DEFAULT_MAX_READ_BYTES = MAX_FILE_CHUNK_BYTES;
/** Files of /proc and /sys say size 0 and have content: readFile reads to the end in chunks of this. */
const READ_CHUNK_BYTES = 64 * 1024;

function ok<T>(value: T): FileResult<T> {
  return { ok: true, value };
}

function statsOf(stats: Stats): FileStats {
  return {
    dev: stats.dev,
    ino: stats.ino,
    mode: stats.mode,
    nlink: stats.nlink,
    uid: stats.uid,
    gid: stats.gid,
    rdev: stats.rdev,
    size: stats.size,
    blksize: stats.blksize,
    blocks: stats.blocks,
    atimeMs: stats.atimeMs,
    mtimeMs: stats.mtimeMs,
    ctimeMs: stats.ctimeMs,
    birthtimeMs: stats.birthtimeMs,
  };
}

function direntType(entry: Dirent): DirentType {
  if (entry.isFile()) return 'file';
  if (entry.isDirectory()) return 'directory';
  if (entry.isSymbolicLink()) return 'symlink';
  if (entry.isBlockDevice()) return 'block-device';
  if (entry.isCharacterDevice()) return 'character-device';
  if (entry.isFIFO()) return 'fifo';
  if (entry.isSocket()) return 'socket';
  return 'unknown';
}

/**
 * Rebuilds a failure with the target's path in place of the host path. Node's messages read
 * `CODE: description, syscall 'path'`; only the description is kept from them.
 */
function failure(root: string, error: unknown, syscall: string, targetPath: string, dest?: string): { ok: false; error: FileFailure } {
  const native = error as NodeJS.ErrnoException;
  const code = native.code ?? 'EIO';
  const actualSyscall = native.syscall ?? syscall;
  const described = /^[A-Z0-9_]+: (.*?), [a-z_]+ /.exec(native.message)?.[1] ?? native.message;
  // Some of Node's own errors (ERR_FS_EISDIR of rm) name the path in the description: never show the host's.
  const hostPaths = new RegExp(`${escapeRegex(root)}(/[^\\s,']*)?`, 'g');
  const description = described.replace(hostPaths, (_match, rest: string | undefined) => rest || '/');
  const where = dest === undefined ? `'${targetPath}'` : `'${targetPath}' -> '${dest}'`;
  const result: FileFailure = { code, message: `${code}: ${description}, ${actualSyscall} ${where}`, syscall: actualSyscall, path: targetPath };
  if (native.errno !== undefined) result.errno = native.errno;
  if (dest !== undefined) result.dest = dest;
  return { ok: false, error: result };
}

export class TargetFiles {
  private readonly writable: boolean;
  private readonly maxHandles: number;
  private readonly maxReadFileBytes: number;
  private readonly maxReadBytes: number;
  private readonly refuse: TargetFilesOptions['refuse'];
  private readonly handles = new Map<number, FileHandle>();
  private nextHandle = 1;

  /** Where the target's `/` is on the host, normalized. */
  readonly root: string;

  /** `root`: where the target's `/` is on the host, `/proc/<pid>/root` for a process target. */
  constructor(root: string, options: TargetFilesOptions = {}) {
    this.root = path.resolve(root);
    this.writable = options.writable ?? false;
    this.maxHandles = options.maxHandles ?? DEFAULT_MAX_HANDLES;
    this.maxReadFileBytes = options.maxReadFileBytes ?? DEFAULT_MAX_READ_FILE_BYTES;
    this.maxReadBytes = options.maxReadBytes ?? DEFAULT_MAX_READ_BYTES;
    this.refuse = options.refuse;
  }

  get openHandles(): number {
    return this.handles.size;
  }

  private async resolve(targetPath: string, syscall: string, options: ResolveOptions = {}, access: 'read' | 'write' = 'read'): Promise<string> {
    const hostPath = await resolveInTarget(this.root, targetPath, options, syscall);
    const refused = this.refuse?.(access, [targetPath, targetPathOf(this.root, hostPath)], syscall, targetPath) ?? null;
    if (refused !== null) throw refused;
    return hostPath;
  }

  /** Runs `body` on the resolved host path; any failure becomes a FileFailure about the target's path. */
  private async onPath<T>(targetPath: string, syscall: string, options: ResolveOptions, body: (hostPath: string) => Promise<T>, access: 'read' | 'write' = 'read'): Promise<FileResult<T>> {
    try {
      return ok(await body(await this.resolve(targetPath, syscall, options, access)));
    } catch (error) {
      return failure(this.root, error, syscall, targetPath);
    }
  }

  private async onWritablePath<T>(targetPath: string, syscall: string, options: ResolveOptions, body: (hostPath: string) => Promise<T>): Promise<FileResult<T>> {
    if (!this.writable) return failure(this.root, targetError('EROFS', syscall, targetPath, 'read-only file system'), syscall, targetPath);
    return this.onPath(targetPath, syscall, options, body, 'write');
  }

  stat(targetPath: string): Promise<FileResult<FileStats>> {
    return this.onPath(targetPath, 'stat', {}, async (hostPath) => statsOf(statSync(hostPath)));
  }

  lstat(targetPath: string): Promise<FileResult<FileStats>> {
    return this.onPath(targetPath, 'lstat', { nofollow: true }, async (hostPath) => statsOf(lstatSync(hostPath)));
  }

  /** `mode`: fs.constants F_OK/R_OK/W_OK/X_OK bits. */
  access(targetPath: string, mode: number): Promise<FileResult<Record<string, never>>> {
    return this.onPath(targetPath, 'access', {}, async (hostPath) => {
      accessSync(hostPath, mode);
      return {};
    });
  }

  readdir(targetPath: string): Promise<FileResult<{ entries: DirEntry[] }>> {
    return this.onPath(targetPath, 'scandir', {}, async (hostPath) => {
      const entries = readdirSync(hostPath, { withFileTypes: true });
      return { entries: entries.map((entry) => ({ name: entry.name, type: direntType(entry) })) };
    });
  }

  /** The canonical path inside the target, symlinks resolved there. */
  async realpath(targetPath: string): Promise<FileResult<{ path: string }>> {
    const result = await this.onPath(targetPath, 'realpath', {}, async (hostPath) => {
      lstatSync(hostPath);
      return { path: targetPathOf(this.root, hostPath) };
    });
    // Node reports a missing path as realpath's failure, not as the lstat used here to find it.
    if (!result.ok && result.error.syscall === 'lstat') return failure(this.root, { ...result.error, syscall: 'realpath' }, 'realpath', targetPath);
    return result;
  }

  /** The link's text, exactly as stored: an absolute target means a path inside the target. */
  readlink(targetPath: string): Promise<FileResult<{ path: string }>> {
    return this.onPath(targetPath, 'readlink', { nofollow: true }, async (hostPath) => ({ path: readlinkSync(hostPath) }));
  }

  /**
   * Opens with open(2) `flags` (read only by default; a writing flag needs `writable`); the handle lives until
   * close() or closeAll(). With `prefetch`, the first bytes come back with it.
   */
  async open(targetPath: string, options: { flags?: number; mode?: number; prefetch?: number } = {}): Promise<FileResult<{ handle: number; head?: string }>> {
    const flags = options.flags ?? constants.O_RDONLY;
    if (opensForWriting(flags) && !this.writable) return failure(this.root, targetError('EROFS', 'open', targetPath, 'read-only file system'), 'open', targetPath);
    if (this.handles.size >= this.maxHandles) {
      return failure(this.root, targetError('EMFILE', 'open', targetPath, 'too many open files'), 'open', targetPath);
    }
    // O_NOFOLLOW and O_EXCL|O_CREAT act on the last component itself, as the kernel's lookup would.
    const nofollow = (flags & constants.O_NOFOLLOW) !== 0 || (flags & constants.O_EXCL) !== 0;
    return this.onPath(
      targetPath,
      'open',
      { nofollow },
      async (hostPath) => {
        const file = await open(hostPath, flags, options.mode);
        // Checked again: another open may have taken the last slot while this one waited.
        if (this.handles.size >= this.maxHandles) {
          await file.close();
          throw targetError('EMFILE', 'open', targetPath, 'too many open files');
        }
        let head: string | undefined;
        if (options.prefetch !== undefined && options.prefetch > 0 && (flags & constants.O_WRONLY) === 0) {
          try {
            const buffer = Buffer.alloc(Math.min(options.prefetch, this.maxReadBytes));
            const { bytesRead } = await file.read(buffer, 0, buffer.length, 0);
            head = buffer.subarray(0, bytesRead).toString('base64');
          } catch {
            // A directory or a device that cannot be read ahead: the reads themselves will say why.
          }
        }
        const handle = this.nextHandle++;
        this.handles.set(handle, file);
        return head === undefined ? { handle } : { handle, head };
      },
      opensForWriting(flags) ? 'write' : 'read',
    );
  }

  /** Reads up to `length` bytes (at most maxReadBytes); without `position`, from where the last read ended. */
  async read(handle: number, length: number, position?: number): Promise<FileResult<{ data: string }>> {
    return this.onHandle(handle, 'read', async (file) => {
      const buffer = Buffer.alloc(Math.max(0, Math.min(length, this.maxReadBytes)));
      const { bytesRead } = await file.read(buffer, 0, buffer.length, position ?? null);
      return { data: buffer.subarray(0, bytesRead).toString('base64') };
    });
  }

  /** `data` is base64; without `position`, at the current position (the end, for a handle opened to append). */
  async write(handle: number, data: string, position?: number): Promise<FileResult<{ written: number }>> {
    return this.onHandle(handle, 'write', async (file) => {
      const bytes = Buffer.from(data, 'base64');
      let written = 0;
      // A regular file takes it all at once; the loop covers short writes to anything else.
      while (written < bytes.length) {
        const { bytesWritten } = await file.write(bytes, written, bytes.length - written, position === undefined ? null : position + written);
        if (bytesWritten === 0) break;
        written += bytesWritten;
      }
      return { written };
    });
  }

  async fstat(handle: number): Promise<FileResult<FileStats>> {
    return this.onHandle(handle, 'fstat', async (file) => statsOf(await file.stat()));
  }

  private async onHandle<T>(handle: number, syscall: string, body: (file: FileHandle) => Promise<T>): Promise<FileResult<T>> {
    const file = this.handles.get(handle);
    const name = `handle ${handle}`;
    if (file === undefined) return failure(this.root, targetError('EBADF', syscall, name, 'bad file descriptor'), syscall, name);
    try {
      return ok(await body(file));
    } catch (error) {
      return failure(this.root, error, syscall, name);
    }
  }

  async close(handle: number): Promise<FileResult<Record<string, never>>> {
    const file = this.handles.get(handle);
    const name = `handle ${handle}`;
    if (file === undefined) return failure(this.root, targetError('EBADF', 'close', name, 'bad file descriptor'), 'close', name);
    this.handles.delete(handle);
    try {
      await file.close();
      return ok({});
    } catch (error) {
      return failure(this.root, error, 'close', name);
    }
  }

  /** Closes every handle still open, as the session ends. */
  async closeAll(): Promise<void> {
    const files = [...this.handles.values()];
    this.handles.clear();
    await Promise.allSettled(files.map((file) => file.close()));
  }

  /** A whole small file; one larger than maxReadFileBytes fails with REMOCAL_FILE_TOO_LARGE. */
  readFile(targetPath: string): Promise<FileResult<{ data: string }>> {
    return this.onPath(targetPath, 'open', {}, async (hostPath) => {
      const fd = openSync(hostPath, 'r');
      try {
        const chunks: Buffer[] = [];
        let total = 0;
        for (;;) {
          const chunk = Buffer.allocUnsafe(READ_CHUNK_BYTES);
          const bytesRead = readSync(fd, chunk, 0, chunk.length, null);
          if (bytesRead === 0) break;
          total += bytesRead;
          if (total > this.maxReadFileBytes) {
            throw targetError(FILE_TOO_LARGE, 'read', targetPath, `file larger than ${this.maxReadFileBytes} bytes, read it through open/read`);
          }
          chunks.push(chunk.subarray(0, bytesRead));
        }
        return { data: Buffer.concat(chunks).toString('base64') };
      } finally {
        closeSync(fd);
      }
    });
  }

  /** `data` is base64. A final symlink is followed (and a dangling one creates its target), as open(O_CREAT) does. */
  writeFile(targetPath: string, data: string, mode?: number): Promise<FileResult<Record<string, never>>> {
    return this.onWritablePath(targetPath, 'open', {}, async (hostPath) => {
      await writeFile(hostPath, Buffer.from(data, 'base64'), mode === undefined ? {} : { mode });
      return {};
    });
  }

  appendFile(targetPath: string, data: string, mode?: number): Promise<FileResult<Record<string, never>>> {
    return this.onWritablePath(targetPath, 'open', {}, async (hostPath) => {
      await appendFile(hostPath, Buffer.from(data, 'base64'), mode === undefined ? {} : { mode });
      return {};
    });
  }

  mkdir(targetPath: string, options: { recursive?: boolean; mode?: number } = {}): Promise<FileResult<{ first: string | null }>> {
    return this.onWritablePath(targetPath, 'mkdir', { nofollow: true }, async (hostPath) => {
      const created = await mkdir(hostPath, { recursive: options.recursive ?? false, ...(options.mode === undefined ? {} : { mode: options.mode }) });
      if (created === undefined) return { first: null };
      // Named as the caller named it (not through the symlinks resolved on the way): the missing components
      // are the path's last ones, so the first one created is the path with the ones below it cut off.
      const below = path.relative(created, hostPath);
      const depth = below === '' ? 0 : below.split('/').length;
      const asked = path.resolve('/', targetPath).split('/');
      return { first: asked.slice(0, asked.length - depth).join('/') || '/' };
    });
  }

  async rm(targetPath: string, options: { recursive?: boolean; force?: boolean } = {}): Promise<FileResult<Record<string, never>>> {
    const result = await this.onWritablePath(targetPath, 'rm', { nofollow: true }, async (hostPath) => {
      await rm(hostPath, { recursive: options.recursive ?? false, force: options.force ?? false });
      return {};
    });
    // force ignores a missing path, also one whose lookup failed here before rm ran (`missing/..`).
    if (!result.ok && options.force && result.error.code === 'ENOENT') return ok({});
    return result;
  }

  unlink(targetPath: string): Promise<FileResult<Record<string, never>>> {
    return this.onWritablePath(targetPath, 'unlink', { nofollow: true }, async (hostPath) => {
      await unlink(hostPath);
      return {};
    });
  }

  /** Renames the entries themselves: symlinks in the last component of either path are not followed. */
  async rename(targetPath: string, dest: string): Promise<FileResult<Record<string, never>>> {
    if (!this.writable) return failure(this.root, targetError('EROFS', 'rename', targetPath, 'read-only file system'), 'rename', targetPath, dest);
    try {
      const from = await this.resolve(targetPath, 'rename', { nofollow: true }, 'write');
      const to = await this.resolve(dest, 'rename', { nofollow: true }, 'write');
      await rename(from, to);
      return ok({});
    } catch (error) {
      return failure(this.root, error, 'rename', targetPath, dest);
    }
  }

  truncate(targetPath: string, length: number): Promise<FileResult<Record<string, never>>> {
    return this.onWritablePath(targetPath, 'open', {}, async (hostPath) => {
      await truncate(hostPath, length);
      return {};
    });
  }
}
