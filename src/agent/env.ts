// The target's environment, as its process sees it: /proc/<pid>/environ, NUL-separated. This is the
// environment the process was started with (later setenv calls inside it are invisible, as they are to
// `kubectl exec env` in a new shell — but a container's env is fixed at start, so nothing is lost there).

import { readFileSync } from 'node:fs';
import type { EnvGetResult, Result } from '../protocol/messages.js';

export function parseEnviron(raw: Buffer | string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const entry of raw.toString('utf8').split('\0')) {
    if (entry === '') continue;
    const eq = entry.indexOf('=');
    // An entry without '=' is not a variable (execve allows it, getenv ignores it).
    if (eq <= 0) continue;
    env[entry.slice(0, eq)] = entry.slice(eq + 1);
  }
  return env;
}

export async function readTargetEnv(pid: number | null): Promise<Result<EnvGetResult>> {
  if (pid === null) return { ok: true, value: { env: null } };
  try {
    return { ok: true, value: { env: parseEnviron(readFileSync(`/proc/${pid}/environ`)) } };
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? 'EIO';
    return { ok: false, error: { code, message: `cannot read the environment of process ${pid}: ${(error as Error).message}`, syscall: 'open' } };
  }
}
