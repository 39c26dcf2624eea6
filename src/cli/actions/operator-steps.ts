// `job` steps through the cluster's remocal operator (docs/actions.md, docs/operator.md): the kubeconfig's cluster
// and namespace, reached through the API server as the operator platform reaches it. Each finished step's
// WebSocket is held until the session ends, since the operator deletes the Job when it closes.

import { JobStepFailedError, OperatorUnavailableError } from '../../core/errors.js';
import type { KubeSettings } from '../../platform/kubernetes/api.js';
import type { OperatorAddress } from '../../platform/operator/client.js';
import type { FinishedJobStep } from '../../platform/operator/job-step.js';
import { JOB_STEP_ENV_NAME, MAX_JOB_STEP_TIMEOUT_SECONDS } from '../../protocol/job-step.js';
import type { ActionStep } from '../../config/actions.js';
import type { Progress } from '../progress.js';
import type { ClusterSteps } from './cluster-steps.js';

/** A step's outputs: `job`, and the `NAME=value` lines at the end of its log (a branch's URL, say). */
export function jobStepOutputs(finished: Pick<FinishedJobStep, 'job' | 'logTail'>): Record<string, string> {
  const outputs: Record<string, string> = {};
  for (const line of finished.logTail) {
    const equals = line.indexOf('=');
    if (equals > 0 && JOB_STEP_ENV_NAME.test(line.slice(0, equals))) outputs[line.slice(0, equals)] = line.slice(equals + 1);
  }
  return { ...outputs, job: finished.job };
}

export class OperatorJobSteps implements ClusterSteps {
  private readonly held: FinishedJobStep[] = [];
  private reached: Promise<{ address: OperatorAddress; namespace: string }> | undefined;

  constructor(private readonly kube: KubeSettings) {}

  async run(step: ActionStep & { job: { template: string }; timeoutMs: number }, signal: AbortSignal, progress: Progress): Promise<Record<string, string>> {
    const { address, namespace } = await (this.reached ??= this.reach());
    const { runJobStep } = await import('../../platform/operator/job-step.js');
    const timeoutSeconds = Math.min(Math.ceil(step.timeoutMs / 1000), MAX_JOB_STEP_TIMEOUT_SECONDS);
    try {
      const finished = await runJobStep(address, namespace, { template: step.job.template, timeoutSeconds, env: step.run_env ?? {} }, (message) => progress.note(`action "${step.name}": ${message}`), signal);
      this.held.push(finished);
      return jobStepOutputs(finished);
    } catch (error) {
      if (signal.aborted && signal.reason instanceof DOMException && signal.reason.name === 'TimeoutError') {
        throw new JobStepFailedError(`The job step ${step.job.template} (action "${step.name}") did not finish within its timeout; the operator deletes its Job.`, {
          hint: 'Raise the step\'s `timeout` (or `actions_timeout`), or look at the Job with `kubectl describe job` while it runs.',
        });
      }
      throw error;
    }
  }

  /** The cluster's operator, found as `operator: auto` finds it; a missing one is said here, before a Job could be asked for. */
  private async reach(): Promise<{ address: OperatorAddress; namespace: string }> {
    const [{ connectKube }, { apiServerAddress, clusterOperator }] = await Promise.all([import('../../platform/kubernetes/api.js'), import('../../platform/operator/kube-platform.js')]);
    const kube = connectKube(this.kube);
    const found = await clusterOperator(kube);
    if (!found.available) {
      throw new OperatorUnavailableError(`A \`job\` step runs in the cluster through the remocal operator, but ${found.why}.`, {
        hint: 'Install the operator (`remocal operator setup | kubectl apply -f -`, docs/operator.md), or make the step a local `run` step.',
      });
    }
    return { address: await apiServerAddress(kube), namespace: kube.namespace };
  }

  async cleanup(): Promise<void> {
    for (const finished of this.held.splice(0)) finished.release();
  }
}
