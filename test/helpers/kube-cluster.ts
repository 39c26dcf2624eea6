// The cluster side of an operator in Kubernetes mode, on the recorded fake API server: what the API server holds for
// an aggregated API (the front proxy's CA in the extension-apiserver-authentication ConfigMap, the APIService
// Available), SubjectAccessReviews answered as RBAC would, and the aggregator in front of the operator. A test
// with an operator process that restarts points the aggregator at each new one: the port changes, the CA (kept in
// the state dir) does not.

import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { aggregator, type AggregatedAccess } from './aggregator.js';
import { TestCertificates } from './certificates.js';
import { loadFixture, type FakeKubeApi, type KubeUser } from './kube-api.js';

export const KUBE_GROUPS: Record<KubeUser, string[]> = { admin: ['system:masters', 'system:authenticated'], 'dev-alice': ['developers', 'system:authenticated'] };

export interface ReviewSeen {
  user: string;
  verb: string;
  resource: string;
  subresource?: string;
  name?: string;
}

export interface OperatorClusterOptions {
  /** The requestheader CA the ConfigMap holds now (a test rotates it); the front proxy's CA unless given. */
  requestHeaderCa?: () => string;
  /** Whether RBAC allows a SubjectAccessReview; system:masters always may. */
  reviewAllows?: (review: ReviewSeen) => boolean;
  /** RBAC on the aggregated resources, checked by the aggregator; everything unless given. */
  allows?: (access: AggregatedAccess) => boolean;
}

export interface OperatorCluster {
  certificates: TestCertificates;
  /** The front proxy's client certificate, signed by the CA `front-proxy-ca` of `certificates`. */
  frontProxy: { cert: string; key: string };
  /** Every SubjectAccessReview received, in order. */
  reviews: ReviewSeen[];
  /** What the aggregator proxied to any operator, in order. */
  proxied: AggregatedAccess[];
  /** Serves operator.remocal.dev from the operator at `url` that trusts `caFile`, in place of any earlier one. */
  aggregateTo(operator: { url: string; caFile: string }): void;
  remove(): void;
}

export function fakeOperatorCluster(api: FakeKubeApi, options: OperatorClusterOptions = {}): OperatorCluster {
  const certificates = new TestCertificates();
  const frontProxyCa = certificates.ca('front-proxy-ca');
  const frontProxy = certificates.client('front-proxy-client', 'front-proxy-client', 'front-proxy-ca');
  const requestHeaderCa = options.requestHeaderCa ?? (() => frontProxyCa);
  const reviews: ReviewSeen[] = [];
  const proxied: AggregatedAccess[] = [];
  const configMap = loadFixture('operator/extension-apiserver-authentication-configmap.json') as { metadata?: object; data: Record<string, string> };
  const removers = [
    // The recorded ConfigMap, with this test's front-proxy CA in place of the cluster's; its resourceVersion
    // follows the CA, as a real one changes with each write.
    api.override('GET', '/api/v1/namespaces/kube-system/configmaps/extension-apiserver-authentication', () => {
      const ca = requestHeaderCa();
      return {
        status: 200,
        body: { ...configMap, metadata: { ...configMap.metadata, resourceVersion: createHash('sha256').update(ca).digest('hex').slice(0, 12) }, data: { ...configMap.data, 'requestheader-client-ca-file': ca } },
      };
    }),
    api.override('GET', '/apis/apiregistration.k8s.io/v1/apiservices/v1.operator.remocal.dev', () => ({ status: 200, body: loadFixture('operator/apiservice-available.json') })),
    // The operator's start looks for workloads a previous run left pointed at split queues: none here.
    api.override('GET', /^\/apis\/apps\/v1\/(deployments|statefulsets)\?/, (request) => {
      if (request.query.get('labelSelector') !== 'remocal.dev/split-queues') return undefined;
      const kind = request.pathname.endsWith('deployments') ? 'DeploymentList' : 'StatefulSetList';
      return { status: 200, body: { kind, apiVersion: 'apps/v1', metadata: { resourceVersion: '6000' }, items: [] } };
    }),
    // As the recorded SubjectAccessReviews answer: system:masters may do anything, others what the test allows.
    api.override('POST', '/apis/authorization.k8s.io/v1/subjectaccessreviews', (request) => {
      const review = request.body as { spec: { user: string; groups?: string[]; resourceAttributes: { verb: string; resource: string; subresource?: string; name?: string } } };
      const { verb, resource, subresource, name } = review.spec.resourceAttributes;
      const seen: ReviewSeen = { user: review.spec.user, verb, resource, ...(subresource === undefined ? {} : { subresource }), ...(name === undefined ? {} : { name }) };
      reviews.push(seen);
      const allowed = (review.spec.groups ?? []).includes('system:masters') || (options.reviewAllows?.(seen) ?? false);
      return { status: 201, body: { ...review, status: allowed ? { allowed: true, reason: 'RBAC: allowed by RoleBinding "dev-viewer/shop"' } : { allowed: false } } };
    }),
  ];
  let unaggregate: (() => void) | undefined;
  return {
    certificates,
    frontProxy,
    reviews,
    proxied,
    aggregateTo(operator) {
      unaggregate?.();
      const backend = aggregator({
        group: 'operator.remocal.dev',
        backend: operator.url,
        caBundle: readFileSync(operator.caFile, 'utf8'),
        clientCert: frontProxy,
        groups: KUBE_GROUPS,
        allows: options.allows ?? (() => true),
        proxied,
      });
      unaggregate = api.aggregate(backend);
    },
    remove() {
      unaggregate?.();
      for (const remove of removers) remove();
      certificates.remove();
    },
  };
}

/**
 * The config of a `remocal operator serve` in Kubernetes mode against the fake API server, with its state in `dir`:
 * agents that end a second after their last session, and a startup bound a loaded machine meets. Returns its path.
 */
export function writeKubeOperatorConfig(dir: string, api: FakeKubeApi): string {
  const file = join(dir, 'operator.json');
  writeFileSync(
    file,
    JSON.stringify({
      mode: 'kubernetes',
      kubernetes: { kubeconfig: api.kubeconfig('admin'), agent: { ttl: 30 } },
      listen: { host: '127.0.0.1', port: 0 },
      state_dir: join(dir, 'operator-state'),
      agents: { grace: 1, startup_timeout: 30 },
      log_level: 'warn',
    }),
  );
  return file;
}
