// Path resolution inside a target's root, as the target's own kernel lookups would do it.
//
// The agent shares the host's mount namespace and reaches the target's files through /proc/<pid>/root. The
// kernel follows that magic link into the target's root, but a symlink met under it is followed from the
// *agent's* root: /proc/<pid>/root/var/run -> /run lands on the host's /run. So symlinks are followed here, one
// component at a time, with absolute link targets re-rooted and `..` stopped at the root, as chroot would.
//
// The walk uses synchronous lstat/readlink: each is a few microseconds from the kernel's dentry cache, where a
// trip through libuv's thread pool costs tens, and a lookup takes one per component.
//
// Limit: between this resolution and the operation on the host path, the target could swap a component for a
// symlink (openat2's RESOLVE_IN_ROOT would close that gap; Node has no binding for it). The agent acts on the
// target's behalf, so the worst such a race gives the target is a view of the node it already runs on.

import { constants as osConstants } from 'node:os';
import { lstatSync, readlinkSync } from 'node:fs';
import path from 'node:path';

/** Linux's MAXSYMLINKS: more symlinks than this in one lookup fails with ELOOP. */
export const MAX_SYMLINK_HOPS = 40;

export interface ResolveOptions {
  /** Leave a symlink in the last component as it is (lstat, readlink, unlink, rename, mkdir, rm). */
  nofollow?: boolean;
}

const DESCRIPTIONS: Record<string, string> = {
  ELOOP: 'too many symbolic links encountered',
  ENOENT: 'no such file or directory',
  ENOTDIR: 'not a directory',
};

/** An error shaped like Node's own fs errors, with the target's path in it. */
export function targetError(code: string, syscall: string, targetPath: string, description?: string): NodeJS.ErrnoException {
  const text = description ?? DESCRIPTIONS[code] ?? code;
  const error: NodeJS.ErrnoException = new Error(`${code}: ${text}, ${syscall} '${targetPath}'`);
  error.code = code;
  const errno = (osConstants.errno as Record<string, number | undefined>)[code];
  // libuv's convention, which Node's errors follow: negative errno.
  if (errno !== undefined) error.errno = -errno;
  error.syscall = syscall;
  error.path = targetPath;
  return error;
}

function hostPathOf(root: string, components: readonly string[]): string {
  // The bare root is /proc/<pid>/root, itself a symlink: the trailing slash makes even lstat follow it.
  return components.length === 0 ? `${root}/` : path.join(root, ...components);
}

/** The target's path for a host path that resolveInTarget returned under `root`. */
export function targetPathOf(root: string, hostPath: string): string {
  const normalizedRoot = path.resolve(root);
  const relative = path.relative(normalizedRoot, hostPath);
  return relative === '' ? '/' : `/${relative}`;
}

/**
 * The host path the target would reach for `targetPath`, symlinks followed inside `root`. Relative paths are
 * taken from the target's `/` (the agent does not know the app's cwd; callers send absolute paths).
 *
 * A missing component ends the lookup's need to follow anything: the rest is appended as is, so that creating
 * calls (writeFile, mkdir -p) get the path they create and the others fail on it with the native ENOENT. Throws
 * ELOOP, and ENOENT/ENOTDIR where the kernel would fail before reaching the operation itself (`missing/..`,
 * `file/x`); `syscall` names the operation in those errors.
 */
export async function resolveInTarget(root: string, targetPath: string, options: ResolveOptions = {}, syscall = 'stat'): Promise<string> {
  const normalizedRoot = path.resolve(root);
  // A trailing slash asks for a directory, and makes the kernel follow a final symlink even under nofollow.
  const followLast = !options.nofollow || /\/\.?$/.test(targetPath);
  let pending = targetPath.split('/').filter((part) => part !== '' && part !== '.');
  const resolved: string[] = [];
  let hops = 0;
  while (pending.length > 0) {
    const part = pending.shift()!;
    if (part === '..') {
      resolved.pop();
      continue;
    }
    const candidate = hostPathOf(normalizedRoot, [...resolved, part]);
    const isLast = pending.length === 0;
    let stats;
    try {
      stats = lstatSync(candidate);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code !== 'ENOENT') throw targetError(code ?? 'EIO', syscall, targetPath, (error as Error).message);
      if (pending.includes('..')) throw targetError('ENOENT', syscall, targetPath);
      return hostPathOf(normalizedRoot, [...resolved, part, ...pending]) + (targetPath.endsWith('/') ? '/' : '');
    }
    if (stats.isSymbolicLink() && (!isLast || followLast)) {
      if (++hops > MAX_SYMLINK_HOPS) throw targetError('ELOOP', syscall, targetPath);
      const link = readlinkSync(candidate);
      if (link.startsWith('/')) resolved.length = 0;
      pending = [...link.split('/').filter((piece) => piece !== '' && piece !== '.'), ...pending];
      continue;
    }
    if (!isLast && !stats.isDirectory()) throw targetError('ENOTDIR', syscall, targetPath);
    resolved.push(part);
  }
  const hostPath = hostPathOf(normalizedRoot, resolved);
  // Kept, so that `file/` fails with ENOTDIR on the host as it would in the target.
  return targetPath.endsWith('/') && !hostPath.endsWith('/') ? `${hostPath}/` : hostPath;
}
