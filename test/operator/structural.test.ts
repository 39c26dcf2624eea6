// The structural-schema validator against what the real API server answered: each recorded create of a policy,
// validated with the schema of the CRD that server had (the recording lab's, not remocal's), must come out with the
// recorded 422 (message, causes, their order) or, when it was accepted, pruned exactly as the server stored it.
// The cases no recording covers (bounds, types, nulls, formats) follow the server's code, and say so.

import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { describe, it } from 'node:test';
import { invalidObjectMessage, structuralProblems, validateAgainstSchema, type JsonSchemaProps } from '../../src/operator/structural.js';
import { loadFixture } from '../helpers/kube-api.js';

type Status = { kind: 'Status'; message: string; details: { name: string; kind: string; group: string; causes: unknown[] } };
type Policy = { apiVersion: string; kind: string; metadata: { name: string }; spec: Record<string, unknown> } & Record<string, unknown>;

const labCrd = loadFixture('operator/crd-remocalpolicies-create.request.json') as { spec: { versions: { schema: { openAPIV3Schema: JsonSchemaProps } }[] } };
const labSchema = labCrd.spec.versions[0]!.schema.openAPIV3Schema;
const creates = readdirSync(new URL('../fixtures/k8s/operator/', import.meta.url))
  .filter((file) => /^policy-create-.*\.request\.json$/.test(file))
  .map((file) => ({ name: file.replace('.request.json', ''), request: loadFixture(`operator/${file}`) as Policy, response: loadFixture(`operator/${file.replace('.request', '')}`) as Policy | Status }));

/** Errors of `spec` alone under a schema of one field, to check a rule's wording without a whole CRD. */
function errorsOf(field: JsonSchemaProps, value: unknown): string[] {
  return validateAgainstSchema({ type: 'object', properties: { spec: { type: 'object', properties: { field } } } }, { spec: { field: value } }).errors;
}

describe('validateAgainstSchema, against the recorded server', () => {
  it('has the recorded creates to check: seven refused, four accepted', () => {
    assert.equal(creates.filter((create) => create.response.kind === 'Status').length, 7);
    assert.equal(creates.filter((create) => create.response.kind !== 'Status').length, 4);
  });

  for (const { name, request, response } of creates) {
    if (response.kind !== 'Status') continue;
    it(`${name}: the recorded 422, word for word, causes in the recorded order`, () => {
      const result = validateAgainstSchema(labSchema, request);
      const status = response as Status;
      assert.deepEqual(result.causes, status.details.causes);
      assert.equal(invalidObjectMessage(`${status.details.kind}.${status.details.group}`, request.metadata.name, result.errors), status.message);
    });
  }

  for (const { name, request, response } of creates) {
    if (response.kind === 'Status') continue;
    it(`${name}: accepted, and pruned to what the server stored`, () => {
      const result = validateAgainstSchema(labSchema, request);
      assert.deepEqual(result.errors, []);
      const stored = result.value as Policy;
      assert.deepEqual(stored.spec, (response as Policy).spec);
      // The resource's own fields stay for the caller; what the schema does not know goes (status, here).
      assert.deepEqual(Object.keys(stored).sort(), ['apiVersion', 'kind', 'metadata', 'spec']);
      assert.deepEqual(stored.metadata, request.metadata);
    });
  }

  it('prunes a copy: the value given is left as it was', () => {
    const request = creates.find((create) => create.name === 'policy-create-unknown-field-pruned')!.request;
    const before = structuredClone(request);
    validateAgainstSchema(labSchema, request);
    assert.deepEqual(request, before);
    assert.equal((request.spec as { colour?: string }).colour, 'blue');
  });

  it('joins several errors in brackets and words a repeated one once, as ToAggregate does', () => {
    assert.equal(invalidObjectMessage('K.g', 'n', ['a: x']), 'K.g "n" is invalid: a: x');
    assert.equal(invalidObjectMessage('K.g', 'n', ['a: x', 'b: y', 'a: x']), 'K.g "n" is invalid: [a: x, b: y]');
  });
});

// What follows is not recorded: the wording is kube-openapi's (its errors/schema.go and validate/*.go as vendored by
// Kubernetes 1.24) through apiextensions' field errors, and the checks pin this implementation to that reading.
describe('validateAgainstSchema, where no recording reaches', () => {
  it('a wrong type names the type it found; null is dropped where the schema allows none, but not from a list', () => {
    assert.deepEqual(errorsOf({ type: 'array', items: { type: 'string' } }, 'steal'), ['spec.field: Invalid value: "string": spec.field in body must be of type array: "string"']);
    assert.deepEqual(errorsOf({ type: 'integer' }, 1.5), ['spec.field: Invalid value: "number": spec.field in body must be of type integer: "number"']);
    assert.deepEqual(errorsOf({ type: 'number' }, 2), []);
    const nulls = validateAgainstSchema({ type: 'object', properties: { spec: { type: 'object', properties: { a: { type: 'string' }, b: { type: 'array', items: { type: 'string' } } } } } }, { spec: { a: null, b: ['x', null] } });
    assert.deepEqual(nulls.value, { spec: { b: ['x', null] } });
    assert.deepEqual(nulls.errors, ['spec.b: Invalid value: "null": spec.b in body must be of type string: "null"']);
  });

  it('bounds: characters (not UTF-16 units) for maxLength, items, properties, numbers', () => {
    assert.deepEqual(errorsOf({ type: 'string', maxLength: 2 }, 'éé'), []);
    assert.deepEqual(errorsOf({ type: 'string', maxLength: 2 }, '😀😀'), []);
    assert.deepEqual(errorsOf({ type: 'string', maxLength: 2 }, 'abc'), ['spec.field: Invalid value: "abc": spec.field in body should be at most 2 chars long']);
    assert.deepEqual(errorsOf({ type: 'array', maxItems: 1, items: { type: 'string' } }, ['a', 'b']), ['spec.field: Invalid value: 2: spec.field in body should have at most 1 items']);
    assert.deepEqual(errorsOf({ type: 'object', minProperties: 1, properties: { a: { type: 'string' } } }, { b: 1 }), ['spec.field: Invalid value: 1: spec.field in body should have at least 1 properties']);
    assert.deepEqual(errorsOf({ type: 'object', maxProperties: 1, additionalProperties: { type: 'string' } }, { a: 'x', b: 'y' }), ['spec.field: Invalid value: 1: spec.field in body should have at most 1 properties']);
    assert.deepEqual(errorsOf({ type: 'array', items: { type: 'integer', minimum: 1, maximum: 65535 } }, [0, 80, 70000]), [
      'spec.field: Invalid value: 0: spec.field in body should be greater than or equal to 1',
      'spec.field: Invalid value: 70000: spec.field in body should be less than or equal to 65535',
    ]);
  });

  it('a string stops at its first problem: length before pattern', () => {
    assert.deepEqual(errorsOf({ type: 'string', maxLength: 3, pattern: '^a+$' }, 'bbbb'), ['spec.field: Invalid value: "bbbb": spec.field in body should be at most 3 chars long']);
  });

  it('map values are checked under their key, and so are duplicates in sets, with every index', () => {
    assert.deepEqual(errorsOf({ type: 'object', additionalProperties: { type: 'string', maxLength: 1 } }, { 'app.kubernetes.io/name': 'xy' }), [
      'spec.field.app.kubernetes.io/name: Invalid value: "xy": spec.field.app.kubernetes.io/name in body should be at most 1 chars long',
    ]);
    const rules: JsonSchemaProps = { type: 'array', items: { type: 'object', properties: { ports: { type: 'array', 'x-kubernetes-list-type': 'set', items: { type: 'integer' } } } } };
    // A value three times is one duplicate, named at its second place.
    assert.deepEqual(errorsOf(rules, [{ ports: [80] }, { ports: [443, 80, 443, 443, 80] }]), ['spec.field[1].ports[2]: Duplicate value: 443', 'spec.field[1].ports[4]: Duplicate value: 80']);
  });

  it('format cidr: IPv4 and IPv6 with a prefix that fits, leading zeros tolerated as the server tolerates them', () => {
    const cidr: JsonSchemaProps = { type: 'string', format: 'cidr' };
    for (const good of ['10.0.0.0/8', '10.1.2.3/32', '0.0.0.0/0', '010.0.0.0/8', '10.0.0.0/08', '::/0', 'fd00::/8', '2001:db8::1/128', '::ffff:10.0.0.0/104']) {
      assert.deepEqual(errorsOf(cidr, good), [], good);
    }
    for (const bad of ['10.0.0.0/33', '10.0.0.0', '10.0.0/8', '256.0.0.0/8', '10.0.0.0/-1', '10.0.0.0/', 'fd00::/129', 'fe80::1%eth0/64', 'example.com/8', '/8']) {
      assert.deepEqual(errorsOf(cidr, bad), [`spec.field: Invalid value: ${JSON.stringify(bad)}: spec.field in body must be of type cidr: ${JSON.stringify(bad)}`], bad);
    }
    // The type check hands strings and arrays to the format, which looks at strings only; other values are named
    // by the format of their Go type.
    assert.deepEqual(errorsOf(cidr, 8), ['spec.field: Invalid value: "int64": spec.field in body must be of type cidr: "int64"']);
    assert.deepEqual(errorsOf(cidr, ['10.0.0.0/33']), []);
  });

  it('refuses to guess a format the server checks and this does not; ignores one the server strips', () => {
    assert.throws(() => errorsOf({ type: 'string', format: 'email' }, 'x'), /does not implement format email/);
    assert.deepEqual(errorsOf({ type: 'integer', format: 'int32' }, 5), []);
  });

  it('words values as Go prints them: quoted with Go escapes, maps with sorted keys', () => {
    const enumOf: JsonSchemaProps = { type: 'string', enum: ['a'] };
    assert.deepEqual(errorsOf(enumOf, 'tab\there\u00a0é'), ['spec.field: Unsupported value: "tab\\there\\u00a0é": supported values: "a"']);
    const anyObject: JsonSchemaProps = { type: 'object', 'x-kubernetes-preserve-unknown-fields': true, enum: [{}] };
    assert.deepEqual(errorsOf(anyObject, { b: 1, a: ['x'] }), ['spec.field: Unsupported value: map[string]interface {}{"a":[]interface {}{"x"}, "b":1}: supported values: "{}"']);
    assert.deepEqual(errorsOf(anyObject, {}), []);
  });
});

describe('structuralProblems', () => {
  it('finds none in the schema the recorded server accepted', () => {
    assert.deepEqual(structuralProblems(labSchema), []);
  });

  it('names each way a schema is not structural', () => {
    assert.deepEqual(structuralProblems({ type: 'object', properties: { a: {}, b: { type: 'array' }, c: { type: 'object', properties: { x: { type: 'string' } }, additionalProperties: { type: 'string' } } } }), [
      'openAPIV3Schema.properties[a].type: Required value: must not be empty for specified object fields',
      'openAPIV3Schema.properties[b].items: Required value: must be specified',
      'openAPIV3Schema.properties[c].additionalProperties: Forbidden: additionalProperties and properties are mutual exclusive',
    ]);
    assert.deepEqual(structuralProblems({ type: 'array', items: { type: 'string' } }), ['openAPIV3Schema.type: Invalid value: "array": must be object at the root']);
    assert.deepEqual(structuralProblems({ type: 'object', properties: { s: { type: 'array', 'x-kubernetes-list-type': 'set', items: { type: 'object' } } } }), [
      'openAPIV3Schema.properties[s].items[x-kubernetes-map-type]: Invalid value: must be atomic as item of a list with x-kubernetes-list-type=set',
    ]);
    assert.deepEqual(structuralProblems({ type: 'object', properties: { a: { type: 'string' } }, anyOf: [{ type: 'object', properties: { b: { pattern: '^x' } } }] }), [
      'openAPIV3Schema.anyOf[0].type: Forbidden: must be empty to be structural',
      'openAPIV3Schema.anyOf[0].properties[b]: Forbidden: must have a counterpart in the outer schema',
    ]);
    assert.deepEqual(structuralProblems({ type: 'object', properties: { metadata: { type: 'object', properties: { labels: { type: 'object', additionalProperties: { type: 'string' } } } } } }), [
      'openAPIV3Schema.properties[metadata]: Forbidden: must not specify anything other than name and generateName, but metadata is implicitly specified',
    ]);
    assert.deepEqual(structuralProblems({ type: 'object', properties: { a: { type: 'string', pattern: '(' } } }).length, 1);
  });
});
