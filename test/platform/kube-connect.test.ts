// Which cluster configuration connectKube loads. The in-cluster one is what the operator runs with as a
// Deployment: here a pod's environment and service account mount are laid out under a directory of the test's
// own, and the API server is a real TLS server whose certificate only that mount's CA vouches for.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { KubeConfigError } from '../../src/core/errors.js';
import { connectKube } from '../../src/platform/kubernetes/api.js';

const TOKEN = 'service-account-token-of-the-test';

let dir: string;
/** Stands for a pod's file system root: the service account is mounted under it. */
let podRoot: string;
let kubeconfig: string;
let server: Server;
let port: number;
const seen: { path: string | undefined; authorization: string | undefined }[] = [];

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'remocal-kube-connect-'));
  podRoot = join(dir, 'pod');
  const mount = join(podRoot, 'var/run/secrets/kubernetes.io/serviceaccount');
  mkdirSync(mount, { recursive: true });
  execFileSync(
    'openssl',
    [
      'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '2',
      '-subj', '/CN=kubernetes', '-addext', 'subjectAltName=IP:127.0.0.1',
      '-keyout', join(dir, 'key.pem'), '-out', join(mount, 'ca.crt'),
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  writeFileSync(join(mount, 'token'), TOKEN);
  writeFileSync(join(mount, 'namespace'), 'shop');

  // A kubeconfig for another cluster, left in the environment: the in-cluster config must not use it.
  kubeconfig = join(dir, 'kubeconfig');
  writeFileSync(
    kubeconfig,
    [
      'apiVersion: v1',
      'kind: Config',
      'clusters: [{name: elsewhere, cluster: {server: "http://127.0.0.1:9"}}]',
      'users: [{name: someone, user: {token: not-this-one}}]',
      'contexts: [{name: elsewhere, context: {cluster: elsewhere, user: someone, namespace: elsewhere}}]',
      'current-context: elsewhere',
      '',
    ].join('\n'),
  );

  server = createServer({ key: readFileSync(join(dir, 'key.pem')), cert: readFileSync(join(mount, 'ca.crt')) }, (request, response) => {
    seen.push({ path: request.url, authorization: request.headers.authorization });
    response.setHeader('content-type', 'application/json');
    response.end(JSON.stringify({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'orders', namespace: 'shop' } }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as AddressInfo).port;
});

after(async () => {
  await new Promise((resolve) => server.close(resolve));
  rmSync(dir, { recursive: true, force: true });
});

/** Runs `body` with these variables set (undefined: unset), and puts the environment back. */
function withEnv<T>(vars: Record<string, string | undefined>, body: () => T): T {
  const saved = Object.fromEntries(Object.keys(vars).map((name) => [name, process.env[name]]));
  const apply = (values: Record<string, string | undefined>) => {
    for (const [name, value] of Object.entries(values)) {
      if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    }
  };
  apply(vars);
  try {
    return body();
  } finally {
    apply(saved);
  }
}

const inPod = () => ({ KUBERNETES_SERVICE_HOST: '127.0.0.1', KUBERNETES_SERVICE_PORT: String(port), KUBECONFIG: kubeconfig });

describe('connectKube: kubeconfig or in-cluster config', () => {
  it('inCluster: the server from the pod\'s environment, the namespace, CA and token from its service account', async () => {
    const kube = withEnv(inPod(), () => connectKube({ inCluster: true }, { serviceAccountRoot: podRoot }));
    assert.equal(kube.server, `https://127.0.0.1:${port}`);
    assert.equal(kube.namespace, 'shop');
    const pod = await kube.core.readNamespacedPod({ name: 'orders', namespace: kube.namespace });
    assert.equal(pod.metadata?.name, 'orders');
    assert.deepEqual(seen.at(-1), { path: '/api/v1/namespaces/shop/pods/orders', authorization: `Bearer ${TOKEN}` });
  });

  it('inCluster: -n still picks the namespace', () => {
    const kube = withEnv(inPod(), () => connectKube({ inCluster: true, namespace: 'other' }, { serviceAccountRoot: podRoot }));
    assert.equal(kube.namespace, 'other');
  });

  it('without inCluster, the same environment gives the kubeconfig it names', () => {
    const kube = withEnv(inPod(), () => connectKube({}, { serviceAccountRoot: podRoot }));
    assert.equal(kube.server, 'http://127.0.0.1:9');
    assert.equal(kube.contextName, 'elsewhere');
    assert.equal(kube.namespace, 'elsewhere');
  });

  it('inCluster outside a pod says so, instead of a server "https://undefined:undefined"', () => {
    assert.throws(
      () => withEnv({ KUBERNETES_SERVICE_HOST: undefined, KUBERNETES_SERVICE_PORT: undefined }, () => connectKube({ inCluster: true }, { serviceAccountRoot: podRoot })),
      (error: unknown) => error instanceof KubeConfigError && /KUBERNETES_SERVICE_HOST .* not set: this is not running in a pod/.test(error.message),
    );
  });

  it('inCluster without a mounted token names the file', () => {
    const empty = join(dir, 'no-service-account');
    mkdirSync(empty, { recursive: true });
    assert.throws(
      () => withEnv(inPod(), () => connectKube({ inCluster: true }, { serviceAccountRoot: empty })),
      (error: unknown) =>
        error instanceof KubeConfigError &&
        error.message.includes(`${empty}/var/run/secrets/kubernetes.io/serviceaccount/token, which does not exist`) &&
        /automountServiceAccountToken/.test(error.hint ?? ''),
    );
  });

  it('inCluster with a kubeconfig or a context is refused, not half-followed', () => {
    for (const settings of [{ kubeconfig }, { context: 'elsewhere' }]) {
      assert.throws(
        () => withEnv(inPod(), () => connectKube({ inCluster: true, ...settings }, { serviceAccountRoot: podRoot })),
        (error: unknown) => error instanceof KubeConfigError && /exclude each other/.test(error.message),
      );
    }
  });
});
