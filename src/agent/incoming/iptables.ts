// The agent's iptables rules for stealing incoming connections, in the network namespace it runs in.
//
// Everything remocal adds lives in one chain of the nat table per session, `REMOCAL-<8 hex>`, reached by two
// jumps: from PREROUTING (connections from outside) and from OUTPUT for loopback traffic (connections the
// pod makes to itself). The chain holds one REDIRECT rule per stolen port. Removing a session therefore means
// deleting two jumps and one chain, whatever ports it held.
//
// The OUTPUT jump exempts sockets of processes in a supplementary group only the agent joins: the agent's
// passthrough connections to the original server go through OUTPUT too, and redirecting them would loop them
// back into the agent. A supplementary group changes nothing else for a root process (unlike the uid or the
// primary gid, which would also own the files the agent creates), and xt_owner matches it with
// `--suppl-groups`. Node cannot set SO_MARK, so marking is not an option.
//
// Changes go through `iptables-restore --noflush` rather than one `iptables` call per rule: a batch is one
// process and one atomic commit, so a session's chain is never half there and setup costs one rule change.

import { startChild } from '../../core/child.js';
import { FeatureUnavailableError, ToolMissingError } from '../../core/errors.js';

export type IptablesBackend = 'iptables' | 'iptables-legacy';

export const BACKENDS: readonly IptablesBackend[] = ['iptables', 'iptables-legacy'];

/** The supplementary group the agent joins so that its own connections skip the OUTPUT redirect. */
export const AGENT_EXEMPT_GID = 2_147_483_000;

const CHAIN_PREFIX = 'REMOCAL-';
export const CHAIN_PATTERN = /^REMOCAL-[0-9a-f]{8}$/;
const OWNER_COMMENT = /"remocal pid=(\d+)"/;
const COMMAND_TIMEOUT_MS = 10_000;

export function chainNameFor(sessionId: string): string {
  if (!/^[0-9a-f]{8}$/.test(sessionId)) throw new TypeError(`session id must be 8 hex digits, got ${JSON.stringify(sessionId)}`);
  return `${CHAIN_PREFIX}${sessionId}`;
}

interface Finished {
  code: number | null;
  stdout: string;
  stderr: string;
  missing: boolean;
}

function run(file: string, args: readonly string[], input = ''): Promise<Finished> {
  return new Promise((resolve) => {
    const child = startChild(file, args, { stdio: ['pipe', 'pipe', 'pipe'], timeout: COMMAND_TIMEOUT_MS });
    let stdout = '';
    let stderr = '';
    child.stdout?.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr?.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    // A tool that exits before reading its input makes the write fail with EPIPE; its exit code tells more.
    child.stdin?.on('error', () => {});
    child.stdin?.end(input);
    child.once('error', (error: NodeJS.ErrnoException) =>
      resolve({ code: null, stdout, stderr: error.message, missing: error.code === 'ENOENT' }),
    );
    child.once('close', (code: number | null) => resolve({ code, stdout, stderr, missing: false }));
  });
}

/** The `iptables-save` output of one backend in this namespace; empty when that backend is not installed. */
export async function saveRules(backend: IptablesBackend): Promise<string> {
  const result = await run(`${backend}-save`, []);
  return result.code === 0 ? result.stdout : '';
}

function countRules(saved: string): { nat: number; all: number } {
  let table = '';
  let nat = 0;
  let all = 0;
  for (const line of saved.split('\n')) {
    if (line.startsWith('*')) table = line.slice(1);
    else if (line.startsWith('-A ')) {
      all++;
      if (table === 'nat') nat++;
    }
  }
  return { nat, all };
}

/**
 * Which iptables the namespace already uses. Both backends work on Debian, but each lists only its own rules,
 * and nat rules of both kinds in one namespace make the outcome depend on hook order; so remocal joins the
 * backend whose nat table is in use, else the one with any rules, else nft (the distribution default).
 */
export async function detectBackend(): Promise<IptablesBackend> {
  const [nftSaved, legacySaved] = await Promise.all([saveRules('iptables'), saveRules('iptables-legacy')]);
  return chooseBackend(nftSaved, legacySaved);
}

/** The decision of detectBackend(), from the `-save` output of each backend. */
export function chooseBackend(nftSaved: string, legacySaved: string): IptablesBackend {
  const nft = countRules(nftSaved);
  const legacy = countRules(legacySaved);
  if (legacy.nat > nft.nat) return 'iptables-legacy';
  if (nft.nat === 0 && legacy.all > nft.all) return 'iptables-legacy';
  return 'iptables';
}

async function restore(backend: IptablesBackend, lines: readonly string[]): Promise<void> {
  const input = `*nat\n${lines.join('\n')}\nCOMMIT\n`;
  const result = await run(`${backend}-restore`, ['-w', '--noflush'], input);
  if (result.missing) {
    throw new ToolMissingError(`Stealing incoming traffic needs \`${backend}-restore\`, which is not installed.`, {
      hint: 'Install the iptables package where the agent runs.',
    });
  }
  if (result.code !== 0) {
    throw new FeatureUnavailableError(`${backend}-restore failed: ${result.stderr.trim() || `exit code ${result.code}`}`, {
      details: { input },
    });
  }
}

function ownerComment(ownerPid: number): string {
  return `-m comment --comment "remocal pid=${ownerPid}"`;
}

/** Creates the chain and its two jumps in one commit. The comment names the owner, for stale cleanup. */
export function createChain(backend: IptablesBackend, chain: string, ownerPid: number): Promise<void> {
  const comment = ownerComment(ownerPid);
  return restore(backend, [
    `:${chain} - [0:0]`,
    `-I PREROUTING 1 -p tcp ${comment} -j ${chain}`,
    `-I OUTPUT 1 -o lo -p tcp -m owner ! --gid-owner ${AGENT_EXEMPT_GID} --suppl-groups ${comment} -j ${chain}`,
  ]);
}

// Only connections that start while the rule exists (a SYN): conntrack in a namespace often begins with our
// first nat rule, and then picks up the target's established connections mid-stream as "new" ones; without
// --syn their next packet would be redirected to the agent, which knows nothing of them, and they would be reset.
function redirectRule(port: number, agentPort: number): string {
  return `-p tcp -m tcp --dport ${port} --syn -j REDIRECT --to-ports ${agentPort}`;
}

export function addRedirect(backend: IptablesBackend, chain: string, port: number, agentPort: number): Promise<void> {
  return restore(backend, [`-A ${chain} ${redirectRule(port, agentPort)}`]);
}

// Deleting a REDIRECT rule drops the connections it already redirected (checked on this kernel, with both
// backends: the next packet of such a connection is answered with a reset). So a port or a session stops taking
// *new* connections with a RETURN for the NEW state in front of its REDIRECT, and the REDIRECT itself goes only
// once the connections it carries are finished.
function newConnectionsBypass(port: number | null): string {
  return `${port === null ? '' : `-p tcp -m tcp --dport ${port} `}-m conntrack --ctstate NEW -j RETURN`;
}

/** New connections to `port` (all ports: null) reach the target directly; existing ones stay as they are. */
export function bypassNewConnections(backend: IptablesBackend, chain: string, port: number | null): Promise<void> {
  return restore(backend, [`-I ${chain} 1 ${newConnectionsBypass(port)}`]);
}

/** Undoes bypassNewConnections for a port subscribed again. */
export function takeNewConnections(backend: IptablesBackend, chain: string, port: number): Promise<void> {
  return restore(backend, [`-D ${chain} ${newConnectionsBypass(port)}`]);
}


/** The nat table's part of `iptables-save` output: remocal's chains live there only. */
function natTable(saved: string): string {
  return /^\*nat$([\s\S]*?)^COMMIT$/m.exec(saved)?.[1] ?? '';
}

/** The rules that jump to `chain`, as `iptables-save` prints them (`-A <from> … -j <chain>`). */
function jumpsTo(nat: string, chain: string): string[] {
  return nat.split('\n').filter((line) => line.startsWith('-A ') && line.endsWith(` -j ${chain}`));
}

/**
 * Removes the chain and every jump to it, reading the jumps back from `iptables-save` so that a chain left by
 * another process (whose exact rules are not known here) goes too. Does nothing if the chain is not there.
 */
export async function removeChain(backend: IptablesBackend, chain: string, saved?: string): Promise<void> {
  const nat = natTable(saved ?? (await saveRules(backend)));
  if (!new RegExp(`^:${chain} `, 'm').test(nat)) return;
  await restore(backend, [...jumpsTo(nat, chain).map((jump) => `-D ${jump.slice(3)}`), `-F ${chain}`, `-X ${chain}`]);
}

export interface RemocalChain {
  chain: string;
  /** From the owner comment of its jumps; undefined if it has none. */
  ownerPid: number | undefined;
}

/** Every remocal chain in the nat table of `saved`, with the pid that owns it. */
export function remocalChains(saved: string): RemocalChain[] {
  const nat = natTable(saved);
  const chains: RemocalChain[] = [];
  for (const match of nat.matchAll(/^:(REMOCAL-[0-9a-f]{8}) /gm)) {
    const chain = match[1] ?? '';
    const owner = jumpsTo(nat, chain)
      .map((jump) => OWNER_COMMENT.exec(jump)?.[1])
      .find((pid) => pid !== undefined);
    chains.push({ chain, ownerPid: owner === undefined ? undefined : Number(owner) });
  }
  return chains;
}

// How the rules of this file read back from `iptables-save`: `--syn` prints as `--tcp-flags …`, the rest as
// written. `--dport` must not match `--dports` (multiport), which remocal never writes.
const DPORT = / --dport (\d+)(?= |$)/;
const JUMP = / -j (\S+)/;
const NEW_STATE = / --ctstate (?:\S+,)?NEW(?:,\S+)? /;

/**
 * The remocal chains of `saved` that take new connections to `port` away from the target: the chain REDIRECTs
 * the port, and no RETURN of new connections (for that port, or for every port) comes first. Such a RETURN is
 * what a session puts in front when it releases a port or ends (bypassNewConnections), so a released port or a
 * draining session holds nothing, though its REDIRECT is still there for the connections it carries. Whether
 * the owner is alive is the caller's question.
 */
export function portHolders(saved: string, port: number): RemocalChain[] {
  const nat = natTable(saved);
  const rules = nat.split('\n').filter((line) => line.startsWith('-A '));
  return remocalChains(saved).filter(({ chain }) => {
    // iptables-save lists a chain's rules in the order the kernel walks them: the first that decides wins.
    for (const rule of rules) {
      if (!rule.startsWith(`-A ${chain} `)) continue;
      const dport = DPORT.exec(rule)?.[1];
      const target = JUMP.exec(rule)?.[1];
      if (target === 'RETURN' && NEW_STATE.test(rule) && (dport === undefined || Number(dport) === port)) return false;
      if (target === 'REDIRECT' && dport !== undefined && Number(dport) === port) return true;
    }
    return false;
  });
}
