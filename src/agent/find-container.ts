// Finds the main process of a container from its runtime id, for an agent that runs in a hostPID pod on the
// target's node and must enter the target container's namespaces from the outside.
//
// Kubernetes names a container `<runtime>://<id>` (containerd://…, cri-o://…, docker://…). No runtime API is
// needed: every runtime puts the container's processes in a cgroup whose path names the id, and the kernel
// shows each process's cgroup in /proc/<pid>/cgroup, in one of these shapes:
//
//   cgroup v2, systemd driver   0::/kubepods.slice/…/kubepods-besteffort-pod<uid>.slice/cri-containerd-<id>.scope
//                               (docker-<id>.scope, crio-<id>.scope)
//   cgroup v1, cgroupfs driver  4:memory:/kubepods/besteffort/pod<uid>/<id>
//   seen from a cgroup namespace of its own (the agent's pod has one on v2): 0::/../../pod<uid>.slice/…<id>.scope

import { readdirSync, readFileSync } from 'node:fs';

/** The id part of `<runtime>://<id>`; a bare id is taken as it is. */
function bareId(containerId: string): string {
  const separator = containerId.indexOf('://');
  return separator === -1 ? containerId : containerId.slice(separator + 3);
}

function segmentNames(segment: string, id: string): boolean {
  const name = segment.endsWith('.scope') ? segment.slice(0, -'.scope'.length) : segment;
  if (name === id) return true;
  if (!name.endsWith(`-${id}`)) return false;
  // CRI-O (and podman) put each container's conmon, a monitor process outside the container's namespaces, in
  // `crio-conmon-<id>.scope`; it starts before the container's init, so it would win the lowest-pid choice.
  return !name.slice(0, -id.length - 1).endsWith('conmon');
}

/** Whether a /proc/<pid>/cgroup text puts the process in the container with this (bare) id. */
export function cgroupNamesContainer(cgroupText: string, id: string): boolean {
  if (id === '') return false;
  for (const line of cgroupText.split('\n')) {
    // hierarchy-id:controllers:path, and the path itself may contain ':'.
    const first = line.indexOf(':');
    const second = first === -1 ? -1 : line.indexOf(':', first + 1);
    if (second === -1) continue;
    // Any segment, not only the last: a container may make cgroups of its own below its scope.
    if (line.slice(second + 1).split('/').some((segment) => segmentNames(segment, id))) return true;
  }
  return false;
}

/**
 * The lowest pid whose cgroup names the container: its init, which the runtime starts before anything else in
 * it (so its namespaces and its root are the container's). null when no process is in that container.
 */
export function findContainerPid(containerId: string, procRoot = '/proc'): number | null {
  const id = bareId(containerId);
  if (id === '') return null;
  const pids = readdirSync(procRoot)
    .filter((entry) => /^\d+$/.test(entry))
    .map(Number)
    .sort((a, b) => a - b);
  for (const pid of pids) {
    let text: string;
    try {
      text = readFileSync(`${procRoot}/${pid}/cgroup`, 'utf8');
    } catch {
      // Gone while we looked, or not ours to read.
      continue;
    }
    if (cgroupNamesContainer(text, id)) return pid;
  }
  return null;
}
