// Targets as the operator's API names them. A Kubernetes resource name cannot hold a `/`, so the target string's
// first `/` becomes a `.`: `pid/4242` is `pid.4242`, `netns/rmc-pod-0` is `netns.rmc-pod-0`.

import { formatTarget, parseTarget, type LocalTarget } from '../target.js';

export function targetResourceName(target: LocalTarget): string {
  return formatTarget(target).replace('/', '.');
}

/** The local target a resource name names, or null when it names none. */
export function targetFromResourceName(name: string): LocalTarget | null {
  const dot = name.indexOf('.');
  if (dot <= 0) return null;
  try {
    const target = parseTarget(`${name.slice(0, dot)}/${name.slice(dot + 1)}`);
    return target.platform === 'local' ? target : null;
  } catch {
    return null;
  }
}
