// The cluster, as the rest of the platform sees it: the kubeconfig chosen as kubectl chooses it, typed API
// clients, and one translation of API failures into errors a user can act on (a 403 names the missing
// permission, an unreachable server names the server).

import {
  ApiException,
  AppsV1Api,
  BatchV1Api,
  CoreV1Api,
  CustomObjectsApi,
  KubeConfig,
} from '@kubernetes/client-node';
import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { delimiter, join } from 'node:path';
import {
  ClusterUnreachableError,
  KubeApiError,
  KubeConfigError,
  KubeForbiddenError,
  TargetNotFoundError,
  isRemocalError,
  type RemocalError,
} from '../../core/errors.js';

/** Where a pod's service account (token, CA, namespace) is mounted. */
const SERVICE_ACCOUNT_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

export interface KubeSettings {
  /** A kubeconfig file; otherwise KUBECONFIG, ~/.kube/config, or the in-cluster config, as kubectl. */
  kubeconfig?: string | undefined;
  /**
   * The pod's own service account and nothing else (the operator, running as a Deployment): a stray KUBECONFIG
   * in its environment must not point it at another cluster. Excludes `kubeconfig` and `context`.
   */
  inCluster?: boolean | undefined;
  context?: string | undefined;
  /** Otherwise the context's namespace, otherwise `default`. */
  namespace?: string | undefined;
}

export interface Kube {
  config: KubeConfig;
  /** The namespace targets are looked up in. */
  namespace: string;
  contextName: string;
  server: string;
  core: CoreV1Api;
  apps: AppsV1Api;
  batch: BatchV1Api;
  custom: CustomObjectsApi;
}

/** `serviceAccountRoot`: what the service account's path is under; '' in a pod, a directory of their own in tests. */
export function connectKube(settings: KubeSettings, options: { serviceAccountRoot?: string } = {}): Kube {
  const config = new KubeConfig();
  try {
    if (settings.inCluster === true) {
      loadInCluster(config, settings, options.serviceAccountRoot ?? '');
    } else if (settings.kubeconfig !== undefined) {
      if (!existsSync(settings.kubeconfig)) throw new KubeConfigError(`The kubeconfig ${settings.kubeconfig} does not exist.`);
      config.loadFromFile(settings.kubeconfig);
    } else {
      // loadFromDefault falls back to http://localhost:8080 when it finds nothing, which would only ever fail
      // with "connection refused"; say what is missing instead.
      const files = (process.env.KUBECONFIG ?? '').split(delimiter).filter((file) => file !== '');
      const found = files.length > 0 ? files.some((file) => existsSync(file)) : existsSync(join(homedir(), '.kube', 'config')) || existsSync(`${SERVICE_ACCOUNT_DIR}/token`);
      if (!found) {
        throw new KubeConfigError(
          files.length > 0 ? `KUBECONFIG names no file that exists (${process.env.KUBECONFIG}).` : 'No kubeconfig found: KUBECONFIG is not set and ~/.kube/config does not exist.',
          { hint: 'Point KUBECONFIG (or --kubeconfig) at your cluster\'s kubeconfig, as you would for kubectl.' },
        );
      }
      config.loadFromDefault();
    }
  } catch (error) {
    if (isRemocalError(error)) throw error;
    throw new KubeConfigError(`Could not read the kubeconfig: ${(error as Error).message}.`);
  }
  if (settings.context !== undefined) {
    if (config.getContextObject(settings.context) === null) {
      const known = config.getContexts().map((context) => context.name);
      throw new KubeConfigError(
        `The kubeconfig has no context named "${settings.context}"${known.length > 0 ? `; it has: ${known.join(', ')}` : ''}.`,
      );
    }
    config.setCurrentContext(settings.context);
  }
  const cluster = config.getCurrentCluster();
  if (cluster === null) {
    throw new KubeConfigError('No Kubernetes cluster is configured: the kubeconfig has no current context.', {
      hint: 'Point KUBECONFIG (or --kubeconfig) at your cluster\'s kubeconfig, or pick a context with --context.',
    });
  }
  const context = config.getContextObject(config.getCurrentContext());
  return {
    config,
    namespace: settings.namespace ?? context?.namespace ?? 'default',
    contextName: config.getCurrentContext(),
    server: cluster.server,
    core: config.makeApiClient(CoreV1Api),
    apps: config.makeApiClient(AppsV1Api),
    batch: config.makeApiClient(BatchV1Api),
    custom: config.makeApiClient(CustomObjectsApi),
  };
}

/** loadFromCluster checks nothing: outside a pod it would build a server "https://undefined:undefined". */
function loadInCluster(config: KubeConfig, settings: KubeSettings, root: string): void {
  if (settings.kubeconfig !== undefined || settings.context !== undefined) {
    throw new KubeConfigError('The in-cluster config and a kubeconfig or context exclude each other: give one of them.');
  }
  const { KUBERNETES_SERVICE_HOST: host, KUBERNETES_SERVICE_PORT: port } = process.env;
  if (host === undefined || host === '' || port === undefined || port === '') {
    throw new KubeConfigError('The in-cluster config needs KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT, which are not set: this is not running in a pod.', {
      hint: 'Run it in a pod, or give it a kubeconfig instead.',
    });
  }
  const token = `${root}${SERVICE_ACCOUNT_DIR}/token`;
  if (!existsSync(token)) {
    throw new KubeConfigError(`The in-cluster config needs the service account token ${token}, which does not exist.`, {
      hint: 'The pod must mount its service account token: check automountServiceAccountToken on the pod and its service account.',
    });
  }
  config.loadFromCluster(root);
}

/** What a call was trying to do, in RBAC's words: it names the permission when the answer is 403. */
export interface KubeAction {
  verb: string;
  /** `pods`, `pods/ephemeralcontainers`, `deployments.apps`, `rollouts.argoproj.io`. */
  resource: string;
  namespace: string;
  name?: string | undefined;
}

/** The API's own explanation, from a Status body (or the raw text of a non-Status answer). */
export interface KubeStatus {
  code: number;
  reason: string | undefined;
  message: string;
}

export function apiStatus(error: unknown): KubeStatus | null {
  if (!(error instanceof ApiException)) return null;
  const code = (error as ApiException<unknown>).code;
  const body = (error as ApiException<unknown>).body;
  let parsed: unknown = body;
  if (typeof body === 'string') {
    try {
      parsed = JSON.parse(body);
    } catch {
      return { code, reason: undefined, message: body.trim() };
    }
  }
  if (typeof parsed === 'object' && parsed !== null && (parsed as { kind?: unknown }).kind === 'Status') {
    const status = parsed as { reason?: string; message?: string };
    return { code, reason: status.reason, message: status.message ?? '' };
  }
  return { code, reason: undefined, message: typeof body === 'string' ? body : '' };
}

/**
 * Runs one API call and turns its failure into a remocal error. `onNotFound` gives a 404 its own message (a
 * missing target reads differently from a missing CRD); without it a 404 is a KubeApiError.
 */
export async function kubeCall<T>(kube: Kube, action: KubeAction, call: () => Promise<T>, onNotFound?: (status: KubeStatus) => RemocalError): Promise<T> {
  try {
    return await call();
  } catch (error) {
    throw kubeError(kube, action, error, onNotFound);
  }
}

export function kubeError(kube: Kube, action: KubeAction, error: unknown, onNotFound?: (status: KubeStatus) => RemocalError): RemocalError {
  if (isRemocalError(error)) return error;
  const status = apiStatus(error);
  const object = `${action.resource}${action.name === undefined ? '' : ` "${action.name}"`}`;
  if (status === null) {
    const reason = error instanceof Error ? (error.cause instanceof Error ? error.cause.message : error.message) : String(error);
    return new ClusterUnreachableError(`Could not reach the Kubernetes API server ${kube.server} (context ${kube.contextName}) to ${action.verb} ${object}: ${reason}.`);
  }
  if (status.code === 403 && /violates PodSecurity/i.test(status.message)) {
    return new KubeForbiddenError(
      `Pod Security admission refused the ${object} in namespace ${action.namespace}: ${status.message}`,
      {
        hint: action.resource.startsWith('pods/ephemeralcontainers')
          ? 'The agent needs capabilities (SYS_PTRACE, NET_ADMIN to redirect ports) that only the "privileged" level allows. ' +
            'Run it as a pod of its own in a namespace where that level applies: agent.ephemeral: false with agent.namespace.'
          : 'The node agent needs hostPID and capabilities, which only the "privileged" level allows: point agent.namespace at such a namespace.',
      },
    );
  }
  if (status.code === 403) {
    const [resource, subresource] = action.resource.split('/');
    const canI = `kubectl auth can-i ${action.verb} ${resource}${subresource === undefined ? '' : ` --subresource=${subresource}`} -n ${action.namespace}`;
    return new KubeForbiddenError(
      `missing permission: ${action.verb} ${action.resource} in namespace ${action.namespace}.\nThe API server said: ${status.message}`,
      {
        hint:
          `Check it with \`${canI}\`, and ask your cluster admin for it; ` +
          'docs/kubernetes.md#rbac lists what each mode needs.',
        details: { verb: action.verb, resource: action.resource, namespace: action.namespace },
      },
    );
  }
  if (status.code === 401) {
    return new KubeConfigError(`The cluster (context ${kube.contextName}) did not accept your credentials: ${status.message || 'Unauthorized'}.`, {
      hint: 'Log in again (your token may have expired), then check with `kubectl get pods`.',
    });
  }
  if (status.code === 404 && onNotFound !== undefined) return onNotFound(status);
  if (status.code === 404) {
    return new TargetNotFoundError(`There is no ${object} in namespace ${action.namespace}${status.message ? ` (${status.message})` : ''}.`);
  }
  return new KubeApiError(`The Kubernetes API refused to ${action.verb} ${object} in namespace ${action.namespace}: ${status.code} ${status.reason ?? ''} ${status.message}`.trim() + '.');
}
