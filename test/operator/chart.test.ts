// charts/remocal-operator without Helm (not installed here): its values parse, and its templates and crds/ name the
// same objects and RBAC rules as operatorInstallObjects, so that the chart and `remocal operator setup` stay in step.

import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { describe, it } from 'node:test';
import { parse as parseYaml } from 'yaml';
import { operatorInstallObjects, policyCrdsYaml, splitConfigCrdYaml } from '../../src/operator/install.js';

const chart = new URL('../../charts/remocal-operator/', import.meta.url);
const templates = readdirSync(new URL('templates/', chart)).filter((name) => name.endsWith('.yaml'));
const read = (name: string) => readFileSync(new URL(`templates/${name}`, chart), 'utf8');
// Helm's convention: CRDs in crds/, plain YAML it installs before the templates (and never templates).
const crdFiles = readdirSync(new URL('crds/', chart)).filter((name) => name.endsWith('.yaml'));
const readCrds = (name: string) => readFileSync(new URL(`crds/${name}`, chart), 'utf8');
const certificate = { caCert: 'ca', cert: 'cert', key: 'key' };
const objects = operatorInstallObjects({ image: 'x', certificate }) as unknown as { kind: string; metadata: { name: string }; rules?: unknown }[];

/** `kind: X` and `name: Y` of each document of a template, read from its lines (Go templates are not YAML). */
function documents(text: string): { kind: string; name: string }[] {
  return text.split(/^---$/m).flatMap((part) => {
    const kind = /^kind: (\S+)$/m.exec(part)?.[1];
    const name = /^ {2}name: (.+)$/m.exec(part)?.[1];
    return kind === undefined ? [] : [{ kind, name: name ?? '' }];
  });
}

describe('charts/remocal-operator', () => {
  it('Chart.yaml and values.yaml parse, with the certificate values the templates use', () => {
    const meta = parseYaml(readFileSync(new URL('Chart.yaml', chart), 'utf8')) as Record<string, unknown>;
    assert.equal(meta.apiVersion, 'v2');
    assert.equal(meta.name, 'remocal-operator');
    const version = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;
    assert.equal(meta.appVersion, version);
    const values = parseYaml(readFileSync(new URL('values.yaml', chart), 'utf8')) as Record<string, any>;
    assert.equal(values.namespace, 'remocal-system');
    assert.equal(values.image, `remocal/operator:${version}`);
    assert.equal(values.replicas, 1);
    assert.deepEqual(values.tls, { crt: '', key: '' });
    assert.deepEqual(values.ca, { crt: '' });
    for (const used of ['.Values.tls.crt', '.Values.tls.key', '.Values.ca.crt']) assert.ok(templates.some((name) => read(name).includes(used)), used);
  });

  it('the templates and crds/ render the same kinds and names as operatorInstallObjects', () => {
    const inChart = [...templates.map(read), ...crdFiles.map(readCrds)].flatMap((text) => documents(text)).map((doc) => `${doc.kind}/${doc.name}`);
    // The namespace's name is a value in the chart.
    const expected = objects.map((object) => `${object.kind}/${object.kind === 'Namespace' ? '{{ .Values.namespace }}' : object.metadata.name}`);
    assert.deepEqual(inChart.sort(), expected.sort());
  });

  it('crds/ holds the CRDs exactly as `remocal operator setup --crds` prints them', () => {
    assert.deepEqual(crdFiles, ['remocal-policies.yaml', 'remocal-splitconfigs.yaml']);
    assert.equal(readCrds('remocal-splitconfigs.yaml'), splitConfigCrdYaml(), 'crds/remocal-splitconfigs.yaml is stale: regenerate it from splitConfigCrdYaml()');
    // When the schema changes: remocal operator setup --crds > charts/remocal-operator/crds/remocal-policies.yaml
    assert.equal(readCrds('remocal-policies.yaml'), policyCrdsYaml(), 'crds/remocal-policies.yaml is stale: regenerate it with `remocal operator setup --crds`');
    assert.ok(!readCrds('remocal-policies.yaml').includes('{{'), 'Helm does not template crds/');
  });

  it('the ClusterRoles hold the same rules', () => {
    const rbac = read('rbac.yaml').split(/^---$/m);
    for (const name of ['remocal-operator', 'remocal-user', 'remocal-policy-admin', 'remocal-split-admin', 'remocal-operator-split-secrets']) {
      const part = rbac.find((doc) => doc.includes('kind: ClusterRole\n') && doc.includes(`  name: ${name}\n`));
      assert.ok(part !== undefined, name);
      const rules = parseYaml(part.slice(part.indexOf('rules:'))) as { rules: unknown };
      assert.deepEqual(rules.rules, objects.find((object) => object.kind === 'ClusterRole' && object.metadata.name === name)!.rules, name);
    }
  });
});
