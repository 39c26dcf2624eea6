// Who may steal a port that other sessions already steal: the decision alone, with the words the refused or
// displaced users read. The incoming service (service.ts) asks before it registers a subscription and carries the
// decision out.
//
//   held whole (a lock)    another whole steal is refused, or with on_concurrent_steal `override` takes the port;
//                          a filtered steal is refused whatever it asks (a filter cannot share a locked port).
//   held by filters        a whole steal is refused, or with `override` displaces every filtered holder;
//                          a filtered steal is refused only when its filter is the same as a holder's (the second
//                          would never get a request: the first subscribed wins).
//   mirrored               never in the way, and never refused.
//
// `abort` and `continue` get the same refusal here: what differs is what the session does with it (the intproxy
// ends the session, or goes on without the port).

import { FilterConflictError, PortHeldError, type RemocalError } from '../../core/errors.js';
import type { IncomingMode, OnConcurrentSteal, RemoteFailure } from '../../protocol/messages.js';

/** What a decision needs to know of a subscription already on the port. */
export interface Holding {
  session: { readonly id: string; readonly owner: string };
  since: number;
  /** filterIdentity() of its filter, for a filtered steal. */
  identity: string | null;
}

export interface PortHolding<T extends Holding> {
  whole: T | undefined;
  filtered: readonly T[];
}

export interface StealAsk {
  port: number;
  mode: IncomingMode;
  /** filterIdentity() of the filter, when it applies to the port; null for a whole steal. */
  identity: string | null;
  onConcurrentSteal: OnConcurrentSteal;
}

export type Decision<T> = { kind: 'share' } | { kind: 'refuse'; error: RemoteFailure } | { kind: 'displace'; holders: T[] };

export function decideSteal<T extends Holding>(holding: PortHolding<T>, ask: StealAsk): Decision<T> {
  if (ask.mode === 'mirror') return { kind: 'share' };
  const { port } = ask;
  if (holding.whole !== undefined) {
    const holder = holding.whole;
    if (ask.identity === null && ask.onConcurrentSteal === 'override') return { kind: 'displace', holders: [holder] };
    return refuse(
      new PortHeldError(
        `port ${port} of the target is locked: stolen whole by ${describeHolder(holder)}` +
          (ask.identity === null ? '' : '; a filtered steal cannot share a locked port'),
        { hint: `Ask ${holder.session.owner} to end it (\`remocal session list\` shows session ${holder.session.id}), mirror the port instead${ask.identity === null ? ', or take the port over with on_concurrent_steal: override' : ''}.` },
      ),
    );
  }
  if (holding.filtered.length === 0) return { kind: 'share' };
  if (ask.identity === null) {
    if (ask.onConcurrentSteal === 'override') return { kind: 'displace', holders: [...holding.filtered] };
    return refuse(
      new PortHeldError(
        `port ${port} of the target is shared by filtered steals (${holding.filtered.map(describeHolder).join('; ')}): stealing the whole port would take their requests`,
        { hint: 'Steal only your own requests with an HTTP filter (feature.network.incoming.http_filter), mirror the port, or take it from them with on_concurrent_steal: override. `remocal session list` shows who they are.' },
      ),
    );
  }
  const same = holding.filtered.find((holder) => holder.identity === ask.identity);
  if (same === undefined) return { kind: 'share' };
  return refuse(new FilterConflictError(`port ${port} of the target is already stolen with the same HTTP filter by ${describeHolder(same)}: the first subscribed gets every request both match`));
}

/** "session 1a2b3c4d (alice), since 2026-12-07T10:42:00.000Z": who to ask, and how to find them. */
function describeHolder(holder: Holding): string {
  return `session ${holder.session.id} (${holder.session.owner}), since ${new Date(holder.since).toISOString()}`;
}

function refuse(error: RemocalError): { kind: 'refuse'; error: RemoteFailure } {
  return { kind: 'refuse', error: { code: error.code, message: error.message, ...(error.hint === undefined ? {} : { hint: error.hint }) } };
}
