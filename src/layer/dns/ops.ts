// Name resolution in the target: what a dns.lookup/dns.resolve* call means once Node's argument shapes are
// taken apart, and its answer or native-looking error. The hooks only call these.

import dns from 'node:dns';
import type { DnsRecordType, LookupAddress } from '../../protocol/messages.js';
import { getaddrinfoError, queryError } from '../errors.js';
import type { Policy, Route } from '../policy.js';
import type { Remote } from '../remote.js';

export type ResultOrder = 'verbatim' | 'ipv4first' | 'ipv6first';

export interface LookupRequest {
  hostname: string;
  family: 0 | 4 | 6;
  all: boolean;
  /** null: the order in force when the answer arrives (dns.getDefaultResultOrder()). */
  order: ResultOrder | null;
}

/** The resolver methods of Node, each with its record type and the binding name its errors carry as syscall. */
export const RESOLVE_METHODS = {
  resolveAny: { rrtype: 'ANY', syscall: 'queryAny' },
  resolve4: { rrtype: 'A', syscall: 'queryA' },
  resolve6: { rrtype: 'AAAA', syscall: 'queryAaaa' },
  resolveCaa: { rrtype: 'CAA', syscall: 'queryCaa' },
  resolveCname: { rrtype: 'CNAME', syscall: 'queryCname' },
  resolveMx: { rrtype: 'MX', syscall: 'queryMx' },
  resolveNs: { rrtype: 'NS', syscall: 'queryNs' },
  resolveTxt: { rrtype: 'TXT', syscall: 'queryTxt' },
  resolveSrv: { rrtype: 'SRV', syscall: 'querySrv' },
  resolvePtr: { rrtype: 'PTR', syscall: 'queryPtr' },
  resolveNaptr: { rrtype: 'NAPTR', syscall: 'queryNaptr' },
  resolveSoa: { rrtype: 'SOA', syscall: 'querySoa' },
} as const satisfies Record<string, { rrtype: DnsRecordType; syscall: string }>;

export type ResolveMethod = keyof typeof RESOLVE_METHODS;

/**
 * Record types Node knows but the protocol cannot carry yet (resolveTlsa, Node 22.15+). They fail as a resolver
 * without that type would, rather than quietly asking this machine's DNS servers.
 */
export const UNSUPPORTED_RESOLVE_METHODS = { resolveTlsa: { rrtype: 'TLSA', syscall: 'queryTlsa' } } as const;

export function resolveMethodOf(rrtype: string): ResolveMethod | undefined {
  return (Object.keys(RESOLVE_METHODS) as ResolveMethod[]).find((method) => RESOLVE_METHODS[method].rrtype === rrtype);
}

const VALID_ORDERS = new Set<unknown>(['verbatim', 'ipv4first', 'ipv6first']);
const VALID_FAMILIES = new Set<unknown>([0, 4, 6]);
// The only hints Node accepts; their values are the platform's AI_* flags.
const KNOWN_HINTS = dns.ADDRCONFIG | dns.ALL | dns.V4MAPPED;
const REJECTS_NUL_IN_HOSTNAMES = Number(process.versions.node.split('.')[0]) >= 22;

/**
 * dns.lookup's arguments (callback style when `withCallback`), or null when Node's own lookup must take the call:
 * it answers an empty host name or an IP literal itself, and throws on arguments it rejects, both without I/O.
 * Lenient where Node is strict only in ways that cannot send a lookup to this machine's resolver.
 */
export function parseLookupArguments(
  hostname: unknown,
  options: unknown,
  callback: unknown,
  withCallback: boolean,
): { request: LookupRequest; callback: ((...args: unknown[]) => void) | null } | null {
  if (typeof hostname !== 'string' || hostname === '') return null;
  if (REJECTS_NUL_IN_HOSTNAMES && hostname.includes('\0')) return null;
  let family: 0 | 4 | 6 = 0;
  let all = false;
  let order: ResultOrder | null = null;
  if (withCallback && typeof options === 'function') {
    return { request: { hostname, family, all, order }, callback: options as (...args: unknown[]) => void };
  }
  if (typeof options === 'number') {
    if (!VALID_FAMILIES.has(options + 0)) return null;
    family = (options + 0) as 0 | 4 | 6;
  } else if (options !== undefined && options !== null) {
    if (typeof options !== 'object') return null;
    const given = options as Record<string, unknown>;
    if (given.hints != null) {
      if (typeof given.hints !== 'number' || ((given.hints >>> 0) & ~KNOWN_HINTS) !== 0) return null;
    }
    if (given.family != null) {
      // Only the callback style accepts 'IPv4'/'IPv6' here.
      if (withCallback && given.family === 'IPv4') family = 4;
      else if (withCallback && given.family === 'IPv6') family = 6;
      else if (VALID_FAMILIES.has(given.family)) family = ((given.family as number) + 0) as 0 | 4 | 6;
      else return null;
    }
    if (given.all != null) {
      if (typeof given.all !== 'boolean') return null;
      all = given.all;
    }
    if (given.verbatim != null) {
      if (typeof given.verbatim !== 'boolean') return null;
      order = given.verbatim ? 'verbatim' : 'ipv4first';
    }
    if (given.order != null) {
      if (!VALID_ORDERS.has(given.order)) return null;
      order = given.order as ResultOrder;
    }
  }
  if (withCallback && typeof callback !== 'function') return null;
  return { request: { hostname, family, all, order }, callback: withCallback ? (callback as (...args: unknown[]) => void) : null };
}

export class DnsOps {
  constructor(
    private readonly remote: Remote,
    private readonly policy: Policy,
    private readonly defaultOrder: () => ResultOrder,
  ) {}

  lookupRoute(hostname: string): Route {
    return this.policy.lookup(hostname);
  }

  /** getaddrinfo in the target; addresses in the order the app asked for. Rejects with Node's lookup error. */
  async lookup(request: LookupRequest): Promise<LookupAddress[]> {
    const answer = await this.ask(
      () => this.remote.getaddrinfo(request.hostname, request.family),
      'EAI_AGAIN',
      (code) => getaddrinfoError(code, request.hostname),
    );
    const addresses = answer.addresses.filter((entry) => request.family === 0 || entry.family === request.family);
    if (addresses.length === 0) throw getaddrinfoError('ENOTFOUND', request.hostname);
    return orderAddresses(addresses, request.order ?? this.defaultOrder());
  }

  /** A resolver query in the target, answered in exactly the shape Node's resolver would give. */
  async query(method: ResolveMethod, name: string, ttl: boolean): Promise<unknown> {
    const { rrtype, syscall } = RESOLVE_METHODS[method];
    const withTtl = ttl && (rrtype === 'A' || rrtype === 'AAAA');
    const answer = await this.ask(
      () => this.remote.query(name, rrtype, withTtl || undefined),
      'ECONNREFUSED',
      (code) => queryError(code, syscall, name),
    );
    return answer.records;
  }

  async reverse(address: string): Promise<string[]> {
    const answer = await this.ask(() => this.remote.reverse(address), 'ECONNREFUSED', (code) => queryError(code, 'getHostByAddr', address));
    return answer.hostnames;
  }

  private async ask<T>(
    call: () => Promise<{ ok: true; value: T } | { ok: false; error: { code: string } }>,
    unreachableCode: string,
    toError: (code: string) => Error,
  ): Promise<T> {
    let answer;
    try {
      answer = await call();
    } catch {
      // The session itself failed: answer as a resolver that cannot reach its server would.
      throw toError(unreachableCode);
    }
    if (!answer.ok) throw toError(answer.error.code);
    return answer.value;
  }
}

export function orderAddresses(addresses: LookupAddress[], order: ResultOrder): LookupAddress[] {
  if (order === 'verbatim') return addresses;
  const first = order === 'ipv4first' ? 4 : 6;
  return [...addresses.filter((a) => a.family === first), ...addresses.filter((a) => a.family !== first)];
}
