// The error catalog. Every failure a user can meet is one of these classes: a stable code (for scripts and
// docs), a category (what the CLI does with it) and a hint (what to do about it). The CLI prints message and
// hint; only `internal` errors, which are our bugs, invite a stack trace, and only with --verbose.
//
// `instanceof` must work across two copies of the package (a bundled layer and the CLI, say), so the check
// goes through a global symbol rather than the class identity.

export type ErrorCategory = 'user' | 'config' | 'remote' | 'internal';

const kRemocalError = Symbol.for('remocal.error');

export interface RemocalErrorOptions {
  hint?: string;
  cause?: unknown;
  details?: Record<string, unknown>;
}

export abstract class RemocalError extends Error {
  abstract readonly code: string;
  abstract readonly category: ErrorCategory;
  readonly hint: string | undefined;
  readonly details: Record<string, unknown> | undefined;

  constructor(message: string, options: RemocalErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.hint = options.hint;
    this.details = options.details;
  }

  override get name(): string {
    return this.constructor.name;
  }

  // By code, not by prototype: the same error class from another copy of the package must match too.
  static override [Symbol.hasInstance](value: unknown): boolean {
    if (this === RemocalError) return isRemocalError(value);
    const code = (this as unknown as { code?: string }).code;
    if (code !== undefined && isRemocalError(value)) return value.code === code;
    return Function.prototype[Symbol.hasInstance].call(this, value);
  }

  get [kRemocalError](): true {
    return true;
  }
}

export function isRemocalError(value: unknown): value is RemocalError {
  return typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[kRemocalError] === true;
}

function defineError(code: string, category: ErrorCategory, defaultHint?: string) {
  return class extends RemocalError {
    static readonly code = code;
    static readonly category = category;
    readonly code = code;
    readonly category = category;
    constructor(message: string, options: RemocalErrorOptions = {}) {
      super(message, { ...options, hint: options.hint ?? defaultHint });
    }
  };
}

// --- user: the request cannot be carried out as asked ---------------------------------------------------
export class TargetNotFoundError extends defineError('REMOCAL_TARGET_NOT_FOUND', 'user') {}
export class InvalidTargetError extends defineError(
  'REMOCAL_INVALID_TARGET',
  'user',
  'Targets look like pid/<pid>, container/<name>, netns/<name>, pod/<name>[/container/<c>] or deployment/<name>.',
)
{}
export class PermissionDeniedError extends defineError(
  'REMOCAL_PERMISSION_DENIED',
  'user',
  'Entering another process\'s namespaces needs root (or CAP_SYS_ADMIN and CAP_SYS_PTRACE): run remocal with sudo.',
) {}
export class ToolMissingError extends defineError('REMOCAL_TOOL_MISSING', 'user') {}
export class UsageError extends defineError('REMOCAL_USAGE', 'user', 'Run `remocal --help` for the commands and their options.') {}
export class CommandNotFoundError extends defineError('REMOCAL_COMMAND_NOT_FOUND', 'user') {}
export class FeatureUnavailableError extends defineError('REMOCAL_FEATURE_UNAVAILABLE', 'user') {}
export class TargetNotReadyError extends defineError(
  'REMOCAL_TARGET_NOT_READY',
  'user',
  'Check the pod with `kubectl describe pod <name>`, or pick another target.',
) {}
export class KubeForbiddenError extends defineError(
  'REMOCAL_KUBE_FORBIDDEN',
  'user',
  'Ask your cluster admin for the permission; docs/kubernetes.md#rbac lists what each mode needs.',
) {}
export class PortHeldError extends defineError(
  'REMOCAL_PORT_HELD',
  'user',
  'To share one port between developers (each with an HTTP filter), use the remocal operator: see docs/operator.md. ' +
    'Without it, one session at a time steals or mirrors a port: stop the other session (its `remocal exec`), then start yours again.',
) {}

export class OperatorForbiddenError extends defineError('REMOCAL_OPERATOR_FORBIDDEN', 'user', 'Ask an admin of the operator for the right.') {}
export class PolicyBlockedError extends defineError(
  'REMOCAL_POLICY_BLOCKED',
  'user',
  'An admin\'s policy forbids it: `remocal policy check -t <target>` shows what the policies on the target allow. Ask the policy\'s owner if you need it.',
) {}
export class FilterConflictError extends defineError(
  'REMOCAL_FILTER_CONFLICT',
  'user',
  'Pick a filter of your own (a header only your requests carry, such as `x-dev: <your name>`): `remocal session list` shows the filters in use.',
) {}
export class PortTakenError extends defineError(
  'REMOCAL_PORT_TAKEN',
  'user',
  'Another session took the port over (on_concurrent_steal: override). Ask its owner, or steal with an HTTP filter of your own.',
) {}
export class ActionFailedError extends defineError(
  'REMOCAL_ACTION_FAILED',
  'user',
  'Fix the step in `actions` (docs/actions.md), raise its `timeout` (or `actions_timeout`) if it is only slow, or run with --no-actions to skip the steps.',
) {}

export class CopyTargetHeldError extends defineError(
  'REMOCAL_COPY_TARGET_HELD',
  'user',
  'Only one session at a time may scale a workload down: wait for it to end, ask its owner, or copy the target without `scale_down`.',
) {}
export class CopyTargetUnsupportedError extends defineError(
  'REMOCAL_COPY_TARGET_UNSUPPORTED',
  'user',
  '`feature.copy_target` needs the remocal operator on Kubernetes (`operator: true` or `auto` with the operator installed): see docs/operator.md.',
) {}

// --- config: the configuration is wrong --------------------------------------------------------------
export class ConfigError extends defineError('REMOCAL_CONFIG_INVALID', 'config', 'Run `remocal verify-config` to check the file.') {}
export class ConfigNotFoundError extends defineError('REMOCAL_CONFIG_NOT_FOUND', 'config') {}
export class KubeConfigError extends defineError(
  'REMOCAL_KUBECONFIG',
  'config',
  'Check `kubectl config get-contexts`; remocal reads the kubeconfig as kubectl does (--kubeconfig, KUBECONFIG, ~/.kube/config).',
) {}

export class OperatorUnauthorizedError extends defineError(
  'REMOCAL_OPERATOR_UNAUTHORIZED',
  'config',
  'Set your token in REMOCAL_OPERATOR_TOKEN (or local_operator.token); the operator\'s admin gives it to you (docs/operator.md).',
) {}

// --- remote: the target, the agent or the link failed ------------------------------------------------
export class AgentStartError extends defineError('REMOCAL_AGENT_START_FAILED', 'remote') {}
export class AgentLostError extends defineError(
  'REMOCAL_AGENT_LOST',
  'remote',
  'The session cannot go on without its agent. Run the command again; if it keeps happening, run with --verbose and report the log.',
) {}
export class TargetGoneError extends defineError(
  'REMOCAL_TARGET_GONE',
  'remote',
  'The target stopped while the session ran (it was restarted or deleted). Pick the new target and run again.',
) {}
export class IntproxyLostError extends defineError(
  'REMOCAL_INTPROXY_LOST',
  'remote',
  'The local proxy of this session stopped. Run the command again; with --verbose remocal prints its log.',
) {}
export class ProtocolError extends defineError(
  'REMOCAL_PROTOCOL',
  'remote',
  'Both ends of a session must run the same remocal version: update remocal, or the agent image.',
) {}
export class TimeoutError extends defineError('REMOCAL_TIMEOUT', 'remote') {}
export class ClusterUnreachableError extends defineError(
  'REMOCAL_CLUSTER_UNREACHABLE',
  'remote',
  'Check that the cluster is up and reachable from here: `kubectl get --raw /version`.',
) {}
export class KubeApiError extends defineError('REMOCAL_KUBE_API', 'remote') {}
export class OperatorUnavailableError extends defineError(
  'REMOCAL_OPERATOR_UNAVAILABLE',
  'remote',
  'Check that the operator runs (`remocal operator status`), or set `operator: false` to reach the target directly.',
) {}
export class CopyTargetFailedError extends defineError(
  'REMOCAL_COPY_TARGET_FAILED',
  'remote',
  'See the copy with `kubectl describe pod <copy> -n <namespace>`; fix its template (image, node selector, resources), or run against the target itself.',
) {}
export class SessionClosedError extends defineError('REMOCAL_SESSION_CLOSED', 'remote', 'Run the command again to start a new session.') {}
export class JobStepFailedError extends defineError('REMOCAL_JOB_STEP_FAILED', 'remote') {}
export class QueueBrokerError extends defineError(
  'REMOCAL_QUEUE_BROKER',
  'remote',
  'Check that the broker runs and that the URL and credentials of the split config\'s Secret are right; the operator\'s log has the broker\'s own reply.',
) {}

// --- internal: a bug in remocal ------------------------------------------------------------------------
export class InternalError extends defineError(
  'REMOCAL_INTERNAL',
  'internal',
  'This is a bug in remocal. Run again with --verbose and report the output.',
) {}

/** Every error class of the catalog, for docs and the catalog test. */
export const errorCatalog = [
  TargetNotFoundError,
  InvalidTargetError,
  PermissionDeniedError,
  ToolMissingError,
  UsageError,
  CommandNotFoundError,
  FeatureUnavailableError,
  TargetNotReadyError,
  KubeForbiddenError,
  PortHeldError,
  ActionFailedError,
  ConfigError,
  ConfigNotFoundError,
  KubeConfigError,
  AgentStartError,
  AgentLostError,
  TargetGoneError,
  IntproxyLostError,
  ProtocolError,
  TimeoutError,
  ClusterUnreachableError,
  KubeApiError,
  OperatorForbiddenError,
  PolicyBlockedError,
  FilterConflictError,
  PortTakenError,
  OperatorUnauthorizedError,
  OperatorUnavailableError,
  CopyTargetHeldError,
  CopyTargetUnsupportedError,
  CopyTargetFailedError,
  JobStepFailedError,
  SessionClosedError,
  QueueBrokerError,
  InternalError,
] as const;
