// What the kube-link process (link-entry.ts) needs to reach the agent, passed in its environment.

export const KUBE_LINK_ENV = 'REMOCAL_KUBE_LINK';

export interface KubeLinkSettings {
  kubeconfig?: string | undefined;
  inCluster?: boolean | undefined;
  context?: string | undefined;
  namespace: string;
  pod: string;
  port: number;
  /** How long to keep retrying while the agent starts listening. */
  timeoutMs: number;
}
