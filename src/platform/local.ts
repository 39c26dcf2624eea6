// The local platform: targets on this host (a process, a container, a named network namespace). The agent is
// this same node running the bundled agent under `nsenter --net`, so it shares the target's network stack
// while its code and the node binary come from the host.

import { accessSync, constants, existsSync, readFileSync } from 'node:fs';
import { runChildSync } from '../core/child.js';
import { distFile } from '../core/paths.js';
import { PermissionDeniedError, TargetNotFoundError, ToolMissingError } from '../core/errors.js';
import type { AgentLaunch } from '../protocol/contracts.js';
import type { Platform } from './platform.js';
import { formatTarget, type LocalTarget } from './target.js';

/** Nothing is created before the intproxy starts the agent, so there is nothing to clean up either. */
export const localPlatform: Platform<LocalTarget> = {
  async prepare(target, request) {
    const resolved = resolveLocalTarget(target);
    const hasProcess = resolved.pid !== null;
    return {
      launch: agentLaunch(resolved, { logLevel: request.logLevel, files: hasProcess ? request.files : 'off' }),
      description: resolved.description,
      linkStep: `starting the agent in ${resolved.description}`,
      hasProcess,
      cleanup: async () => {},
    };
  },
};

export interface ResolvedLocalTarget {
  target: LocalTarget;
  description: string;
  /** null for a netns target: it has no process, so no environment and no files. */
  pid: number | null;
  netnsPath: string;
}

export function resolveLocalTarget(target: LocalTarget): ResolvedLocalTarget {
  switch (target.kind) {
    case 'pid':
      return resolvePid(target, target.pid, formatTarget(target));
    case 'container':
      return resolvePid(target, containerPid(target.name), `container/${target.name}`);
    case 'netns': {
      const netnsPath = `/run/netns/${target.name}`;
      if (!existsSync(netnsPath)) {
        throw new TargetNotFoundError(`There is no network namespace named "${target.name}".`, {
          hint: 'List the named namespaces with `ip netns list`.',
        });
      }
      checkReadable(netnsPath, formatTarget(target));
      return { target, description: `network namespace ${target.name}`, pid: null, netnsPath };
    }
  }
}

function resolvePid(target: LocalTarget, pid: number, label: string): ResolvedLocalTarget {
  if (!existsSync(`/proc/${pid}`)) {
    throw new TargetNotFoundError(`There is no process ${pid} (target ${label}).`, {
      hint: 'Check the pid with `ps -p <pid>`; a restarted process has a new pid.',
    });
  }
  const netnsPath = `/proc/${pid}/ns/net`;
  checkReadable(netnsPath, label);
  let command = '';
  try {
    command = readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  } catch {
    // The name is only for messages.
  }
  return { target, description: `${label}${command ? ` (${command})` : ''}`, pid, netnsPath };
}

function checkReadable(path: string, label: string): void {
  try {
    accessSync(path, constants.R_OK);
    // Entering a namespace needs CAP_SYS_ADMIN even when the file is readable.
    if (process.getuid?.() !== 0) throw Object.assign(new Error('not root'), { code: 'EPERM' });
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'EACCES' || code === 'EPERM') {
      throw new PermissionDeniedError(`No permission to enter the namespaces of ${label}.`);
    }
    throw new TargetNotFoundError(`The target ${label} disappeared while remocal looked at it.`);
  }
}

/** The pid of a running container, from docker or podman, whichever is installed and knows it. */
export function containerPid(name: string): number {
  const engines = ['docker', 'podman'].filter((engine) => runChildSync('sh', ['-c', `command -v ${engine}`], { encoding: 'utf8' }).status === 0);
  if (engines.length === 0) {
    throw new ToolMissingError(`container/${name} needs docker or podman to find the container, and neither is installed.`, {
      hint: 'Install docker or podman, or target the container\'s main process directly with pid/<pid>.',
    });
  }
  const failures: string[] = [];
  for (const engine of engines) {
    const result = runChildSync(engine, ['inspect', '--format', '{{.State.Pid}}', name], { encoding: 'utf8', timeout: 10_000 });
    const pid = Number(result.stdout.trim());
    if (result.status === 0 && pid > 0) return pid;
    if (result.status === 0 && pid === 0) {
      throw new TargetNotFoundError(`The container ${name} is not running.`, { hint: `Start it (\`${engine} start ${name}\`) and try again.` });
    }
    failures.push(`${engine}: ${(result.stderr || result.error?.message || 'no answer').trim().split('\n')[0]}`);
  }
  throw new TargetNotFoundError(`No running container named "${name}" was found (${failures.join('; ')}).`, {
    hint: 'List running containers with `docker ps` or `podman ps`.',
  });
}

/** `files`: whether the agent serves the target's files, and may change them (see the agent's --files). */
export function agentLaunch(resolved: ResolvedLocalTarget, options: { agentScript?: string; logLevel: string; files?: 'off' | 'read' | 'write' }): AgentLaunch {
  if (!existsSync('/usr/bin/nsenter') && runChildSync('sh', ['-c', 'command -v nsenter'], { encoding: 'utf8' }).status !== 0) {
    throw new ToolMissingError('Local targets need nsenter, which is not installed.', { hint: 'Install it: apt-get install -y util-linux' });
  }
  const agentScript = options.agentScript ?? distFile('agent.js');
  const args = [`--net=${resolved.netnsPath}`, '--', process.execPath, agentScript, '--log-level', options.logLevel, '--files', options.files ?? 'read'];
  if (resolved.pid !== null) args.push('--pid', String(resolved.pid));
  else if (resolved.target.kind === 'netns') args.push('--netns', resolved.target.name);
  return { command: 'nsenter', args, target: formatTarget(resolved.target) };
}
