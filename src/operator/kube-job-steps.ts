// Job steps in Kubernetes mode. The template is a CronJob an admin marked with `remocal.dev/job-template: "true"`
// (suspended, so it never runs on its own schedule): the API server validated it when it was written, and
// nobody runs a workload through the operator that an admin did not put there. The caller must also be allowed
// the verb `create` on `jobsteps.operator.remocal.dev` named after the template, asked with a
// SubjectAccessReview, so admins grant templates one by one. The Job is then created with the operator's own
// ServiceAccount, watched until it finishes, fails, or cannot even start (Pod Security, an image that cannot be
// pulled: the reason is the cluster's own words, never a timeout), and deleted when the client lets go.

import type { V1CronJob, V1Job } from '@kubernetes/client-node';
import { JobStepFailedError, OperatorForbiddenError, TargetNotFoundError } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import { apiStatus, kubeCall, type Kube } from '../platform/kubernetes/api.js';
import { JOB_STEP_LABEL, JOB_STEP_LOG_TAIL_LINES, JOB_TEMPLATE_ANNOTATION, type JobStepRequest } from '../protocol/job-step.js';
import { serializeError } from '../protocol/wire-error.js';
import { jobStepName, jobStepSpec } from './job-step-spec.js';
import type { Identity } from './identity.js';
import type { JobStepRun, JobSteps, PreparedJobStep } from './job-steps.js';
import type { AccessReviewer } from './kube-catalog.js';

/** Container states that will not get better by waiting: the kubelet's reasons. */
const HOPELESS_WAITING = new Set(['ErrImagePull', 'ImagePullBackOff', 'ErrImageNeverPull', 'InvalidImageName', 'CreateContainerConfigError', 'CreateContainerError']);

type Outcome = { ok: true } | { ok: false; error: JobStepFailedError } | { ok: 'released' };

export class KubeJobSteps implements JobSteps {
  constructor(
    private readonly kube: Kube,
    private readonly reviewer: AccessReviewer,
    private readonly log: Logger,
    private readonly pollMs = 1000,
  ) {}

  async prepare(identity: Identity, namespace: string, request: JobStepRequest): Promise<PreparedJobStep> {
    const template = request.template;
    if (!(await this.reviewer.allowed(identity, { namespace, verb: 'create', group: 'operator.remocal.dev', resource: 'jobsteps', name: template }))) {
      throw new OperatorForbiddenError(`${identity.user} may not run the job step ${template} in namespace ${namespace}.`, {
        hint: `An admin grants it with a Role: verbs [create] on jobsteps.operator.remocal.dev, resourceNames [${template}]. Check it with \`kubectl auth can-i create jobsteps.operator.remocal.dev/${template} -n ${namespace}\`.`,
      });
    }
    const cronJob = await kubeCall(
      this.kube,
      { verb: 'get', resource: 'cronjobs.batch', namespace, name: template },
      () => this.kube.batch.readNamespacedCronJob({ name: template, namespace }),
      () => new TargetNotFoundError(`There is no CronJob "${template}" in namespace ${namespace} to run as a job step.`, { hint: `A job step's template is a CronJob of the target's namespace: \`kubectl get cronjobs -n ${namespace}\`.` }),
    );
    if (cronJob.metadata?.annotations?.[JOB_TEMPLATE_ANNOTATION] !== 'true') {
      throw new OperatorForbiddenError(`CronJob ${template} in namespace ${namespace} is not a job-step template, so the operator does not run it.`, {
        hint: `An admin makes it one with the annotation ${JOB_TEMPLATE_ANNOTATION}: "true" (and suspend: true, so it never runs on its schedule).`,
      });
    }
    return { run: (step) => this.run(step, identity, namespace, request, cronJob) };
  }

  private async run(step: JobStepRun, identity: Identity, namespace: string, request: JobStepRequest, cronJob: V1CronJob): Promise<void> {
    const name = jobStepName(request.template);
    await kubeCall(this.kube, { verb: 'create', resource: 'jobs.batch', namespace }, () => this.kube.batch.createNamespacedJob({ namespace, body: jobStepSpec(cronJob, request, identity.user, name) }));
    this.log.info({ job: name, namespace, template: request.template, owner: identity.user }, 'job step started');
    const startedAt = Date.now();
    try {
      step.send({ type: 'created', namespace, job: name });
      const outcome = await this.outcome(step, namespace, request, name, startedAt);
      if (outcome.ok === 'released') return;
      const logTail = await this.logTail(namespace, name);
      step.send(outcome.ok ? { type: 'succeeded', job: name, seconds: (Date.now() - startedAt) / 1000, logTail } : { type: 'failed', error: serializeError(outcome.error), logTail });
      await step.released;
    } finally {
      await this.remove(namespace, name);
    }
  }

  /** Polls the Job, its events and its pods until one of them says how it ends, or the client lets go. */
  private async outcome(step: JobStepRun, namespace: string, request: JobStepRequest, name: string, startedAt: number): Promise<Outcome> {
    let released = false;
    void step.released.then(() => (released = true));
    // The Job's own deadline ends it; this one is for a cluster whose controllers do not say so.
    const deadline = startedAt + (request.timeoutSeconds + 30) * 1000;
    let said = '';
    const progress = (message: string): void => {
      if (message !== said) step.send({ type: 'progress', message });
      said = message;
    };
    const failed = (message: string): Outcome => ({
      ok: false,
      error: new JobStepFailedError(`The job step ${request.template} (Job ${name} in namespace ${namespace}) failed: ${message}`, {
        hint: `\`kubectl describe job ${name} -n ${namespace}\` while the session runs; the operator deletes it when the session ends.`,
      }),
    });
    for (;;) {
      if (released) return { ok: 'released' };
      const job: V1Job = await kubeCall(this.kube, { verb: 'get', resource: 'jobs.batch', namespace, name }, () => this.kube.batch.readNamespacedJob({ name, namespace }));
      const condition = (type: string) => job.status?.conditions?.find((each) => each.type === type && each.status === 'True');
      if (condition('Complete') !== undefined) return { ok: true };
      const failure = condition('Failed');
      if (failure !== undefined) {
        return failed(failure.reason === 'DeadlineExceeded' ? `it did not finish within its timeout of ${request.timeoutSeconds} s` : `${failure.reason ?? 'Failed'}: ${failure.message ?? 'no message'}`);
      }
      // A pod the Job controller may not create (Pod Security, a quota) leaves the Job's status empty: only its
      // events say why, and they repeat with backoff for as long as one waits.
      const events = await kubeCall(this.kube, { verb: 'list', resource: 'events', namespace }, () =>
        this.kube.core.listNamespacedEvent({ namespace, fieldSelector: `involvedObject.kind=Job,involvedObject.name=${name}` }),
      );
      const refused = events.items.find((event) => event.reason === 'FailedCreate');
      if (refused !== undefined) return failed(`its pod could not be created: ${refused.message ?? 'no message'}`);
      const pods = await kubeCall(this.kube, { verb: 'list', resource: 'pods', namespace }, () => this.kube.core.listNamespacedPod({ namespace, labelSelector: `job-name=${name}` }));
      for (const pod of pods.items) {
        for (const status of [...(pod.status?.initContainerStatuses ?? []), ...(pod.status?.containerStatuses ?? [])]) {
          const waiting = status.state?.waiting;
          if (waiting?.reason !== undefined && HOPELESS_WAITING.has(waiting.reason)) return failed(`container ${status.name} of pod ${pod.metadata?.name ?? '?'} cannot start: ${waiting.reason}: ${waiting.message ?? 'no message'}`);
        }
        const unschedulable = pod.status?.conditions?.find((each) => each.type === 'PodScheduled' && each.status === 'False' && each.reason === 'Unschedulable');
        if (unschedulable !== undefined) return failed(`pod ${pod.metadata?.name ?? '?'} cannot be scheduled: ${unschedulable.message ?? 'Unschedulable'}`);
      }
      const running = pods.items.find((pod) => pod.status?.phase === 'Running');
      progress(running !== undefined ? `running in pod ${running.metadata?.name ?? '?'}` : pods.items.length > 0 ? `pod ${pods.items[0]!.metadata?.name ?? '?'} is ${pods.items[0]!.status?.phase ?? 'Pending'}` : 'waiting for its pod');
      if (Date.now() > deadline) return failed(`the cluster did not report it finished within ${request.timeoutSeconds + 30} s`);
      await Promise.race([new Promise((resolve) => setTimeout(resolve, this.pollMs)), step.released]);
    }
  }

  /** The last lines of the Job's newest pod's first container: what the user reads when it failed. */
  private async logTail(namespace: string, name: string): Promise<string[]> {
    try {
      const pods = await this.kube.core.listNamespacedPod({ namespace, labelSelector: `job-name=${name}` });
      const newest = pods.items.sort((a, b) => String(b.metadata?.creationTimestamp ?? '').localeCompare(String(a.metadata?.creationTimestamp ?? '')))[0];
      const container = newest?.spec?.containers[0]?.name;
      if (newest?.metadata?.name === undefined || container === undefined) return [];
      const text = await this.kube.core.readNamespacedPodLog({ name: newest.metadata.name, namespace, container, tailLines: JOB_STEP_LOG_TAIL_LINES });
      return String(text).split('\n').filter((line, index, lines) => line !== '' || index < lines.length - 1).slice(-JOB_STEP_LOG_TAIL_LINES);
    } catch (error) {
      // The log is a courtesy: a pod never started has none, and the step's outcome stands without it.
      this.log.debug({ err: error, job: name }, 'no log for the job step');
      return [];
    }
  }

  private async remove(namespace: string, name: string): Promise<void> {
    try {
      await this.kube.batch.deleteNamespacedJob({ name, namespace, propagationPolicy: 'Background' });
      this.log.info({ job: name, namespace }, 'job step deleted');
    } catch (error) {
      if (apiStatus(error)?.code === 404) return;
      // Its TTL removes it later; say so rather than fail the session's end.
      this.log.error({ err: error, job: name, namespace }, 'could not delete the job step; its ttlSecondsAfterFinished will');
    }
  }

  async removeOrphans(): Promise<string[]> {
    const jobs = await kubeCall(this.kube, { verb: 'list', resource: 'jobs.batch', namespace: '(all)' }, () => this.kube.batch.listJobForAllNamespaces({ labelSelector: JOB_STEP_LABEL }));
    const removed: string[] = [];
    for (const job of jobs.items) {
      const { name, namespace } = job.metadata ?? {};
      if (name === undefined || namespace === undefined) continue;
      await this.remove(namespace, name);
      removed.push(`${namespace}/${name}`);
    }
    return removed;
  }
}
