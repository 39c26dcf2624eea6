// Which policies the operator hands a session (select.ts), and how local mode reads its policy directory
// (local-source.ts): a file that is not valid stops the start, and later keeps the policies it had.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { createLogger } from '../../src/core/log.js';
import { LocalPolicySource } from '../../src/operator/policies/local-source.js';
import { applicablePolicies, selectorMatches, targetPathMatches, type StoredPolicy } from '../../src/operator/policies/select.js';
import { PolicyStore } from '../../src/operator/policies/store.js';
import { waitFor } from '../helpers/processes.js';

const scope = { namespace: 'shop', names: ['deployment/orders', 'pod/orders-6497447b6f-2d76r', 'pod/orders-6497447b6f-2d76r/container/app', 'replicaset/orders-6497447b6f'], labels: { app: 'orders', tier: 'api' }, copy: false };

function stored(name: string, spec: StoredPolicy['spec'], namespace: string | null = 'shop'): StoredPolicy {
  return { kind: namespace === null ? 'RemocalClusterPolicy' : 'RemocalPolicy', namespace, name, spec };
}

describe('which policies apply to a session', () => {
  it('a RemocalPolicy to its own namespace, a RemocalClusterPolicy to all', () => {
    const policies = [stored('here', {}), stored('there', {}, 'billing'), stored('everywhere', {}, null)];
    assert.deepEqual(applicablePolicies(policies, scope).map((policy) => policy.name), ['shop/here', 'everywhere']);
  });

  it('targetPath against every name of the target, and a path without a container covers its containers', () => {
    assert.equal(targetPathMatches('deployment/orders', 'deployment/orders/container/app'), true);
    assert.equal(targetPathMatches('deployment/orders-*', 'deployment/orders-v2'), true);
    assert.equal(targetPathMatches('deployment/orders', 'deployment/orders-v2'), false);
    const policies = [stored('by-pod', { targetPath: 'pod/orders-*' }), stored('by-workload', { targetPath: 'deployment/orders' }), stored('other', { targetPath: 'deployment/payments' })];
    assert.deepEqual(applicablePolicies(policies, { ...scope, names: ['pod/orders-6497447b6f-2d76r', 'deployment/orders'] }).map((policy) => policy.name), ['shop/by-pod', 'shop/by-workload']);
  });

  it('selectors with Kubernetes semantics', () => {
    const labels = { app: 'orders', tier: 'api' };
    assert.equal(selectorMatches({ matchLabels: { app: 'orders' } }, labels), true);
    assert.equal(selectorMatches({ matchLabels: { app: 'orders', tier: 'web' } }, labels), false);
    assert.equal(selectorMatches({ matchExpressions: [{ key: 'tier', operator: 'In', values: ['api', 'web'] }] }, labels), true);
    assert.equal(selectorMatches({ matchExpressions: [{ key: 'tier', operator: 'NotIn', values: ['api'] }] }, labels), false);
    assert.equal(selectorMatches({ matchExpressions: [{ key: 'canary', operator: 'NotIn', values: ['true'] }] }, labels), true);
    assert.equal(selectorMatches({ matchExpressions: [{ key: 'app', operator: 'Exists' }] }, labels), true);
    assert.equal(selectorMatches({ matchExpressions: [{ key: 'app', operator: 'DoesNotExist' }] }, labels), false);
    // A target on a host has no labels: a selector that asks for one does not apply to it.
    assert.equal(selectorMatches({ matchLabels: { app: 'orders' } }, {}), false);
  });

  it('copies of targets only where the policy says so', () => {
    const policies = [stored('originals', {}), stored('copies-too', { appliesToCopyTargets: true })];
    assert.deepEqual(applicablePolicies(policies, { ...scope, copy: true }).map((policy) => policy.name), ['shop/copies-too']);
  });
});

describe('local mode\'s policy directory', () => {
  const dirs: string[] = [];
  after(() => dirs.forEach((dir) => rmSync(dir, { recursive: true, force: true })));
  const log = createLogger('operator', { level: 'silent' });
  const policyFile = (name: string, spec: unknown) => JSON.stringify({ apiVersion: 'policies.remocal.dev/v1alpha1', kind: 'RemocalPolicy', metadata: { name }, spec });

  it('reads every document of every file, in the local namespace unless one is given', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'remocal-policies-'));
    dirs.push(dir);
    writeFileSync(join(dir, 'a.yaml'), `${policyFile('one', { block: ['steal'] })}\n---\n${policyFile('two', { block: ['mirror'] })}\n`);
    writeFileSync(join(dir, 'b.json'), JSON.stringify({ apiVersion: 'policies.remocal.dev/v1alpha1', kind: 'RemocalClusterPolicy', metadata: { name: 'all' }, spec: { unknownField: 1, env: { exclude: ['X'] } } }));
    writeFileSync(join(dir, 'notes.txt'), 'not a policy');
    const store = new PolicyStore();
    const source = new LocalPolicySource(dir, 50, log);
    await source.start(store);
    source.close();
    assert.deepEqual(store.current().map((policy) => `${policy.kind} ${policy.namespace}/${policy.name}`), ['RemocalClusterPolicy null/all', 'RemocalPolicy local/one', 'RemocalPolicy local/two']);
    assert.deepEqual(store.current()[0]!.spec, { env: { exclude: ['X'] } }, 'unknown fields are pruned, as the API server prunes them');
  });

  it('an invalid policy stops the start, naming the file and what is wrong', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'remocal-policies-'));
    dirs.push(dir);
    writeFileSync(join(dir, 'bad.yaml'), policyFile('bad', { block: ['steal', 'teleport'], fs: { readOnly: ['('] } }));
    const source = new LocalPolicySource(dir, 50, log);
    await assert.rejects(source.start(new PolicyStore()), (error: Error & { code?: string }) => {
      assert.equal(error.code, 'REMOCAL_CONFIG_INVALID');
      assert.match(error.message, /bad\.yaml: RemocalPolicy "bad" is invalid: spec\.block: Unsupported value: "teleport": supported values: "steal"/);
      return true;
    });
    writeFileSync(join(dir, 'bad.yaml'), policyFile('bad', { fs: { readOnly: ['('] } }));
    await assert.rejects(new LocalPolicySource(dir, 50, log).start(new PolicyStore()), /spec\.fs\.readOnly\[0\]: Invalid value: "\(": not a regular expression/);
  });

  it('a file broken after the start keeps its previous policies until it is mended; a removed file takes its own', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'remocal-policies-'));
    dirs.push(dir);
    const file = join(dir, 'p.yaml');
    writeFileSync(file, policyFile('p', { block: ['steal'] }));
    const store = new PolicyStore();
    let changes = 0;
    store.onChange(() => changes++);
    const source = new LocalPolicySource(dir, 20, log);
    await source.start(store);
    try {
      writeFileSync(file, 'apiVersion: [');
      // The modification time must change for the reload to read the file again.
      utimesSync(file, new Date(), new Date(Date.now() + 5000));
      const seen = changes;
      writeFileSync(join(dir, 'q.yaml'), policyFile('q', { block: ['mirror'] }));
      await waitFor(() => store.current().length === 2 || undefined, 'the new file to load');
      assert.deepEqual(store.current().map((policy) => policy.name), ['p', 'q'], 'p keeps its policy while its file is broken');
      assert.equal(changes, seen + 1);
      rmSync(file);
      await waitFor(() => store.current().length === 1 || undefined, 'the removed file\'s policy to go');
      assert.deepEqual(store.current().map((policy) => policy.name), ['q']);
    } finally {
      source.close();
    }
  });
});
