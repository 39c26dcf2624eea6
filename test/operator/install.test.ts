// The cluster install: every object the recorded server's OpenAPI document knows is valid against it, the
// certificate is one the aggregator accepts, and the pieces name each other (selector, roles, caBundle).

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { describe, it, before } from 'node:test';
import { parse as parseYaml, parseAllDocuments } from 'yaml';
import { clusterOperatorConfig, installYaml, operatorInstallObjects, operatorServiceNames, policyCrdsYaml, splitConfigCrdYaml } from '../../src/operator/install.js';
import { splitConfigCrd } from '../../src/operator/split-config-crd.js';
import { policyCrds } from '../../src/operator/policy-crd.js';
import { operatorConfigSchema } from '../../src/operator/config.js';
import { issueWithThrowawayCa, type IssuedCertificate } from '../../src/operator/tls.js';
import { validateAgainstOpenApi } from '../helpers/openapi.js';
import { cliPath, repoRoot } from '../helpers/remocal.js';

const definitionOf: Record<string, string> = {
  Namespace: 'io.k8s.api.core.v1.Namespace',
  ServiceAccount: 'io.k8s.api.core.v1.ServiceAccount',
  ClusterRole: 'io.k8s.api.rbac.v1.ClusterRole',
  ClusterRoleBinding: 'io.k8s.api.rbac.v1.ClusterRoleBinding',
  RoleBinding: 'io.k8s.api.rbac.v1.RoleBinding',
  Secret: 'io.k8s.api.core.v1.Secret',
  ConfigMap: 'io.k8s.api.core.v1.ConfigMap',
  Deployment: 'io.k8s.api.apps.v1.Deployment',
  Service: 'io.k8s.api.core.v1.Service',
  // The recorded document has the aggregator's definitions too, so the APIService is checked like the rest.
  APIService: 'io.k8s.kube-aggregator.pkg.apis.apiregistration.v1.APIService',
  CustomResourceDefinition: 'io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.CustomResourceDefinition',
};

type Obj = { apiVersion: string; kind: string; metadata: { name: string; namespace?: string; labels: Record<string, string> } } & Record<string, any>;

function find(objects: Obj[], kind: string, name?: string): Obj {
  const found = objects.filter((object) => object.kind === kind && (name === undefined || object.metadata.name === name));
  assert.equal(found.length, 1, `one ${kind}${name === undefined ? '' : ` ${name}`}`);
  return found[0]!;
}

describe('operatorInstallObjects', () => {
  let certificate: IssuedCertificate;
  let objects: Obj[];
  before(() => {
    certificate = issueWithThrowawayCa(operatorServiceNames('team-ops'));
    objects = operatorInstallObjects({ namespace: 'team-ops', image: 'registry.example/remocal/operator:9.9.9', certificate }) as unknown as Obj[];
  });

  it('every object is valid for the recorded server, strictly, and carries the install labels', () => {
    assert.deepEqual(objects.map((object) => object.kind), ['CustomResourceDefinition', 'CustomResourceDefinition', 'CustomResourceDefinition', 'Namespace', 'ServiceAccount', 'ClusterRole', 'ClusterRoleBinding', 'ClusterRoleBinding', 'RoleBinding', 'Secret', 'ConfigMap', 'Deployment', 'Service', 'APIService', 'ClusterRole', 'ClusterRole', 'ClusterRole', 'ClusterRole']);
    for (const object of objects) {
      const definition = definitionOf[object.kind];
      assert.ok(definition !== undefined, `a definition for ${object.kind}`);
      assert.deepEqual(validateAgainstOpenApi(object, definition), [], `${object.kind} ${object.metadata.name}`);
      assert.equal(object.metadata.labels['app.kubernetes.io/name'], 'remocal-operator');
      assert.equal(object.metadata.labels['app.kubernetes.io/managed-by'], 'remocal');
    }
  });

  it('the serving certificate names <service>.<namespace>.svc, and the caBundle verifies it', () => {
    const secret = find(objects, 'Secret');
    assert.equal(secret.type, 'kubernetes.io/tls');
    const served = new X509Certificate(Buffer.from(secret.data['tls.crt'], 'base64'));
    assert.equal(served.subjectAltName, 'DNS:remocal-operator.team-ops.svc, DNS:remocal-operator.team-ops.svc.cluster.local');
    assert.equal(served.checkHost('remocal-operator.team-ops.svc'), 'remocal-operator.team-ops.svc');
    assert.equal(served.checkHost('remocal-operator.remocal-system.svc'), undefined);
    assert.ok(served.checkPrivateKey(createPrivateKey(Buffer.from(secret.data['tls.key'], 'base64'))), 'tls.key is the certificate\'s key');
    const ca = new X509Certificate(Buffer.from(find(objects, 'APIService').spec.caBundle, 'base64'));
    assert.ok(ca.ca);
    assert.ok(served.verify(ca.publicKey), 'the caBundle signed the serving certificate');
    assert.equal(served.checkIssued(ca), true);
    // The CA in the Secret is the one in the APIService.
    assert.equal(Buffer.from(secret.data['ca.crt'], 'base64').toString('utf8'), certificate.caCert);
    // openssl reads the same SAN (what an admin would run to check).
    const openssl = spawnSync('openssl', ['x509', '-noout', '-ext', 'subjectAltName'], { input: certificate.cert, encoding: 'utf8' });
    assert.equal(openssl.status, 0, openssl.stderr);
    assert.match(openssl.stdout, /DNS:remocal-operator\.team-ops\.svc, DNS:remocal-operator\.team-ops\.svc\.cluster\.local/);
  });

  it('the Service selects the Deployment\'s pods on the serving port', () => {
    const deployment = find(objects, 'Deployment');
    const service = find(objects, 'Service');
    const podLabels = deployment.spec.template.metadata.labels as Record<string, string>;
    assert.ok(Object.keys(service.spec.selector).length > 0);
    for (const [key, value] of Object.entries(service.spec.selector as Record<string, string>)) assert.equal(podLabels[key], value, key);
    assert.deepEqual(deployment.spec.selector.matchLabels, podLabels);
    const container = deployment.spec.template.spec.containers[0];
    assert.deepEqual(service.spec.ports, [{ name: 'https', port: 443, targetPort: 'https', protocol: 'TCP' }]);
    assert.deepEqual(container.ports, [{ name: 'https', containerPort: 8443, protocol: 'TCP' }]);
    assert.equal(container.image, 'registry.example/remocal/operator:9.9.9');
    assert.deepEqual(container.command, ['remocal', 'operator', 'serve', '--config', '/etc/remocal/operator.yaml']);
    assert.equal(container.readinessProbe.httpGet.scheme, 'HTTPS');
    assert.equal(deployment.spec.template.spec.serviceAccountName, 'remocal-operator');
    assert.equal(deployment.spec.replicas, 1);
    const volumes = deployment.spec.template.spec.volumes as { name: string; secret?: { secretName: string }; configMap?: { name: string } }[];
    assert.equal(volumes.find((volume) => volume.name === 'tls')?.secret?.secretName, find(objects, 'Secret').metadata.name);
    assert.equal(volumes.find((volume) => volume.name === 'config')?.configMap?.name, find(objects, 'ConfigMap').metadata.name);
  });

  it('the ConfigMap holds a config whose keys are the operator\'s own, pointing at the mounted certificate', () => {
    const config = parseYaml(find(objects, 'ConfigMap').data['operator.yaml'] as string) as Record<string, unknown>;
    assert.deepEqual(config, clusterOperatorConfig());
    assert.equal(config.mode, 'kubernetes');
    const parsed = operatorConfigSchema.safeParse(config);
    assert.ok(parsed.success, JSON.stringify(parsed.error?.issues));
    assert.equal(parsed.data.listen.port, 8443);
    const mounts = find(objects, 'Deployment').spec.template.spec.containers[0].volumeMounts as { name: string; mountPath: string }[];
    const tlsMount = mounts.find((mount) => mount.name === 'tls')!.mountPath;
    assert.equal(parsed.data.tls.cert_file, `${tlsMount}/tls.crt`);
    assert.equal(parsed.data.tls.key_file, `${tlsMount}/tls.key`);
  });

  it('the RBAC bindings name the right roles and the operator\'s ServiceAccount', () => {
    const subject = [{ kind: 'ServiceAccount', name: 'remocal-operator', namespace: 'team-ops' }];
    assert.equal(find(objects, 'ServiceAccount').metadata.namespace, 'team-ops');
    const bindings = objects.filter((object) => object.kind === 'ClusterRoleBinding');
    assert.deepEqual(bindings.map((binding) => binding.roleRef), [
      { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'remocal-operator' },
      { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'system:auth-delegator' },
    ]);
    for (const binding of bindings) assert.deepEqual(binding.subjects, subject);
    const reader = find(objects, 'RoleBinding');
    assert.equal(reader.metadata.namespace, 'kube-system');
    assert.deepEqual(reader.roleRef, { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'extension-apiserver-authentication-reader' });
    assert.deepEqual(reader.subjects, subject);
    // Same roleRefs as the bindings recorded on the real server (whose ServiceAccount was named `operator`).
    const recorded = (name: string) => JSON.parse(readFileSync(new URL(`../fixtures/k8s/operator/${name}.request.json`, import.meta.url), 'utf8')) as { roleRef: unknown; metadata: { namespace?: string } };
    assert.deepEqual(bindings[1]!.roleRef, recorded('operator-auth-delegator-binding-create').roleRef);
    assert.deepEqual(reader.roleRef, recorded('operator-authentication-reader-binding-create').roleRef);
    assert.equal(reader.metadata.namespace, recorded('operator-authentication-reader-binding-create').metadata.namespace);
  });

  it('the operator may do what it does, and nothing with secrets', () => {
    const rules = find(objects, 'ClusterRole', 'remocal-operator').rules as { apiGroups: string[]; resources: string[]; verbs: string[] }[];
    const allows = (group: string, resource: string, verb: string) => rules.some((rule) => rule.apiGroups.includes(group) && rule.resources.includes(resource) && rule.verbs.includes(verb));
    for (const [group, resource, verb] of [
      ['', 'pods', 'watch'], ['', 'pods/ephemeralcontainers', 'patch'], ['', 'pods/portforward', 'create'], ['batch', 'jobs', 'create'], ['batch', 'jobs', 'delete'],
      ['apps', 'deployments', 'get'], ['apps', 'statefulsets', 'list'], ['apps', 'replicasets', 'list'], ['batch', 'cronjobs', 'get'], ['', 'services', 'get'],
      ['argoproj.io', 'rollouts', 'list'], ['', 'events', 'list'], ['authorization.k8s.io', 'subjectaccessreviews', 'create'],
      ['policies.remocal.dev', 'remocalpolicies', 'watch'], ['policies.remocal.dev', 'remocalclusterpolicies', 'watch'],
      // Copy targets: the copy pods, the scale subresource, and the scale-down annotation.
      ['', 'pods', 'create'], ['', 'pods', 'delete'], ['apps', 'deployments/scale', 'update'], ['apps', 'statefulsets/scale', 'get'], ['argoproj.io', 'rollouts/scale', 'update'],
      ['apps', 'deployments', 'patch'], ['argoproj.io', 'rollouts', 'patch'],
    ] as const) assert.ok(allows(group, resource, verb), `${verb} ${group}/${resource}`);
    assert.ok(!rules.some((rule) => rule.resources.includes('secrets') || rule.verbs.includes('*') || rule.resources.includes('*')));
    // It reads policies and never writes them: they are the admins' word.
    for (const verb of ['create', 'update', 'patch', 'delete']) assert.ok(!allows('policies.remocal.dev', 'remocalpolicies', verb), verb);
  });

  it('the policy CRDs are the ones of policy-crd.ts, labelled, and their names are <plural>.<group>', () => {
    const crds = objects.filter((object) => object.kind === 'CustomResourceDefinition' && object.spec.group === 'policies.remocal.dev');
    assert.deepEqual(crds.map((crd) => crd.metadata.name), ['remocalpolicies.policies.remocal.dev', 'remocalclusterpolicies.policies.remocal.dev']);
    assert.deepEqual(crds.map(({ metadata: { labels: _labels, ...rest }, ...crd }) => ({ ...crd, metadata: rest })), policyCrds());
    for (const crd of crds) assert.equal(crd.metadata.name, `${crd.spec.names.plural}.${crd.spec.group}`);
    // The recorded CRDs were accepted by the real server with the same names, scopes and version.
    for (const [index, file] of ['crd-remocalpolicies-create', 'crd-remocalclusterpolicies-create'].entries()) {
      const recorded = JSON.parse(readFileSync(new URL(`../fixtures/k8s/operator/${file}.request.json`, import.meta.url), 'utf8')) as Obj;
      const ours = crds[index]!;
      assert.equal(ours.metadata.name, recorded.metadata.name);
      assert.deepEqual(ours.spec.names, recorded.spec.names);
      assert.equal(ours.spec.scope, recorded.spec.scope);
      const [version] = ours.spec.versions as Record<string, unknown>[];
      const [recordedVersion] = recorded.spec.versions as Record<string, unknown>[];
      assert.deepEqual([version!.name, version!.served, version!.storage], [recordedVersion!.name, recordedVersion!.served, recordedVersion!.storage]);
    }
  });

  it('the split-config CRD is the one of split-config-crd.ts, labelled, and the operator may only read it', () => {
    const crd = objects.find((object) => object.kind === 'CustomResourceDefinition' && object.spec.group === 'queues.remocal.dev')!;
    const { labels: _labels, ...rest } = crd.metadata;
    assert.deepEqual({ ...crd, metadata: rest }, splitConfigCrd());
    assert.equal(crd.metadata.name, `${crd.spec.names.plural}.${crd.spec.group}`);
    const operatorRules = find(objects, 'ClusterRole', 'remocal-operator').rules as { apiGroups: string[]; resources: string[]; verbs: string[] }[];
    assert.deepEqual(operatorRules.filter((rule) => rule.apiGroups.includes('queues.remocal.dev')), [{ apiGroups: ['queues.remocal.dev'], resources: ['remocalsplitconfigs'], verbs: ['get', 'list', 'watch'] }]);
    assert.deepEqual(find(objects, 'ClusterRole', 'remocal-split-admin').rules, [
      { apiGroups: ['queues.remocal.dev'], resources: ['remocalsplitconfigs'], verbs: ['create', 'update', 'patch', 'delete', 'get', 'list', 'watch'] },
    ]);
  });

  it('the broker Secrets: `get` alone, in a role no binding of the install grants', () => {
    assert.deepEqual(find(objects, 'ClusterRole', 'remocal-operator-split-secrets').rules, [{ apiGroups: [''], resources: ['secrets'], verbs: ['get'] }]);
    const bound = objects.filter((object) => object.kind === 'ClusterRoleBinding' || object.kind === 'RoleBinding').map((binding) => binding.roleRef.name);
    assert.ok(!bound.includes('remocal-operator-split-secrets'), 'the platform team binds it per namespace');
    assert.match(installYaml(objects, 'remocal-system'), /kubectl create rolebinding remocal-operator:split-secrets -n shop --clusterrole=remocal-operator-split-secrets --serviceaccount=remocal-system:remocal-operator/);
  });

  it('remocal-policy-admin may write both kinds of policy, and nothing else', () => {
    assert.deepEqual(find(objects, 'ClusterRole', 'remocal-policy-admin').rules, [
      { apiGroups: ['policies.remocal.dev'], resources: ['remocalpolicies', 'remocalclusterpolicies'], verbs: ['create', 'update', 'patch', 'delete', 'get', 'list', 'watch'] },
    ]);
  });

  it('remocal-user allows the aggregated resources a developer uses', () => {
    const role = find(objects, 'ClusterRole', 'remocal-user');
    assert.deepEqual(role.rules, [
      { apiGroups: ['operator.remocal.dev'], resources: ['sessions'], verbs: ['get', 'list', 'delete'] },
      { apiGroups: ['operator.remocal.dev'], resources: ['targets'], verbs: ['get', 'list'] },
      { apiGroups: ['operator.remocal.dev'], resources: ['copytargets'], verbs: ['get', 'list', 'create'] },
      { apiGroups: ['operator.remocal.dev'], resources: ['splitqueues'], verbs: ['list'] },
      { apiGroups: ['operator.remocal.dev'], resources: ['targets/portforward'], verbs: ['get', 'create'] },
      { apiGroups: ['operator.remocal.dev'], resources: ['jobsteps/run'], verbs: ['get'] },
      { apiGroups: ['apiregistration.k8s.io'], resources: ['apiservices'], resourceNames: ['v1.operator.remocal.dev'], verbs: ['get'] },
      { apiGroups: ['policies.remocal.dev'], resources: ['remocalpolicies', 'remocalclusterpolicies'], verbs: ['get', 'list'] },
      { apiGroups: ['queues.remocal.dev'], resources: ['remocalsplitconfigs'], verbs: ['get', 'list'] },
    ]);
  });

  it('the APIService matches the one registered on the real server, but for its namespace and CA', () => {
    const recorded = JSON.parse(readFileSync(new URL('../fixtures/k8s/operator/apiservice-create.request.json', import.meta.url), 'utf8')) as Obj;
    const ours = operatorInstallObjects({ image: 'x', certificate }).find((object) => object.kind === 'APIService') as unknown as Obj;
    assert.equal(ours.apiVersion, recorded.apiVersion);
    assert.equal(ours.metadata.name, recorded.metadata.name);
    const { caBundle, ...spec } = ours.spec as Record<string, unknown>;
    const { caBundle: recordedCa, ...recordedSpec } = recorded.spec as Record<string, unknown>;
    assert.deepEqual(spec, recordedSpec);
    // Both are base64 of a PEM certificate.
    for (const bundle of [caBundle, recordedCa]) assert.match(Buffer.from(bundle as string, 'base64').toString('utf8'), /^-----BEGIN CERTIFICATE-----\n/);
    assert.equal(find(objects, 'APIService').spec.service.namespace, 'team-ops');
  });

  it('installYaml is one parseable stream of those objects, with how to apply and uninstall', () => {
    const text = installYaml(objects, 'team-ops');
    const documents = parseAllDocuments(text);
    assert.ok(Array.isArray(documents));
    assert.deepEqual(documents.map((document) => document.errors), objects.map(() => []));
    assert.deepEqual(documents.map((document) => document.toJS() as unknown), objects);
    assert.match(text, /kubectl apply -f -/);
    assert.ok(text.indexOf('kubectl delete apiservice v1.operator.remocal.dev') < text.indexOf('kubectl delete namespace team-ops'));
    // The CRDs go last: deleting them deletes the policies, which the operator must not see vanish while it runs.
    assert.ok(text.indexOf('kubectl delete namespace team-ops') < text.indexOf('kubectl delete crd -l'));
    // The CRDs share parts of their schema; YAML aliases would stand for them in a plain dump.
    assert.doesNotMatch(text, /^\s*(?:[-\w]+: )?[&*]a\d+/m);
  });
});

describe('remocal operator setup', () => {
  it('prints YAML with every kind of the install, for the namespace asked', () => {
    const result = spawnSync(process.execPath, [cliPath, 'operator', 'setup', '--namespace', 'ops'], { cwd: repoRoot, encoding: 'utf8', timeout: 30_000 });
    assert.equal(result.status, 0, result.stderr);
    const objects = parseAllDocuments(result.stdout).map((document) => document.toJS() as Obj);
    assert.deepEqual([...new Set(objects.map((object) => object.kind))].sort(), Object.keys(definitionOf).sort());
    const version = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;
    assert.equal(find(objects, 'Deployment').spec.template.spec.containers[0].image, `remocal/operator:${version}`);
    assert.equal(find(objects, 'Namespace').metadata.name, 'ops');
    const served = new X509Certificate(Buffer.from(find(objects, 'Secret').data['tls.crt'], 'base64'));
    assert.equal(served.checkHost('remocal-operator.ops.svc'), 'remocal-operator.ops.svc');
  });

  it('--crds prints only the CRDs, the text charts/remocal-operator/crds/ holds', () => {
    const result = spawnSync(process.execPath, [cliPath, 'operator', 'setup', '--crds'], { cwd: repoRoot, encoding: 'utf8', timeout: 30_000 });
    assert.equal(result.status, 0, result.stderr);
    assert.equal(result.stdout, policyCrdsYaml() + splitConfigCrdYaml());
    assert.deepEqual(parseAllDocuments(result.stdout).map((document) => (document.toJS() as Obj).metadata.name), ['remocalpolicies.policies.remocal.dev', 'remocalclusterpolicies.policies.remocal.dev', 'remocalsplitconfigs.queues.remocal.dev']);
  });

  it('--print-certs prints a values file for the chart', () => {
    const result = spawnSync(process.execPath, [cliPath, 'operator', 'setup', '--print-certs'], { cwd: repoRoot, encoding: 'utf8', timeout: 30_000 });
    assert.equal(result.status, 0, result.stderr);
    const values = parseYaml(result.stdout) as { tls: { crt: string; key: string }; ca: { crt: string } };
    const served = new X509Certificate(values.tls.crt);
    assert.ok(served.verify(new X509Certificate(values.ca.crt).publicKey));
    assert.equal(served.checkHost('remocal-operator.remocal-system.svc'), 'remocal-operator.remocal-system.svc');
    assert.match(values.tls.key, /^-----BEGIN PRIVATE KEY-----\n/);
  });

  it('refuses a namespace that is not a DNS label', () => {
    const result = spawnSync(process.execPath, [cliPath, 'operator', 'setup', '--namespace', 'Not_A_Namespace'], { cwd: repoRoot, encoding: 'utf8', timeout: 30_000 });
    assert.notEqual(result.status, 0);
    assert.match(result.stderr, /REMOCAL_USAGE/);
    assert.equal(result.stdout, '');
  });
});
