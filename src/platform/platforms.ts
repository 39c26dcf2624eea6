// Which platform serves a target: the one place that chooses, so commands only ever prepare "a session".

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
      // Loaded only for Kubernetes targets: the Kubernetes client is large, and local sessions start faster without it.
      if (settings.operator.use !== false) {
        const { kubeOperatorPlatform } = await import('./operator/kube-platform.js');
        return kubeOperatorPlatform(settings.kubernetes, { use: settings.operator.use, purpose: settings.operator.purpose }).prepare(target, request);
      }
      const { kubernetesPlatform } = await import('./kubernetes/session.js');
      return kubernetesPlatform(settings.kubernetes).prepare(target, request);
    }
  }
}
