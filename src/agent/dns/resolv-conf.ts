// The target's /etc/resolv.conf, read the way glibc 2.36 reads it (resolv/res_init.c), because the agent must
// resolve as the target's getaddrinfo would. The traps, each checked against glibc on Debian 12:
// - a keyword counts only at the start of a line and followed by a space or a tab: " nameserver x",
//   "SEARCH x" and "nameserver" alone are ignored;
// - only lines starting with '#' or ';' are comments: in "search a # b", '#' and 'b' are search domains;
// - `search` and `domain` replace each other, the last line wins; `domain` keeps only its first word;
// - options are matched by prefix ("rotatefoo" is rotate) and clamped: ndots <= 15, timeout <= 30, attempts <= 5;
// - nameserver addresses take inet_aton's forms ("10.1" is 10.0.0.1); the rest of the line is ignored.
// LOCALDOMAIN and RES_OPTIONS from the target's environment override the file, as they do in glibc.

import { isIPv6 } from 'node:net';

export interface ResolvConf {
  /** Every nameserver line glibc accepts, in file order. glibc queries the first MAX_NAMESERVERS; c-ares all. */
  nameservers: string[];
  /** The search list, as written (case, trailing dots, even '#'). "." or "" stands for the root. */
  search: string[];
  ndots: number;
  /** Seconds. */
  timeout: number;
  /** Whether the file (or RES_OPTIONS) set the timeout: c-ares falls back to its own default, not glibc's. */
  timeoutConfigured: boolean;
  attempts: number;
  rotate: boolean;
  noTldQuery: boolean;
  noAaaa: boolean;
}

/** glibc's MAXNS: further nameserver lines are read but never queried. */
export const MAX_NAMESERVERS = 3;

const MAX_NDOTS = 15;
const MAX_TIMEOUT = 30;
const MAX_ATTEMPTS = 5;

/** What glibc reads besides the file: the hostname (domain fallback) and two environment variables. */
export interface ResolvConfContext {
  /** The target's hostname; without search/domain lines, glibc searches the part after its first dot. */
  hostname?: string | undefined;
  /** LOCALDOMAIN: replaces the search list of the file. */
  localDomain?: string | undefined;
  /** RES_OPTIONS: options applied after the file's. */
  resOptions?: string | undefined;
}

export function parseResolvConf(text: string, context: ResolvConfContext = {}): ResolvConf {
  const conf: ResolvConf = {
    nameservers: [],
    search: [],
    ndots: 1,
    timeout: 5,
    timeoutConfigured: false,
    attempts: 2,
    rotate: false,
    noTldQuery: false,
    noAaaa: false,
  };
  const searchFromEnv = context.localDomain !== undefined;
  if (searchFromEnv) conf.search = splitSearchList(cutAt(context.localDomain ?? '', '\n'));

  for (const line of text.split('\n')) {
    if (line.startsWith('#') || line.startsWith(';')) continue;
    const domain = keywordValue(line, 'domain');
    if (domain !== undefined) {
      if (!searchFromEnv && domain !== '') conf.search = [firstWord(domain)];
      continue;
    }
    const search = keywordValue(line, 'search');
    if (search !== undefined) {
      if (!searchFromEnv && search !== '') conf.search = splitSearchList(search);
      continue;
    }
    const nameserver = keywordValue(line, 'nameserver');
    if (nameserver !== undefined) {
      const address = parseNameserver(firstWord(nameserver));
      if (address !== null) conf.nameservers.push(address);
      continue;
    }
    const options = keywordValue(line, 'options');
    if (options !== undefined) applyOptions(conf, options);
  }

  if (conf.nameservers.length === 0) conf.nameservers.push('127.0.0.1');
  if (conf.search.length === 0 && context.hostname !== undefined) {
    const dot = context.hostname.indexOf('.');
    if (dot >= 0) conf.search = [context.hostname.slice(dot + 1)];
  }
  if (context.resOptions !== undefined) applyOptions(conf, context.resOptions);
  return conf;
}

/** The text after `keyword` and its blanks, if the line starts with the keyword followed by a space or tab. */
function keywordValue(line: string, keyword: string): string | undefined {
  if (!line.startsWith(keyword)) return undefined;
  const separator = line[keyword.length];
  if (separator !== ' ' && separator !== '\t') return undefined;
  return line.slice(keyword.length).replace(/^[ \t]+/, '');
}

function cutAt(text: string, character: string): string {
  const index = text.indexOf(character);
  return index < 0 ? text : text.slice(0, index);
}

function firstWord(text: string): string {
  const match = /[ \t\n]/.exec(text);
  return match === null ? text : text.slice(0, match.index);
}

/** glibc's in-place split: the first word even when empty, then every non-empty word after a run of blanks. */
function splitSearchList(text: string): string[] {
  const [first = '', ...rest] = text.split(/[ \t]/);
  return [first, ...rest.filter((word) => word !== '')];
}

function parseNameserver(word: string): string | null {
  if (word === '') return null;
  const ipv4 = parseInetAton(word);
  if (ipv4 !== null) return ipv4;
  // The scope of a link-local server is dropped: Node's resolver cannot carry it either.
  const address = cutAt(word, '%');
  return address !== '' && isIPv6(address) ? address : null;
}

function applyOptions(conf: ResolvConf, text: string): void {
  for (const option of text.split(/[ \t]+/)) {
    if (option.startsWith('ndots:')) {
      // glibc keeps ndots in a 4-bit field, so anything out of 0..15 behaves as 15.
      const value = atoi(option.slice('ndots:'.length));
      conf.ndots = value < 0 || value > MAX_NDOTS ? MAX_NDOTS : value;
    } else if (option.startsWith('timeout:')) {
      conf.timeout = Math.min(atoi(option.slice('timeout:'.length)), MAX_TIMEOUT);
      conf.timeoutConfigured = true;
    } else if (option.startsWith('attempts:')) {
      conf.attempts = Math.min(atoi(option.slice('attempts:'.length)), MAX_ATTEMPTS);
    } else if (option.startsWith('rotate')) {
      conf.rotate = true;
    } else if (option.startsWith('no_tld_query') || option.startsWith('no-tld-query')) {
      conf.noTldQuery = true;
    } else if (option.startsWith('no-aaaa')) {
      conf.noAaaa = true;
    }
  }
}

/** C's atoi: optional blanks and sign, then digits; 0 when there are none. */
function atoi(text: string): number {
  const match = /^\s*([+-]?\d+)/.exec(text);
  return match === null ? 0 : Number.parseInt(match[1] ?? '0', 10);
}

const MAX_LAST_PART = [0xffffffff, 0xffffff, 0xffff, 0xff];

/**
 * glibc's inet_aton with nothing after the address (__inet_aton_exact), as a dotted quad, or null. It accepts
 * the historic forms that getaddrinfo and resolv.conf take and Node's isIP does not: "127.1", "0x7f.1",
 * "010.0.0.1" (octal: 8.0.0.1), "4294967295".
 */
export function parseInetAton(text: string): string | null {
  const parts = text.split('.');
  if (parts.length > 4) return null;
  const values: number[] = [];
  for (const part of parts) {
    let value: number;
    if (/^0[xX][0-9a-fA-F]+$/.test(part)) value = Number.parseInt(part.slice(2), 16);
    else if (/^0[0-7]*$/.test(part)) value = part.length === 1 ? 0 : Number.parseInt(part.slice(1), 8);
    else if (/^[1-9][0-9]*$/.test(part)) value = Number.parseInt(part, 10);
    else return null;
    values.push(value);
  }
  const last = values.pop() ?? 0;
  if (values.some((value) => value > 0xff) || last > (MAX_LAST_PART[values.length] ?? 0)) return null;
  const bytes = [...values];
  for (let shift = (3 - values.length) * 8; shift >= 0; shift -= 8) bytes.push(Math.floor(last / 2 ** shift) % 256);
  return bytes.join('.');
}
