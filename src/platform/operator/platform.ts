// The operator as one more platform: the operator resolves the target and owns its shared agent, so preparing
// a session is asking the operator about the target (which also proves the address and the token), and the
// launch the intproxy runs is operator-link, which opens the session's stream. Nothing is created on this side,
// and the operator removes what the session held when its stream ends.

import type { Platform } from '../platform.js';
import type { LocalTarget } from '../target.js';
import { formatTarget } from '../target.js';
import { OPERATOR_LOCAL_NAMESPACE, operatorAddress } from './client.js';
import { describeOthers, notePolicies, prepareOperatorSession, preparedFrom } from './session.js';

export interface OperatorPlatformSettings {
  /** `true`: always (fail without one); `auto`: when `url` is set; `false`: never. */
  use: boolean | 'auto';
  url: string | undefined;
  token: string | undefined;
  caFile: string | undefined;
  /** `port-forward` for `remocal port-forward`'s sessions, which a policy may block. Default `exec`. */
  purpose?: 'exec' | 'port-forward';
}

export function wantsOperator(settings: OperatorPlatformSettings): boolean {
  return settings.use === true || (settings.use === 'auto' && settings.url !== undefined);
}

export function operatorPlatform(settings: OperatorPlatformSettings): Platform<LocalTarget> {
  return {
    async prepare(target, request) {
      const address = operatorAddress(settings);
      const step = request.onStep(`asking the operator at ${address.url} for ${formatTarget(target)}`);
      const session = await prepareOperatorSession(address, OPERATOR_LOCAL_NAMESPACE, target, { files: request.files, startupTimeoutMs: request.startupTimeoutMs, purpose: settings.purpose ?? 'exec' });
      step.done(`through the operator: ${session.description}; ${describeOthers(session)}`);
      notePolicies(session, target, request.onNote);
      return preparedFrom(session);
    },
  };
}
