// Job steps, the steps of a session's actions that run in the cluster: the operator in Kubernetes mode behind the
// recorded fake API server and its aggregator, and the CLI's client (platform/operator/job-step.ts) with a
// developer's kubeconfig. The Jobs are the fake's (test/helpers/kube-jobs.ts); their spec is checked against the
// server's OpenAPI types, and what the Job controller and the kubelet would say is taken from the recordings.

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { after, before, beforeEach, describe, it } from 'node:test';
import { JobStepFailedError, OperatorForbiddenError, TargetNotFoundError, FeatureUnavailableError } from '../../src/core/errors.js';
import { createLogger } from '../../src/core/log.js';
import { connectKube } from '../../src/platform/kubernetes/api.js';
import { runJobStep } from '../../src/platform/operator/job-step.js';
import { apiServerAddress } from '../../src/platform/operator/kube-platform.js';
import type { OperatorAddress } from '../../src/platform/operator/client.js';
import { operatorConfigSchema } from '../../src/operator/config.js';
import { NoJobSteps } from '../../src/operator/job-steps.js';
import { AccessReviewer } from '../../src/operator/kube-catalog.js';
import { KubeJobSteps } from '../../src/operator/kube-job-steps.js';
import { startOperator, type RunningOperator } from '../../src/operator/server.js';
import { JOB_STEP_LABEL, parseJobStepQuery, jobStepQuery, MAX_JOB_STEP_ENV } from '../../src/protocol/job-step.js';
import { ActionRunner } from '../../src/cli/actions/runner.js';
import { OperatorJobSteps, jobStepOutputs } from '../../src/cli/actions/operator-steps.js';
import { planActions } from '../../src/cli/actions/plan.js';
import { resolveConfig } from '../../src/config/index.js';
import { aggregator } from '../helpers/aggregator.js';
import { TestCertificates } from '../helpers/certificates.js';
import { jobPod, serveJobs, type FakeJob, type FakeJobs } from '../helpers/kube-jobs.js';
import { servePolicies } from '../helpers/kube-policies.js';
import { loadFixture, startFakeKubeApi, type FakeKubeApi, type KubeUser } from '../helpers/kube-api.js';
import { waitFor } from '../helpers/processes.js';

const GROUPS: Record<KubeUser, string[]> = { admin: ['system:masters', 'system:authenticated'], 'dev-alice': ['developers', 'system:authenticated'] };

let api: FakeKubeApi;
let jobs: FakeJobs;
let operator: RunningOperator;
let certificates: TestCertificates;
let alice: OperatorAddress;
/** CronJobs of `shop` and whether each is marked as a template. */
const templates = new Map<string, boolean>();
/** `create jobsteps` that SubjectAccessReviews deny dev-alice, by template. */
const denied = new Set<string>();

/** The recorded CronJob `nightly`, under another name, marked as a template or not. */
function cronJob(name: string, marked: boolean): object {
  const recorded = loadFixture('cronjob-nightly.json') as { metadata: Record<string, unknown> & { annotations?: Record<string, string> }; spec: Record<string, unknown> };
  return {
    ...recorded,
    metadata: { ...recorded.metadata, name, annotations: { ...recorded.metadata.annotations, ...(marked ? { 'remocal.dev/job-template': 'true' } : {}) } },
    spec: { ...recorded.spec, suspend: true },
  };
}

before(async () => {
  api = await startFakeKubeApi({ log: () => {} });
  jobs = serveJobs(api);
  servePolicies(api);
  certificates = new TestCertificates();
  certificates.ca('front-proxy-ca');
  const frontProxy = certificates.client('front-proxy-client', 'front-proxy-client', 'front-proxy-ca');
  const requestHeaderCa = certificates.read('front-proxy-ca.pem');
  const configMap = loadFixture('operator/extension-apiserver-authentication-configmap.json') as { data: Record<string, string>; metadata: object };
  api.override('GET', '/api/v1/namespaces/kube-system/configmaps/extension-apiserver-authentication', () => ({
    status: 200,
    body: { ...configMap, metadata: { ...configMap.metadata, resourceVersion: createHash('sha256').update(requestHeaderCa).digest('hex').slice(0, 12) }, data: { ...configMap.data, 'requestheader-client-ca-file': requestHeaderCa } },
  }));
  // The operator's start looks for workloads a previous run left pointed at split queues: none here.
  api.override('GET', /^\/apis\/apps\/v1\/(deployments|statefulsets)\?labelSelector=remocal\.dev%2Fsplit-queues$/, (request) => ({
    status: 200,
    body: { kind: request.pathname.endsWith('deployments') ? 'DeploymentList' : 'StatefulSetList', apiVersion: 'apps/v1', metadata: { resourceVersion: '6000' }, items: [] },
  }));
  api.override('POST', '/apis/authorization.k8s.io/v1/subjectaccessreviews', (request) => {
    const review = request.body as { spec: { groups?: string[]; resourceAttributes: { verb: string; resource: string; name?: string } } };
    const { verb, resource, name } = review.spec.resourceAttributes;
    const allowed = (review.spec.groups ?? []).includes('system:masters') || (verb === 'create' && resource === 'jobsteps' && !denied.has(name ?? ''));
    return { status: 201, body: { ...review, status: allowed ? { allowed: true, reason: 'RBAC: allowed by RoleBinding "step-runners/shop"' } : { allowed: false } } };
  });
  api.override('GET', /^\/apis\/batch\/v1\/namespaces\/shop\/cronjobs\/[^/?]+(\?|$)/, (request) => {
    const name = request.pathname.split('/').at(-1)!;
    const marked = templates.get(name);
    if (marked !== undefined) return { status: 200, body: cronJob(name, marked) };
    // The recorded 404 of a CronJob that does not exist, for this name.
    const missing = loadFixture('cronjob-not-found.json') as { message: string; details: { name: string } };
    return { status: 404, body: { ...missing, message: missing.message.replace(missing.details.name, name), details: { ...missing.details, name } } };
  });
  // A previous run's step, and a Job that is none of remocal's.
  jobs.add('shop', 'remocal-step-seed-0ld01', { [JOB_STEP_LABEL]: 'seed' });
  jobs.add('shop', 'nightly-28391', { 'job-name': 'nightly-28391' });

  operator = await startOperator(
    operatorConfigSchema.parse({
      mode: 'kubernetes',
      kubernetes: { kubeconfig: api.kubeconfig('admin'), authentication_reload: 5 },
      listen: { host: '127.0.0.1', port: 0 },
      state_dir: `${certificates.dir}/operator-state`,
      log_level: 'warn',
    }),
  );
  api.aggregate(
    aggregator({
      group: 'operator.remocal.dev',
      backend: operator.url,
      caBundle: readFileSync(operator.caFile!, 'utf8'),
      clientCert: frontProxy,
      groups: GROUPS,
      allows: () => true,
    }),
  );
  api.override('GET', '/apis/apiregistration.k8s.io/v1/apiservices/v1.operator.remocal.dev', () => ({ status: 200, body: loadFixture('operator/apiservice-available.json') }));
  alice = await apiServerAddress(connectKube({ kubeconfig: api.kubeconfig('dev-alice') }));
});

after(async () => {
  await operator?.close();
  await api?.close();
  certificates?.remove();
});

beforeEach(() => {
  templates.clear();
  denied.clear();
});

/** Makes each new Job go as `script` says, from its creation. */
function whenCreated(script: (job: FakeJob) => void): void {
  jobs.onCreate = script;
}

describe('job steps through the operator (Kubernetes mode)', { timeout: 60_000 }, () => {
  it('deletes the job steps a previous run left behind when it starts, and only those', () => {
    assert.ok(jobs.deleted.includes('shop/remocal-step-seed-0ld01?propagationPolicy=Background'), jobs.deleted.join(', '));
    assert.ok(jobs.jobs.has('shop/nightly-28391'), 'a Job that is not a step is left alone');
  });

  it('runs a marked CronJob\'s template as a Job with the step\'s env and deadline, reports its progress and log, and deletes it when the client lets go', async () => {
    templates.set('seed', true);
    let created: FakeJob | undefined;
    whenCreated((job) => {
      created = job;
      job.object.status = { active: 1 };
      job.pods = [jobPod(job, 'Running')];
      job.log = 'connecting to orders-db\nseeded 3 rows\n';
    });
    const progress: string[] = [];
    const step = runJobStep(alice, 'shop', { template: 'seed', timeoutSeconds: 120, env: { SCHEMA: 'dev_alice', GREETING: 'a=b c' } }, (message) => progress.push(message));
    await waitFor(() => progress.some((line) => /^running in pod remocal-step-seed-/.test(line)), 'the step to report its running pod', 15_000);
    created!.object.status = { succeeded: 1, conditions: [{ type: 'Complete', status: 'True' }] };
    const finished = await step;

    assert.deepEqual(jobs.invalid, [], 'the Job is valid for the API');
    const body = jobs.created.at(-1) as { metadata: { name: string; labels: Record<string, string>; annotations: Record<string, string> }; spec: { activeDeadlineSeconds: number; backoffLimit: number; ttlSecondsAfterFinished: number; template: { metadata: { labels: Record<string, string> }; spec: { containers: { env: { name: string; value: string }[]; command: string[] }[] } } } };
    assert.match(body.metadata.name, /^remocal-step-seed-[0-9a-f]{5}$/);
    assert.equal(body.metadata.labels[JOB_STEP_LABEL], 'seed');
    assert.equal(body.metadata.annotations['remocal.dev/owner'], 'dev-alice');
    assert.equal(body.spec.activeDeadlineSeconds, 120);
    assert.equal(body.spec.backoffLimit, 0, 'a step is not retried unless its template says so');
    assert.ok(body.spec.ttlSecondsAfterFinished > 0, 'a TTL removes it should the operator die first');
    assert.equal(body.spec.template.metadata.labels[JOB_STEP_LABEL], 'seed');
    assert.deepEqual(body.spec.template.spec.containers[0]!.env, [{ name: 'SCHEMA', value: 'dev_alice' }, { name: 'GREETING', value: 'a=b c' }]);
    assert.deepEqual(body.spec.template.spec.containers[0]!.command, ['sleep', '30'], 'the template\'s own command');

    assert.equal(finished.job, body.metadata.name);
    assert.deepEqual(finished.logTail, ['connecting to orders-db', 'seeded 3 rows']);
    assert.match(progress[0]!, new RegExp(`^Job ${finished.job} created in namespace shop$`));
    assert.ok(jobs.jobs.has(`shop/${finished.job}`), 'the Job stays while the session runs');
    finished.release();
    await waitFor(() => jobs.deleted.includes(`shop/${finished.job}?propagationPolicy=Background`), 'the Job to be deleted', 10_000);
  });

  it('a Job whose pod Pod Security refuses fails at once with the cluster\'s reason, and is deleted', async () => {
    templates.set('migrate', true);
    const recorded = (loadFixture('operator/psa-job-events.json') as { items: { message: string }[] }).items;
    whenCreated((job) => {
      job.events = recorded.map((event) => ({ ...event, involvedObject: { kind: 'Job', namespace: 'shop', name: job.name } }));
    });
    await assert.rejects(runJobStep(alice, 'shop', { template: 'migrate', timeoutSeconds: 600, env: {} }, () => undefined), (error: Error) => {
      assert.ok(error instanceof JobStepFailedError, String(error));
      assert.match(error.message, /^The job step migrate \(Job remocal-step-migrate-[0-9a-f]{5} in namespace shop\) failed: its pod could not be created: Error creating: pods .* is forbidden: violates PodSecurity "restricted:latest"/);
      return true;
    });
    const name = (jobs.created.at(-1) as { metadata: { name: string } }).metadata.name;
    await waitFor(() => jobs.deleted.includes(`shop/${name}?propagationPolicy=Background`), 'the failed Job to be deleted', 10_000);
  });

  it('a failed Job\'s error carries the cluster\'s reason and the last lines of its log; an image that cannot be pulled fails without waiting', async () => {
    templates.set('seed', true);
    whenCreated((job) => {
      job.object.status = { failed: 1, conditions: [{ type: 'Failed', status: 'True', reason: 'BackoffLimitExceeded', message: 'Job has reached the specified backoff limit' }] };
      job.pods = [jobPod(job, 'Failed')];
      job.log = 'psql: error: connection to server failed\n';
    });
    await assert.rejects(runJobStep(alice, 'shop', { template: 'seed', timeoutSeconds: 60, env: {} }, () => undefined), (error: Error) => {
      assert.ok(error instanceof JobStepFailedError);
      assert.match(error.message, /failed: BackoffLimitExceeded: Job has reached the specified backoff limit\n {2}The last lines of its log:\n {4}psql: error: connection to server failed$/);
      assert.match((error as JobStepFailedError).hint ?? '', /kubectl describe job remocal-step-seed-/);
      return true;
    });

    whenCreated((job) => {
      job.object.status = { active: 1 };
      const waiting = { reason: 'ErrImageNeverPull', message: 'Container image "k8s-lab.local/seed:missing" is not present with pull policy of Never' };
      job.pods = [jobPod(job, 'Pending', { containerStatuses: [{ name: 'app', ready: false, restartCount: 0, image: 'k8s-lab.local/seed:missing', imageID: '', state: { waiting } }] })];
    });
    const started = Date.now();
    await assert.rejects(runJobStep(alice, 'shop', { template: 'seed', timeoutSeconds: 600, env: {} }, () => undefined), /container app of pod remocal-step-seed-[0-9a-f]{5}-x7k2p cannot start: ErrImageNeverPull: Container image "k8s-lab.local\/seed:missing" is not present/);
    assert.ok(Date.now() - started < 10_000, 'not a wait for the timeout');
  });

  it('refuses before anything is created: a CronJob that is not a template, one that does not exist, a user not granted the template, a bad env name', async () => {
    const before = jobs.created.length;
    templates.set('nightly', false);
    await assert.rejects(runJobStep(alice, 'shop', { template: 'nightly', timeoutSeconds: 60, env: {} }, () => undefined), (error: Error) => {
      assert.ok(error instanceof OperatorForbiddenError, String(error));
      assert.match(error.message, /CronJob nightly in namespace shop is not a job-step template/);
      assert.match((error as OperatorForbiddenError).hint ?? '', /remocal\.dev\/job-template: "true"/);
      return true;
    });
    await assert.rejects(runJobStep(alice, 'shop', { template: 'nowhere', timeoutSeconds: 60, env: {} }, () => undefined), (error: Error) => error instanceof TargetNotFoundError && /no CronJob "nowhere" in namespace shop/.test(error.message));
    templates.set('seed', true);
    denied.add('seed');
    await assert.rejects(runJobStep(alice, 'shop', { template: 'seed', timeoutSeconds: 60, env: {} }, () => undefined), (error: Error) => {
      assert.ok(error instanceof OperatorForbiddenError);
      assert.match(error.message, /dev-alice may not run the job step seed in namespace shop/);
      assert.match((error as OperatorForbiddenError).hint ?? '', /resourceNames \[seed\]/);
      return true;
    });
    denied.clear();
    await assert.rejects(runJobStep(alice, 'shop', { template: 'seed', timeoutSeconds: 60, env: { 'BAD-NAME': 'x' } }, () => undefined), /job step refused: "BAD-NAME" is not an env var name/);
    assert.equal(jobs.created.length, before, 'no Job was created');
  });
});

describe('job steps as actions of `remocal exec`', { timeout: 60_000 }, () => {
  it('a `job` step runs through the cluster\'s operator: its run_env (with references) reaches the Job, its log\'s NAME=value lines are outputs for the app\'s env, and the Job goes when the session ends', async () => {
    templates.set('branch', true);
    let created: FakeJob | undefined;
    whenCreated((job) => {
      created = job;
      job.object.status = { succeeded: 1, conditions: [{ type: 'Complete', status: 'True' }] };
      job.pods = [jobPod(job, 'Succeeded')];
      job.log = 'creating branch dev-alice\nDATABASE_URL=postgres://orders-db/dev_alice\n';
    });
    const { config, problems } = resolveConfig({
      file: {
        path: 'test.json',
        data: {
          actions: [
            { name: 'who', when: 'before', run: 'echo dev_alice' },
            { name: 'branch', when: 'before', job: { template: 'branch' }, run_env: { BRANCH: '${steps.who.stdout}' }, env: { DATABASE_URL: '${steps.branch.DATABASE_URL}', BRANCH_JOB: '${steps.branch.job}' }, timeout: 90 },
          ],
        },
      },
    });
    assert.deepEqual(problems, []);
    const plan = planActions(config!);
    plan.cluster = new OperatorJobSteps({ kubeconfig: api.kubeconfig('dev-alice') });
    const notes: string[] = [];
    const runner = new ActionRunner(plan, { verbose: false, progress: { step: (text) => (notes.push(text), { done: (result) => void notes.push(result ?? 'done'), fail: () => undefined }), note: (text) => void notes.push(text) } });
    const overrides = await runner.runBefore(new AbortController().signal);
    assert.ok(created !== undefined);
    assert.equal(overrides.DATABASE_URL, 'postgres://orders-db/dev_alice');
    assert.equal(overrides.BRANCH_JOB, created.name);
    const body = jobs.created.at(-1) as { spec: { activeDeadlineSeconds: number; template: { spec: { containers: { env: { name: string; value: string }[] }[] } } } };
    assert.deepEqual(body.spec.template.spec.containers[0]!.env, [{ name: 'BRANCH', value: 'dev_alice' }]);
    assert.equal(body.spec.activeDeadlineSeconds, 90, 'the step\'s timeout');
    assert.ok(notes.some((line) => line === `action "branch": Job ${created!.name} created in namespace shop`), notes.join('\n'));
    assert.ok(jobs.jobs.has(`shop/${created.name}`), 'the Job stays while the session runs');
    await runner.finish();
    await waitFor(() => jobs.deleted.includes(`shop/${created!.name}?propagationPolicy=Background`), 'the Job to go with the session', 10_000);
  });

  it('outputs are the NAME=value lines of the log\'s tail, and `job`', () => {
    assert.deepEqual(jobStepOutputs({ job: 'remocal-step-x-1', logTail: ['noise', 'URL=a=b', 'bad-name=1', '=x', 'job=not-this'] }), { URL: 'a=b', job: 'remocal-step-x-1' });
  });
});

describe('job steps, what a client may send and where they run', () => {
  it('bounds the query: timeout, the number and size of env vars, names', () => {
    const ok = parseJobStepQuery('seed', jobStepQuery({ timeoutSeconds: 30, env: { A: '1=2', B: '' } }));
    assert.deepEqual(ok, { template: 'seed', timeoutSeconds: 30, env: { A: '1=2', B: '' } });
    assert.deepEqual(parseJobStepQuery('Seed!', new URLSearchParams()), { refused: '"Seed!" is not a CronJob name (lower-case letters, digits and \'-\', at most 52)' });
    assert.match((parseJobStepQuery('seed', new URLSearchParams({ timeout: '0' })) as { refused: string }).refused, /timeout must be/);
    assert.match((parseJobStepQuery('seed', new URLSearchParams({ timeout: '1e9' })) as { refused: string }).refused, /timeout must be/);
    const many = new URLSearchParams(Array.from({ length: MAX_JOB_STEP_ENV + 1 }, (_, index): [string, string] => ['env', `V${index}=x`]));
    assert.match((parseJobStepQuery('seed', many) as { refused: string }).refused, /at most 32 env vars/);
    assert.match((parseJobStepQuery('seed', new URLSearchParams({ env: `BIG=${'x'.repeat(5000)}` })) as { refused: string }).refused, /at most 4096 bytes/);
    assert.match((parseJobStepQuery('seed', new URLSearchParams([['env', 'A=1'], ['env', 'A=2']])) as { refused: string }).refused, /given twice/);
    assert.match((parseJobStepQuery('seed', new URLSearchParams({ env: 'NOVALUE' })) as { refused: string }).refused, /needs a value/);
  });

  it('a local-mode operator refuses job steps, saying where they run', async () => {
    await assert.rejects(new NoJobSteps().prepare(), (error: Error) => error instanceof FeatureUnavailableError && /run in a cluster/.test(error.message));
  });

  it('orphans are found by their label across namespaces', async () => {
    jobs.add('other', 'remocal-step-x-abcde', { [JOB_STEP_LABEL]: 'x' });
    const kube = connectKube({ kubeconfig: api.kubeconfig('admin') });
    const removed = await new KubeJobSteps(kube, new AccessReviewer(kube, createLogger('test', { level: 'silent' })), createLogger('test', { level: 'silent' })).removeOrphans();
    assert.deepEqual(removed, ['other/remocal-step-x-abcde']);
    assert.deepEqual(api.unmatched.map((request) => `${request.method} ${request.path}`), []);
  });
});
