// The policies the operator enforces, as its source last saw them (the cluster's custom resources, or local mode's
// files). Whoever needs to act on a change (the session registry, which hands running sessions their new policies)
// listens here; a change that changes nothing is not one.

import type { StoredPolicy } from './select.js';

export class PolicyStore {
  private policies: readonly StoredPolicy[] = [];
  private signature = '[]';
  private readonly listeners = new Set<() => void>();

  current(): readonly StoredPolicy[] {
    return this.policies;
  }

  replace(policies: readonly StoredPolicy[]): void {
    const sorted = [...policies].sort((a, b) => `${a.kind}/${a.namespace ?? ''}/${a.name}`.localeCompare(`${b.kind}/${b.namespace ?? ''}/${b.name}`));
    const signature = JSON.stringify(sorted);
    if (signature === this.signature) return;
    this.policies = sorted;
    this.signature = signature;
    for (const listener of this.listeners) listener();
  }

  onChange(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}

/** Where policies come from: it fills the store once before the operator serves, then keeps it current. */
export interface PolicySource {
  start(store: PolicyStore): Promise<void>;
  close(): void;
}
