// Notices when the target process goes away, so the session ends with a clear message instead of
// connections that fail for no visible reason. A pid alone could be reused by a new process, so the
// process's start time (field 22 of /proc/<pid>/stat) identifies it.

import { readFileSync } from 'node:fs';

export function processStartTime(pid: number): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may contain spaces and parentheses: split after its closing parenthesis.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return fields[19] ?? null;
  } catch {
    return null;
  }
}

export function watchTarget(pid: number, onGone: (reason: string) => void, intervalMs = 250): () => void {
  const startTime = processStartTime(pid);
  const timer = setInterval(() => {
    const now = processStartTime(pid);
    if (now === null || now !== startTime) {
      clearInterval(timer);
      onGone(now === null ? `process ${pid} exited` : `process ${pid} was replaced by another process`);
    }
  }, intervalMs);
  timer.unref();
  return () => clearInterval(timer);
}
