// Targets as the operator's API names them. A Kubernetes resource name cannot hold a `/`, so the target string's
// first `/` becomes a `.`: `pid/4242` is `pid.4242`, `netns/rmc-pod-0` is `netns.rmc-pod-0`,
// `deployment/orders` is `deployment.orders`. A Kubernetes target's container goes in the `container` query
// parameter, since names may hold dots.

import { formatTarget, parseTarget, type Target } from '../target.js';

export function targetResourceName(target: Target): string {
  if (target.kind === 'targetless') return 'targetless';
  if (target.platform === 'kubernetes') return `${target.kind}.${target.name}`;
  return formatTarget(target).replace('/', '.');
}

/** The target a resource name (and container) names, or null when it names none. */
export function targetFromResourceName(name: string, container: string | null = null): Target | null {
  if (name === 'targetless') return container === null ? { platform: 'kubernetes', kind: 'targetless' } : null;
  const dot = name.indexOf('.');
  if (dot <= 0 || name.length > 253) return null;
  try {
    const target = parseTarget(`${name.slice(0, dot)}/${name.slice(dot + 1)}`);
    if (target.platform === 'local') return container === null ? target : null;
    if (target.kind === 'targetless' || target.name.includes('/')) return null;
    return { ...target, container };
  } catch {
    return null;
  }
}
