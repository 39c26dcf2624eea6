// The agent's handlers of the fs.* operations: each request mapped onto the session's TargetFiles. A session
// without a file system of its own (a bare network namespace) answers every one with the same clear failure.

import { FS_OPS, type FileResult, type FsRequest, type FsResults } from '../../protocol/messages.js';
import { uniformHandlers, type RequestHandlers } from '../../protocol/rpc.js';
import type { TargetFiles } from './service.js';

export const NO_TARGET_FILES = 'REMOCAL_NO_TARGET_FILES';

export function fileHandlers(files: TargetFiles | null): RequestHandlers<FsRequest, FsResults> {
  if (files === null) {
    const refuse = (request: FsRequest): FileResult<never> => ({
      ok: false,
      error: {
        code: NO_TARGET_FILES,
        message: `${request.op}: this target has no file system of its own (a network namespace only); its files are this machine's`,
        path: 'path' in request ? request.path : '',
      },
    });
    return uniformHandlers<FsRequest, FsResults>(FS_OPS, refuse);
  }
  return {
    'fs.stat': (request) => files.stat(request.path),
    'fs.lstat': (request) => files.lstat(request.path),
    'fs.fstat': (request) => files.fstat(request.handle),
    'fs.access': (request) => files.access(request.path, request.mode),
    'fs.readdir': (request) => files.readdir(request.path),
    'fs.realpath': (request) => files.realpath(request.path),
    'fs.readlink': (request) => files.readlink(request.path),
    'fs.open': (request) => files.open(request.path, { flags: request.flags, mode: request.mode, prefetch: request.prefetch }),
    'fs.read': (request) => files.read(request.handle, request.length, request.position),
    'fs.write': (request) => files.write(request.handle, request.data, request.position),
    'fs.close': (request) => files.close(request.handle),
    'fs.readFile': (request) => files.readFile(request.path),
    'fs.writeFile': (request) => files.writeFile(request.path, request.data, request.mode),
    'fs.appendFile': (request) => files.appendFile(request.path, request.data, request.mode),
    'fs.mkdir': (request) => files.mkdir(request.path, { recursive: request.recursive, mode: request.mode }),
    'fs.rm': (request) => files.rm(request.path, { recursive: request.recursive, force: request.force }),
    'fs.unlink': (request) => files.unlink(request.path),
    'fs.rename': (request) => files.rename(request.path, request.dest),
    'fs.truncate': (request) => files.truncate(request.path, request.length),
  };
}
