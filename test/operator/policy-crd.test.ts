// The policy CRDs: structural, the shape of PolicySpec and nothing else, enums from the protocol's constants, every
// list and string bounded, and what their schema refuses, in the API server's words (through the validator that
// the recorded 422s check in structural.test.ts).

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { LABEL_SELECTOR_OPERATORS, POLICY_BLOCKS, type PolicySpec } from '../../src/protocol/policy.js';
import { POLICY_RESOURCES, POLICY_SCHEMA, policyCrds } from '../../src/operator/policy-crd.js';
import { structuralProblems, validateAgainstSchema, type JsonSchemaProps } from '../../src/operator/structural.js';
import { loadFixture } from '../helpers/kube-api.js';

/** A policy of every field PolicySpec has: typed, so that a field added there and not here fails to compile the test below. */
const everyField: Required<PolicySpec> = {
  targetPath: 'deployment/orders-*/container/app',
  selector: { matchLabels: { 'app.kubernetes.io/name': 'orders' }, matchExpressions: [{ key: 'env', operator: 'In', values: ['dev'] }, { key: 'canary', operator: 'DoesNotExist' }] },
  appliesToCopyTargets: true,
  block: ['steal-without-filter', 'fs-write'],
  env: { exclude: ['DB_*', 'AWS_SECRET_ACCESS_KEY'] },
  splitQueues: { allow: ['orders', 'events.v2'] },
  fs: { readOnly: ['^/etc/'], local: ['^/tmp/'], notFound: ['^/var/run/secrets/'] },
  network: {
    incoming: { httpFilter: { headerFilter: '^x-dev: ' } },
    outgoing: {
      allow: [{ hostname: '\\.svc\\.cluster\\.local$', ports: [443, 5432] }, { ipBlock: { cidr: '10.0.0.0/8', except: ['10.1.0.0/16'] } }],
      block: [{ ipBlock: { cidr: 'fd00::/8', except: ['fd00::1/128'] } }, { hostname: '^smtp\\.', ports: [25] }, { ports: [6379] }],
    },
  },
};

function policy(spec: unknown): object {
  return { apiVersion: 'policies.remocal.dev/v1alpha1', kind: 'RemocalPolicy', metadata: { name: 'p', namespace: 'shop' }, spec };
}

function errorsOf(spec: unknown): string[] {
  return validateAgainstSchema(POLICY_SCHEMA, policy(spec)).errors;
}

/** Every path of a value, `spec.network.outgoing.allow[].ports` style: leaves and the objects on the way. */
function valuePaths(value: unknown, path: string, into: Set<string>): Set<string> {
  if (Array.isArray(value)) for (const item of value) valuePaths(item, `${path}[]`, into);
  else if (typeof value === 'object' && value !== null) for (const [key, field] of Object.entries(value)) valuePaths(field, `${path}.${key}`, into.add(`${path}.${key}`));
  return into;
}

/** The same paths, as the schema declares them (a map's keys stand for themselves as `*`). */
function schemaPaths(schema: JsonSchemaProps, path: string, into: Set<string>): Set<string> {
  if (schema.items !== undefined) schemaPaths(schema.items, `${path}[]`, into);
  for (const [key, property] of Object.entries(schema.properties ?? {})) schemaPaths(property, `${path}.${key}`, into.add(`${path}.${key}`));
  return into;
}

/** Every node of the schema with its path. */
function* nodes(schema: JsonSchemaProps, path = ''): Generator<[string, JsonSchemaProps]> {
  yield [path, schema];
  if (schema.items !== undefined) yield* nodes(schema.items, `${path}[]`);
  if (typeof schema.additionalProperties === 'object') yield* nodes(schema.additionalProperties, `${path}.*`);
  for (const [key, property] of Object.entries(schema.properties ?? {})) yield* nodes(property, `${path}.${key}`);
}

describe('the policy CRDs', () => {
  const crds = policyCrds() as unknown as { metadata: { name: string }; spec: { scope: string; names: Record<string, unknown>; versions: { name: string; schema: { openAPIV3Schema: JsonSchemaProps }; additionalPrinterColumns: { name: string }[] }[] } }[];

  it('are two, namespaced and cluster-wide, with the names, short names and columns kubectl shows', () => {
    assert.deepEqual(crds.map((crd) => [crd.metadata.name, crd.spec.scope, crd.spec.names.shortNames, crd.spec.names.categories]), [
      ['remocalpolicies.policies.remocal.dev', 'Namespaced', ['rpol'], ['remocal']],
      ['remocalclusterpolicies.policies.remocal.dev', 'Cluster', ['rcpol'], ['remocal']],
    ]);
    assert.deepEqual(crds.map((crd) => crd.spec.names.kind), Object.keys(POLICY_RESOURCES));
    for (const crd of crds) assert.deepEqual(crd.spec.versions[0]!.additionalPrinterColumns.map((column) => column.name), ['Target', 'Blocks', 'Age']);
  });

  it('have structural schemas', () => {
    for (const crd of crds) assert.deepEqual(structuralProblems(crd.spec.versions[0]!.schema.openAPIV3Schema), [], crd.metadata.name);
  });

  it('take their enums from the protocol\'s constants', () => {
    const spec = POLICY_SCHEMA.properties!.spec!.properties!;
    assert.deepEqual(spec.block!.items!.enum, POLICY_BLOCKS);
    assert.deepEqual(spec.selector!.properties!.matchExpressions!.items!.properties!.operator!.enum, LABEL_SELECTOR_OPERATORS);
    assert.equal(spec.block!['x-kubernetes-list-type'], 'set');
  });

  it('bound every list, string and map, so that a policy stays small', () => {
    for (const [path, node] of nodes(POLICY_SCHEMA)) {
      if (node.type === 'array') assert.ok(node.maxItems !== undefined, `${path}: maxItems`);
      if (node.type === 'string' && node.enum === undefined) assert.ok(node.maxLength !== undefined, `${path}: maxLength`);
      if (node.type === 'object' && node.additionalProperties !== undefined) assert.ok(node.maxProperties !== undefined, `${path}: maxProperties`);
    }
  });

  it('hold exactly the fields of PolicySpec: a policy of every field passes and loses nothing', () => {
    const result = validateAgainstSchema(POLICY_SCHEMA, policy(everyField));
    assert.deepEqual(result.errors, []);
    assert.deepEqual((result.value as { spec: unknown }).spec, everyField);
    // Nothing in the schema that PolicySpec lacks either (maps aside, whose keys are data).
    assert.deepEqual([...schemaPaths(POLICY_SCHEMA.properties!.spec!, 'spec', new Set())].sort(), [...valuePaths(everyField, 'spec', new Set())].filter((path) => !path.startsWith('spec.selector.matchLabels.')).sort());
  });

  it('accept the recorded lab\'s valid policies and prune what they do not know', () => {
    assert.deepEqual(validateAgainstSchema(POLICY_SCHEMA, loadFixture('operator/policy-create-valid.request.json')).errors, []);
    const pruned = validateAgainstSchema(POLICY_SCHEMA, loadFixture('operator/policy-create-unknown-field-pruned.request.json'));
    assert.deepEqual(pruned.errors, []);
    assert.deepEqual((pruned.value as { spec: unknown }).spec, (loadFixture('operator/policy-create-unknown-field-pruned.json') as { spec: unknown }).spec);
  });

  it('refuse the recorded lab\'s bad CIDR, duplicate and selector operator as the server did', () => {
    for (const name of ['policy-create-bad-cidr', 'policy-create-duplicate-set', 'policy-create-bad-selector-operator']) {
      const recorded = loadFixture(`operator/${name}.json`) as { details: { causes: unknown[] } };
      assert.deepEqual(validateAgainstSchema(POLICY_SCHEMA, loadFixture(`operator/${name}.request.json`)).causes, recorded.details.causes, name);
    }
  });

  it('refuse a block remocal does not know, naming the ones it does', () => {
    assert.deepEqual(errorsOf({ block: ['steal', 'teleport'] }), [`spec.block: Unsupported value: "teleport": supported values: ${POLICY_BLOCKS.map((block) => `"${block}"`).join(', ')}`]);
  });

  it('take target globs and refuse what is no target', () => {
    for (const good of ['*', 'targetless', 'deployment/orders', 'deployment/orders-*', 'pod/x/container/y', 'pod/*/container/app', 'pid/*', 'pid/4242', 'container/api', 'netns/blue', '*/orders', 'statefulset/ledger-0']) {
      assert.deepEqual(errorsOf({ targetPath: good }), [], good);
    }
    for (const bad of ['Deployment/Orders', 'x', 'deployment', 'deployment/', 'deployment//x', 'deploy/orders', '/orders', 'deployment/orders/', 'deployment/or ders']) {
      const errors = errorsOf({ targetPath: bad });
      assert.equal(errors.length, 1, bad);
      assert.match(errors[0]!, /^spec\.targetPath: Invalid value: ".*": spec\.targetPath in body should match '\^/, bad);
    }
  });

  it('refuse an outgoing rule that says nothing, a port out of range, and an unknown env name', () => {
    // The rule's only field is unknown, pruned first: it is then empty.
    assert.deepEqual(errorsOf({ network: { outgoing: { block: [{ port: 443 }] } } }), ['spec.network.outgoing.block: Invalid value: 1: spec.network.outgoing.block in body should have at least 1 properties']);
    assert.deepEqual(errorsOf({ network: { outgoing: { allow: [{ ports: [0, 443, 443] }] } } }), [
      'spec.network.outgoing.allow.ports: Invalid value: 0: spec.network.outgoing.allow.ports in body should be greater than or equal to 1',
      'spec.network.outgoing.allow[0].ports[2]: Duplicate value: 443',
    ]);
    assert.equal(errorsOf({ env: { exclude: ['OK_*', 'NOT=OK'] } }).length, 1);
  });

  it('require a spec, and nothing in it', () => {
    assert.deepEqual(validateAgainstSchema(POLICY_SCHEMA, { apiVersion: 'policies.remocal.dev/v1alpha1', kind: 'RemocalPolicy', metadata: { name: 'p' } }).errors, ['spec: Required value']);
    assert.deepEqual(errorsOf({}), []);
  });
});
