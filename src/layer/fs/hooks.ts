// The fs hooks: each public fs function in its sync, callback and promise form, plus the functions streams and
// FileHandles are built on (open/read/write/writev/close/fstat). A hook asks the ops where its path (or fd)
// goes; anything local, and any call whose arguments Node itself should judge, goes to Node's own function
// untouched, so local behaviour and Node's own validation errors stay exactly Node's.
//
// Module functions are replaced (fs.readFileSync is not a prototype method); install calls
// syncBuiltinESMExports afterwards so that `import { readFileSync } from 'node:fs'` sees them too.
// createReadStream/createWriteStream need no hook: streams call fs.open/read/write/close at run time.

import fs from 'node:fs';
import type { LayerLog } from '../log.js';
import type { PatchRegistry } from '../patches.js';
import type { FileIntent } from '../policy.js';
import { RemoteDir, RemoteFileHandle } from './handles.js';
import { readArguments, writeArguments } from './arguments.js';
import { bytesOf, encodingOf, intentOfFlags, nativeFileError, openFlags, type FileOps, type FsCall, type RemotePath } from './ops.js';

type AnyFunction = (this: unknown, ...args: unknown[]) => unknown;
type Callback = (error: Error | null, ...results: unknown[]) => void;

export interface FsHookContext {
  ops: FileOps;
  log: LayerLog;
}

/** How one path function runs remotely: its intent (from its arguments), and the call on the target. */
interface PathOperation {
  intent: FileIntent | ((rest: unknown[]) => FileIntent | null);
  call: (target: RemotePath, rest: unknown[]) => FsCall<unknown>;
}

export function defineFsHooks(registry: PatchRegistry, context: FsHookContext): void {
  const { ops, log } = context;
  const promises = fs.promises as unknown as Record<string, AnyFunction>;
  const module = fs as unknown as Record<string, AnyFunction>;

  const intentOf = (operation: PathOperation, rest: unknown[]) => (typeof operation.intent === 'function' ? operation.intent(rest) : operation.intent);
  const targetOf = (operation: PathOperation, pathArgument: unknown, rest: unknown[]): RemotePath | null => {
    const intent = intentOf(operation, rest);
    return intent === null ? null : ops.where(pathArgument, intent);
  };

  /** The three forms of a path function: name + 'Sync', name with a callback, fs.promises[name]. */
  function definePathFunction(name: string, operation: PathOperation, forms: { sync?: boolean; callback?: boolean; promise?: boolean } = {}): void {
    if (forms.sync !== false) {
      registry.define({
        target: module,
        key: `${name}Sync`,
        replace: (original) =>
          function (this: unknown, pathArgument: unknown, ...rest: unknown[]): unknown {
            const target = targetOf(operation, pathArgument, rest);
            if (target === null) return original.apply(this, [pathArgument, ...rest]);
            log.debug(`fs.${name}Sync ${target.absolute}: remote`);
            return ops.runSync(operation.call(target, rest));
          },
      });
    }
    if (forms.callback !== false) {
      registry.define({
        target: module,
        key: name,
        replace: (original) =>
          function (this: unknown, pathArgument: unknown, ...rest: unknown[]): unknown {
            const callback = rest.at(-1);
            const target = typeof callback === 'function' ? targetOf(operation, pathArgument, rest.slice(0, -1)) : null;
            if (target === null) return original.apply(this, [pathArgument, ...rest]);
            log.debug(`fs.${name} ${target.absolute}: remote`);
            settle(ops.runAsync(operation.call(target, rest.slice(0, -1))), callback as Callback);
            return undefined;
          },
      });
    }
    if (forms.promise !== false) {
      registry.define({
        target: promises,
        key: name,
        replace: (original) =>
          function (this: unknown, pathArgument: unknown, ...rest: unknown[]): unknown {
            const target = targetOf(operation, pathArgument, rest);
            if (target === null) return original.apply(this, [pathArgument, ...rest]);
            log.debug(`fs.promises.${name} ${target.absolute}: remote`);
            return ops.runAsync(operation.call(target, rest));
          },
      });
    }
  }

  // --- paths, read side --------------------------------------------------------------------------------------
  const statOf = (syscall: 'stat' | 'lstat'): PathOperation => ({
    intent: 'read',
    call: (target, [options]) => ops.stat(target, options as { bigint?: boolean; throwIfNoEntry?: boolean }, syscall),
  });
  definePathFunction('stat', statOf('stat'));
  definePathFunction('lstat', statOf('lstat'));
  definePathFunction('access', { intent: 'read', call: (target, [mode]) => ops.access(target, mode as number | undefined) });
  definePathFunction('readdir', { intent: 'read', call: (target, [options]) => ops.readdir(target, options) });
  definePathFunction('readlink', { intent: 'read', call: (target, [options]) => ops.readlink(target, options) });
  definePathFunction('opendir', {
    intent: 'read',
    call: function* (target) {
      return new RemoteDir(target.shown, (yield* ops.readdir(target, { withFileTypes: true })) as fs.Dirent[]);
    },
  });

  const realpath: PathOperation = { intent: 'read', call: (target, [options]) => ops.realpath(target, options) };
  definePathFunction('realpath', realpath, { sync: false, callback: false });
  // realpath and realpathSync carry a .native twin (realpath(3) rather than Node's JavaScript walk): the
  // replacements carry hooked twins of their own, the original twins behind them.
  const realpathSyncOf = (original: AnyFunction) =>
    function (this: unknown, pathArgument: unknown, ...rest: unknown[]): unknown {
      const target = ops.where(pathArgument, 'read');
      return target === null ? original.apply(this, [pathArgument, ...rest]) : ops.runSync(realpath.call(target, rest));
    };
  const realpathOf = (original: AnyFunction) =>
    function (this: unknown, pathArgument: unknown, ...rest: unknown[]): unknown {
      const callback = rest.at(-1);
      const target = typeof callback === 'function' ? ops.where(pathArgument, 'read') : null;
      if (target === null) return original.apply(this, [pathArgument, ...rest]);
      return settle(ops.runAsync(realpath.call(target, rest.slice(0, -1))), callback as Callback);
    };
  for (const [name, hook] of [['realpathSync', realpathSyncOf], ['realpath', realpathOf]] as const) {
    registry.define({
      target: module,
      key: name,
      replace: (original) => {
        const replacement = hook(original) as AnyFunction & { native?: AnyFunction };
        replacement.native = hook((original as AnyFunction & { native: AnyFunction }).native);
        return replacement;
      },
    });
  }

  const whereToRead = (file: unknown, options: unknown): RemotePath | null => {
    const intent = readFileIntent(options);
    return intent === null ? null : ops.where(file, intent);
  };
  // readFile also takes a remote fd (and, in fs.promises, a FileHandle); its flag may ask for writing.
  registry.define({
    target: module,
    key: 'readFileSync',
    replace: (original) =>
      function (this: unknown, file: unknown, options?: unknown): unknown {
        if (ops.isRemoteFd(file)) return ops.runSync(ops.readFileOfFd(file, options));
        const target = whereToRead(file, options);
        if (target === null) return original.apply(this, [file, options]);
        return ops.runSync(ops.readFile(target, options));
      },
  });
  registry.define({
    target: module,
    key: 'readFile',
    replace: (original) =>
      function (this: unknown, file: unknown, ...rest: unknown[]): unknown {
        const callback = rest.at(-1);
        const options = rest.length > 1 ? rest[0] : undefined;
        if (typeof callback === 'function' && ops.isRemoteFd(file)) return settle(ops.runAsync(ops.readFileOfFd(file, options)), callback as Callback);
        const target = typeof callback === 'function' ? whereToRead(file, options) : null;
        if (target === null) return original.apply(this, [file, ...rest]);
        return settle(ops.runAsync(ops.readFile(target, options)), callback as Callback);
      },
  });
  registry.define({
    target: promises,
    key: 'readFile',
    replace: (original) =>
      function (this: unknown, file: unknown, options?: unknown): unknown {
        if (file instanceof RemoteFileHandle) return file.readFile(options);
        const target = whereToRead(file, options);
        if (target === null) return original.apply(this, [file, options]);
        return ops.runAsync(ops.readFile(target, options));
      },
  });

  // exists has no promise form, and its callback gets a boolean alone.
  registry.define({
    target: module,
    key: 'existsSync',
    replace: (original) =>
      function (this: unknown, pathArgument: unknown): unknown {
        const target = ops.where(pathArgument, 'read');
        return target === null ? original.apply(this, [pathArgument]) : ops.runSync(ops.exists(target));
      },
  });
  registry.define({
    target: module,
    key: 'exists',
    replace: (original) =>
      function (this: unknown, pathArgument: unknown, callback: unknown): unknown {
        const target = typeof callback === 'function' ? ops.where(pathArgument, 'read') : null;
        if (target === null) return original.apply(this, [pathArgument, callback]);
        ops.runAsync(ops.exists(target)).then(
          (exists) => (callback as (exists: boolean) => void)(exists),
          () => (callback as (exists: boolean) => void)(false),
        );
        return undefined;
      },
  });

  // --- paths, write side -------------------------------------------------------------------------------------
  const writeLike = (append: boolean): PathOperation => ({
    intent: 'write',
    call: (target, [data, options]) => {
      const encoding = (encodingOf(options, 'utf8') ?? 'utf8') as BufferEncoding;
      const flag = typeof options === 'object' && options !== null ? (options as { flag?: unknown }).flag : undefined;
      const mode = typeof options === 'object' && options !== null ? (options as { mode?: number }).mode : undefined;
      return ops.writeFile(target, bytesOf(data, encoding), { flag, mode }, append);
    },
  });
  for (const [name, append] of [['writeFile', false], ['appendFile', true]] as const) {
    definePathFunction(name, writeLike(append));
  }
  definePathFunction('mkdir', { intent: 'write', call: (target, [options]) => ops.mkdir(target, options) });
  definePathFunction('rm', { intent: 'write', call: (target, [options]) => ops.rm(target, options as { recursive?: boolean; force?: boolean }) });
  definePathFunction('unlink', { intent: 'write', call: (target) => ops.unlink(target) });
  definePathFunction('truncate', { intent: 'write', call: (target, [length]) => ops.truncate(target, length as number | undefined) });

  // rename moves between two paths: both local is Node's, both remote is the target's, one of each cannot be
  // done by a rename anywhere, which the kernel reports as EXDEV.
  const renameRoute = (from: unknown, to: unknown): { from: RemotePath; to: RemotePath } | 'local' | 'cross' => {
    const source = ops.where(from, 'write');
    const destination = ops.where(to, 'write');
    if (source === null && destination === null) return 'local';
    if (source === null || destination === null) return 'cross';
    return { from: source, to: destination };
  };
  const crossError = (from: unknown, to: unknown) =>
    nativeFileError('EXDEV', 'cross-device link not permitted', 'rename', String(from), String(to));
  registry.define({
    target: module,
    key: 'renameSync',
    replace: (original) =>
      function (this: unknown, from: unknown, to: unknown): unknown {
        const route = renameRoute(from, to);
        if (route === 'local') return original.apply(this, [from, to]);
        if (route === 'cross') throw crossError(from, to);
        return ops.runSync(ops.rename(route.from, route.to));
      },
  });
  registry.define({
    target: module,
    key: 'rename',
    replace: (original) =>
      function (this: unknown, from: unknown, to: unknown, callback: unknown): unknown {
        const route = typeof callback === 'function' ? renameRoute(from, to) : 'local';
        if (route === 'local') return original.apply(this, [from, to, callback]);
        if (route === 'cross') return process.nextTick(callback as Callback, crossError(from, to));
        return settle(ops.runAsync(ops.rename(route.from, route.to)), callback as Callback);
      },
  });
  registry.define({
    target: promises,
    key: 'rename',
    replace: (original) =>
      function (this: unknown, from: unknown, to: unknown): unknown {
        const route = renameRoute(from, to);
        if (route === 'local') return original.apply(this, [from, to]);
        if (route === 'cross') return Promise.reject(crossError(from, to));
        return ops.runAsync(ops.rename(route.from, route.to));
      },
  });

  // --- open, and the fd functions streams are built on ---------------------------------------------------------
  const openTarget = (pathArgument: unknown, flags: unknown): { target: RemotePath; flags: number } | null => {
    const numeric = openFlags(flags);
    if (numeric === undefined) return null;
    const target = ops.where(pathArgument, intentOfFlags(numeric));
    return target === null ? null : { target, flags: numeric };
  };
  registry.define({
    target: module,
    key: 'openSync',
    replace: (original) =>
      function (this: unknown, pathArgument: unknown, flags?: unknown, mode?: unknown): unknown {
        const opening = openTarget(pathArgument, flags);
        if (opening === null) return original.apply(this, [pathArgument, flags, mode]);
        return ops.runSync(ops.openFile(opening.target, opening.flags, modeOf(mode)));
      },
  });
  registry.define({
    target: module,
    key: 'open',
    replace: (original) =>
      function (this: unknown, pathArgument: unknown, ...rest: unknown[]): unknown {
        const callback = rest.at(-1);
        const [flags, mode] = rest.slice(0, -1);
        const opening = typeof callback === 'function' ? openTarget(pathArgument, flags) : null;
        if (opening === null) return original.apply(this, [pathArgument, ...rest]);
        return settle(ops.runAsync(ops.openFile(opening.target, opening.flags, modeOf(mode))), callback as Callback);
      },
  });
  registry.define({
    target: promises,
    key: 'open',
    replace: (original) =>
      function (this: unknown, pathArgument: unknown, flags?: unknown, mode?: unknown): unknown {
        const opening = openTarget(pathArgument, flags);
        if (opening === null) return original.apply(this, [pathArgument, flags, mode]);
        return ops.runAsync(ops.openFile(opening.target, opening.flags, modeOf(mode))).then((fd) => new RemoteFileHandle(ops, fd));
      },
  });

  /** An fd function: remote fds go to `remote` (sync or async), every other fd to Node. */
  function defineFdFunction(name: string, remote: (fd: number, rest: unknown[]) => { call: FsCall<unknown>; results: (value: unknown) => unknown[] }): void {
    registry.define({
      target: module,
      key: `${name}Sync`,
      replace: (original) =>
        function (this: unknown, fd: unknown, ...rest: unknown[]): unknown {
          if (!ops.isRemoteFd(fd)) return original.apply(this, [fd, ...rest]);
          return ops.runSync(remote(fd, rest).call);
        },
    });
    registry.define({
      target: module,
      key: name,
      replace: (original) =>
        function (this: unknown, fd: unknown, ...rest: unknown[]): unknown {
          const callback = typeof rest.at(-1) === 'function' ? (rest.at(-1) as Callback) : null;
          // close's callback is optional; the others' are not, and Node's own error says so.
          if (!ops.isRemoteFd(fd) || (callback === null && name !== 'close')) return original.apply(this, [fd, ...rest]);
          const { call, results } = remote(fd, callback === null ? rest : rest.slice(0, -1));
          ops.runAsync(call).then(
            (value) => callback?.(null, ...results(value)),
            (error: Error) => callback?.(error),
          );
          return undefined;
        },
    });
  }

  defineFdFunction('read', (fd, rest) => {
    const request = readArguments(rest);
    return {
      call: ops.read(fd, request.buffer, request.offset, request.length, request.position),
      results: (bytesRead) => [bytesRead, request.buffer],
    };
  });
  defineFdFunction('write', (fd, rest) => {
    const request = writeArguments(rest);
    return { call: ops.write(fd, request.bytes, request.position), results: (written) => [written, rest[0]] };
  });
  defineFdFunction('writev', (fd, [buffers, position]) => ({
    call: ops.write(fd, Buffer.concat((buffers as ArrayBufferView[]).map((buffer) => bytesOf(buffer))), position as number | null | undefined),
    results: (written) => [written, buffers],
  }));
  defineFdFunction('fstat', (fd, [options]) => ({ call: ops.fstat(fd, options as { bigint?: boolean }), results: (stats) => [stats] }));
  defineFdFunction('close', (fd) => ({ call: ops.close(fd), results: () => [] }));
}

/** Settles a callback from a promise, never twice and never inside the promise's own job. */
function settle(promise: Promise<unknown>, callback: Callback): undefined {
  promise.then(
    (value) => process.nextTick(callback, null, value),
    (error: Error) => process.nextTick(callback, error),
  );
  return undefined;
}

function readFileIntent(options: unknown): FileIntent | null {
  const flag = typeof options === 'object' && options !== null ? (options as { flag?: unknown }).flag : undefined;
  const flags = openFlags(flag);
  return flags === undefined ? null : intentOfFlags(flags);
}

function modeOf(mode: unknown): number | undefined {
  if (typeof mode === 'number') return mode;
  if (typeof mode === 'string') return parseInt(mode, 8);
  return undefined;
}
