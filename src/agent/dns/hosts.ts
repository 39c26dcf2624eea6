// The target's /etc/hosts, read twice over because its two readers disagree:
// - glibc (getaddrinfo, `hosts: files`): one entry per line, names matched case-insensitively and exactly (a
//   trailing dot does not match), every matching line in file order when /etc/host.conf says `multi on`, only
//   the first one otherwise (glibc's default when host.conf is missing or silent);
// - c-ares (Node's dns.reverse): lines that share an address or a name are merged into one entry, and Node
//   answers a reverse lookup with that entry's names minus the first one (the hostent's h_name), so
//   "10.0.0.1 web" alone reverses to [] and "10.0.0.1 web alias" to ["alias"].
// Both take addresses with inet_pton's strict syntax: "127.1" or "fe80::1%eth0" make the line invalid.

import { isIPv4, isIPv6 } from 'node:net';
import type { LookupAddress } from '../../protocol/messages.js';

export interface HostsLine {
  /** Canonical text: dotted quad, or IPv6 as inet_ntop prints it. */
  address: string;
  family: 4 | 6;
  names: string[];
}

export interface HostsFile {
  lines: HostsLine[];
  /** c-ares's merged entries, by canonical address: their names in merge order. */
  reverseNames: Map<string, string[]>;
}

export function parseHosts(text: string): HostsFile {
  const lines: HostsLine[] = [];
  for (const raw of text.split('\n')) {
    const [addressText, ...names] = raw.replace(/#.*/, '').split(/\s+/).filter((word) => word !== '');
    if (addressText === undefined || names.length === 0) continue;
    const address = parseStrictAddress(addressText);
    if (address === null) continue;
    lines.push({ ...address, names });
  }
  return { lines, reverseNames: mergeLikeCares(lines) };
}

/**
 * glibc's files lookup of `name`: the addresses of the matching lines, filtered by family. An IPv4-mapped IPv6
 * line answers a family-4 lookup with its IPv4 address, as glibc converts it for AF_INET.
 */
export function lookupHosts(hosts: HostsFile, name: string, family: 0 | 4 | 6, multi: boolean): LookupAddress[] {
  const wanted = asciiLowerCase(name);
  const found: LookupAddress[] = [];
  for (const line of hosts.lines) {
    if (!line.names.some((candidate) => asciiLowerCase(candidate) === wanted)) continue;
    const address = addressForFamily(line, family);
    if (address === null) continue;
    found.push(address);
    if (!multi) break;
  }
  return found;
}

function addressForFamily(line: HostsLine, family: 0 | 4 | 6): LookupAddress | null {
  if (family === 0 || family === line.family) return { address: line.address, family: line.family };
  if (family === 4 && line.address.startsWith('::ffff:') && isIPv4(line.address.slice('::ffff:'.length))) {
    return { address: line.address.slice('::ffff:'.length), family: 4 };
  }
  return null;
}

/** What Node's dns.reverse finds in this file for `address` (any IPv4/IPv6 text), or undefined if nothing. */
export function reverseHosts(hosts: HostsFile, address: string): string[] | undefined {
  const canonical = canonicalAddress(address);
  if (canonical === null) return undefined;
  const names = hosts.reverseNames.get(canonical);
  return names === undefined ? undefined : names.slice(1);
}

/**
 * c-ares's hosts merge, in file order: a line joins the entry that already holds its address, else the entry
 * that holds one of its names; names already known anywhere are dropped (case-insensitively).
 */
function mergeLikeCares(lines: HostsLine[]): Map<string, string[]> {
  const entryByAddress = new Map<string, string[]>();
  const entryByName = new Map<string, string[]>();
  for (const line of lines) {
    let entry = entryByAddress.get(line.address);
    if (entry === undefined) {
      for (const name of line.names) {
        entry = entryByName.get(asciiLowerCase(name));
        if (entry !== undefined) break;
      }
    }
    entry ??= [];
    if (!entryByAddress.has(line.address)) entryByAddress.set(line.address, entry);
    for (const name of line.names) {
      const key = asciiLowerCase(name);
      if (entryByName.has(key) || entry.some((known) => asciiLowerCase(known) === key)) continue;
      entry.push(name);
      entryByName.set(key, entry);
    }
  }
  return entryByAddress;
}

/** `multi on|off` from /etc/host.conf (the last one wins); glibc's default is off. */
export function parseHostConfMulti(text: string): boolean {
  let multi = false;
  for (const line of text.split('\n')) {
    const [keyword, value] = line.replace(/#.*/, '').trim().split(/\s+/);
    if (keyword?.toLowerCase() !== 'multi' || value === undefined) continue;
    if (value.toLowerCase() === 'on') multi = true;
    else if (value.toLowerCase() === 'off') multi = false;
  }
  return multi;
}

/** C-locale strcasecmp folds ASCII letters only. */
function asciiLowerCase(text: string): string {
  return text.replace(/[A-Z]/g, (letter) => letter.toLowerCase());
}

function parseStrictAddress(text: string): { address: string; family: 4 | 6 } | null {
  if (isIPv4(text)) return { address: text, family: 4 };
  if (text.includes('%')) return null;
  const bytes = ipv6Bytes(text);
  return bytes === null ? null : { address: formatIPv6(bytes), family: 6 };
}

/** Canonical text of an IPv4 or IPv6 address (an IPv6 zone is dropped), or null if it is neither. */
export function canonicalAddress(text: string): string | null {
  if (isIPv4(text)) return text;
  const bytes = ipv6Bytes(text.replace(/%.*$/, ''));
  return bytes === null ? null : formatIPv6(bytes);
}

/** The 16 bytes of an IPv6 address (with or without an embedded IPv4 tail), or null. */
export function ipv6Bytes(text: string): Uint8Array | null {
  if (!isIPv6(text) || text.includes('%')) return null;
  let head = text;
  let tail: number[] = [];
  const lastColon = text.lastIndexOf(':');
  const ipv4Tail = text.slice(lastColon + 1);
  if (ipv4Tail.includes('.')) {
    tail = ipv4Tail.split('.').map(Number);
    head = text.slice(0, lastColon + 1);
    if (head.endsWith(':') && !head.endsWith('::')) head = head.slice(0, -1);
  }
  const [left = '', right] = head.split('::');
  const groups = (part: string) => (part === '' ? [] : part.split(':').map((group) => Number.parseInt(group, 16)));
  const leftGroups = groups(left);
  const rightGroups = right === undefined ? [] : groups(right);
  const missing = 8 - tail.length / 2 - leftGroups.length - rightGroups.length;
  const words = [...leftGroups, ...new Array<number>(right === undefined ? 0 : missing).fill(0), ...rightGroups];
  const bytes = new Uint8Array(16);
  words.forEach((word, index) => {
    bytes[index * 2] = word >> 8;
    bytes[index * 2 + 1] = word & 0xff;
  });
  tail.forEach((byte, index) => {
    bytes[12 + index] = byte;
  });
  return bytes;
}

/**
 * IPv6 text as inet_ntop (glibc's and libuv's, the same BIND code) prints it: lowercase, no leading zeros, the
 * longest run of two or more zero words as "::", and ::a.b.c.d / ::ffff:a.b.c.d with a dotted IPv4 tail.
 */
export function formatIPv6(bytes: Uint8Array): string {
  const words = Array.from({ length: 8 }, (_, index) => ((bytes[index * 2] ?? 0) << 8) | (bytes[index * 2 + 1] ?? 0));
  let bestStart = -1;
  let bestLength = 0;
  for (let start = 0; start < 8; ) {
    if (words[start] !== 0) {
      start++;
      continue;
    }
    let end = start;
    while (end < 8 && words[end] === 0) end++;
    if (end - start > bestLength) {
      bestStart = start;
      bestLength = end - start;
    }
    start = end;
  }
  if (bestLength < 2) bestStart = -1;
  let text = '';
  for (let index = 0; index < 8; index++) {
    if (bestStart >= 0 && index >= bestStart && index < bestStart + bestLength) {
      if (index === bestStart) text += ':';
      continue;
    }
    if (index !== 0) text += ':';
    if (index === 6 && bestStart === 0 && (bestLength === 6 || (bestLength === 5 && words[5] === 0xffff))) {
      text += Array.from(bytes.slice(12, 16)).join('.');
      break;
    }
    text += (words[index] ?? 0).toString(16);
  }
  if (bestStart >= 0 && bestStart + bestLength === 8) text += ':';
  return text;
}
