// The argument shapes fs.read and fs.write accept (and FileHandle's read and write, which take the same ones
// without the fd), normalized once for the hooks and for RemoteFileHandle.

import { bytesOf } from './ops.js';

/** fs.read's shapes: (buffer, offset, length, position), (buffer, options), ({ buffer, … }), or none. */
export function readArguments(rest: unknown[]): { buffer: ArrayBufferView; offset: number; length: number; position: number | bigint | null } {
  const [first, second, length, position] = rest;
  if (ArrayBuffer.isView(first)) {
    if (typeof second === 'object' && second !== null) {
      const options = second as { offset?: number; length?: number; position?: number | bigint | null };
      const offset = options.offset ?? 0;
      return { buffer: first, offset, length: options.length ?? first.byteLength - offset, position: options.position ?? null };
    }
    const offset = typeof second === 'number' ? second : 0;
    return { buffer: first, offset, length: typeof length === 'number' ? length : first.byteLength - offset, position: (position as number | bigint | null | undefined) ?? null };
  }
  const options = (first ?? {}) as { buffer?: ArrayBufferView; offset?: number; length?: number; position?: number | bigint | null };
  const buffer = options.buffer ?? Buffer.alloc(16384);
  const offset = options.offset ?? 0;
  return { buffer, offset, length: options.length ?? buffer.byteLength - offset, position: options.position ?? null };
}

/** fs.write's shapes: (buffer, offset, length, position), (buffer, options), (string, position, encoding). */
export function writeArguments(rest: unknown[]): { bytes: Buffer; position: number | null } {
  const [data, second, third, fourth] = rest;
  if (typeof data === 'string') {
    const encoding = typeof third === 'string' ? (third as BufferEncoding) : 'utf8';
    return { bytes: Buffer.from(data, encoding), position: typeof second === 'number' ? second : null };
  }
  const whole = bytesOf(data);
  if (typeof second === 'object' && second !== null) {
    const options = second as { offset?: number; length?: number; position?: number | null };
    const offset = options.offset ?? 0;
    return { bytes: whole.subarray(offset, offset + (options.length ?? whole.length - offset)), position: options.position ?? null };
  }
  const offset = typeof second === 'number' ? second : 0;
  const length = typeof third === 'number' ? third : whole.length - offset;
  return { bytes: whole.subarray(offset, offset + length), position: typeof fourth === 'number' ? fourth : null };
}
