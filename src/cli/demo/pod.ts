// The demo and test fixture: a "pod" built from the kernel parts Kubernetes uses (DESIGN §5).
//
// Pod n is made of:
//   - network namespace `rmc-pod-<n>`, with a veth pair to the host: `rmc-h<n>` 10.201.n.1/30 on the host,
//     `eth0` 10.201.n.2/30 in the pod. No default route in the pod: it can reach its own addresses and the
//     host end of the link, nothing else;
//   - service IPs in 10.202.n.0/24 (and fd72:6d63:0:<n hex>::/64) on the pod's loopback, since this kernel
//     has no dummy links. The host gets an `unreachable` route for both subnets, so a connection attempted
//     from the host fails at once with EHOSTUNREACH instead of leaving the machine through the default route;
//   - the blackhole service IP, whose packets an iptables rule in the pod drops, with tcp_syn_retries=1 in
//     the pod so a connect there fails with ETIMEDOUT after about 3 s rather than 2 minutes;
//   - a mount and UTS namespace for the target process: its own /etc/resolv.conf and /etc/hosts (bind mounts
//     of files in the state dir), a tmpfs on /run holding /var/run/pod-data, and the pod's hostname;
//   - the target process (pod-process.ts): cluster DNS, the pod-only dependency service and the target app.
//
// Everything on the host is named after n, so teardown needs nothing but n: that is what lets destroy() undo
// a half-built pod, and cleanupStalePods() undo the pods of a run that crashed. A pod's state dir
// (/tmp/rmc-pod-<n>) records the process that owns it, so cleanup never touches a live run's pods.

import type { ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, readlinkSync, realpathSync } from 'node:fs';
import { mkdir, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { startChild, stopChild } from '../../core/child.js';
import {
  FeatureUnavailableError,
  PermissionDeniedError,
  TimeoutError,
  ToolMissingError,
} from '../../core/errors.js';
import type { DnsZoneRecords, PodEvent, PodProcessConfig } from './pod-process.js';

// --- Public shape ------------------------------------------------------------------------------------------

export interface PodOptions {
  /**
   * The argv that starts pod-process; its JSON configuration is appended as the last argument. Default:
   * this Node binary running the package's dist/pod.js. Tests run the source instead:
   * `[process.execPath, '--import', <tsx loader URL>, <abs path of pod-process.ts>]`. Paths must be absolute:
   * the process starts with `/` as its working directory.
   */
  command?: readonly string[];
  /** Added to (or replacing) the pod's default environment. */
  env?: Readonly<Record<string, string>>;
  /** The Kubernetes namespace the pod pretends to live in; it shapes the DNS names. Default `shop`. */
  namespace?: string;
  /** How long the pod process may take to have every server listening. Default 10 000 ms. */
  readyTimeoutMs?: number;
  /** How long stop() waits after SIGTERM before it sends SIGKILL. Default 2 000 ms. */
  stopTimeoutMs?: number;
  /** Which iptables the pod's own rules use, so tests can give the agent either kind to detect. */
  iptables?: 'iptables' | 'iptables-legacy';
}

export interface PodServiceIps {
  /** The cluster DNS server, port 53 UDP and TCP; the pod's resolv.conf nameserver. */
  dns: string;
  /** The dependency service orders-api (HTTP on 80, TCP echo on 7 and 5432; 81 refuses). */
  api: string;
  /** Known only through the pod's /etc/hosts (`hosts-only.internal`); the dependency service answers there. */
  hostsOnly: string;
  /** Every packet to it is dropped inside the pod: connects time out (ETIMEDOUT). */
  blackhole: string;
  /** IPv6 address of the dependency service (AAAA of `dual-stack`), or undefined without kernel IPv6. */
  apiV6: string | undefined;
}

export interface PodNames {
  /** The pod's hostname, as in Kubernetes: the pod name. Also in its /etc/hosts and POD_NAME. */
  hostname: string;
  namespace: string;
  clusterDomain: string;
  /** The first search domain: `<namespace>.svc.cluster.local`. */
  searchDomain: string;
  searchDomains: readonly string[];
  /** Short name of the dependency service, resolvable only through the search domains. */
  apiName: string;
  apiFqdn: string;
  dbName: string;
  dbFqdn: string;
  /** A and AAAA, when the kernel has IPv6. */
  dualStackFqdn: string;
  blackholeFqdn: string;
  /** SRV record pointing at the dependency service's HTTP port. */
  apiSrvName: string;
  /** In the pod's /etc/hosts only; the DNS server does not know it. */
  hostsOnlyName: string;
}

export interface PodPorts {
  dns: number;
  /** The target app, on every address of the pod. */
  target: number;
  apiHttp: number;
  /** Raw TCP echo on the api IP. */
  echo: number;
  /** The port of DATABASE_URL; a TCP echo too. */
  db: number;
  /** Nothing listens there on the api IP: connects get ECONNREFUSED. */
  refused: number;
}

/** Paths as the target process sees them; from the host, read them through `pod.rootPath()`. */
export interface PodPaths {
  resolvConf: string;
  hosts: string;
  /** A directory that exists only in the pod's mount namespace. */
  dataDir: string;
  greeting: string;
  config: string;
  /** A read-only mount inside the pod (as a container with readOnlyRootFilesystem has): writes fail with EROFS. */
  readOnlyDir: string;
}

export interface PodExecOptions {
  /** Also enter the target's mount and UTS namespaces, so the pod's resolv.conf, hosts and files apply. */
  mountNamespace?: boolean;
  input?: string;
  /** Default 10 000 ms; the command is killed after it. */
  timeoutMs?: number;
}

export interface PodExecResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export type PodDnsQuery = Extract<PodEvent, { event: 'dns-query' }>;
export type PodHttpRequest = Extract<PodEvent, { event: 'http-request' }>;

export interface Pod {
  /** The network namespace's name, `rmc-pod-<index>`. */
  readonly name: string;
  readonly index: number;
  /** The target process: the pod-process node itself (the start-up chain execs, never forks). */
  readonly pid: number;
  readonly netnsPath: string;
  /** The pod's address on the veth link, reachable from the host. */
  readonly ip: string;
  /** The host's end of the link. */
  readonly hostIp: string;
  readonly hostInterface: string;
  readonly serviceIps: PodServiceIps;
  /** Service subnets that have an `unreachable` route on the host. */
  readonly serviceSubnets: readonly string[];
  readonly names: PodNames;
  readonly ports: PodPorts;
  readonly paths: PodPaths;
  /** What the pod-only files hold, for assertions. */
  readonly files: Readonly<Record<keyof Pick<PodPaths, 'greeting' | 'config'>, string>>;
  /** Exactly the environment the target process was started with. */
  readonly env: Readonly<Record<string, string>>;
  /** The zone the pod's DNS server answers from (lower-case names, no trailing dot). */
  readonly dnsRecords: Readonly<Record<string, DnsZoneRecords>>;
  /** Every query the pod's DNS server answered so far, in order. */
  readonly dnsQueries: readonly PodDnsQuery[];
  /** Every request the dependency service and the target app received so far, in order. */
  readonly httpRequests: readonly PodHttpRequest[];
  /** The last few kilobytes the pod process wrote to stderr, for test failure messages. */
  readonly stderr: string;
  /** Milliseconds createPod took. */
  readonly createMs: number;
  /** False once the target process has exited. */
  readonly running: boolean;
  /** Resolves when the target process exits. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /**
   * The host path of a file in the target's mount namespace (`/proc/<pid>/root/…`), with symlinks resolved
   * inside the pod: `/proc/<pid>/root/var/run/…` would follow /var/run -> /run into the host's /run.
   */
  rootPath(podPath: string): string;
  /** Runs a command in the pod's network namespace (and its mount namespace with `mountNamespace`). */
  exec(command: readonly string[], options?: PodExecOptions): Promise<PodExecResult>;
  /** Stops the target process (SIGTERM, then SIGKILL), as if the target died. The network stays. */
  stop(): Promise<void>;
  /** Removes the pod entirely. Idempotent; safe after stop(). */
  destroy(): Promise<void>;
}

// --- Naming ----------------------------------------------------------------------------------------------

const NAME_PREFIX = 'rmc-';
const NETNS_PREFIX = `${NAME_PREFIX}pod-`;
const HOST_VETH_PREFIX = `${NAME_PREFIX}h`;
const NETNS_DIR = '/run/netns';
// The third octet carries the index, so indexes stay within one byte and clear of .0 and .255.
const FIRST_INDEX = 1;
const LAST_INDEX = 250;
const POD_INTERFACE = 'eth0';
const CLUSTER_DOMAIN = 'cluster.local';
// A minimal PATH, as container images set it; the host's own PATH must not leak into the pod.
const POD_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

const PORTS: PodPorts = { dns: 53, target: 8080, apiHttp: 80, echo: 7, db: 5432, refused: 81 };

const POD_PATHS: PodPaths = {
  resolvConf: '/etc/resolv.conf',
  hosts: '/etc/hosts',
  dataDir: '/var/run/pod-data',
  greeting: '/var/run/pod-data/greeting.txt',
  config: '/var/run/pod-data/config.json',
  readOnlyDir: '/run/pod-readonly',
};

interface PodLayout {
  index: number;
  name: string;
  netnsPath: string;
  hostInterface: string;
  hostIp: string;
  ip: string;
  linkPrefixLength: number;
  serviceSubnet: string;
  serviceSubnetV6: string;
  serviceIps: PodServiceIps;
  stateDir: string;
}

function layoutFor(index: number, withIpv6: boolean): PodLayout {
  const name = `${NETNS_PREFIX}${index}`;
  const v6Prefix = `fd72:6d63:0:${index.toString(16)}`;
  return {
    index,
    name,
    netnsPath: path.join(NETNS_DIR, name),
    hostInterface: `${HOST_VETH_PREFIX}${index}`,
    hostIp: `10.201.${index}.1`,
    ip: `10.201.${index}.2`,
    linkPrefixLength: 30,
    serviceSubnet: `10.202.${index}.0/24`,
    serviceSubnetV6: `${v6Prefix}::/64`,
    serviceIps: {
      dns: `10.202.${index}.10`,
      api: `10.202.${index}.20`,
      hostsOnly: `10.202.${index}.30`,
      blackhole: `10.202.${index}.40`,
      apiV6: withIpv6 ? `${v6Prefix}::20` : undefined,
    },
    stateDir: stateDirFor(index),
  };
}

// Fixed rather than the OS temp dir: the state dirs are the claims on indexes, and every process must see the
// same claims whatever its TMPDIR.
const STATE_ROOT = '/tmp';

function stateDirFor(index: number): string {
  return path.join(STATE_ROOT, `${NETNS_PREFIX}${index}`);
}

function kernelHasIpv6(): boolean {
  return existsSync('/proc/net/if_inet6');
}

// --- Running host commands -----------------------------------------------------------------------------

const COMMAND_TIMEOUT_MS = 10_000;

interface Finished {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** Set when the command could not be started at all (ENOENT: not installed). */
  spawnError?: NodeJS.ErrnoException;
}

/** Runs a command to its end through the process wrapper, feeding it `input` and collecting its output. */
function runToEnd(
  file: string,
  args: readonly string[],
  options: { input?: string; timeoutMs?: number } = {},
): Promise<Finished> {
  return new Promise((resolve) => {
    const child = startChild(file, args, {
      stdio: ['pipe', 'pipe', 'pipe'],
      timeout: options.timeoutMs ?? COMMAND_TIMEOUT_MS,
    });
    let stdout = '';
    let stderr = '';
    child.stdout?.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr?.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    // Only `ip -batch -` reads stdin; closing it for the others keeps a stray read from hanging. A command
    // that exits before reading makes that write fail with EPIPE, which says nothing about the command.
    child.stdin?.on('error', () => {});
    child.stdin?.end(options.input ?? '');
    child.once('error', (error: NodeJS.ErrnoException) =>
      resolve({ code: null, signal: null, stdout, stderr, spawnError: error }),
    );
    child.once('close', (code: number | null, signal: NodeJS.Signals | null) => resolve({ code, signal, stdout, stderr }));
  });
}

interface CommandFailure {
  code: number | string | null;
  stderr: string;
}

async function runCommand(file: string, args: readonly string[], input?: string): Promise<{ stdout: string } | CommandFailure> {
  const finished = await runToEnd(file, args, input === undefined ? {} : { input });
  if (finished.spawnError !== undefined) {
    return { code: finished.spawnError.code ?? null, stderr: finished.spawnError.message };
  }
  if (finished.code === 0) return { stdout: finished.stdout };
  return { code: finished.code ?? finished.signal, stderr: finished.stderr || `exited with ${finished.code ?? finished.signal}` };
}

function isFailure(result: { stdout: string } | CommandFailure): result is CommandFailure {
  return 'stderr' in result;
}

function setupError(step: string, file: string, args: readonly string[], failure: CommandFailure): Error {
  const detail = failure.stderr.trim();
  const message = `Building the demo pod failed at "${step}": ${file} ${args.join(' ')}: ${detail}`;
  if (failure.code === 'ENOENT') {
    return new ToolMissingError(`Building the demo pod needs \`${file}\`, which is not installed.`, {
      hint: 'Install iproute2, util-linux (nsenter, unshare) and iptables.',
    });
  }
  if (/Operation not permitted|Permission denied/i.test(detail)) return new PermissionDeniedError(message);
  return new FeatureUnavailableError(message, {
    hint: 'Leftovers of an earlier run can be in the way: cleanupStalePods() (or `remocal demo --cleanup`) removes them.',
  });
}

/** Runs one setup command; a failure becomes an error that names the step. */
async function runStep(step: string, file: string, args: readonly string[], input?: string): Promise<string> {
  const result = await runCommand(file, args, input);
  if (isFailure(result)) throw setupError(step, file, args, result);
  return result.stdout;
}

const ALREADY_GONE = /Cannot find device|No such process|No such file or directory|does not exist|not found/i;

/** Runs one teardown command; something already gone is success. Returns the problem, if any. */
async function runTeardown(file: string, args: readonly string[]): Promise<string | undefined> {
  const result = await runCommand(file, args);
  if (!isFailure(result) || ALREADY_GONE.test(result.stderr)) return undefined;
  return `${file} ${args.join(' ')}: ${result.stderr.trim()}`;
}

function shellQuote(value: string): string {
  return `'${value.replaceAll("'", `'\\''`)}'`;
}

// --- Process identity --------------------------------------------------------------------------------------

interface ProcessIdentity {
  pid: number;
  /** Field 22 of /proc/<pid>/stat: tells a reused pid from the process that first had it. */
  startTime: string;
}

function readProcessStat(pid: number): { state: string; startTime: string } | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may hold spaces and parentheses; the fields after its last `)` are plain.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const state = fields[0];
    const startTime = fields[19];
    if (state === undefined || startTime === undefined) return undefined;
    return { state, startTime };
  } catch {
    return undefined;
  }
}

function identityOf(pid: number): ProcessIdentity | undefined {
  const stat = readProcessStat(pid);
  return stat === undefined ? undefined : { pid, startTime: stat.startTime };
}

/** Alive, and still the same process: a zombie has finished, and a reused pid is someone else. */
function isAlive(identity: ProcessIdentity): boolean {
  const stat = readProcessStat(identity.pid);
  return stat !== undefined && stat.state !== 'Z' && stat.startTime === identity.startTime;
}

// --- The owner record --------------------------------------------------------------------------------------

interface OwnerRecord {
  owner: ProcessIdentity;
  /** The target process, once started: found by it even if its netns is already gone. */
  target?: ProcessIdentity;
}

const OWNER_FILE = 'owner.json';
// Between claiming the state dir and writing the owner record a pod has no owner on record; a cleanup in
// another process must not take it for a leftover during that moment.
const CLAIM_GRACE_MS = 30_000;

async function writeOwnerRecord(stateDir: string, record: OwnerRecord): Promise<void> {
  await writeFile(path.join(stateDir, OWNER_FILE), JSON.stringify(record));
}

async function readOwnerRecord(stateDir: string): Promise<OwnerRecord | undefined> {
  try {
    return JSON.parse(await readFile(path.join(stateDir, OWNER_FILE), 'utf8')) as OwnerRecord;
  } catch {
    return undefined;
  }
}

async function isOwnedByLiveProcess(index: number): Promise<boolean> {
  const stateDir = stateDirFor(index);
  const record = await readOwnerRecord(stateDir);
  if (record !== undefined) return isAlive(record.owner);
  try {
    return Date.now() - (await stat(stateDir)).mtimeMs < CLAIM_GRACE_MS;
  } catch {
    return false;
  }
}

// --- Claiming an index -------------------------------------------------------------------------------------

function selfIdentity(): ProcessIdentity {
  const identity = identityOf(process.pid);
  if (identity === undefined) throw new FeatureUnavailableError('The demo pod needs /proc, which this system lacks.');
  return identity;
}

// Where the next search for a free index starts. Each process starts elsewhere and moves on after each claim,
// so an index just freed is not at once taken again by another process while its owner still checks that it
// left nothing behind.
let nextIndexOffset = process.pid % (LAST_INDEX - FIRST_INDEX + 1);

/**
 * Takes a free index. Both the state dir (mkdir) and the netns (`ip netns add`) are created
 * atomically and fail if they exist, so two processes building pods at once never get the same index.
 */
async function claimIndex(withIpv6: boolean): Promise<PodLayout> {
  const count = LAST_INDEX - FIRST_INDEX + 1;
  for (let attempt = 0; attempt < count; attempt++) {
    const index = FIRST_INDEX + ((nextIndexOffset + attempt) % count);
    const layout = layoutFor(index, withIpv6);
    try {
      await mkdir(layout.stateDir);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'EEXIST') continue;
      throw error;
    }
    await writeOwnerRecord(layout.stateDir, { owner: selfIdentity() });
    const args = ['netns', 'add', layout.name];
    const result = await runCommand('ip', args);
    if (!isFailure(result)) {
      nextIndexOffset = (index - FIRST_INDEX + 1) % count;
      return layout;
    }
    await rm(layout.stateDir, { recursive: true, force: true });
    // A netns without a state dir is a leftover that cleanupStalePods() will remove; take the next index.
    if (/File exists/.test(result.stderr)) continue;
    throw setupError('create the network namespace', 'ip', args, result);
  }
  throw new FeatureUnavailableError(`Every demo pod index (${FIRST_INDEX}–${LAST_INDEX}) is taken.`, {
    hint: 'Destroy pods you no longer need; cleanupStalePods() removes the leftovers of crashed runs.',
  });
}

// --- Building ----------------------------------------------------------------------------------------------

/** Host side: the veth pair, the host's address on it, and the routes that make service IPs fail fast. */
async function setUpHostNetwork(layout: PodLayout): Promise<void> {
  const commands = [
    `link add ${layout.hostInterface} type veth peer name ${POD_INTERFACE} netns ${layout.name}`,
    `addr add ${layout.hostIp}/${layout.linkPrefixLength} dev ${layout.hostInterface}`,
    `link set ${layout.hostInterface} up`,
    `route add unreachable ${layout.serviceSubnet}`,
    ...(layout.serviceIps.apiV6 === undefined ? [] : [`route add unreachable ${layout.serviceSubnetV6}`]),
  ];
  // One `ip -batch` instead of one process per command keeps creation fast.
  await runStep('set up the host side of the network', 'ip', ['-batch', '-'], `${commands.join('\n')}\n`);
}

/** Pod side: loopback with the service IPs, the pod's address, the blackhole rule and fast-failing SYNs. */
async function setUpPodNetwork(layout: PodLayout, iptables: string): Promise<void> {
  const ips = layout.serviceIps;
  const commands = [
    'link set lo up',
    ...[ips.dns, ips.api, ips.hostsOnly, ips.blackhole].map((ip) => `addr add ${ip}/32 dev lo`),
    // nodad: an IPv6 address still in duplicate address detection cannot be bound (EADDRNOTAVAIL).
    ...(ips.apiV6 === undefined ? [] : [`addr add ${ips.apiV6}/128 dev lo nodad`]),
    `addr add ${layout.ip}/${layout.linkPrefixLength} dev ${POD_INTERFACE}`,
    `link set ${POD_INTERFACE} up`,
  ];
  await runStep('set up the pod side of the network', 'ip', ['-n', layout.name, '-batch', '-'], `${commands.join('\n')}\n`);
  const inPod = ['--net=' + layout.netnsPath, '--'];
  await runStep('set tcp_syn_retries in the pod', 'nsenter', [...inPod, 'sysctl', '-q', '-w', 'net.ipv4.tcp_syn_retries=1']);
  await runStep('add the blackhole rule in the pod', 'nsenter', [
    ...inPod,
    iptables,
    '-w',
    '-A',
    'OUTPUT',
    '-d',
    `${ips.blackhole}/32`,
    '-j',
    'DROP',
  ]);
}

interface PodDescription {
  hostname: string;
  names: PodNames;
  env: Record<string, string>;
  records: Record<string, DnsZoneRecords>;
  contents: Record<'greeting' | 'config', string>;
}

function describePod(layout: PodLayout, options: PodOptions): PodDescription {
  const namespace = options.namespace ?? 'shop';
  const hostname = `orders-7d9f8b6c5-pod${layout.index}`;
  const searchDomain = `${namespace}.svc.${CLUSTER_DOMAIN}`;
  const names: PodNames = {
    hostname,
    namespace,
    clusterDomain: CLUSTER_DOMAIN,
    searchDomain,
    searchDomains: [searchDomain, `svc.${CLUSTER_DOMAIN}`, CLUSTER_DOMAIN],
    apiName: 'orders-api',
    apiFqdn: `orders-api.${searchDomain}`,
    dbName: 'orders-db',
    dbFqdn: `orders-db.${searchDomain}`,
    dualStackFqdn: `dual-stack.${searchDomain}`,
    blackholeFqdn: `blackhole.${searchDomain}`,
    apiSrvName: `_http._tcp.orders-api.${searchDomain}`,
    hostsOnlyName: 'hosts-only.internal',
  };
  const ips = layout.serviceIps;
  const reverseName = (ip: string) => `${ip.split('.').reverse().join('.')}.in-addr.arpa`;
  const records: Record<string, DnsZoneRecords> = {
    [names.apiFqdn]: { A: [ips.api], TXT: ['service=orders-api', 'pod-only=true'] },
    [names.apiSrvName]: { SRV: [{ priority: 0, weight: 100, port: PORTS.apiHttp, target: names.apiFqdn }] },
    // The database is another name for the api IP, where a TCP echo stands in for it on the DB port.
    [names.dbFqdn]: { A: [ips.api] },
    [names.dualStackFqdn]: { A: [ips.api], ...(ips.apiV6 === undefined ? {} : { AAAA: [ips.apiV6] }) },
    [names.blackholeFqdn]: { A: [ips.blackhole] },
    [searchDomain]: { MX: [{ preference: 10, exchange: `mail.${searchDomain}` }], TXT: ['v=spf1 -all'] },
    [`mail.${searchDomain}`]: { A: [ips.api] },
    [`kube-dns.kube-system.svc.${CLUSTER_DOMAIN}`]: { A: [ips.dns] },
    [reverseName(ips.api)]: { PTR: [names.apiFqdn] },
  };
  const env: Record<string, string> = {
    PATH: POD_PATH,
    HOSTNAME: hostname,
    HOME: '/root',
    POD_NAME: hostname,
    POD_NAMESPACE: namespace,
    POD_IP: layout.ip,
    DATABASE_URL: `postgres://${names.dbFqdn}:${PORTS.db}/orders`,
    ORDERS_API_URL: `http://${names.apiName}`,
    GREETING: 'hello from the pod',
    ...options.env,
  };
  const contents = {
    greeting: `hello from ${hostname}: this file exists only inside the pod\n`,
    config: `${JSON.stringify({ featureFlags: { newCheckout: true }, pod: hostname }, null, 2)}\n`,
  };
  return { hostname, names, env, records, contents };
}

function resolvConfFor(layout: PodLayout, names: PodNames): string {
  return [
    `search ${names.searchDomains.join(' ')}`,
    `nameserver ${layout.serviceIps.dns}`,
    'options ndots:5',
    '',
  ].join('\n');
}

function hostsFileFor(layout: PodLayout, names: PodNames): string {
  return [
    '# Kubernetes-managed hosts file.',
    '127.0.0.1\tlocalhost',
    '::1\tlocalhost ip6-localhost ip6-loopback',
    'fe00::0\tip6-localnet',
    'fe00::0\tip6-mcastprefix',
    'fe00::1\tip6-allnodes',
    'fe00::2\tip6-allrouters',
    `${layout.ip}\t${names.hostname}`,
    '',
    '# Entries added by HostAliases.',
    `${layout.serviceIps.hostsOnly}\t${names.hostsOnlyName}`,
    '',
  ].join('\n');
}

async function writePodDescription(layout: PodLayout, description: PodDescription): Promise<void> {
  const dataDir = path.join(layout.stateDir, 'pod-data');
  await mkdir(dataDir);
  await Promise.all([
    writeFile(path.join(layout.stateDir, 'resolv.conf'), resolvConfFor(layout, description.names)),
    writeFile(path.join(layout.stateDir, 'hosts'), hostsFileFor(layout, description.names)),
    writeFile(path.join(dataDir, path.basename(POD_PATHS.greeting)), description.contents.greeting),
    writeFile(path.join(dataDir, path.basename(POD_PATHS.config)), description.contents.config),
  ]);
}

/**
 * Where a bind mount over `file` really lands. On hosts with systemd-resolved, /etc/resolv.conf is a symlink
 * into /run, which the pod covers with its own tmpfs; the target file must then be created in that tmpfs.
 */
function bindTargetFor(file: string): { target: string; createInRun: boolean } {
  let target = file;
  try {
    target = realpathSync(file);
  } catch {
    // A dangling symlink, or no file: bind over the name itself and let mount report it.
  }
  return { target, createInRun: target.startsWith('/run/') };
}

/** The shell step between unshare and node: prepares the pod's mount and UTS namespaces, then execs. */
function startupScript(layout: PodLayout, hostname: string, keepPwd: boolean): string {
  const lines = [
    'set -e',
    // The copied mount table holds every netns bind mount of the host, other pods' included; each would keep
    // its namespace alive for as long as this pod lives. Dropping them only affects this mount namespace.
    'for m in $(while read -r _ mnt fstype _; do [ "$fstype" != nsfs ] || echo "$mnt"; done < /proc/self/mounts); do umount "$m" 2>/dev/null || :; done',
    // A fresh /run, as containers have: it holds the pod-only files without creating anything on the host.
    `mount -t tmpfs -o mode=0755,nosuid,nodev,size=16m ${shellQuote(`${layout.name}-run`)} /run`,
    // /var/run is a symlink to /run on current distributions; where it is a directory of its own, it gets a
    // tmpfs too, so the mkdir below can never create anything on the host.
    `[ -L /var/run ] || mount -t tmpfs -o mode=0755,nosuid,nodev,size=16m ${shellQuote(`${layout.name}-var-run`)} /var/run`,
    `mkdir -p ${shellQuote(POD_PATHS.dataDir)}`,
    `cp -R ${shellQuote(path.join(layout.stateDir, 'pod-data'))}/. ${shellQuote(POD_PATHS.dataDir)}/`,
    `mkdir -p ${shellQuote(POD_PATHS.readOnlyDir)}`,
    `mount -t tmpfs -o ro,mode=0755,size=1m ${shellQuote(`${layout.name}-readonly`)} ${shellQuote(POD_PATHS.readOnlyDir)}`,
  ];
  for (const [podFile, stateFile] of [
    [POD_PATHS.resolvConf, 'resolv.conf'],
    [POD_PATHS.hosts, 'hosts'],
  ] as const) {
    const { target, createInRun } = bindTargetFor(podFile);
    if (createInRun) lines.push(`mkdir -p ${shellQuote(path.dirname(target))}`, `: > ${shellQuote(target)}`);
    lines.push(`mount --bind ${shellQuote(path.join(layout.stateDir, stateFile))} ${shellQuote(target)}`);
  }
  // The UTS namespace is this process's own, so this sets the pod's hostname only.
  lines.push(`printf %s ${shellQuote(hostname)} > /proc/sys/kernel/hostname`);
  // sh exports PWD on its own; `env -u` keeps the target's environment exactly what it was given. Both sh and
  // env exec, so the pid that spawn() reports ends up being the node process.
  lines.push(keepPwd ? 'exec "$@"' : 'exec env -u PWD "$@"');
  return lines.join('\n');
}

function findPackageRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    try {
      const manifest = JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8')) as { name?: string };
      if (manifest.name === 'remocal') return dir;
    } catch {
      // No manifest here; keep going up.
    }
    const parent = path.dirname(dir);
    if (parent === dir) throw new FeatureUnavailableError('Cannot find the remocal package root to start the demo pod from.');
    dir = parent;
  }
}

function defaultPodCommand(): string[] {
  const script = path.join(findPackageRoot(), 'dist', 'pod.js');
  if (!existsSync(script)) {
    throw new FeatureUnavailableError(`The demo pod program ${script} is missing.`, { hint: 'Run `npm run build` first.' });
  }
  return [process.execPath, script];
}

function expectedListeners(config: PodProcessConfig): string[] {
  const key = (service: string, address: string, port: number) => `${service} ${address}:${port}`;
  return [
    key('dns-udp', config.dns.address, config.dns.port),
    key('dns-tcp', config.dns.address, config.dns.port),
    ...config.api.addresses.flatMap((address) => [
      key('api-http', address, config.api.httpPort),
      ...config.api.echoPorts.map((port) => key('api-echo', address, port)),
      ...config.api.echoPorts.map((port) => key('api-udp-echo', address, port)),
    ]),
    key('target-http', config.target.host, config.target.port),
  ];
}

const STDERR_KEPT = 8 * 1024;

interface StartedTarget {
  child: ChildProcess;
  identity: ProcessIdentity;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  dnsQueries: PodDnsQuery[];
  httpRequests: PodHttpRequest[];
  stderr: () => string;
}

async function startTarget(
  layout: PodLayout,
  description: PodDescription,
  command: readonly string[],
  readyTimeoutMs: number,
): Promise<StartedTarget> {
  const ips = layout.serviceIps;
  const config: PodProcessConfig = {
    dns: { address: ips.dns, port: PORTS.dns, zone: CLUSTER_DOMAIN, records: description.records },
    api: {
      addresses: [ips.api, ips.hostsOnly, ...(ips.apiV6 === undefined ? [] : [ips.apiV6])],
      httpPort: PORTS.apiHttp,
      echoPorts: [PORTS.echo, PORTS.db],
    },
    target: { host: '0.0.0.0', port: PORTS.target },
  };
  const script = startupScript(layout, description.hostname, 'PWD' in description.env);
  const args = [
    `--net=${layout.netnsPath}`,
    '--',
    'unshare',
    '--mount',
    '--uts',
    '--propagation',
    'private',
    '--',
    'sh',
    '-c',
    script,
    `${layout.name}-init`,
    ...command,
    JSON.stringify(config),
  ];
  // The pod's env (with its minimal PATH) is used to find nsenter too; containers find their tools the same way.
  // The wrapper kills the pod process if this process exits without destroying the pod; were this process
  // killed outright, the pod process still ends, on seeing its stdin close.
  const child = startChild('nsenter', args, { env: description.env, cwd: '/', stdio: ['pipe', 'pipe', 'pipe'] });
  const dnsQueries: PodDnsQuery[] = [];
  const httpRequests: PodHttpRequest[] = [];
  let stderr = '';
  child.stderr?.setEncoding('utf8');
  child.stderr?.on('data', (chunk: string) => {
    stderr = (stderr + chunk).slice(-STDERR_KEPT);
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('exit', (code, signal) => resolve({ code, signal }));
    // A spawn that failed emits only 'error'.
    child.once('error', () => resolve({ code: null, signal: null }));
  });
  // The pod process reads stdin only to notice that we are gone; an EPIPE on it is no error of ours.
  child.stdin?.on('error', () => {});

  const waiting = new Set(expectedListeners(config));
  const failures: string[] = [];
  let resolveReady!: () => void;
  const ready = new Promise<void>((resolve) => (resolveReady = resolve));
  const lines = createInterface({ input: child.stdout! });
  lines.on('line', (line) => {
    let event: PodEvent;
    try {
      event = JSON.parse(line) as PodEvent;
    } catch {
      return;
    }
    switch (event.event) {
      case 'dns-query':
        dnsQueries.push(event);
        break;
      case 'http-request':
        httpRequests.push(event);
        break;
      case 'listening':
        waiting.delete(`${event.service} ${event.address}:${event.port}`);
        break;
      case 'failed':
        failures.push(`${event.service} ${event.address}:${event.port}: ${event.message}`);
        break;
      case 'ready':
        resolveReady();
        break;
      case 'stopping':
        break;
    }
  });

  const stderrTail = () => stderr.trim();
  const describeState = () =>
    [
      failures.length > 0 ? `failed: ${failures.join('; ')}` : '',
      waiting.size > 0 ? `still waiting for: ${[...waiting].join(', ')}` : '',
      stderrTail() ? `stderr: ${stderrTail()}` : '',
    ]
      .filter(Boolean)
      .join('; ');

  let timer: NodeJS.Timeout | undefined;
  const outcome = await Promise.race([
    ready.then(() => 'ready' as const),
    exited.then(() => 'exited' as const),
    new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), readyTimeoutMs))),
  ]);
  clearTimeout(timer);
  const identity = child.pid === undefined ? undefined : identityOf(child.pid);
  if (outcome === 'ready' && identity !== undefined) {
    return { child, identity, exited, dnsQueries, httpRequests, stderr: stderrTail };
  }
  child.kill('SIGKILL');
  // 'exit' can come before the last lines of stdout and stderr are read, and those say what went wrong.
  await Promise.race([
    new Promise((resolve) => child.once('close', resolve)),
    new Promise((resolve) => setTimeout(resolve, 1_000)),
  ]);
  if (outcome === 'timeout') {
    throw new TimeoutError(
      `The demo pod ${layout.name} was not ready within ${readyTimeoutMs} ms (step "start the pod process"); ${describeState()}`,
      { hint: 'Raise the readyTimeoutMs option of createPod if this machine is just slow.' },
    );
  }
  const exit = await exited;
  throw new FeatureUnavailableError(
    `The demo pod process of ${layout.name} exited before it was ready (step "start the pod process", ` +
      `exit code ${exit.code}, signal ${exit.signal}); ${describeState()}`,
  );
}

/**
 * Maps a path of the pod to the host path that reaches it through `root` (/proc/<pid>/root). The kernel
 * follows an absolute symlink met under that root from the reader's own root, so `/var/run` (-> /run) would
 * land on the host's /run; symlinks are therefore followed here, one component at a time, inside the root.
 */
function resolveInRoot(root: string, podPath: string): string {
  const MAX_SYMLINKS = 40;
  let pending = podPath.split('/').filter(Boolean);
  const resolved: string[] = [];
  for (let hops = 0; pending.length > 0; ) {
    const part = pending.shift()!;
    if (part === '.') continue;
    if (part === '..') {
      resolved.pop();
      continue;
    }
    const candidate = path.join(root, ...resolved, part);
    let target: string | undefined;
    try {
      target = readlinkSync(candidate);
    } catch {
      // Not a symlink (or not there): take the name as it is.
    }
    if (target === undefined) {
      resolved.push(part);
      continue;
    }
    if (++hops > MAX_SYMLINKS) return candidate;
    if (target.startsWith('/')) resolved.length = 0;
    pending = [...target.split('/').filter(Boolean), ...pending];
  }
  return path.join(root, ...resolved);
}

// --- Teardown ----------------------------------------------------------------------------------------------

const PROCESS_EXIT_WAIT_MS = 2_000;

async function waitUntilGone(identities: readonly ProcessIdentity[]): Promise<void> {
  const deadline = Date.now() + PROCESS_EXIT_WAIT_MS;
  while (identities.some(isAlive) && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

async function processesInNetns(layout: PodLayout): Promise<ProcessIdentity[]> {
  if (!existsSync(layout.netnsPath)) return [];
  const result = await runCommand('ip', ['netns', 'pids', layout.name]);
  if (isFailure(result)) return [];
  return result.stdout
    .split(/\s+/)
    .filter(Boolean)
    .map(Number)
    .map(identityOf)
    .filter((identity): identity is ProcessIdentity => identity !== undefined);
}

/**
 * Removes everything of pod `index` on the host, whatever state it is in. The caller holds the index (its
 * state dir exists), so no createPod can claim it meanwhile. Each part is tried even if another fails, and
 * the failures are reported together; the state dir goes last, and only once all else is gone, so what is
 * left stays claimed (with its owner on record) until a later cleanup removes it.
 */
async function teardown(index: number): Promise<void> {
  const layout = layoutFor(index, true);
  const record = await readOwnerRecord(layout.stateDir);
  const victims = await processesInNetns(layout);
  if (record?.target !== undefined && isAlive(record.target)) victims.push(record.target);
  for (const victim of victims) {
    if (isAlive(victim)) {
      try {
        process.kill(victim.pid, 'SIGKILL');
      } catch {
        // Already gone.
      }
    }
  }
  await waitUntilGone(victims);

  const problems = await Promise.all([
    // Deleting the host end removes the pod end with it. The netns alone would take the pair with it too, but
    // only once the kernel gets round to freeing the namespace, after destroy() has returned.
    runTeardown('ip', ['link', 'del', layout.hostInterface]),
    runTeardown('ip', ['route', 'del', 'unreachable', layout.serviceSubnet]),
    // Without IPv6 in the kernel there is no such route, and asking would fail for another reason.
    kernelHasIpv6() ? runTeardown('ip', ['route', 'del', 'unreachable', layout.serviceSubnetV6]) : undefined,
  ]);
  problems.push(await runTeardown('ip', ['netns', 'del', layout.name]));
  const failed = problems.filter((problem): problem is string => problem !== undefined);
  if (failed.length === 0) {
    try {
      await rm(layout.stateDir, { recursive: true, force: true });
    } catch (error) {
      failed.push(`rm -r ${layout.stateDir}: ${(error as Error).message}`);
    }
  }
  if (failed.length > 0) {
    throw new FeatureUnavailableError(`Removing the demo pod ${layout.name} left something behind: ${failed.join('; ')}`, {
      hint: 'Run cleanupStalePods() (or `remocal demo --cleanup`) to try again.',
    });
  }
}

// --- Entry points ------------------------------------------------------------------------------------------

/** Builds a pod and resolves once its DNS server, services and target app all listen. */
export async function createPod(options: PodOptions = {}): Promise<Pod> {
  const startedAt = performance.now();
  const command = options.command ?? defaultPodCommand();
  const iptables = options.iptables ?? 'iptables';
  const readyTimeoutMs = options.readyTimeoutMs ?? 10_000;
  const stopTimeoutMs = options.stopTimeoutMs ?? 2_000;
  const layout = await claimIndex(kernelHasIpv6());
  let target: StartedTarget;
  let description: PodDescription;
  try {
    description = describePod(layout, options);
    await Promise.all([
      setUpHostNetwork(layout).then(() => setUpPodNetwork(layout, iptables)),
      writePodDescription(layout, description),
    ]);
    target = await startTarget(layout, description, command, readyTimeoutMs);
    await writeOwnerRecord(layout.stateDir, { owner: selfIdentity(), target: target.identity });
  } catch (error) {
    await teardown(layout.index).catch(() => {
      // The setup error is the one to report; cleanupStalePods() gets whatever this left.
    });
    throw error;
  }
  return new LocalPod(layout, description, target, stopTimeoutMs, performance.now() - startedAt);
}

class LocalPod implements Pod {
  readonly name: string;
  readonly index: number;
  readonly pid: number;
  readonly netnsPath: string;
  readonly ip: string;
  readonly hostIp: string;
  readonly hostInterface: string;
  readonly serviceIps: PodServiceIps;
  readonly serviceSubnets: readonly string[];
  readonly names: PodNames;
  readonly ports = PORTS;
  readonly paths = POD_PATHS;
  readonly files: Readonly<Record<'greeting' | 'config', string>>;
  readonly env: Readonly<Record<string, string>>;
  readonly dnsRecords: Readonly<Record<string, DnsZoneRecords>>;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  readonly createMs: number;
  private readonly target: StartedTarget;
  private stopping: Promise<void> | undefined;
  private destroying: Promise<void> | undefined;
  private hasExited = false;

  constructor(
    layout: PodLayout,
    description: PodDescription,
    target: StartedTarget,
    private readonly stopTimeoutMs: number,
    createMs: number,
  ) {
    this.name = layout.name;
    this.index = layout.index;
    this.pid = target.identity.pid;
    this.netnsPath = layout.netnsPath;
    this.ip = layout.ip;
    this.hostIp = layout.hostIp;
    this.hostInterface = layout.hostInterface;
    this.serviceIps = layout.serviceIps;
    this.serviceSubnets = [layout.serviceSubnet, ...(layout.serviceIps.apiV6 === undefined ? [] : [layout.serviceSubnetV6])];
    this.names = description.names;
    this.files = description.contents;
    this.env = Object.freeze({ ...description.env });
    this.dnsRecords = description.records;
    this.target = target;
    this.exited = target.exited;
    this.createMs = createMs;
    void this.exited.then(() => {
      this.hasExited = true;
    });
  }

  get running(): boolean {
    return !this.hasExited;
  }

  get dnsQueries(): readonly PodDnsQuery[] {
    return this.target.dnsQueries;
  }

  get httpRequests(): readonly PodHttpRequest[] {
    return this.target.httpRequests;
  }

  get stderr(): string {
    return this.target.stderr();
  }

  rootPath(podPath: string): string {
    return resolveInRoot(`/proc/${this.pid}/root`, podPath);
  }

  async exec(command: readonly string[], options: PodExecOptions = {}): Promise<PodExecResult> {
    const namespaces = options.mountNamespace
      ? [`--net=${this.netnsPath}`, `--mount=/proc/${this.pid}/ns/mnt`, `--uts=/proc/${this.pid}/ns/uts`]
      : [`--net=${this.netnsPath}`];
    const { spawnError, ...result } = await runToEnd('nsenter', [...namespaces, '--', ...command], options);
    if (spawnError !== undefined) throw spawnError;
    return result;
  }

  stop(): Promise<void> {
    this.stopping ??= stopChild(this.target.child, this.stopTimeoutMs);
    return this.stopping;
  }

  destroy(): Promise<void> {
    this.destroying ??= (async () => {
      await this.stop();
      await teardown(this.index);
    })();
    return this.destroying;
  }
}

/**
 * Removes the pods of runs that ended without destroying them: every `rmc-pod-<n>` netns, `rmc-h<n>` link,
 * service route and state dir whose owner process is gone. Pods of live processes (a test file running in
 * parallel) are left alone unless `includeLive` is set. Returns the indexes it removed.
 */
export async function cleanupStalePods(options: { includeLive?: boolean } = {}): Promise<number[]> {
  const indexes = new Set<number>();
  const collect = (text: string, pattern: RegExp) => {
    for (const match of text.matchAll(pattern)) {
      const index = Number(match[1]);
      if (index >= FIRST_INDEX && index <= LAST_INDEX) indexes.add(index);
    }
  };
  const [netnsList, links, routes, routesV6, stateDirs] = await Promise.all([
    runCommand('ip', ['netns', 'list']),
    runCommand('ip', ['-o', 'link', 'show']),
    runCommand('ip', ['route', 'show', 'type', 'unreachable']),
    runCommand('ip', ['-6', 'route', 'show', 'type', 'unreachable']),
    readdir(STATE_ROOT).catch(() => [] as string[]),
  ]);
  const output = (result: { stdout: string } | CommandFailure) => (isFailure(result) ? '' : result.stdout);
  collect(output(netnsList), new RegExp(`^${NETNS_PREFIX}(\\d+)\\b`, 'gm'));
  collect(output(links), new RegExp(`^\\d+: ${HOST_VETH_PREFIX}(\\d+)[@:]`, 'gm'));
  collect(output(routes), /^unreachable 10\.202\.(\d+)\.0\/24\b/gm);
  for (const match of output(routesV6).matchAll(/^unreachable fd72:6d63:0:([0-9a-f]+)::\/64\b/gm)) {
    collect(String(parseInt(match[1] ?? '', 16)), /^(\d+)$/gm);
  }
  collect(stateDirs.join('\n'), new RegExp(`^${NETNS_PREFIX}(\\d+)$`, 'gm'));

  return withCleanupLock(async () => {
    const removed: number[] = [];
    for (const index of [...indexes].sort((a, b) => a - b)) {
      if (!options.includeLive && (await isOwnedByLiveProcess(index))) continue;
      // Hold the index while taking it apart. A state dir of a dead owner is held already: only a cleanup
      // removes it, and cleanups run one at a time. Without one, claim it as createPod would.
      const stateDir = stateDirFor(index);
      try {
        await mkdir(stateDir);
        await writeOwnerRecord(stateDir, { owner: selfIdentity() });
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
        // Claimed by a createPod since the check above.
        if (!options.includeLive && (await isOwnedByLiveProcess(index))) continue;
      }
      await teardown(index);
      removed.push(index);
    }
    return removed;
  });
}

const CLEANUP_LOCK_WAIT_MS = 15_000;

/**
 * Runs `body` while no other process runs a cleanup: two cleanups taking the same leftovers apart at once
 * could let a createPod claim the index between them, and the slower one would then remove the new pod.
 * The lock is a listening socket in the abstract namespace, which the kernel frees when its process dies, so
 * a crashed cleanup never leaves a stale lock behind.
 */
async function withCleanupLock<T>(body: () => Promise<T>): Promise<T> {
  const deadline = Date.now() + CLEANUP_LOCK_WAIT_MS;
  const lock = net.createServer();
  for (;;) {
    const taken = await new Promise<boolean>((resolve, reject) => {
      const onError = (error: NodeJS.ErrnoException) => (error.code === 'EADDRINUSE' ? resolve(false) : reject(error));
      lock.once('error', onError);
      lock.listen({ path: '\0rmc-pods-cleanup' }, () => {
        lock.off('error', onError);
        resolve(true);
      });
    });
    if (taken) break;
    if (Date.now() > deadline) {
      throw new TimeoutError(`Another process kept cleaning up demo pods for more than ${CLEANUP_LOCK_WAIT_MS} ms.`);
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  try {
    return await body();
  } finally {
    lock.close();
  }
}
