// A policy's outgoing destination rules, compiled once per policy change and asked per connect: by address (an
// ipBlock and its excepts, through Node's BlockList), by host name (a regex over the names the session asked for or
// resolved to the address), and by port.

import { BlockList, isIP, SocketAddress } from 'node:net';
import { compileConfigRegex } from '../../config/regex.js';
import type { OutgoingPolicyRule } from '../../protocol/policy.js';

/** Where a session wants to connect: the address dialled, and every name that stands for it in this session. */
export interface Destination {
  address: string;
  port: number;
  names: readonly string[];
}

/**
 * A destination as the rules ask it: the address parsed once per connect, since BlockList parses a string address
 * again on every check (a few microseconds each, times every rule).
 */
export interface ParsedDestination {
  /** Null when the address is not an IP address (a rule's ipBlock then matches nothing). */
  address: SocketAddress | null;
  port: number;
  names: readonly string[];
}

export type DestinationMatcher = (destination: ParsedDestination) => boolean;

export function parseDestination({ address, port, names }: Destination): ParsedDestination {
  const plain = unmapped(address);
  const family = isIP(plain);
  return { address: family === 0 ? null : new SocketAddress({ address: plain, family: family === 6 ? 'ipv6' : 'ipv4' }), port, names };
}

export function compileOutgoingRule(rule: OutgoingPolicyRule): DestinationMatcher {
  const ports = rule.ports === undefined ? undefined : new Set(rule.ports);
  const inBlock = rule.ipBlock === undefined ? undefined : compileIpBlock(rule.ipBlock);
  const hostname = rule.hostname === undefined ? undefined : compileConfigRegex(rule.hostname);
  return ({ address, port, names }) => {
    if (ports !== undefined && !ports.has(port)) return false;
    // A rule of ports alone matches those ports anywhere.
    if (inBlock === undefined && hostname === undefined) return true;
    if (inBlock !== undefined && inBlock(address)) return true;
    return hostname !== undefined && names.some((name) => hostname.test(name));
  };
}

function compileIpBlock(block: { cidr: string; except?: string[] }): (address: SocketAddress | null) => boolean {
  const within = subnets([block.cidr]);
  const except = subnets(block.except ?? []);
  return (address) => address !== null && within.check(address) && !except.check(address);
}

function subnets(cidrs: readonly string[]): BlockList {
  const list = new BlockList();
  for (const cidr of cidrs) {
    const [network = '', bits] = cidr.split('/');
    const family = isIP(network) === 6 ? 'ipv6' : 'ipv4';
    // The CRD's schema (format: cidr) and the operator's validation keep malformed blocks out; one that got here
    // anyway matches nothing rather than everything.
    if (isIP(network) === 0) continue;
    list.addSubnet(network, bits === undefined ? (family === 'ipv6' ? 128 : 32) : Number(bits), family);
  }
  return list;
}

/** `::ffff:10.0.0.5`, as a dual-stack socket reports an IPv4 peer, is the IPv4 address for every rule. */
function unmapped(address: string): string {
  const match = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  return match === null ? address : match[1]!;
}
