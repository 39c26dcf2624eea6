// Name resolution exactly as it happens inside the target. The agent shares only the target's network
// namespace, so its own resolver would read the host's /etc files; this one reads the target's instead and
// replays what the target's libraries do with them:
// - getaddrinfo: glibc 2.36 with `hosts: files dns` (numeric forms, hosts file, then the search algorithm of
//   resolv/res_query.c over the first three nameservers, with glibc's retries, rotation and error codes);
// - query: Node's dns.resolve*, i.e. c-ares with the target's nameservers and no search list (c-ares's
//   ares_query does not apply it: checked with a search domain and ndots:5 in place);
// - reverse: Node's dns.reverse, i.e. c-ares: the target's hosts file, then a PTR query.
// Every DNS packet goes through node:dns Resolvers pointed at the target's nameservers; only the decisions
// (which name next, which error) are made here. The files are re-read whenever they change, as glibc does.
//
// Known differences, all on paths real servers rarely take: glibc sorts a dual-stack answer by RFC 6724 from
// the target's routes, here IPv4 always comes first; a server that answers A and AAAA inconsistently (NXDOMAIN
// for one, addresses for the other) or with a dangling CNAME is taken at its word; a candidate c-ares will not
// encode (search domain '#') counts as NXDOMAIN without a packet; timing follows c-ares's. And one deliberate
// difference: `localhost` missing from the hosts file is the loopback, where glibc would ask DNS.

import { promises as dnsPromises } from 'node:dns';
import { readFileSync, statSync } from 'node:fs';
import { isIPv4 } from 'node:net';
import { networkInterfaces } from 'node:os';
import { dirname, join } from 'node:path';
import type {
  DnsQueryResult,
  DnsRecordType,
  DnsReverseResult,
  GetAddrInfoResult,
  LookupAddress,
  RemoteFailure,
  Result,
} from '../../protocol/messages.js';
import { canonicalAddress, formatIPv6, ipv6Bytes, lookupHosts, parseHostConfMulti, parseHosts, reverseHosts, type HostsFile } from './hosts.js';
import { MAX_NAMESERVERS, parseInetAton, parseResolvConf, type ResolvConf } from './resolv-conf.js';

type Resolver = InstanceType<typeof dnsPromises.Resolver>;

/** The target's resolver files as paths the agent can read. */
export interface TargetDnsFiles {
  resolvConf: string;
  hosts: string;
  /** Decides whether the hosts file answers with every matching line. Default: host.conf beside resolvConf. */
  hostConf?: string;
}

export interface TargetResolverOptions {
  /** The target's hostname: without a search or domain line, glibc searches the part after its first dot. */
  hostname?: string;
  /** The target's environment: glibc reads LOCALDOMAIN, RES_OPTIONS and RESOLV_MULTI from it. */
  env?: Record<string, string>;
}

// What c-ares uses when resolv.conf sets no timeout (c-ares >= 1.20), and how often Node's Resolver tries.
const CARES_DEFAULT_TIMEOUT_MS = 2000;
const NODE_RESOLVER_TRIES = 4;

// libuv's numbers for the getaddrinfo failures Node reports (uv-errno.h, the same on every platform).
const EAI_ERRNO = { EAI_ADDRFAMILY: -3000, EAI_AGAIN: -3001, EAI_NODATA: -3007, EAI_NONAME: -3008 } as const;
type EaiCode = keyof typeof EAI_ERRNO;

export class TargetResolver {
  private readonly resolvConfFile: WatchedFile<ResolvConf>;
  private readonly hostsFile: WatchedFile<HostsFile>;
  private readonly hostConfFile: WatchedFile<boolean>;
  private pool: ResolverPool | null = null;
  /** glibc's `rotate` starts each query at the next nameserver, from a random first one per process. */
  private rotation = Math.floor(Math.random() * MAX_NAMESERVERS);

  /** `target`: the target's root (/proc/<pid>/root), or the paths of its files (a netns target). */
  constructor(target: string | TargetDnsFiles, options: TargetResolverOptions = {}) {
    const files: TargetDnsFiles =
      typeof target === 'string'
        ? { resolvConf: join(target, 'etc/resolv.conf'), hosts: join(target, 'etc/hosts'), hostConf: join(target, 'etc/host.conf') }
        : target;
    const env = options.env ?? {};
    this.resolvConfFile = new WatchedFile(files.resolvConf, (text) =>
      parseResolvConf(text, { hostname: options.hostname, localDomain: env.LOCALDOMAIN, resOptions: env.RES_OPTIONS }),
    );
    this.hostsFile = new WatchedFile(files.hosts, parseHosts);
    this.hostConfFile = new WatchedFile(files.hostConf ?? join(dirname(files.resolvConf), 'host.conf'), (text) => {
      const fromEnv = env.RESOLV_MULTI?.toLowerCase();
      return fromEnv === 'on' ? true : fromEnv === 'off' ? false : parseHostConfMulti(text);
    });
  }

  /** getaddrinfo(host) with the given family (0: AF_UNSPEC), as the target's glibc answers it. */
  async getaddrinfo(host: string, family: 0 | 4 | 6): Promise<Result<GetAddrInfoResult>> {
    const numeric = numericAddress(host, family);
    if (numeric !== null) return 'eai' in numeric ? fail(getaddrinfoFailure(numeric.eai, host)) : ok({ addresses: [numeric] });

    // AF_INET goes through gethostbyname2_r, which turns away what only looks like an address (digits and
    // dots, or an IPv6 shape) before reading any file (nss/digits_dots.c).
    if (family === 4 && looksNumeric(host)) return fail(getaddrinfoFailure('EAI_NONAME', host));

    const [hosts, multi] = await Promise.all([this.hostsFile.get(), this.hostConfFile.get()]);
    const fromHosts = lookupHosts(hosts, host, family, multi);
    if (fromHosts.length > 0) return ok({ addresses: ipv4First(fromHosts) });
    // glibc would ask DNS for a localhost missing from the hosts file; the app must reach its own loopback.
    if (asciiIsLocalhost(host)) return ok({ addresses: loopback(family) });

    const conf = await this.resolvConfFile.get();
    const outcome = await this.search(host, family, conf);
    return Array.isArray(outcome) ? ok({ addresses: outcome }) : fail(getaddrinfoFailure(outcome, host));
  }

  /** dns.resolve(name, rrtype) as Node in the target answers it, records and errors alike. */
  async query(name: string, rrtype: DnsRecordType, ttl?: boolean): Promise<Result<DnsQueryResult>> {
    const resolver = this.poolFor(await this.resolvConfFile.get()).forQueries();
    try {
      return ok({ records: await resolveRecords(resolver, name, rrtype, ttl === true) });
    } catch (error) {
      return fail(resolverFailure(error));
    }
  }

  /** dns.reverse(address) as Node in the target answers it. */
  async reverse(address: string): Promise<Result<DnsReverseResult>> {
    const canonical = canonicalAddress(address);
    if (canonical === null) {
      return fail({ code: 'EINVAL', errno: -22, syscall: 'getHostByAddr', message: `getHostByAddr EINVAL ${address}` });
    }
    const fromHosts = reverseHosts(await this.hostsFile.get(), canonical);
    if (fromHosts !== undefined) return ok({ hostnames: fromHosts });
    // resolvePtr rather than Resolver.reverse: c-ares's reverse would read the agent's own /etc/hosts first.
    const resolver = this.poolFor(await this.resolvConfFile.get()).forQueries();
    try {
      return ok({ hostnames: await resolver.resolvePtr(reverseName(canonical)) });
    } catch {
      // c-ares's gethostbyaddr reports every failure (NXDOMAIN, SERVFAIL, timeout…) as ENOTFOUND.
      return fail({ code: 'ENOTFOUND', syscall: 'getHostByAddr', message: `getHostByAddr ENOTFOUND ${address}` });
    }
  }

  private poolFor(conf: ResolvConf): ResolverPool {
    if (this.pool?.conf !== conf) this.pool = new ResolverPool(conf);
    return this.pool;
  }

  /**
   * glibc's __res_context_search (resolv/res_query.c) followed by nss_dns and getaddrinfo's reading of its
   * h_errno: the addresses of the first name that has some, or the getaddrinfo error.
   */
  private async search(name: string, family: 0 | 4 | 6, conf: ResolvConf): Promise<LookupAddress[] | EaiCode> {
    // nss_dns refuses what res_hnok refuses, before any packet (HOST_NOT_FOUND).
    if (!isValidHostname(name)) return 'EAI_NONAME';

    const state: SearchState = { herrno: 'HOST_NOT_FOUND', errno: null };
    const tryName = async (candidate: string): Promise<LookupAddress[] | CandidateFailure> => {
      const result = await this.queryCandidate(candidate, family, conf);
      if (!Array.isArray(result)) {
        state.herrno = result.herrno;
        if (result.sent) state.errno = result.failed ? (result.unreachable ? 'ECONNREFUSED' : 'ETIMEDOUT') : null;
      }
      return result;
    };

    const dots = [...name].filter((character) => character === '.').length;
    const trailingDot = name.endsWith('.');
    let savedHerrno: Herrno | null = null;
    let triedAsIs = false;
    if (dots >= conf.ndots || trailingDot) {
      const result = await tryName(name);
      if (Array.isArray(result)) return result;
      if (trailingDot) return eaiFor(family, state);
      savedHerrno = result.herrno;
      triedAsIs = true;
    }

    let searched = false;
    let rootOnList = false;
    let gotNodata = false;
    let gotServfail = false;
    for (const domain of conf.search) {
      searched = true;
      const suffix = domain.startsWith('.') ? domain.slice(1) : domain;
      if (suffix === '') rootOnList = true;
      const result = await tryName(`${name}.${suffix}`);
      if (Array.isArray(result)) return result;
      // Every server refused the connection: glibc gives up at once.
      if (state.errno === 'ECONNREFUSED') {
        state.herrno = 'TRY_AGAIN';
        return eaiFor(family, state);
      }
      if (result.herrno === 'NO_DATA') gotNodata = true;
      else if (result.herrno === 'HOST_NOT_FOUND') continue;
      else if (result.herrno === 'TRY_AGAIN' && result.rcode === 'SERVFAIL') gotServfail = true;
      // A timeout, REFUSED or a malformed answer ends the search list (the name as-is may still follow).
      else break;
    }

    if ((dots > 0 || !searched || !conf.noTldQuery) && !triedAsIs && !rootOnList) {
      const result = await tryName(name);
      if (Array.isArray(result)) return result;
    }

    if (savedHerrno !== null) state.herrno = savedHerrno;
    else if (gotNodata) state.herrno = 'NO_DATA';
    else if (gotServfail) state.herrno = 'TRY_AGAIN';
    return eaiFor(family, state);
  }

  /** One candidate name: glibc's res_query with A, AAAA or both (sent together, judged together). */
  private async queryCandidate(name: string, family: 0 | 4 | 6, conf: ResolvConf): Promise<LookupAddress[] | CandidateFailure> {
    // res_mkquery cannot encode the name: no packet, NO_RECOVERY.
    if (!fitsInQuery(name)) return { herrno: 'NO_RECOVERY', rcode: null, sent: false, failed: false, unreachable: false };
    const pool = this.poolFor(conf);
    const servers = Math.min(conf.nameservers.length, MAX_NAMESERVERS);
    const offset = conf.rotate ? this.rotation++ % servers : 0;
    const types: ('A' | 'AAAA')[] = family === 4 ? ['A'] : family === 6 ? ['AAAA'] : conf.noAaaa ? ['A'] : ['A', 'AAAA'];
    const outcomes = await Promise.all(types.map((type) => sendQuery(pool, name, type, offset)));

    const addresses = outcomes.flatMap((outcome, index) =>
      outcome.kind === 'answer' ? outcome.addresses.map((address) => ({ address, family: types[index] === 'A' ? (4 as const) : (6 as const) })) : [],
    );
    if (addresses.length > 0) return addresses;

    const answers = outcomes.filter((outcome): outcome is Answer => outcome.kind === 'answer');
    if (answers.length === 0) {
      const failures = outcomes as Failure[];
      return {
        herrno: 'TRY_AGAIN',
        rcode: failures.find((failure) => failure.rcode !== null)?.rcode ?? null,
        sent: true,
        failed: true,
        unreachable: failures.every((failure) => failure.unreachable),
      };
    }
    // glibc judges the A answer unless it is a plain NOERROR, then the AAAA one (res_query.c).
    const [first, second] = answers;
    const rcode = first !== undefined && second !== undefined && first.rcode === 'NOERROR' ? second.rcode : (first?.rcode ?? 'NOERROR');
    const herrno: Herrno = rcode === 'NXDOMAIN' ? 'HOST_NOT_FOUND' : rcode === 'NOERROR' ? 'NO_DATA' : 'NO_RECOVERY';
    return { herrno, rcode, sent: true, failed: false, unreachable: false };
  }
}

type Herrno = 'HOST_NOT_FOUND' | 'TRY_AGAIN' | 'NO_RECOVERY' | 'NO_DATA';

interface CandidateFailure {
  herrno: Herrno;
  /** The rcode glibc sees in its answer buffer (it tells SERVFAIL, worth searching on, from the rest). */
  rcode: string | null;
  /** Whether a packet went out at all. */
  sent: boolean;
  /** Whether res_send gave up (no server gave a usable answer). */
  failed: boolean;
  /** Whether every server refused the connection (res_send's errno ECONNREFUSED rather than ETIMEDOUT). */
  unreachable: boolean;
}

interface SearchState {
  herrno: Herrno;
  /** errno as nss_dns reads it after the search: set by the last res_send that gave up, cleared by an answer. */
  errno: 'ETIMEDOUT' | 'ECONNREFUSED' | null;
}

/**
 * How getaddrinfo turns nss_dns's result into an error. For AF_UNSPEC and AF_INET6 only h_errno counts. AF_INET
 * goes through gethostbyname2_r (getaddrinfo.c's try_simple_gethostbyname), where a search that ended on an
 * answer reads as "not found" even after a timeout on an earlier candidate, and one that ended on a failure
 * without TRY_AGAIN reads as EAI_NODATA. Checked against glibc on Debian 12 for each case.
 */
function eaiFor(family: 0 | 4 | 6, state: SearchState): EaiCode {
  if (state.herrno === 'NO_DATA') return 'EAI_NODATA';
  if (family === 4) {
    if (state.errno === null) return 'EAI_NONAME';
    return state.herrno === 'TRY_AGAIN' ? 'EAI_AGAIN' : 'EAI_NODATA';
  }
  return state.herrno === 'TRY_AGAIN' ? 'EAI_AGAIN' : 'EAI_NONAME';
}

/** Node's lookup error for a getaddrinfo code: EAI_NONAME and EAI_NODATA both read ENOTFOUND, errno tells. */
function getaddrinfoFailure(eai: EaiCode, host: string): RemoteFailure {
  const code = eai === 'EAI_NONAME' || eai === 'EAI_NODATA' ? 'ENOTFOUND' : eai;
  return { code, errno: EAI_ERRNO[eai], syscall: 'getaddrinfo', message: `getaddrinfo ${code} ${host}` };
}

type Answer = { kind: 'answer'; rcode: 'NOERROR' | 'NXDOMAIN' | 'FORMERR' | 'OTHER'; addresses: string[] };
type Failure = { kind: 'failed'; rcode: 'SERVFAIL' | 'REFUSED' | 'NOTIMP' | null; unreachable: boolean };

/**
 * glibc's res_send for one question: every attempt walks the nameservers from `offset`; an answer (addresses,
 * NODATA, NXDOMAIN) ends it, while SERVFAIL, REFUSED, NOTIMP, a timeout or an unreachable server move on to the
 * next server. Each server gets the timeout glibc's send_dg computes for its index.
 */
async function sendQuery(pool: ResolverPool, name: string, type: 'A' | 'AAAA', offset: number): Promise<Answer | Failure> {
  const { conf } = pool;
  const servers = conf.nameservers.slice(0, MAX_NAMESERVERS);
  // no-aaaa: glibc sends an A question in place of AAAA and keeps only whether the name exists.
  const suppressed = type === 'AAAA' && conf.noAaaa;
  let rcode: Failure['rcode'] = null;
  let gotSomewhere = false;
  for (let attempt = 0; attempt < conf.attempts; attempt++) {
    for (let shift = 0; shift < servers.length; shift++) {
      const index = (shift + offset) % servers.length;
      const resolver = pool.forServer(servers[index] ?? '127.0.0.1', serverTimeoutMs(conf.timeout, index, servers.length));
      try {
        const addresses = type === 'A' || suppressed ? await resolver.resolve4(name) : await resolver.resolve6(name);
        return { kind: 'answer', rcode: 'NOERROR', addresses: suppressed ? [] : addresses };
      } catch (error) {
        switch ((error as NodeJS.ErrnoException).code) {
          case 'ENODATA':
            return { kind: 'answer', rcode: 'NOERROR', addresses: [] };
          case 'ENOTFOUND':
            return { kind: 'answer', rcode: 'NXDOMAIN', addresses: [] };
          case 'EFORMERR':
            return { kind: 'answer', rcode: 'FORMERR', addresses: [] };
          case 'EBADNAME':
            // c-ares will not encode a name glibc would send (a search domain such as '#'). No server has such
            // a name, so answer for them: it does not exist.
            return { kind: 'answer', rcode: 'NXDOMAIN', addresses: [] };
          case 'ESERVFAIL':
            rcode = 'SERVFAIL';
            break;
          case 'EREFUSED':
            rcode = 'REFUSED';
            break;
          case 'ENOTIMP':
            rcode = 'NOTIMP';
            break;
          case 'ECONNREFUSED':
            continue;
          default:
            // ETIMEOUT, EBADRESP…: the server was reached but gave nothing usable.
            break;
        }
        gotSomewhere = true;
      }
    }
  }
  return { kind: 'failed', rcode, unreachable: !gotSomewhere };
}

/** send_dg's wait for nameserver `index`: the full timeout for the first, a share of a doubled one after it. */
function serverTimeoutMs(timeoutSeconds: number, index: number, servers: number): number {
  let seconds = timeoutSeconds * 2 ** index;
  if (index > 0) seconds = Math.trunc(seconds / servers);
  return Math.max(seconds, 1) * 1000;
}

/** node:dns Resolvers for one resolv.conf: one per nameserver and timeout (for glibc), one for c-ares's view. */
class ResolverPool {
  private readonly perServer = new Map<string, Resolver>();
  private queries: Resolver | null = null;

  constructor(readonly conf: ResolvConf) {}

  /** A Resolver that asks only `server`, once: glibc's own loop does the retrying. */
  forServer(server: string, timeoutMs: number): Resolver {
    const key = `${server} ${timeoutMs}`;
    let resolver = this.perServer.get(key);
    if (resolver === undefined) {
      resolver = new dnsPromises.Resolver({ timeout: timeoutMs, tries: 1 });
      resolver.setServers([server]);
      this.perServer.set(key, resolver);
    }
    return resolver;
  }

  /**
   * The Resolver a Node app in the target gets: c-ares takes every nameserver line and the file's timeout, and
   * Node sets its tries. Passing both explicitly keeps the agent host's resolv.conf options out.
   */
  forQueries(): Resolver {
    if (this.queries === null) {
      const timeout = this.conf.timeoutConfigured ? Math.max(this.conf.timeout, 1) * 1000 : CARES_DEFAULT_TIMEOUT_MS;
      this.queries = new dnsPromises.Resolver({ timeout, tries: NODE_RESOLVER_TRIES });
      this.queries.setServers(this.conf.nameservers);
    }
    return this.queries;
  }
}

function resolveRecords(resolver: Resolver, name: string, rrtype: DnsRecordType, ttl: boolean): Promise<unknown> {
  switch (rrtype) {
    case 'A':
      return ttl ? resolver.resolve4(name, { ttl: true }) : resolver.resolve4(name);
    case 'AAAA':
      return ttl ? resolver.resolve6(name, { ttl: true }) : resolver.resolve6(name);
    case 'ANY':
      return resolver.resolveAny(name);
    case 'CAA':
      return resolver.resolveCaa(name);
    case 'CNAME':
      return resolver.resolveCname(name);
    case 'MX':
      return resolver.resolveMx(name);
    case 'NAPTR':
      return resolver.resolveNaptr(name);
    case 'NS':
      return resolver.resolveNs(name);
    case 'PTR':
      return resolver.resolvePtr(name);
    case 'SOA':
      return resolver.resolveSoa(name);
    case 'SRV':
      return resolver.resolveSrv(name);
    case 'TXT':
      return resolver.resolveTxt(name);
    default:
      // What dns.resolve does with a type it does not know (the protocol's type cannot say this, a peer can).
      return resolver.resolve(name, rrtype as string);
  }
}

/** A Resolver's error as data: c-ares errors carry a string code, a syscall and no errno. */
function resolverFailure(error: unknown): RemoteFailure {
  const { code, errno, syscall, message } = error as Partial<NodeJS.ErrnoException>;
  const failure: RemoteFailure = { code: code ?? 'EINVAL', message: message ?? String(error) };
  if (typeof errno === 'number') failure.errno = errno;
  if (syscall !== undefined) failure.syscall = syscall;
  return failure;
}

/**
 * getaddrinfo's numeric forms, answered without any lookup: inet_aton's IPv4 forms and IPv6 (with a zone that
 * names an interface of the target's network namespace, where the agent runs). An IPv4-mapped IPv6 address
 * answers AF_INET with its IPv4 address; any other family mismatch is EAI_ADDRFAMILY.
 */
function numericAddress(host: string, family: 0 | 4 | 6): LookupAddress | { eai: EaiCode } | null {
  const ipv4 = parseInetAton(host);
  if (ipv4 !== null) return family === 6 ? { eai: 'EAI_ADDRFAMILY' } : { address: ipv4, family: 4 };
  const percent = host.indexOf('%');
  const bytes = ipv6Bytes(percent < 0 ? host : host.slice(0, percent));
  if (bytes === null) return null;
  if (percent >= 0) {
    const zone = host.slice(percent + 1);
    if (!/^\d+$/.test(zone) && !(zone in networkInterfaces())) return { eai: 'EAI_NONAME' };
  }
  const address = formatIPv6(bytes);
  if (family !== 4) return { address, family: 6 };
  const mapped = address.startsWith('::ffff:') ? address.slice('::ffff:'.length) : '';
  return isIPv4(mapped) ? { address: mapped, family: 4 } : { eai: 'EAI_ADDRFAMILY' };
}

/** digits_dots's test for AF_INET: all digits and dots not ending in a dot, or a hex digit/colon start with a colon. */
function looksNumeric(host: string): boolean {
  if (/^[0-9][0-9.]*$/.test(host) && !host.endsWith('.')) return true;
  return /^[0-9a-fA-F]/.test(host) ? host.includes(':') : host.startsWith(':');
}

/**
 * glibc's res_hnok: printable ASCII, labels of 1 to 63 letters, digits, '-' or '_', at most 255 bytes on the
 * wire, and no '-' opening the first label. Escapes (\.) are refused outright rather than decoded.
 */
function isValidHostname(name: string): boolean {
  if (!/^[\x21-\x7e]+$/.test(name) || name.includes('\\')) return false;
  if (name === '.') return true;
  const labels = (name.endsWith('.') ? name.slice(0, -1) : name).split('.');
  if (!fitsInQuery(name)) return false;
  return labels.every((label) => /^[A-Za-z0-9_-]+$/.test(label)) && !labels[0]?.startsWith('-');
}

/** Whether res_mkquery can encode the name: labels of 1 to 63 bytes, 255 bytes in all. */
function fitsInQuery(name: string): boolean {
  if (name === '.') return true;
  const labels = (name.endsWith('.') ? name.slice(0, -1) : name).split('.');
  const wireLength = labels.reduce((total, label) => total + Buffer.byteLength(label) + 1, 1);
  return wireLength <= 255 && labels.every((label) => label.length > 0 && Buffer.byteLength(label) <= 63);
}

function asciiIsLocalhost(host: string): boolean {
  return /^localhost$/i.test(host);
}

function loopback(family: 0 | 4 | 6): LookupAddress[] {
  const addresses: LookupAddress[] = [];
  if (family !== 6) addresses.push({ address: '127.0.0.1', family: 4 });
  if (family !== 4) addresses.push({ address: '::1', family: 6 });
  return addresses;
}

/** What a single-stack IPv4 target's RFC 6724 sort gives: IPv4 first, each family in its original order. */
function ipv4First(addresses: LookupAddress[]): LookupAddress[] {
  return [...addresses.filter((entry) => entry.family === 4), ...addresses.filter((entry) => entry.family === 6)];
}

/** The in-addr.arpa / ip6.arpa name of a canonical address. */
function reverseName(address: string): string {
  if (isIPv4(address)) return `${address.split('.').reverse().join('.')}.in-addr.arpa`;
  const bytes = ipv6Bytes(address) ?? new Uint8Array(16);
  const nibbles = Array.from(bytes).flatMap((byte) => [(byte >> 4).toString(16), (byte & 0xf).toString(16)]);
  return `${nibbles.reverse().join('.')}.ip6.arpa`;
}

function ok<T>(value: T): Result<T> {
  return { ok: true, value };
}

function fail<T>(error: RemoteFailure): Result<T> {
  return { ok: false, error };
}

/**
 * A file read again whenever stat says it changed (inode, size or times): kubelet replaces resolv.conf and
 * hosts while a pod runs, and glibc re-reads both. A file that cannot be read counts as empty, as glibc treats
 * a missing or unreadable resolv.conf (defaults), hosts file (no entries) or host.conf (multi off).
 */
class WatchedFile<T> {
  private stamp: string | null = null;
  private value: T | null = null;

  constructor(
    private readonly path: string,
    private readonly parse: (text: string) => T,
  ) {}

  // Synchronous on purpose: a stat of a small local file costs microseconds, while the promise API's round
  // trip through libuv's thread pool costs tens of them on every lookup.
  async get(): Promise<T> {
    let stamp: string;
    try {
      const info = statSync(this.path);
      stamp = `${info.dev}:${info.ino}:${info.size}:${info.mtimeMs}:${info.ctimeMs}`;
    } catch {
      stamp = 'unreadable';
    }
    if (stamp !== this.stamp || this.value === null) {
      let text = '';
      try {
        text = stamp === 'unreadable' ? '' : readFileSync(this.path, 'utf8');
      } catch {
        text = '';
      }
      this.value = this.parse(text);
      this.stamp = stamp;
    }
    return this.value;
  }
}
