// Outgoing TCP connections: where a connect goes, and what happened to a remote one. The hooks hand this module
// the app's target (host, port, family) and get back an outcome: go local, failed with a native-looking error,
// or connected from the target with a loopback proxy port to splice into.

import { isIP } from 'node:net';
import { LINK_LOST_CODE, REMOCAL_CODE_PREFIX } from '../../protocol/contracts.js';
import type { LayerConnectResult, LookupAddress, RemoteFailure, Result } from '../../protocol/messages.js';
import { connectError, getaddrinfoError, isLookupFailure, type NodeSystemError } from '../errors.js';
import type { Policy } from '../policy.js';
import type { Remote } from '../remote.js';

export interface ConnectTarget {
  /** What the app asked for: a name or an IP literal ("localhost" when it gave none, as Node assumes). */
  host: string;
  port: number;
  /** The app's `family` option: 0 when it left the choice to DNS. */
  family: 0 | 4 | 6;
}

export type ConnectOutcome =
  /** Hand the connect to Node as the app wrote it (a name is then resolved by the DNS hooks). */
  | { kind: 'local' }
  /**
   * The target connected. `resolved` is the address a name resolved to, for the socket's 'lookup' event;
   * null when the app gave an IP literal (Node emits no 'lookup' then).
   */
  | { kind: 'remote'; result: LayerConnectResult; resolved: LookupAddress | null }
  | { kind: 'failed'; error: NodeSystemError; stage: 'lookup' | 'connect'; resolved: LookupAddress | null };

/** getaddrinfo on this machine (the original dns.lookup), for sessions whose DNS stays local. */
export type LocalLookup = (hostname: string, family: 0 | 4 | 6) => Promise<LookupAddress[]>;

export class NetOps {
  constructor(
    private readonly remote: Remote,
    private readonly policy: Policy,
    private readonly lookupLocally: LocalLookup,
    private readonly onInfrastructureFailure: (message: string) => void = () => {},
  ) {}

  /**
   * Decided at call time, synchronously: 'local' hands the call to Node untouched, so a local connect behaves
   * exactly as without the layer. 'remote' means the layer takes the socket over; it may still turn out local
   * once a name is resolved (see connect).
   */
  route(target: ConnectTarget): 'local' | 'remote' {
    return this.policy.connect({ hostname: target.host, port: target.port }) === 'local' ? 'local' : 'remote';
  }

  async connect(target: ConnectTarget): Promise<ConnectOutcome> {
    const isName = isIP(target.host) === 0;
    let resolved: LookupAddress | null = null;
    if (isName && this.mustResolveFirst(target)) {
      try {
        resolved = await this.resolve(target);
      } catch (error) {
        return { kind: 'failed', error: error as NodeSystemError, stage: 'lookup', resolved: null };
      }
      if (this.policy.connect({ hostname: target.host, address: resolved.address, port: target.port }) === 'local') {
        return { kind: 'local' };
      }
    }

    let answer: Result<LayerConnectResult>;
    try {
      answer = await this.remote.connect(resolved?.address ?? target.host, target.port);
    } catch (error) {
      answer = { ok: false, error: { code: LINK_LOST_CODE, message: `remocal: ${(error as Error)?.message ?? String(error)}` } };
    }
    if (!answer.ok) return this.failed(answer.error, target, resolved);
    const { remote } = answer.value;
    return {
      kind: 'remote',
      result: answer.value,
      resolved: isName ? (resolved ?? { address: remote.address, family: remote.family === 'IPv6' ? 6 : 4 }) : null,
    };
  }

  /**
   * A name is resolved before the connect, instead of by the agent, when its address decides the route (a subnet
   * in the filter), when the app asked for one family, or when DNS stays local (mirrord's semantics: the name
   * is resolved where DNS runs, and the connection opened to that address from the target).
   */
  private mustResolveFirst(target: ConnectTarget): boolean {
    return (
      target.family !== 0 ||
      this.policy.lookup(target.host) === 'local' ||
      this.policy.connect({ hostname: target.host, port: target.port }) === 'resolve-first'
    );
  }

  private async resolve(target: ConnectTarget): Promise<LookupAddress> {
    if (this.policy.lookup(target.host) === 'local') {
      const [first] = await this.lookupLocally(target.host, target.family);
      if (first === undefined) throw getaddrinfoError('ENOTFOUND', target.host);
      return first;
    }
    let answer;
    try {
      answer = await this.remote.getaddrinfo(target.host, target.family);
    } catch (error) {
      this.onInfrastructureFailure(`getaddrinfo ${target.host} failed: ${(error as Error)?.message ?? String(error)}`);
      throw getaddrinfoError('EAI_AGAIN', target.host);
    }
    if (!answer.ok) throw getaddrinfoError(answer.error.code, target.host);
    const [first] = answer.value.addresses;
    if (first === undefined) throw getaddrinfoError('ENOTFOUND', target.host);
    return first;
  }

  private failed(failure: RemoteFailure, target: ConnectTarget, resolved: LookupAddress | null): ConnectOutcome {
    if (failure.code.startsWith(REMOCAL_CODE_PREFIX) || failure.code === LINK_LOST_CODE) {
      this.onInfrastructureFailure(`connect ${target.host}:${target.port} failed: ${failure.code} ${failure.message}`);
    }
    const isName = isIP(target.host) === 0;
    if (isName && resolved === null && isLookupFailure(failure)) {
      return { kind: 'failed', error: getaddrinfoError(failure.code, target.host), stage: 'lookup', resolved: null };
    }
    // Node names the peer by the address it tried, which for a name only the far side knows.
    const peer = resolved?.address ?? peerAddressOf(failure) ?? target.host;
    const peerFamily = isIP(peer);
    return {
      kind: 'failed',
      error: connectError(failure.code, peer, target.port),
      stage: 'connect',
      resolved: resolved ?? (isName && peerFamily !== 0 ? { address: peer, family: peerFamily as 4 | 6 } : null),
    };
  }
}

/**
 * The address a remote connect failed on. RemoteFailure may carry it as `address`; otherwise the agent's own
 * message, which is Node's (`connect ECONNREFUSED 10.96.5.5:80`), names it.
 */
export function peerAddressOf(failure: RemoteFailure & { address?: unknown }): string | undefined {
  if (typeof failure.address === 'string' && isIP(failure.address)) return failure.address;
  const match = /\s(\S+):\d+$/.exec(failure.message ?? '');
  return match && isIP(match[1]!) ? match[1] : undefined;
}
