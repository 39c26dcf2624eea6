// Finds processes by their command line, from /proc, to kill or inspect parts of a running session.

import { readdirSync, readFileSync } from 'node:fs';

export interface ProcessInfo {
  pid: number;
  ppid: number;
  argv: string[];
}

export function listProcesses(): ProcessInfo[] {
  const found: ProcessInfo[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const argv = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0').filter((part) => part !== '');
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      found.push({ pid: Number(entry), ppid, argv });
    } catch {
      // Gone while we looked.
    }
  }
  return found;
}

/** The agent serving the target pid, if one runs. */
export function findAgent(targetPid: number): ProcessInfo | undefined {
  return listProcesses().find(
    (info) => info.argv.some((part) => part.endsWith('/dist/agent.js')) && info.argv.at(-1) === String(targetPid) && info.argv.at(-2) === '--pid',
  );
}

/** Polls `probe` (which may ask a server, asynchronously) until it gives a value. */
export async function waitFor<T>(probe: () => T | undefined | false | Promise<T | undefined | false>, what: string, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
