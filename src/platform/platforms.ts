// Which platform serves a target: the one place that chooses, so commands only ever prepare "a session".

import { CopyTargetUnsupportedError, SplitConfigError } from '../core/errors.js';
import type { CopyTargetRequest } from '../protocol/copy-target.js';
import type { SplitQueuesRequest } from '../protocol/split-queues.js';
import type { KubePlatformSettings } from './kubernetes/session.js';
import { localPlatform } from './local.js';
import { operatorPlatform, wantsOperator, type OperatorPlatformSettings } from './operator/platform.js';
import type { PrepareRequest, PreparedSession } from './platform.js';
import { formatTarget, type Target } from './target.js';

/** What the platforms need beyond the target, each its own group; a platform reads only its own. */
export interface PlatformSettings {
  kubernetes: KubePlatformSettings;
  operator: OperatorPlatformSettings;
  /** Run against a copy of the target: only the operator on Kubernetes makes copies. */
  copyTarget?: CopyTargetRequest | undefined;
  /** Take this session's share of the workload's queues: only the operator on Kubernetes splits them. */
  splitQueues?: SplitQueuesRequest | undefined;
}

function noSplitHere(target: Target, why: string): SplitConfigError {
  return new SplitConfigError(`feature.split_queues is set, but ${formatTarget(target)} ${why}: queues are split by the remocal operator on Kubernetes.`, {
    hint: 'Run the session through the operator on a Deployment or StatefulSet target, or leave feature.split_queues out.',
  });
}

function noCopyHere(target: Target, why: string): CopyTargetUnsupportedError {
  return new CopyTargetUnsupportedError(`feature.copy_target is set, but ${formatTarget(target)} ${why}: copies are made by the remocal operator on Kubernetes.`);
}

export async function prepareSession(target: Target, settings: PlatformSettings, request: PrepareRequest): Promise<PreparedSession> {
  switch (target.platform) {
    case 'local': {
      if (settings.copyTarget !== undefined) throw noCopyHere(target, 'is a target on a host');
      if (settings.splitQueues !== undefined) throw noSplitHere(target, 'is a target on a host');
      if (wantsOperator(settings.operator)) {
        return operatorPlatform(settings.operator).prepare(target, request);
      }
      // Direct: the progress line says the session starts an agent of its own, so which path was taken is shown.
      return localPlatform.prepare(target, request);
    }
    case 'kubernetes': {
      // Loaded only for Kubernetes targets: the Kubernetes client is large, and local sessions start faster without it.
      if (settings.operator.use !== false) {
        const { kubeOperatorPlatform } = await import('./operator/kube-platform.js');
        return kubeOperatorPlatform(settings.kubernetes, { use: settings.operator.use, purpose: settings.operator.purpose, copy: settings.copyTarget, split: settings.splitQueues }).prepare(target, request);
      }
      if (settings.copyTarget !== undefined) throw noCopyHere(target, 'is reached without the operator (`operator: false`)');
      if (settings.splitQueues !== undefined) throw noSplitHere(target, 'is reached without the operator (`operator: false`)');
      const { kubernetesPlatform } = await import('./kubernetes/session.js');
      return kubernetesPlatform(settings.kubernetes).prepare(target, request);
    }
  }
}
