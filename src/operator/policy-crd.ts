// The two CustomResourceDefinitions through which admins write policies: RemocalPolicy (namespaced) and
// RemocalClusterPolicy (cluster-wide), both of policies.remocal.dev/v1alpha1 with one schema, the PolicySpec of
// protocol/policy.ts. The schema is structural, so the API server itself refuses what it can tell is wrong (an
// unknown block, a duplicate, a bad CIDR, a bad selector operator, as the recorded 422s show) and prunes
// what it does not know; its enums come from the protocol's constants, so a value added there is accepted here.
// Every list and string is bounded, so that a hostile policy stays small for the operator and the agents it is
// handed to. Pure data: install.ts adds the install labels, and structural.ts validates with the schema.

import { LABEL_SELECTOR_OPERATORS, POLICY_BLOCKS, POLICY_GROUP, POLICY_VERSION, type PolicyKind } from '../protocol/policy.js';
import { QUEUE_ID_PATTERN } from '../protocol/split-queues.js';
import { KUBERNETES_TARGET_KINDS, LOCAL_TARGET_KINDS } from '../config/value-types.js';
import type { JsonSchemaProps } from './structural.js';

/** How each kind is served: its resource name, and whether it lives in a namespace. */
export const POLICY_RESOURCES = {
  RemocalPolicy: { plural: 'remocalpolicies', singular: 'remocalpolicy', shortName: 'rpol', namespaced: true },
  RemocalClusterPolicy: { plural: 'remocalclusterpolicies', singular: 'remocalclusterpolicy', shortName: 'rcpol', namespaced: false },
} as const satisfies Record<PolicyKind, { plural: string; singular: string; shortName: string; namespaced: boolean }>;

/** The longest regex (fs paths, host names, header filters) a policy may hold. */
const REGEX_MAX_LENGTH = 1024;
/** The longest list of names, regexes or outgoing rules. */
const LIST_MAX_ITEMS = 64;

/**
 * `targetPath`: a glob over targets as remocal writes them: a kind (or `*`) and name segments, each of which may
 * hold `*` (`deployment/orders-*`, `pod/x/container/y`, `pid/*`, `container/api`), `targetless`, or `*` alone.
 */
const TARGET_GLOB = `^(\\*|targetless|(\\*|${[...LOCAL_TARGET_KINDS, ...KUBERNETES_TARGET_KINDS].join('|')})(/[A-Za-z0-9*][-A-Za-z0-9_.*]*)+)$`;
/** `env.exclude`: environment variable names as Kubernetes allows them, with `*` for any run of characters. */
const ENV_NAME_GLOB = '^[-._a-zA-Z*][-._a-zA-Z0-9*]*$';

const regexList = (description: string): JsonSchemaProps => ({
  type: 'array',
  description,
  maxItems: LIST_MAX_ITEMS,
  items: { type: 'string', maxLength: REGEX_MAX_LENGTH },
});

// An address is at most 45 characters (an IPv6 with an embedded IPv4), a prefix `/128`.
const cidr: JsonSchemaProps = { type: 'string', format: 'cidr', maxLength: 49 };

const outgoingRules = (description: string): JsonSchemaProps => ({
  type: 'array',
  description,
  maxItems: LIST_MAX_ITEMS,
  items: {
    type: 'object',
    // A rule that says nothing would match every connection: refuse it rather than guess what was meant.
    minProperties: 1,
    properties: {
      ipBlock: {
        type: 'object',
        description: 'Addresses in cidr and not in except.',
        required: ['cidr'],
        properties: { cidr, except: { type: 'array', maxItems: 32, items: cidr } },
      },
      hostname: { type: 'string', description: 'A regex over the host name, also checked against the names the session resolved to the address.', maxLength: REGEX_MAX_LENGTH },
      ports: { type: 'array', description: 'Only these ports; unset: any port.', 'x-kubernetes-list-type': 'set', maxItems: LIST_MAX_ITEMS, items: { type: 'integer', minimum: 1, maximum: 65535 } },
    },
  },
});

/** metav1.LabelSelector, bounded. An empty selector matches everything, as in Kubernetes. */
const labelSelector: JsonSchemaProps = {
  type: 'object',
  description: 'Applies only to targets whose pod labels match. Unset: any labels.',
  'x-kubernetes-map-type': 'atomic',
  properties: {
    matchLabels: { type: 'object', maxProperties: LIST_MAX_ITEMS, additionalProperties: { type: 'string', maxLength: 63 } },
    matchExpressions: {
      type: 'array',
      maxItems: 32,
      items: {
        type: 'object',
        required: ['key', 'operator'],
        properties: {
          // A label key: an optional DNS-subdomain prefix (253), `/`, a name (63).
          key: { type: 'string', maxLength: 317 },
          operator: { type: 'string', enum: [...LABEL_SELECTOR_OPERATORS] },
          values: { type: 'array', maxItems: LIST_MAX_ITEMS, items: { type: 'string', maxLength: 63 } },
        },
      },
    },
  },
};

/**
 * The openAPIV3Schema of both kinds. The properties of `spec` are declared in the order the API server happened to
 * report them in the recordings (targetPath, block, selector), so that its messages come out in the same order.
 */
export const POLICY_SCHEMA: JsonSchemaProps = {
  type: 'object',
  required: ['spec'],
  properties: {
    spec: {
      type: 'object',
      description: 'What remocal may not do with the targets this policy applies to.',
      properties: {
        targetPath: {
          type: 'string',
          description: 'A glob over targets as remocal writes them (deployment/orders, deployment/orders-*, pod/x/container/y, pid/*); * is any run of characters. Unset: every target in scope.',
          maxLength: 253,
          pattern: TARGET_GLOB,
        },
        block: {
          type: 'array',
          description: 'What is forbidden outright.',
          'x-kubernetes-list-type': 'set',
          maxItems: POLICY_BLOCKS.length,
          items: { type: 'string', enum: [...POLICY_BLOCKS] },
        },
        selector: labelSelector,
        appliesToCopyTargets: { type: 'boolean', description: 'Whether sessions on a copy of a target are bound by this policy too.' },
        env: {
          type: 'object',
          properties: {
            exclude: {
              type: 'array',
              description: 'Variables of the target a session never sees: names, * for any run of characters.',
              'x-kubernetes-list-type': 'set',
              maxItems: LIST_MAX_ITEMS,
              items: { type: 'string', maxLength: 253, pattern: ENV_NAME_GLOB },
            },
          },
        },
        fs: {
          type: 'object',
          properties: {
            readOnly: regexList('Regexes over the target\'s paths: read, never written.'),
            local: regexList('Regexes: never read from the target.'),
            notFound: regexList('Regexes: do not exist for the session.'),
          },
        },
        splitQueues: {
          type: 'object',
          properties: {
            allow: {
              type: 'array',
              description: 'When set, a session may split only these queue ids (feature.split_queues; the ids of the workload\'s RemocalSplitConfig).',
              'x-kubernetes-list-type': 'set',
              maxItems: LIST_MAX_ITEMS,
              items: { type: 'string', maxLength: 63, pattern: QUEUE_ID_PATTERN },
            },
          },
        },
        network: {
          type: 'object',
          properties: {
            incoming: {
              type: 'object',
              properties: {
                httpFilter: {
                  type: 'object',
                  properties: {
                    headerFilter: { type: 'string', description: 'A regex every steal\'s header filter must match; a steal without a header filter is refused.', maxLength: REGEX_MAX_LENGTH },
                  },
                },
              },
            },
            outgoing: {
              type: 'object',
              properties: {
                allow: outgoingRules('When set, a connection must match one of these.'),
                block: outgoingRules('A connection that matches one of these is refused.'),
              },
            },
          },
        },
      },
    },
  },
};

export interface CustomResourceDefinition {
  apiVersion: 'apiextensions.k8s.io/v1';
  kind: 'CustomResourceDefinition';
  metadata: { name: string };
  spec: Record<string, unknown>;
}

function policyCrd(kind: PolicyKind): CustomResourceDefinition {
  const resource = POLICY_RESOURCES[kind];
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: { name: `${resource.plural}.${POLICY_GROUP}` },
    spec: {
      group: POLICY_GROUP,
      scope: resource.namespaced ? 'Namespaced' : 'Cluster',
      names: { plural: resource.plural, singular: resource.singular, kind, listKind: `${kind}List`, shortNames: [resource.shortName], categories: ['remocal'] },
      versions: [
        {
          name: POLICY_VERSION,
          served: true,
          storage: true,
          schema: { openAPIV3Schema: POLICY_SCHEMA },
          additionalPrinterColumns: [
            { name: 'Target', type: 'string', jsonPath: '.spec.targetPath' },
            { name: 'Blocks', type: 'string', jsonPath: '.spec.block' },
            { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' },
          ],
        },
      ],
    },
  };
}

/** The two CRDs, RemocalPolicy first. */
export function policyCrds(): CustomResourceDefinition[] {
  return [policyCrd('RemocalPolicy'), policyCrd('RemocalClusterPolicy')];
}
