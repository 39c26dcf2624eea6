// Which targets a user may open sessions on: the config's patterns (`container/orders-*`), the user's own list
// overriding the operator-wide one. Checked by the operator before it resolves the target, so a refused user
// learns nothing about the target either.

import { OperatorForbiddenError } from '../core/errors.js';
import { escapeRegex } from '../config/regex.js';
import type { Identity } from './identity.js';

function pattern(glob: string): RegExp {
  return new RegExp(`^${glob.split('*').map(escapeRegex).join('.*')}$`);
}

export function checkTargetAccess(identity: Identity, target: string, operatorWide: readonly string[]): void {
  const allowed = identity.targets ?? operatorWide;
  if (allowed.some((glob) => pattern(glob).test(target))) return;
  throw new OperatorForbiddenError(`${identity.user} may not open sessions on ${target}: the operator allows ${allowed.join(', ')}.`, {
    hint: 'Ask an admin of the operator to add the target to `targets` (or to your user\'s `targets`) in its config.',
  });
}
