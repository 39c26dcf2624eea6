// The CustomResourceDefinition through which a platform team says how a workload's queues may be split:
// RemocalSplitConfig of queues.remocal.dev/v1alpha1, namespaced, one per workload. Its structural schema is the
// protocol's SplitConfigSpec (enums and bounds from protocol/split-queues.ts), so the API server refuses a bad one
// itself and prunes unknown fields; what a structural schema cannot say (a map's keys are queue ids) is checked when
// the operator reads the object (queues/split-config.ts). Every string and map is bounded, since the operator reads
// these objects for every split session. Pure data: install.ts adds the install labels.

import { MAX_SPLIT_QUEUES, QUEUE_TYPES, SPLIT_CONFIG_KIND, SPLIT_GROUP, SPLIT_TARGET_KINDS, SPLIT_VERSION } from '../protocol/split-queues.js';
import type { CustomResourceDefinition } from './policy-crd.js';
import type { JsonSchemaProps } from './structural.js';

export const SPLIT_CONFIG_RESOURCE = { plural: 'remocalsplitconfigs', singular: 'remocalsplitconfig', shortName: 'rsplit' } as const;

/** A DNS subdomain, as Kubernetes names most objects (Secrets, Deployments). */
const DNS_SUBDOMAIN = '^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$';
/** A DNS label: container names. */
const DNS_LABEL = '^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$';
/** An environment variable name as Kubernetes accepts it (a C identifier, or with `-` and `.` since 1.x). */
const ENV_NAME = '^[-._a-zA-Z][-._a-zA-Z0-9]*$';
/** A Secret's data key. */
const SECRET_KEY = '^[-._a-zA-Z0-9]+$';

const queueName: JsonSchemaProps = {
  type: 'object',
  description: 'Where the workload reads the queue (or subject) name: one of env or configKey.',
  minProperties: 1,
  maxProperties: 1,
  properties: {
    env: {
      type: 'object',
      description: 'An environment variable of a container of the pod template; the operator points it at the deployed app\'s temporary queue while the queue is split.',
      required: ['name'],
      properties: {
        container: { type: 'string', description: 'The container; may be left out when the pod template has one container.', maxLength: 63, pattern: DNS_LABEL },
        name: { type: 'string', description: 'The variable.', maxLength: 253, pattern: ENV_NAME },
      },
    },
    configKey: {
      type: 'object',
      description: 'A key of a config file (not supported yet: the operator refuses a split of such a queue, and says so).',
      required: ['path', 'key'],
      properties: {
        path: { type: 'string', description: 'The file, as the container sees it.', maxLength: 4096 },
        key: { type: 'string', description: 'The key in it (a dotted path).', maxLength: 253 },
      },
    },
  },
};

const connection: JsonSchemaProps = {
  type: 'object',
  description: 'How the operator reaches the broker.',
  required: ['secretRef'],
  properties: {
    secretRef: {
      type: 'object',
      description: 'A Secret of this namespace, and the key of it that holds the broker URL with its credentials (amqp(s)://user:password@host:port/vhost, nats://user:password@host:port).',
      required: ['name', 'key'],
      properties: {
        name: { type: 'string', maxLength: 253, pattern: DNS_SUBDOMAIN },
        key: { type: 'string', maxLength: 253, pattern: SECRET_KEY },
      },
    },
  },
};

export const SPLIT_CONFIG_SCHEMA: JsonSchemaProps = {
  type: 'object',
  required: ['spec'],
  properties: {
    spec: {
      type: 'object',
      description: 'How the queues of one workload are split between remocal sessions.',
      required: ['targetRef', 'queues'],
      properties: {
        targetRef: {
          type: 'object',
          description: 'The workload whose queues these are.',
          required: ['kind', 'name'],
          properties: {
            kind: { type: 'string', enum: [...SPLIT_TARGET_KINDS] },
            name: { type: 'string', maxLength: 253, pattern: DNS_SUBDOMAIN },
          },
        },
        queues: {
          type: 'object',
          description: 'Queue id (as sessions name it in feature.split_queues) → the queue.',
          minProperties: 1,
          maxProperties: MAX_SPLIT_QUEUES,
          additionalProperties: {
            type: 'object',
            required: ['queueType', 'queueName', 'connection'],
            properties: {
              queueType: { type: 'string', enum: [...QUEUE_TYPES] },
              queueName,
              connection,
            },
          },
        },
      },
    },
  },
};

export function splitConfigCrd(): CustomResourceDefinition {
  const resource = SPLIT_CONFIG_RESOURCE;
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: { name: `${resource.plural}.${SPLIT_GROUP}` },
    spec: {
      group: SPLIT_GROUP,
      scope: 'Namespaced',
      names: { plural: resource.plural, singular: resource.singular, kind: SPLIT_CONFIG_KIND, listKind: `${SPLIT_CONFIG_KIND}List`, shortNames: [resource.shortName], categories: ['remocal'] },
      versions: [
        {
          name: SPLIT_VERSION,
          served: true,
          storage: true,
          schema: { openAPIV3Schema: SPLIT_CONFIG_SCHEMA },
          additionalPrinterColumns: [
            { name: 'Kind', type: 'string', jsonPath: '.spec.targetRef.kind' },
            { name: 'Workload', type: 'string', jsonPath: '.spec.targetRef.name' },
            { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' },
          ],
        },
      ],
    },
  };
}
