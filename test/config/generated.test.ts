// The JSON Schema and the docs page are generated from the declarations; these keep them current and true.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { listOptions } from '../../src/config/declare.js';
import { configOptions } from '../../src/config/options.js';
import { configFlags, renderConfigDocs, renderJsonSchema } from '../../src/config/render.js';
import { LAYER_SETTINGS_ENV } from '../../src/protocol/contracts.js';

const repositoryRoot = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

test('docs/config.md and schema/remocal.schema.json are current (generator in check mode)', () => {
  const result = spawnSync(process.execPath, ['--import', 'tsx', 'src/config/generate.ts', '--check'], { cwd: repositoryRoot, encoding: 'utf8' });
  assert.equal(result.status, 0, `the generator reports stale files; run node --import tsx src/config/generate.ts\n${result.stderr}`);
});

// A small validator for the keywords the generated schema uses; enough to check that the schema accepts what
// remocal accepts and rejects what it rejects, structurally.
interface Schema {
  type?: string;
  enum?: unknown[];
  const?: unknown;
  anyOf?: Schema[];
  properties?: Record<string, Schema>;
  additionalProperties?: Schema | boolean;
  items?: Schema | Schema[];
  minItems?: number;
  maxItems?: number;
  minimum?: number;
  maximum?: number;
  minLength?: number;
}

function validate(schema: Schema, value: unknown, path = '$'): string[] {
  if (schema.anyOf) {
    // Report the errors of the branch of the value's own type (an object's, not a boolean's).
    const valueType = Array.isArray(value) ? 'array' : typeof value;
    const typesOf = (branch: Schema): string[] => (branch.type !== undefined ? [branch.type === 'integer' ? 'number' : branch.type] : (branch.anyOf ?? []).flatMap(typesOf));
    const sameType = schema.anyOf.filter((branch) => typesOf(branch).length === 0 || typesOf(branch).includes(valueType));
    const attempts = (sameType.length > 0 ? sameType : schema.anyOf).map((branch) => validate(branch, value, path));
    return attempts.some((errors) => errors.length === 0) ? [] : attempts.reduce((fewest, errors) => (errors.length < fewest.length ? errors : fewest));
  }
  if (schema.enum && !schema.enum.includes(value)) return [`${path}: not one of ${JSON.stringify(schema.enum)}`];
  if ('const' in schema && schema.const !== value) return [`${path}: not ${JSON.stringify(schema.const)}`];
  const type = Array.isArray(value) ? 'array' : value === null ? 'null' : typeof value;
  switch (schema.type) {
    case undefined:
      return [];
    case 'integer':
      if (!Number.isInteger(value)) return [`${path}: not an integer`];
      break;
    default:
      if (schema.type !== type) return [`${path}: not ${schema.type}`];
  }
  const errors: string[] = [];
  if (typeof value === 'number') {
    if (schema.minimum !== undefined && value < schema.minimum) errors.push(`${path}: below ${schema.minimum}`);
    if (schema.maximum !== undefined && value > schema.maximum) errors.push(`${path}: above ${schema.maximum}`);
  }
  if (typeof value === 'string' && schema.minLength !== undefined && value.length < schema.minLength) errors.push(`${path}: too short`);
  if (Array.isArray(value)) {
    if (schema.minItems !== undefined && value.length < schema.minItems) errors.push(`${path}: too few items`);
    if (schema.maxItems !== undefined && value.length > schema.maxItems) errors.push(`${path}: too many items`);
    value.forEach((item, index) => {
      const itemSchema = Array.isArray(schema.items) ? schema.items[index] : schema.items;
      if (itemSchema !== undefined) errors.push(...validate(itemSchema, item, `${path}[${index}]`));
    });
  }
  if (type === 'object') {
    for (const [key, item] of Object.entries(value as Record<string, unknown>)) {
      const propertySchema = schema.properties?.[key];
      if (propertySchema !== undefined) errors.push(...validate(propertySchema, item, `${path}.${key}`));
      else if (schema.additionalProperties === false) errors.push(`${path}: unknown key ${key}`);
      else if (typeof schema.additionalProperties === 'object') errors.push(...validate(schema.additionalProperties, item, `${path}.${key}`));
    }
  }
  return errors;
}

const sample = {
  $schema: '../schema/remocal.schema.json',
  target: { path: 'deployment/api/container/app', namespace: 'staging' },
  agent: { log_level: 'debug', startup_timeout: 120, labels: { team: 'payments' }, tolerations: [{ operator: 'Exists' }], json_log: true },
  feature: {
    env: { include: 'DATABASE_*;PUBLIC_ENV', override: { REGION: 'eu-1' } },
    fs: { mode: 'write', read_only: ['^/etc/app/'] },
    network: {
      incoming: { mode: 'steal', http_filter: { header_filter: '^x-session: alice$', ports: [8080] }, port_mapping: [[9333, 80]] },
      outgoing: { filter: { local: [':53', '10.0.0.0/8'] }, ignore_localhost: false },
      dns: false,
    },
    copy_target: { scale_down: true },
  },
  layer: { log_level: 'debug' },
};

test('the JSON Schema accepts a full sample config and rejects unknown keys and bad values', () => {
  const schema = renderJsonSchema() as unknown as Schema & { $schema: string; title: string };
  assert.equal(schema.$schema, 'http://json-schema.org/draft-07/schema#');
  assert.deepEqual(validate(schema, sample), []);
  assert.deepEqual(validate(schema, { target: 'pod/web', feature: { fs: 'read', network: { incoming: 'steal', outgoing: false } } }), []);
  assert.deepEqual(validate(schema, { feature: { network: { incomng: 'steal' } } }), ['$.feature.network: unknown key incomng']);
  assert.deepEqual(validate(schema, { feature: { network: { incoming: { mode: 'stael' } } } }), ['$.feature.network.incoming.mode: not one of ["mirror","steal","off"]']);
  assert.deepEqual(validate(schema, { agent: { startup_timeout: 'soon' } }), ['$.agent.startup_timeout: not an integer']);
});

test('the JSON Schema describes every option with its env var and its default', () => {
  const schema = renderJsonSchema() as unknown as Schema;
  for (const entry of listOptions(configOptions)) {
    let node: Schema & { description?: string; default?: unknown } = schema;
    for (const key of entry.keys) {
      const objectForm = node.anyOf?.find((branch) => branch.type === 'object' && branch.properties !== undefined) ?? node;
      node = objectForm.properties![key]!;
      assert.ok(node, `${entry.path} is missing from the schema`);
    }
    assert.ok(node.description?.includes(`Env: ${entry.envName}.`), `${entry.path} has no env var in its description`);
    if (entry.decl.default !== undefined) assert.deepEqual(node.default, entry.decl.default, `${entry.path} default`);
  }
});

test('the docs page lists every option with its env var and its default', () => {
  const docs = renderConfigDocs();
  for (const entry of listOptions(configOptions)) {
    const heading = docs.indexOf(` \`${entry.path}\`\n`);
    assert.ok(heading >= 0, `${entry.path} has no section`);
    const section = docs.slice(heading, docs.indexOf('\n#', heading + 1));
    assert.ok(section.includes(`\`${entry.envName}\``), `${entry.path} does not show ${entry.envName}`);
    const shownDefault = entry.decl.default !== undefined ? `\`${JSON.stringify(entry.decl.default)}\`` : (entry.decl.docsDefault ?? 'not set');
    assert.ok(section.includes(shownDefault.replace(/\|/g, '\\|')), `${entry.path} does not show its default ${shownDefault}`);
  }
  assert.match(docs, /\| `feature\.db_branches` \|/);
  assert.match(docs, / `feature\.split_queues`\n/);
  assert.match(docs, / `feature\.copy_target\.scale_down`\n/);
  assert.match(docs, /\| `-t, --target <TARGET>` \|/);
});

test('env var names are unique and do not collide with the layer settings variable', () => {
  const names = listOptions(configOptions).map((entry) => entry.envName);
  assert.equal(new Set(names).size, names.length);
  assert.ok(!names.includes(LAYER_SETTINGS_ENV));
  assert.ok(names.every((name) => /^REMOCAL_[A-Z0-9_]+$/.test(name)));
  assert.ok(names.includes('REMOCAL_TARGET'));
  assert.ok(names.includes('REMOCAL_FEATURE_NETWORK_INCOMING_MODE'));
});

test('configFlags lists the flags the CLI registers, keyed as commander names them', () => {
  assert.deepEqual(
    configFlags().map(({ usage, attribute, path }) => ({ usage, attribute, path })),
    [
      { usage: '-t, --target <TARGET>', attribute: 'target', path: 'target.path' },
      { usage: '-n, --namespace <NAMESPACE>', attribute: 'namespace', path: 'target.namespace' },
      { usage: '--kubeconfig <FILE>', attribute: 'kubeconfig', path: 'kubeconfig' },
      { usage: '--context <CONTEXT>', attribute: 'context', path: 'kube_context' },
      { usage: '--operator <true|false|auto>', attribute: 'operator', path: 'operator' },
      { usage: '--operator-url <URL>', attribute: 'operatorUrl', path: 'local_operator.url' },
      { usage: '--fs-mode <MODE>', attribute: 'fsMode', path: 'feature.fs.mode' },
      { usage: '--steal', attribute: 'steal', path: 'feature.network.incoming.mode' },
    ],
  );
});
