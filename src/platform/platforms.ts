// Which platform serves a target: the one place that chooses, so commands only ever prepare "a session".

import { FeatureUnavailableError } from '../core/errors.js';
import type { KubePlatformSettings } from './kubernetes/session.js';
import { localPlatform } from './local.js';
import { operatorPlatform, wantsOperator, type OperatorPlatformSettings } from './operator/platform.js';
import type { PrepareRequest, PreparedSession } from './platform.js';
import type { Target } from './target.js';

/** What the platforms need beyond the target, each its own group; a platform reads only its own. */
export interface PlatformSettings {
  kubernetes: KubePlatformSettings;
  operator: OperatorPlatformSettings;
}

export async function prepareSession(target: Target, settings: PlatformSettings, request: PrepareRequest): Promise<PreparedSession> {
  switch (target.platform) {
    case 'local': {
      if (wantsOperator(settings.operator)) {
        return operatorPlatform(settings.operator).prepare(target, request);
      }
      // Direct: the progress line says the session starts an agent of its own, so which path was taken is shown.
      return localPlatform.prepare(target, request);
    }
    case 'kubernetes': {
      if (settings.operator.use === true) {
        throw new FeatureUnavailableError(`${target.kind === 'targetless' ? 'targetless' : `${target.kind}/${target.name}`} is a Kubernetes target, and this remocal reaches only local-mode operators so far.`, {
          hint: 'Set `operator: false` (or leave it at "auto") to reach the pod directly, each session with its own agent.',
        });
      }
      // Loaded only for Kubernetes targets: the Kubernetes client is large, and local sessions start faster without it.
      const { kubernetesPlatform } = await import('./kubernetes/session.js');
      return kubernetesPlatform(settings.kubernetes).prepare(target, request);
    }
  }
}
