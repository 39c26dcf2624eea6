// Job steps: the steps of a session's actions that run in the cluster (protocol/job-step.ts). The operator runs
// them only in Kubernetes mode (kube-job-steps.ts); a host has no cluster to run a Job in.

import { FeatureUnavailableError } from '../core/errors.js';
import type { JobStepEvent, JobStepRequest } from '../protocol/job-step.js';
import type { Identity } from './identity.js';

export interface JobStepRun {
  send(event: JobStepEvent): void;
  /** Settles when the client's socket closes: the step's Job is deleted then, whatever state it is in. */
  released: Promise<void>;
}

export interface PreparedJobStep {
  /** Creates the Job and reports on it; resolves once the Job is deleted. */
  run(step: JobStepRun): Promise<void>;
}

export interface JobSteps {
  /** Checks the caller may run the template and reads it; throws the refusal before anything was created. */
  prepare(identity: Identity, namespace: string, request: JobStepRequest): Promise<PreparedJobStep>;
  /** Deletes the Jobs a previous run of the operator left behind; their sessions ended with it. */
  removeOrphans(): Promise<string[]>;
}

export class NoJobSteps implements JobSteps {
  prepare(): Promise<PreparedJobStep> {
    return Promise.reject(
      new FeatureUnavailableError('Job steps run in a cluster, and this operator serves a host\'s targets (local mode).', {
        hint: 'Run the step locally (`run:` instead of `job:`), or use the operator of a Kubernetes cluster.',
      }),
    );
  }

  removeOrphans(): Promise<string[]> {
    return Promise.resolve([]);
  }
}
