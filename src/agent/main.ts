// The agent: runs inside the target's network namespace and serves the session's remote operations over one
// link to its client, either its stdio (stdin/stdout carry the protocol link; stderr is for logs), or one TCP
// connection it accepts itself. It exits when the link closes, so a session never leaves an agent behind.
//
//   agent --pid <pid>        a process target: DNS files from /proc/<pid>/root, env from /proc/<pid>/environ
//   agent --netns <name>     a named network namespace: DNS files from /etc/netns/<name>/ as `ip netns exec`
//                            would bind them, else the host's; no environment, no files
//   --files off|read|write   the target's files: not served, read only (the default), or also changed
//
// On Kubernetes the CLI cannot own the agent's stdio; it reaches the agent through a port-forward instead:
//
//   --listen <host>:<port>   accept the client on this address instead of stdio: one client, which must prove
//                            it holds the private key of the public key in $REMOCAL_AGENT_KEY (see listen.ts); stdout says
//                            `remocal-agent listening <host>:<port>` once it listens
//   --ttl <seconds>          with --listen: exit if no client has authenticated this long after start (60)
//   --idle-timeout <seconds> with --listen: the link is dropped when nothing arrives for this long (15); the
//                            client pings every 5 s, so only a dead link is ever that quiet
//   --container-id <runtime>://<id>
//                            the agent runs in a hostPID pod on the target's node: find the container's init
//                            in /proc, then run again under nsenter in its network namespace with --pid
//
// Behind the operator, one agent serves every session on its target:
//
//   --sessions <path>        listen on this unix socket for session connections (each opened with a preamble
//                            line naming the session, see protocol/shared-agent.ts); stdin/stdout carry the
//                            operator's control link instead of a session, and the agent ends when it closes
//   --sessions tcp --listen <host>:<port>
//                            in a cluster: sessions and the control link both come to the --listen address,
//                            each connection proving it holds the private key of $REMOCAL_AGENT_KEY (the
//                            operator's); --ttl bounds the wait for the control link, --idle-timeout its silence
//
// Exit codes: 0 when the link closed (or no client came within the ttl), 1 on a failure, 2 on bad arguments,
// 3 when --container-id names no running container; under --container-id, the nsenter'd agent's own code.

import { readlinkSync } from 'node:fs';
import { Socket } from 'node:net';
import type { Readable, Writable } from 'node:stream';
import { constants as osConstants } from 'node:os';
import { parseArgs } from 'node:util';
import { childExited, startChild } from '../core/child.js';
import { createLogger } from '../core/log.js';
import { AGENT_KEY_ENV, isPublicKey } from '../protocol/agent-auth.js';
import { findContainerPid } from './find-container.js';
import { acceptOneClient, formatListenAddress, parseListenAddress, watchIdle, type ListenAddress } from './listen.js';
import { serveSession } from './session.js';
import { serveSharedTarget } from './shared.js';
import { SharedTarget } from './target.js';

const argv = process.argv.slice(2);
const { values, tokens } = parseArgs({
  args: argv,
  options: {
    pid: { type: 'string' },
    netns: { type: 'string' },
    'log-level': { type: 'string' },
    files: { type: 'string', default: 'read' },
    listen: { type: 'string' },
    ttl: { type: 'string', default: '60' },
    'idle-timeout': { type: 'string', default: '15' },
    'container-id': { type: 'string' },
    sessions: { type: 'string' },
  },
  strict: true,
  tokens: true,
});

const log = createLogger('agent', values['log-level'] === undefined ? {} : { level: values['log-level'] });

function usageError(fields: Record<string, unknown>, message: string): never {
  log.error(fields, message);
  process.exit(2);
}

function seconds(option: 'ttl' | 'idle-timeout'): number {
  const text = values[option];
  const value = Number(text);
  // Node's timers take at most 2^31-1 ms and fire at once for more, which would end the agent at start.
  if (text === '' || !Number.isFinite(value) || value <= 0 || value * 1000 > 2 ** 31 - 1) {
    usageError({ [option]: text }, `--${option} must be a number of seconds above 0 and below 2147483`);
  }
  return value;
}

function filesMode(text: string): 'off' | 'read' | 'write' {
  if (text === 'off' || text === 'read' || text === 'write') return text;
  return usageError({ files: text }, '--files must be off, read or write');
}

const files = filesMode(values.files);
const ttlMs = seconds('ttl') * 1000;
const idleMs = seconds('idle-timeout') * 1000;

let listenAddress: ListenAddress | null = null;
if (values.listen !== undefined) {
  listenAddress = parseListenAddress(values.listen);
  if (listenAddress === null) usageError({ listen: values.listen }, '--listen must be <host>:<port>, such as 127.0.0.1:7000');
  // Checked before --container-id runs the agent again, so a pod without its key fails in one short log.
  const key = process.env[AGENT_KEY_ENV];
  if (!key) usageError({ env: AGENT_KEY_ENV }, `--listen needs the session's public key in $${AGENT_KEY_ENV}`);
  else if (!isPublicKey(key)) usageError({ env: AGENT_KEY_ENV }, `$${AGENT_KEY_ENV} is not an Ed25519 public key (base64 SPKI DER)`);
}

const containerId = values['container-id'];
if (containerId !== undefined && (values.pid !== undefined || values.netns !== undefined)) {
  usageError({ containerId }, '--container-id finds the target itself: give it without --pid or --netns');
}

let pid = values.pid === undefined ? null : Number(values.pid);
if (pid !== null && !(Number.isInteger(pid) && pid > 0)) usageError({ pid: values.pid }, '--pid must be a process id');

if (containerId !== undefined) {
  const found = findContainerPid(containerId);
  if (found === null) {
    log.error({ containerId }, `no process of container ${containerId} was found in /proc (is this pod's hostPID set, and the container running?)`);
    process.exit(3);
  }
  if (!inNetworkNamespaceOf(found)) process.exit(await runInNetworkNamespaceOf(containerId, found));
  pid = found;
}

function inNetworkNamespaceOf(target: number): boolean {
  try {
    return readlinkSync('/proc/self/ns/net') === readlinkSync(`/proc/${target}/ns/net`);
  } catch {
    // Not allowed to look: nsenter will say whether it may enter.
    return false;
  }
}

/** The same agent under nsenter, in the target's network namespace; resolves with the code to exit with. */
async function runInNetworkNamespaceOf(containerId: string, target: number): Promise<number> {
  // Everything but --container-id, exactly as given (values included); the key travels in the env.
  const dropped = new Set<number>();
  for (const token of tokens) {
    if (token.kind !== 'option' || token.name !== 'container-id') continue;
    dropped.add(token.index);
    if (token.inlineValue === false) dropped.add(token.index + 1);
  }
  const rest = argv.filter((_, index) => !dropped.has(index));
  // execArgv keeps a loader such as tsx, which an unbundled agent needs to start again.
  const args = [`--net=/proc/${target}/ns/net`, '--', process.execPath, ...process.execArgv, process.argv[1]!, ...rest, '--pid', String(target)];
  log.info({ containerId, targetPid: target }, 'entering the container\'s network namespace');
  const child = startChild('nsenter', args, { stdio: 'inherit', log });
  // In a pod the agent may be pid 1, which is the only one the kubelet signals: the real agent must hear it too.
  const forward = (signal: NodeJS.Signals): void => void child.kill(signal);
  for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) process.on(signal, forward);
  const started = await new Promise<Error | null>((resolve) => {
    child.once('spawn', () => resolve(null));
    child.once('error', resolve);
  });
  if (started !== null) {
    log.error({ err: started }, 'could not run nsenter');
    return 1;
  }
  const { code, signal } = await childExited(child);
  if (code !== null) return code;
  return 128 + (signal === null ? 0 : (osConstants.signals[signal] ?? 0));
}

const sharedOverTcp = values.sessions === 'tcp';
if (sharedOverTcp && listenAddress === null) usageError({}, '--sessions tcp takes its address from --listen <host>:<port>');
if (values.sessions !== undefined && !sharedOverTcp && values.listen !== undefined) {
  usageError({}, '--sessions <path> and --listen are two ways to reach the agent: give one, or --sessions tcp with --listen');
}

const target = new SharedTarget({ pid, netns: values.netns ?? null, log, files });
const HANDSHAKE_TIMEOUT_MS = 10_000;

/**
 * The one session of a direct agent: it has the target to itself, so its end is the agent's. Resolves once the
 * link closed and the connections the agent accepted for the target are finished.
 */
async function serveDirect(readable: Readable, writable: Writable): Promise<string> {
  const session = serveSession(target, { readable, writable, id: 'direct', owner: 'direct', files, closes: 'agent', handshakeTimeoutMs: HANDSHAKE_TIMEOUT_MS });
  await session.ready;
  log.info({ target: pid ?? values.netns }, 'agent ready');
  const stopWatching = target.watch((reason) => {
    log.warn({ reason }, 'target gone');
    session.end({ kind: 'target_gone', reason });
  });
  const reason = await session.closed;
  stopWatching();
  // Whatever ends the session, the target's ports answer as before (the supervisor covers a kill -9); the
  // connections the agent accepted for the target are finished, not cut.
  await target.incoming.drain();
  return reason;
}

function stdio(): { readable: Readable; writable: Writable } {
  // process.stdout writes to a pipe synchronously on Linux, which would stall every stream whenever the pipe is
  // full; sockets of our own over the same fds are asynchronous and honour backpressure.
  return { readable: new Socket({ fd: 0, readable: true, writable: false }), writable: new Socket({ fd: 1, readable: false, writable: true }) };
}

async function serveOverStdio(): Promise<string> {
  const { readable, writable } = stdio();
  return serveDirect(readable, writable);
}

async function serveShared(socketPath: string): Promise<string> {
  const reason = await serveSharedTarget(target, {
    listener:
      sharedOverTcp && listenAddress !== null
        ? {
            kind: 'tcp',
            address: listenAddress,
            publicKey: takePublicKey(),
            ttlMs,
            idleMs,
            onListening: (bound) => process.stdout.write(`remocal-agent listening ${formatListenAddress(bound)}\n`),
          }
        : { kind: 'unix', path: socketPath, control: stdio() },
    handshakeTimeoutMs: HANDSHAKE_TIMEOUT_MS,
  });
  await target.incoming.drain();
  return reason;
}

function takePublicKey(): string {
  const publicKey = process.env[AGENT_KEY_ENV]!;
  // The agent's own children (the iptables supervisor, iptables itself) have no use for it.
  delete process.env[AGENT_KEY_ENV];
  return publicKey;
}

async function serveOverTcp(address: ListenAddress): Promise<string> {
  const publicKey = takePublicKey();
  const client = await acceptOneClient({
    ...address,
    publicKey,
    log,
    ttlMs,
    onListening: (bound) => process.stdout.write(`remocal-agent listening ${formatListenAddress(bound)}\n`),
  });
  if (client === null) {
    log.info({ ttlSeconds: ttlMs / 1000 }, 'no client within ttl; exiting');
    process.exit(0);
  }
  // Destroying the socket closes the link under the session, which then ends as for any lost link.
  watchIdle(client, idleMs, () => {
    log.warn({ idleSeconds: idleMs / 1000 }, 'nothing arrived from the client for too long; dropping the link');
    client.destroy();
  });
  return serveDirect(client, client);
}

(values.sessions !== undefined ? serveShared(values.sessions) : listenAddress === null ? serveOverStdio() : serveOverTcp(listenAddress)).then(
  (reason) => {
    log.info({ reason }, 'agent exiting');
    process.exit(0);
  },
  (error: unknown) => {
    log.error({ err: error }, 'agent failed');
    process.exit(1);
  },
);
