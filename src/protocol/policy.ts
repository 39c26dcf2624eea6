// Policies: what an admin allows remocal to do with a target. They are written as the custom resources
// `RemocalPolicy` (namespaced) and `RemocalClusterPolicy` (cluster-wide) of policies.remocal.dev/v1alpha1 (in local
// mode, as files of the same shape), and the operator hands those that apply to a session to the session's shared
// agent, which enforces them on every operation of the session. So these shapes cross a process boundary
// (operator → agent) and live here. The fields follow mirrord's MirrordPolicy.

export const POLICY_GROUP = 'policies.remocal.dev';
export const POLICY_VERSION = 'v1alpha1';

/** What a policy can forbid outright. Append-only: an agent that does not know a value refuses nothing for it. */
export const POLICY_BLOCKS = [
  'steal',
  'steal-without-filter',
  'mirror',
  'outgoing',
  'fs-write',
  'env',
  'port-forward',
  'copy-target',
  'copy-target-scale-down',
  'override',
  'split-queues',
] as const;
export type PolicyBlock = (typeof POLICY_BLOCKS)[number];

export const LABEL_SELECTOR_OPERATORS = ['In', 'NotIn', 'Exists', 'DoesNotExist'] as const;

/** A Kubernetes label selector (metav1.LabelSelector). */
export interface LabelSelector {
  matchLabels?: Record<string, string>;
  matchExpressions?: { key: string; operator: (typeof LABEL_SELECTOR_OPERATORS)[number]; values?: string[] }[];
}

/**
 * One outgoing destination rule: it matches a connection whose address is in `ipBlock` (and not in its `except`), or
 * whose host name matches `hostname` (a regex, also checked against the names the session resolved to that
 * address); and, when `ports` is set, whose port is one of them. A rule of `ports` alone matches those ports anywhere.
 */
export interface OutgoingPolicyRule {
  ipBlock?: { cidr: string; except?: string[] };
  hostname?: string;
  ports?: number[];
}

export interface PolicySpec {
  /**
   * Which targets the policy applies to: a glob (`*` is any run of characters) over the target as remocal writes it
   * (`deployment/orders`, `pod/orders-7c9/container/app`, `pid/4242`). Unset: every target in its scope.
   */
  targetPath?: string;
  /** Applies only to targets whose pod labels match. Unset: any labels. */
  selector?: LabelSelector;
  /** Whether the policy applies to sessions on a copy of a target too (copy targets). */
  appliesToCopyTargets?: boolean;
  block?: PolicyBlock[];
  env?: {
    /** Variables of the target the session never sees: names, with `*` for any run of characters. */
    exclude?: string[];
  };
  fs?: {
    /** Regexes over the target's paths: read, never written. */
    readOnly?: string[];
    /** Regexes: never read from the target (the app reads its own machine's file). */
    local?: string[];
    /** Regexes: do not exist for the session (ENOENT). */
    notFound?: string[];
  };
  splitQueues?: {
    /** When set, a session may split only these queue ids (of the workload's RemocalSplitConfig). */
    allow?: string[];
  };
  network?: {
    incoming?: {
      httpFilter?: {
        /**
         * A regex that every header filter of a steal must match, so that stolen requests are always tagged: a steal
         * without a header filter is refused, and a request is routed to a session only if one of its headers
         * (`Name: value`) matches this too.
         */
        headerFilter?: string;
      };
    };
    outgoing?: {
      /** When set, a connection must match one of these. */
      allow?: OutgoingPolicyRule[];
      /** A connection that matches one of these is refused. */
      block?: OutgoingPolicyRule[];
    };
  };
}

export type PolicyKind = 'RemocalPolicy' | 'RemocalClusterPolicy';

/** A policy as the agent enforces it: who wrote it (for refusals) and what it says. */
export interface AppliedPolicy {
  kind: PolicyKind;
  /** `namespace/name` for a RemocalPolicy, `name` for a RemocalClusterPolicy: what a refusal names. */
  name: string;
  spec: PolicySpec;
}

/** The failure code of whatever a policy refuses; the message names the policy and its rule. */
export const POLICY_BLOCKED = 'REMOCAL_POLICY_BLOCKED';
