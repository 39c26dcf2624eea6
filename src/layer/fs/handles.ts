// The objects some fs calls hand back, for remote files: fs.promises.open's FileHandle and opendir's Dir. Each
// forwards to the same ops as the plain functions, on the remote file's stand-in fd.

import fs, { type Dirent } from 'node:fs';
import { readArguments, writeArguments } from './arguments.js';
import { bytesOf, encodingOf, type FileOps } from './ops.js';

/** What fs.promises.open resolves to for a remote file: the FileHandle methods apps use, on the remote file. */
export class RemoteFileHandle {
  #closed = false;

  constructor(
    private readonly ops: FileOps,
    readonly fd: number,
  ) {}

  async read(...args: unknown[]): Promise<{ bytesRead: number; buffer: ArrayBufferView }> {
    const { buffer, offset, length, position } = readArguments(args);
    const bytesRead = await this.ops.runAsync(this.ops.read(this.fd, buffer, offset, length, position));
    return { bytesRead, buffer };
  }

  readFile(options?: unknown): Promise<string | Buffer> {
    return this.ops.runAsync(this.ops.readFileOfFd(this.fd, options));
  }

  async write(data: unknown, ...args: unknown[]): Promise<{ bytesWritten: number; buffer: unknown }> {
    const { bytes, position } = writeArguments([data, ...args]);
    const bytesWritten = await this.ops.runAsync(this.ops.write(this.fd, bytes, position));
    return { bytesWritten, buffer: data };
  }

  async writeFile(data: unknown, options?: unknown): Promise<void> {
    const encoding = (encodingOf(options, 'utf8') ?? 'utf8') as BufferEncoding;
    await this.ops.runAsync(this.ops.write(this.fd, bytesOf(data, encoding), null));
  }

  appendFile(data: unknown, options?: unknown): Promise<void> {
    return this.writeFile(data, options);
  }

  stat(options?: { bigint?: boolean }): Promise<fs.Stats | fs.BigIntStats> {
    return this.ops.runAsync(this.ops.fstat(this.fd, options));
  }

  /** The remote file is written through at once: there is nothing local to flush. */
  async sync(): Promise<void> {}
  async datasync(): Promise<void> {}

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.ops.runAsync(this.ops.close(this.fd));
  }

  createReadStream(options?: Record<string, unknown>): fs.ReadStream {
    return fs.createReadStream('', { ...options, fd: this.fd } as Parameters<typeof fs.createReadStream>[1]);
  }

  createWriteStream(options?: Record<string, unknown>): fs.WriteStream {
    return fs.createWriteStream('', { ...options, fd: this.fd } as Parameters<typeof fs.createWriteStream>[1]);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

/** What opendir gives for a remote directory: its entries were listed at open, as one readdir. */
export class RemoteDir {
  readonly #entries: Dirent[];
  #closed = false;

  constructor(
    readonly path: string,
    entries: Dirent[],
  ) {
    this.#entries = [...entries];
  }

  readSync(): Dirent | null {
    return this.#entries.shift() ?? null;
  }

  read(): Promise<Dirent | null>;
  read(callback: (error: Error | null, entry: Dirent | null) => void): void;
  read(callback?: (error: Error | null, entry: Dirent | null) => void): Promise<Dirent | null> | void {
    const entry = this.readSync();
    if (callback === undefined) return Promise.resolve(entry);
    process.nextTick(callback, null, entry);
  }

  closeSync(): void {
    this.#closed = true;
  }

  close(): Promise<void>;
  close(callback: (error: Error | null) => void): void;
  close(callback?: (error: Error | null) => void): Promise<void> | void {
    this.closeSync();
    if (callback === undefined) return Promise.resolve();
    process.nextTick(callback, null);
  }

  async *entries(): AsyncGenerator<Dirent> {
    try {
      for (let entry = this.readSync(); entry !== null; entry = this.readSync()) yield entry;
    } finally {
      this.closeSync();
    }
  }

  [Symbol.asyncIterator](): AsyncGenerator<Dirent> {
    return this.entries();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    if (!this.#closed) this.closeSync();
  }

  [Symbol.dispose](): void {
    if (!this.#closed) this.closeSync();
  }
}
