// The objects that install the operator in a cluster, as plain Kubernetes objects: `remocal operator setup`
// prints them as YAML, and charts/remocal-operator renders the same ones. Pure: the certificate comes in as an
// argument (tls.ts issues one), so that the same inputs always give the same objects.
//
// The shape follows what a real API server checked (../shared/OPERATOR-NOTES.md): the aggregator verifies the
// serving certificate against `<service>.<namespace>.svc` with the APIService's caBundle; the operator's
// ServiceAccount needs `system:auth-delegator` (to post SubjectAccessReviews) and the Role
// `extension-apiserver-authentication-reader` in kube-system (to read the requestheader CA); and users need
// RBAC on the aggregated resources, since the API server checks it before it proxies anything. The policy CRDs
// (policy-crd.ts) come with it: the operator reads policies, platform teams write them, developers may read them.
// So does the RemocalSplitConfig CRD (split-config-crd.ts), with the same three roles. The Secrets those configs
// name hold broker credentials: the operator gets no cluster-wide right to them, only a ClusterRole that the
// platform team binds in each namespace whose queues may be split (docs/queues.md, "RBAC").

import { stringify } from 'yaml';
import { POLICY_GROUP } from '../protocol/policy.js';
import { SPLIT_GROUP } from '../protocol/split-queues.js';
import { POLICY_RESOURCES, policyCrds } from './policy-crd.js';
import { SPLIT_CONFIG_RESOURCE, splitConfigCrd } from './split-config-crd.js';
import type { IssuedCertificate } from './tls.js';

export const OPERATOR_NAME = 'remocal-operator';
export const OPERATOR_GROUP = 'operator.remocal.dev';
export const OPERATOR_APISERVICE = `v1.${OPERATOR_GROUP}`;
export const USER_CLUSTER_ROLE = 'remocal-user';
export const POLICY_ADMIN_CLUSTER_ROLE = 'remocal-policy-admin';
export const SPLIT_ADMIN_CLUSTER_ROLE = 'remocal-split-admin';
/** Bound per namespace by the platform team (a RoleBinding), never cluster-wide: `get` of that namespace's Secrets. */
export const SPLIT_SECRETS_CLUSTER_ROLE = 'remocal-operator-split-secrets';
export const DEFAULT_OPERATOR_NAMESPACE = 'remocal-system';
/** Where the Deployment mounts its config; the command names it. */
export const OPERATOR_CONFIG_PATH = '/etc/remocal/operator.yaml';
const TLS_DIR = '/etc/remocal/tls';
const STATE_DIR = '/var/lib/remocal-operator';
const SERVING_PORT = 8443;

export const INSTALL_LABELS: Readonly<Record<string, string>> = {
  'app.kubernetes.io/name': OPERATOR_NAME,
  'app.kubernetes.io/managed-by': 'remocal',
};

export interface InstallOptions {
  namespace?: string;
  /** Default: remocal/operator:<this package's version>, which the caller passes in. */
  image: string;
  replicas?: number;
  /** The agents' image, when it is not remocal/agent:<the operator's version>. */
  agentImage?: string | undefined;
  certificate: IssuedCertificate;
}

/** The DNS names the serving certificate must hold: the aggregator dials `<service>.<namespace>.svc`. */
export function operatorServiceNames(namespace: string): string[] {
  return [`${OPERATOR_NAME}.${namespace}.svc`, `${OPERATOR_NAME}.${namespace}.svc.cluster.local`];
}

/** The operator's own config inside the cluster: Kubernetes mode, on the container port, with the mounted certificate. */
export function clusterOperatorConfig(agentImage?: string): Record<string, unknown> {
  return {
    mode: 'kubernetes',
    ...(agentImage === undefined ? {} : { kubernetes: { agent: { image: agentImage } } }),
    listen: { host: '0.0.0.0', port: SERVING_PORT },
    state_dir: STATE_DIR,
    tls: { cert_file: `${TLS_DIR}/tls.crt`, key_file: `${TLS_DIR}/tls.key` },
    log_level: 'info',
  };
}

type KubeObject = { apiVersion: string; kind: string; metadata: Record<string, unknown> } & Record<string, unknown>;

function metadata(name: string, namespace?: string): Record<string, unknown> {
  return { name, ...(namespace === undefined ? {} : { namespace }), labels: { ...INSTALL_LABELS } };
}

const policyResources = Object.values(POLICY_RESOURCES).map((resource) => resource.plural);

/** The policy CRDs as installed: with the install labels, so that they are found (and removed) with the rest. */
function installedPolicyCrds(): KubeObject[] {
  return policyCrds().map((crd) => ({ ...crd, metadata: metadata(crd.metadata.name) }));
}

/** The split-config CRD as installed, labelled like the rest. */
function installedSplitConfigCrd(): KubeObject {
  const crd = splitConfigCrd();
  return { ...crd, metadata: metadata(crd.metadata.name) };
}

/** What the operator itself does in the cluster: find targets, start agents next to them, check callers. */
const operatorRules = [
  // Copy targets: the operator creates the copy pods and deletes them.
  { apiGroups: [''], resources: ['pods'], verbs: ['get', 'list', 'watch', 'create', 'delete'] },
  { apiGroups: [''], resources: ['pods/ephemeralcontainers'], verbs: ['patch'] },
  // `get` for the WebSocket upgrade (a GET) before Kubernetes 1.35, `create` from then on.
  { apiGroups: [''], resources: ['pods/portforward'], verbs: ['create', 'get'] },
  { apiGroups: [''], resources: ['services'], verbs: ['get', 'list'] },
  { apiGroups: [''], resources: ['events'], verbs: ['list'] },
  // The last lines of a job step's log, for its user.
  { apiGroups: [''], resources: ['pods/log'], verbs: ['get'] },
  // `patch`: the scale-down annotation of copy targets, and the env var a split queue points at the deployed app's
  // temporary queue (with its annotation); both outlive the operator, which undoes them at its start.
  { apiGroups: ['apps'], resources: ['deployments', 'statefulsets', 'replicasets'], verbs: ['get', 'list', 'patch'] },
  { apiGroups: ['apps'], resources: ['deployments/scale', 'statefulsets/scale', 'replicasets/scale'], verbs: ['get', 'update', 'patch'] },
  // Agents on a node, and job steps, run as Jobs, which the operator starts, watches and removes.
  { apiGroups: ['batch'], resources: ['jobs'], verbs: ['create', 'delete', 'get', 'list', 'watch'] },
  { apiGroups: ['batch'], resources: ['cronjobs'], verbs: ['get', 'list'] },
  { apiGroups: ['argoproj.io'], resources: ['rollouts'], verbs: ['get', 'list', 'patch'] },
  { apiGroups: ['argoproj.io'], resources: ['rollouts/scale'], verbs: ['get', 'update', 'patch'] },
  { apiGroups: ['authorization.k8s.io'], resources: ['subjectaccessreviews'], verbs: ['create'] },
  // It enforces the policies that apply to each session, and follows their changes.
  { apiGroups: [POLICY_GROUP], resources: policyResources, verbs: ['get', 'list', 'watch'] },
  // How each workload's queues are split. Not Secrets: see SPLIT_SECRETS_CLUSTER_ROLE.
  { apiGroups: [SPLIT_GROUP], resources: [SPLIT_CONFIG_RESOURCE.plural], verbs: ['get', 'list', 'watch'] },
];

// `get` only: the operator reads the one Secret a RemocalSplitConfig names, by name, when a session splits that
// queue. Without `list` or `watch` it cannot enumerate Secrets, and bound with a RoleBinding it reads none outside
// the namespaces the platform team chose (a Role with resourceNames narrows it to the named Secrets).
const splitSecretsRules = [{ apiGroups: [''], resources: ['secrets'], verbs: ['get'] }];

/** What a developer needs on the aggregated API; the API server checks it before proxying. */
const userRules = [
  { apiGroups: [OPERATOR_GROUP], resources: ['sessions'], verbs: ['get', 'list', 'delete'] },
  { apiGroups: [OPERATOR_GROUP], resources: ['targets'], verbs: ['get', 'list'] },
  // `create`: checked by the operator (a SubjectAccessReview) before it makes a copy; withhold it to forbid copies.
  { apiGroups: [OPERATOR_GROUP], resources: ['copytargets'], verbs: ['get', 'list', 'create'] },
  { apiGroups: [OPERATOR_GROUP], resources: ['splitqueues'], verbs: ['list'] },
  // `create` for the POST, `get` for the WebSocket upgrade (a GET): RBAC checks one or the other.
  { apiGroups: [OPERATOR_GROUP], resources: ['targets/portforward'], verbs: ['get', 'create'] },
  // The WebSocket of a job step; which templates a user may run is `create` on jobsteps, granted per template.
  { apiGroups: [OPERATOR_GROUP], resources: ['jobsteps/run'], verbs: ['get'] },
  // `operator: auto` reads the APIService's Available condition to choose the path.
  { apiGroups: ['apiregistration.k8s.io'], resources: ['apiservices'], resourceNames: [OPERATOR_APISERVICE], verbs: ['get'] },
  // To see what limits them (bound in a namespace, only that namespace's RemocalPolicies).
  { apiGroups: [POLICY_GROUP], resources: policyResources, verbs: ['get', 'list'] },
  // To see which queue ids a workload offers to feature.split_queues (the Secrets they name stay out of reach).
  { apiGroups: [SPLIT_GROUP], resources: [SPLIT_CONFIG_RESOURCE.plural], verbs: ['get', 'list'] },
];

/** For platform teams, who write the policies. */
const policyAdminRules = [{ apiGroups: [POLICY_GROUP], resources: policyResources, verbs: ['create', 'update', 'patch', 'delete', 'get', 'list', 'watch'] }];

/** For platform teams, who say how workloads' queues are split (and create the Secrets those name, with rights of their own). */
const splitAdminRules = [{ apiGroups: [SPLIT_GROUP], resources: [SPLIT_CONFIG_RESOURCE.plural], verbs: ['create', 'update', 'patch', 'delete', 'get', 'list', 'watch'] }];

export function operatorInstallObjects(options: InstallOptions): KubeObject[] {
  const namespace = options.namespace ?? DEFAULT_OPERATOR_NAMESPACE;
  const replicas = options.replicas ?? 1;
  const subject = { kind: 'ServiceAccount', name: OPERATOR_NAME, namespace };
  const podLabels = { ...INSTALL_LABELS, 'app.kubernetes.io/component': 'operator' };
  const base64 = (text: string) => Buffer.from(text, 'utf8').toString('base64');

  return [
    ...installedPolicyCrds(),
    installedSplitConfigCrd(),
    { apiVersion: 'v1', kind: 'Namespace', metadata: metadata(namespace) },
    { apiVersion: 'v1', kind: 'ServiceAccount', metadata: metadata(OPERATOR_NAME, namespace) },
    { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRole', metadata: metadata(OPERATOR_NAME), rules: operatorRules },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRoleBinding',
      metadata: metadata(OPERATOR_NAME),
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: OPERATOR_NAME },
      subjects: [subject],
    },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRoleBinding',
      metadata: metadata(`${OPERATOR_NAME}:system:auth-delegator`),
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'system:auth-delegator' },
      subjects: [subject],
    },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'RoleBinding',
      metadata: metadata(`${OPERATOR_NAME}:extension-apiserver-authentication-reader`, 'kube-system'),
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'extension-apiserver-authentication-reader' },
      subjects: [subject],
    },
    {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: metadata(`${OPERATOR_NAME}-tls`, namespace),
      type: 'kubernetes.io/tls',
      data: { 'tls.crt': base64(options.certificate.cert), 'tls.key': base64(options.certificate.key), 'ca.crt': base64(options.certificate.caCert) },
    },
    {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: metadata(`${OPERATOR_NAME}-config`, namespace),
      data: { 'operator.yaml': stringify(clusterOperatorConfig(options.agentImage)) },
    },
    {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: metadata(OPERATOR_NAME, namespace),
      spec: {
        replicas,
        selector: { matchLabels: podLabels },
        template: {
          metadata: { labels: podLabels },
          spec: {
            serviceAccountName: OPERATOR_NAME,
            containers: [
              {
                name: 'operator',
                image: options.image,
                command: ['remocal', 'operator', 'serve', '--config', OPERATOR_CONFIG_PATH],
                ports: [{ name: 'https', containerPort: SERVING_PORT, protocol: 'TCP' }],
                readinessProbe: { httpGet: { path: '/healthz', port: 'https', scheme: 'HTTPS' }, periodSeconds: 10, failureThreshold: 3 },
                resources: { requests: { cpu: '100m', memory: '128Mi' }, limits: { memory: '512Mi' } },
                securityContext: { allowPrivilegeEscalation: false, readOnlyRootFilesystem: true },
                volumeMounts: [
                  // subPath: the config file alone, so that the TLS mount beside it is not inside a read-only volume.
                  { name: 'config', mountPath: OPERATOR_CONFIG_PATH, subPath: 'operator.yaml', readOnly: true },
                  { name: 'tls', mountPath: TLS_DIR, readOnly: true },
                  { name: 'state', mountPath: STATE_DIR },
                ],
              },
            ],
            volumes: [
              { name: 'config', configMap: { name: `${OPERATOR_NAME}-config` } },
              { name: 'tls', secret: { secretName: `${OPERATOR_NAME}-tls`, defaultMode: 0o400 } },
              { name: 'state', emptyDir: {} },
            ],
          },
        },
      },
    },
    {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: metadata(OPERATOR_NAME, namespace),
      spec: { selector: podLabels, ports: [{ name: 'https', port: 443, targetPort: 'https', protocol: 'TCP' }] },
    },
    {
      apiVersion: 'apiregistration.k8s.io/v1',
      kind: 'APIService',
      metadata: metadata(OPERATOR_APISERVICE),
      spec: {
        group: OPERATOR_GROUP,
        version: 'v1',
        groupPriorityMinimum: 1000,
        versionPriority: 15,
        service: { namespace, name: OPERATOR_NAME, port: 443 },
        caBundle: base64(options.certificate.caCert),
      },
    },
    { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRole', metadata: metadata(USER_CLUSTER_ROLE), rules: userRules },
    { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRole', metadata: metadata(POLICY_ADMIN_CLUSTER_ROLE), rules: policyAdminRules },
    { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRole', metadata: metadata(SPLIT_ADMIN_CLUSTER_ROLE), rules: splitAdminRules },
    { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRole', metadata: metadata(SPLIT_SECRETS_CLUSTER_ROLE), rules: splitSecretsRules },
  ];
}

/** YAML documents, one per object. The CRDs share schema parts: spelled out, not as YAML aliases, which some tools mishandle. */
function documents(objects: readonly KubeObject[]): string {
  return objects.map((object) => `---\n${stringify(object, { aliasDuplicateObjects: false, lineWidth: 0 })}`).join('');
}

/** The objects as one YAML stream, after a header that says how to apply and how to remove them. */
export function installYaml(objects: readonly KubeObject[], namespace: string): string {
  const selector = Object.entries(INSTALL_LABELS).map(([key, value]) => `${key}=${value}`).join(',');
  const header = [
    '# The remocal operator, installed as an aggregated API (operator.remocal.dev/v1).',
    '#',
    '# Apply:',
    '#   remocal operator setup | kubectl apply -f -',
    '# Let a developer (or a group) use it:',
    `#   kubectl create clusterrolebinding remocal-user:alice --clusterrole=${USER_CLUSTER_ROLE} --user=alice`,
    '#',
    `# Let a platform team write policies (RemocalPolicy, RemocalClusterPolicy of ${POLICY_GROUP}):`,
    `#   kubectl create clusterrolebinding remocal-policy-admin:platform --clusterrole=${POLICY_ADMIN_CLUSTER_ROLE} --group=platform`,
    '#',
    `# Queue splitting (docs/queues.md): let a platform team write RemocalSplitConfigs (${SPLIT_GROUP}), and let the`,
    "# operator read the broker Secrets of one namespace (never bind this role cluster-wide):",
    `#   kubectl create clusterrolebinding remocal-split-admin:platform --clusterrole=${SPLIT_ADMIN_CLUSTER_ROLE} --group=platform`,
    `#   kubectl create rolebinding ${OPERATOR_NAME}:split-secrets -n shop --clusterrole=${SPLIT_SECRETS_CLUSTER_ROLE} --serviceaccount=${namespace}:${OPERATOR_NAME}`,
    '#',
    '# Uninstall, the APIService first: while it points at a missing backend, kubectl discovery fails for everyone.',
    '# The CRDs last, and only to drop the policies too: deleting a CRD deletes every policy of its kind.',
    `#   kubectl delete apiservice ${OPERATOR_APISERVICE}`,
    `#   kubectl delete namespace ${namespace}`,
    `#   kubectl delete clusterrole,clusterrolebinding -l ${selector}`,
    `#   kubectl delete rolebinding -n kube-system -l ${selector}`,
    `#   kubectl delete crd -l ${selector}`,
  ].join('\n');
  return `${header}\n${documents(objects)}`;
}

/**
 * The policy CRDs alone: charts/remocal-operator/crds/ holds this text, and since Helm installs the CRDs of that
 * folder once and never upgrades them, it is also how a chart's CRDs are brought up to date.
 */
export function policyCrdsYaml(): string {
  const header = [
    `# The remocal policy CRDs (${POLICY_GROUP}), as \`remocal operator setup --crds\` prints them.`,
    '# Helm installs them with the chart and never upgrades or deletes them; to upgrade them:',
    '#   remocal operator setup --crds | kubectl apply -f -',
    '# Deleting a CRD deletes every policy of its kind.',
  ].join('\n');
  return `${header}\n${documents(installedPolicyCrds())}`;
}

/**
 * The RemocalSplitConfig CRD alone, for charts/remocal-operator/crds/ beside the policy CRDs (the same reasons);
 * `remocal operator setup --crds` prints both files' text.
 */
export function splitConfigCrdYaml(): string {
  const header = [
    `# The remocal split-config CRD (${SPLIT_GROUP}), as \`remocal operator setup --crds\` prints it.`,
    '# Helm installs it with the chart and never upgrades or deletes it; to upgrade it:',
    '#   remocal operator setup --crds | kubectl apply -f -',
    '# Deleting the CRD deletes every RemocalSplitConfig.',
  ].join('\n');
  return `${header}\n${documents([installedSplitConfigCrd()])}`;
}

/** The certificate as a values file for charts/remocal-operator (`helm install -f`). */
export function certificateValuesYaml(certificate: IssuedCertificate): string {
  return `# Certificates for charts/remocal-operator: helm install … -f this-file. tls.key is a private key: keep it so.\n${stringify({ tls: { crt: certificate.cert, key: certificate.key }, ca: { crt: certificate.caCert } })}`;
}
