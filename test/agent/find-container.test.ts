// findContainerPid against fake /proc trees whose cgroup files are copied from real nodes: containerd, CRI-O and
// docker (dockershim), each with the cgroupfs driver on cgroup v1 and the systemd driver on cgroup v2.

import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { cgroupNamesContainer, findContainerPid } from '../../src/agent/find-container.js';

const ID = '3f1c9a7be2d54c6f8a0b1e2d3c4f5a6b7c8d9e0f1a2b3c4d5e6f708192a3b4c5';
const OTHER = '9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e0d9c8b7a6f5e4d3c2b1a0f9e8d';
const POD_UID = '6a3f6c2e-1b7d-4c5a-9f1e-2d3c4b5a6f70';
const POD_SLICE = `kubepods-besteffort-pod${POD_UID.replace(/-/g, '_')}.slice`;

/** A cgroup v1 file: the same path in every controller, as the cgroupfs driver makes them. */
function v1(path: string): string {
  const controllers = ['hugetlb', 'memory', 'cpu,cpuacct', 'pids', 'devices', 'freezer', 'net_cls,net_prio', 'blkio', 'cpuset', 'perf_event'];
  return [...controllers.map((name, index) => `${controllers.length + 1 - index}:${name}:${path}`), `1:name=systemd:${path}`, '0::/', ''].join('\n');
}

function v2(path: string): string {
  return `0::${path}\n`;
}

const HOST = {
  init: v2('/init.scope'),
  containerd: v2('/system.slice/containerd.service'),
  kubelet: v2('/system.slice/kubelet.service'),
  v1Init: v1('/'),
};

const made: string[] = [];
after(() => {
  for (const dir of made) rmSync(dir, { recursive: true, force: true });
});

/** A fake /proc: one directory per pid with its cgroup file (null: a pid that vanished, no cgroup file). */
function procTree(processes: Record<number, string | null>): string {
  const root = mkdtempSync(join(tmpdir(), 'remocal-proc-'));
  made.push(root);
  for (const [pid, cgroup] of Object.entries(processes)) {
    mkdirSync(join(root, pid));
    if (cgroup !== null) writeFileSync(join(root, pid, 'cgroup'), cgroup);
  }
  // What else /proc holds: none of it is a process.
  mkdirSync(join(root, 'sys'));
  writeFileSync(join(root, 'uptime'), '1234.56 789.01\n');
  return root;
}

describe('findContainerPid', () => {
  it('containerd, cgroup v2 (systemd driver): the lowest pid in cri-containerd-<id>.scope, numerically', () => {
    const proc = procTree({
      1: HOST.init,
      57: HOST.containerd,
      // The pod's sandbox (pause) container, same pod, another id.
      91: v2(`/kubepods.slice/kubepods-besteffort.slice/${POD_SLICE}/cri-containerd-${OTHER}.scope`),
      // 98 sorts after 1000 as text: the choice must be numeric.
      98: v2(`/kubepods.slice/kubepods-besteffort.slice/${POD_SLICE}/cri-containerd-${ID}.scope`),
      1000: v2(`/kubepods.slice/kubepods-besteffort.slice/${POD_SLICE}/cri-containerd-${ID}.scope`),
    });
    assert.equal(findContainerPid(`containerd://${ID}`, proc), 98);
  });

  it('containerd, cgroup v1 (cgroupfs driver): the id is the last segment', () => {
    const proc = procTree({
      1: HOST.v1Init,
      40: v1(`/kubepods/besteffort/pod${POD_UID}/${OTHER}`),
      120: v1(`/kubepods/besteffort/pod${POD_UID}/${ID}`),
      121: v1(`/kubepods/besteffort/pod${POD_UID}/${ID}`),
    });
    assert.equal(findContainerPid(`containerd://${ID}`, proc), 120);
  });

  it('CRI-O, cgroup v2: the container\'s init, not its conmon (which starts first, in crio-conmon-<id>.scope)', () => {
    const proc = procTree({
      1: HOST.init,
      300: v2(`/kubepods.slice/kubepods-pod${POD_UID.replace(/-/g, '_')}.slice/crio-conmon-${ID}.scope`),
      301: v2(`/kubepods.slice/kubepods-pod${POD_UID.replace(/-/g, '_')}.slice/crio-${ID}.scope`),
    });
    assert.equal(findContainerPid(`cri-o://${ID}`, proc), 301);
  });

  it('CRI-O, cgroup v1 (systemd driver)', () => {
    const proc = procTree({
      1: HOST.v1Init,
      410: v1(`/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${POD_UID.replace(/-/g, '_')}.slice/crio-conmon-${ID}.scope`),
      415: v1(`/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${POD_UID.replace(/-/g, '_')}.slice/crio-${ID}.scope`),
    });
    assert.equal(findContainerPid(`cri-o://${ID}`, proc), 415);
  });

  it('docker, cgroup v2 (systemd driver) and cgroup v1 (cgroupfs driver)', () => {
    const systemd = procTree({
      1: HOST.init,
      700: v2(`/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${POD_UID.replace(/-/g, '_')}.slice/docker-${ID}.scope`),
    });
    assert.equal(findContainerPid(`docker://${ID}`, systemd), 700);
    const cgroupfs = procTree({ 1: HOST.v1Init, 700: v1(`/kubepods/burstable/pod${POD_UID}/${ID}`) });
    assert.equal(findContainerPid(`docker://${ID}`, cgroupfs), 700);
  });

  it('sees paths relative to its own cgroup namespace (the agent\'s pod has one on cgroup v2)', () => {
    const proc = procTree({
      1: v2('/../../../init.scope'),
      812: v2(`/../../${POD_SLICE}/cri-containerd-${ID}.scope`),
    });
    assert.equal(findContainerPid(`containerd://${ID}`, proc), 812);
  });

  it('skips pids that vanished while it looked, and answers null when nothing is in the container', () => {
    const proc = procTree({
      1: HOST.init,
      50: null,
      60: v2(`/kubepods.slice/kubepods-besteffort.slice/${POD_SLICE}/cri-containerd-${ID}.scope`),
    });
    assert.equal(findContainerPid(`containerd://${ID}`, proc), 60);
    assert.equal(findContainerPid(`containerd://${OTHER}`, proc), null);
    assert.equal(findContainerPid('containerd://', proc), null);
  });

  it('takes a bare id as well as <runtime>://<id>', () => {
    const proc = procTree({ 1: HOST.init, 5: v2(`/system.slice/docker-${ID}.scope`) });
    assert.equal(findContainerPid(ID, proc), 5);
  });
});

describe('cgroupNamesContainer', () => {
  it('matches the whole id as a segment, or after a runtime prefix, and nothing shorter or longer', () => {
    assert.equal(cgroupNamesContainer(v2(`/k/cri-containerd-${ID}.scope`), ID), true);
    assert.equal(cgroupNamesContainer(v1(`/kubepods/besteffort/pod${POD_UID}/${ID}`), ID), true);
    // A container that made cgroups of its own below its scope.
    assert.equal(cgroupNamesContainer(v2(`/k/cri-containerd-${ID}.scope/init.scope`), ID), true);
    assert.equal(cgroupNamesContainer(v2(`/k/cri-containerd-${ID}.scope`), ID.slice(0, 12)), false);
    assert.equal(cgroupNamesContainer(v2(`/k/cri-containerd-${ID}0.scope`), ID), false);
    assert.equal(cgroupNamesContainer(v2(`/k/cri-containerd-x${ID}.scope`), ID), false);
    assert.equal(cgroupNamesContainer(v2(`/k/libpod-conmon-${ID}.scope`), ID), false);
    assert.equal(cgroupNamesContainer(HOST.containerd, ID), false);
    assert.equal(cgroupNamesContainer('garbage without colons\n', ID), false);
    assert.equal(cgroupNamesContainer(v2('/'), ''), false);
  });
});
