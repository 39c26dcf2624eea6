// Removes remocal chains whose agent is gone. The supervisor removes a session's chain when its agent dies,
// but not when the supervisor itself cannot run (the machine lost power, someone killed the whole cgroup), and
// a chain left behind would keep stealing a port for a listener that no longer exists. So the agent clears
// such leftovers when it starts. The owner is the pid in the jumps' comment; the agent runs in the host's pid
// namespace, so /proc/<pid> tells whether it still lives. A chain without an owner comment is a leftover too:
// remocal creates chain and jumps in one commit.

import { existsSync } from 'node:fs';
import { BACKENDS, remocalChains, removeChain, saveRules, type IptablesBackend } from './iptables.js';

/** Whether the agent that owns a chain (the pid in its jumps' comment) still runs. */
export function isAlive(pid: number): boolean {
  return existsSync(`/proc/${pid}`);
}

/** Removes stale chains from both backends; returns the chains removed, as `<backend>:<chain>`. */
export async function removeStaleChains(backends: readonly IptablesBackend[] = BACKENDS): Promise<string[]> {
  const removed: string[] = [];
  for (const backend of backends) {
    const saved = await saveRules(backend);
    for (const { chain, ownerPid } of remocalChains(saved)) {
      if (ownerPid !== undefined && isAlive(ownerPid)) continue;
      await removeChain(backend, chain);
      removed.push(`${backend}:${chain}`);
    }
  }
  return removed;
}
