// What the operator-link process (link-entry.ts) needs to open a session's stream, passed in its environment:
// the token must not show in `ps`.

export const OPERATOR_LINK_ENV = 'REMOCAL_OPERATOR_LINK';

export interface OperatorLinkSettings {
  /** The portforward WebSocket's URL (https://…/targets/<name>/portforward?files=…). */
  url: string;
  token: string | undefined;
  ca: string | undefined;
  /** Through the API server: the kubeconfig's client certificate and headers, as OperatorAddress has them. */
  cert?: string | undefined;
  key?: string | undefined;
  headers?: Record<string, string> | undefined;
  rejectUnauthorized?: boolean | undefined;
  timeoutMs: number;
}
