// Target strings, as users write them (`pid/4242`, `container/api`, `pod/orders-7d9f/container/app`), parsed
// once into a typed value. Which platform serves a target follows from its kind.

import { InvalidTargetError } from '../core/errors.js';

export type LocalTarget =
  | { platform: 'local'; kind: 'pid'; pid: number }
  | { platform: 'local'; kind: 'container'; name: string }
  | { platform: 'local'; kind: 'netns'; name: string };

export const KUBERNETES_KINDS = ['pod', 'deployment', 'statefulset', 'replicaset', 'job', 'cronjob', 'rollout', 'service'] as const;
export type KubernetesKind = (typeof KUBERNETES_KINDS)[number];

export type KubernetesTarget =
  | { platform: 'kubernetes'; kind: KubernetesKind; name: string; container: string | null }
  | { platform: 'kubernetes'; kind: 'targetless' };

export type Target = LocalTarget | KubernetesTarget;

export function formatTarget(target: Target): string {
  switch (target.kind) {
    case 'pid':
      return `pid/${target.pid}`;
    case 'container':
    case 'netns':
      return `${target.kind}/${target.name}`;
    case 'targetless':
      return 'targetless';
    default:
      return `${target.kind}/${target.name}${target.container === null ? '' : `/container/${target.container}`}`;
  }
}

export function parseTarget(text: string): Target {
  const trimmed = text.trim();
  if (trimmed === 'targetless') return { platform: 'kubernetes', kind: 'targetless' };
  const parts = trimmed.split('/');
  const [kind, name, ...rest] = parts;
  if (kind === undefined || name === undefined || name === '') {
    throw new InvalidTargetError(`"${text}" is not a target: expected <kind>/<name>.`);
  }
  switch (kind) {
    case 'pid': {
      const pid = Number(name);
      if (!/^\d+$/.test(name) || pid <= 0 || rest.length > 0) throw new InvalidTargetError(`"${text}" is not a target: a pid is a positive whole number, as in pid/4242.`);
      return { platform: 'local', kind: 'pid', pid };
    }
    case 'container':
    case 'netns':
      if (rest.length > 0) throw new InvalidTargetError(`"${text}" is not a target: ${kind}/<name> takes no further parts.`);
      return { platform: 'local', kind, name };
    default:
      if ((KUBERNETES_KINDS as readonly string[]).includes(kind)) {
        if (rest.length === 0) return { platform: 'kubernetes', kind: kind as KubernetesKind, name, container: null };
        if (rest.length === 2 && rest[0] === 'container' && rest[1] !== '') {
          return { platform: 'kubernetes', kind: kind as KubernetesKind, name, container: rest[1]! };
        }
        throw new InvalidTargetError(`"${text}" is not a target: after ${kind}/${name} only /container/<name> may follow.`);
      }
      throw new InvalidTargetError(`"${text}" is not a target: unknown kind "${kind}".`);
  }
}
