// What evaluating policies adds to an outgoing connect and to a file read, with no policy, 1 rule and 50 rules, in one
// run on one fixture pod through the local-mode operator.
//
//   no policy   the policy directory is empty
//   1 rule      one policy: 1 outgoing block rule, 1 fs regex
//   50 rules    one policy: 50 outgoing block rules, 50 fs regexes (25 fs.notFound, 25 fs.local: the lists a read asks)
//
// No rule matches what is measured (addresses in TEST-NETs, names under .invalid, paths the pod lacks), so every
// operation walks all the rules and is still allowed: the cost of a policy that says no is not what this measures.
// The session is a protocol-level client in this process (a Link over the operator's WebSocket), so the figures are
// the agent's answer times without a CLI around them. Policies are compiled when a session opens, so each case gets
// a fresh session once the operator reports the case's policy.
//
// The machine is shared and noisy: each round runs every case (in an order rotated per round, so no case always
// follows a policy change or always comes last), ratios are taken within a round, and the medians over rounds are
// printed.
//
// Usage (root): node --import tsx bench/policy.ts [--rounds 5] [--connects 1000] [--reads 2000] [--budget-s 240]

import { once } from 'node:events';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';
import { parseArgs } from 'node:util';
import { createWebSocketStream, WebSocket } from 'ws';
import { startChild, stopChild } from '../src/core/child.js';
import { distFile } from '../src/core/paths.js';
import { createPod } from '../src/fixture/pod.js';
import { Link } from '../src/protocol/link.js';
import type { AgentRequest, AgentResults, AgentToIntproxy, IntproxyToAgent } from '../src/protocol/messages.js';
import type { AppliedPolicy, OutgoingPolicyRule, PolicySpec } from '../src/protocol/policy.js';
import { RpcClient } from '../src/protocol/rpc.js';

const { values } = parseArgs({
  options: {
    rounds: { type: 'string', default: '5' },
    connects: { type: 'string', default: '1000' },
    reads: { type: 'string', default: '2000' },
    // Rounds stop starting once this is spent (one round always completes), so the run stays bounded on a slow host.
    'budget-s': { type: 'string', default: '240' },
  },
});
const ROUNDS = Number(values.rounds);
const CONNECTS = Number(values.connects);
const READS = Number(values.reads);
const DEADLINE = Date.now() + Number(values['budget-s']) * 1000;
const WARMUP = 200;
// Far above any answer here: a request that takes this long means something is broken, not slow.
const REQUEST_TIMEOUT_MS = 5000;
const TOKEN = 'bench-token-0123456789abcdef';
const POLICY_NAME = 'bench';

const pod = await createPod({ command: [process.execPath, distFile('pod.js')] });
const stateDir = mkdtempSync(join(tmpdir(), 'remocal-bench-policy-'));
const policyDir = join(stateDir, 'policies');
mkdirSync(policyDir);
const cleanups: (() => Promise<unknown> | unknown)[] = [() => pod.destroy(), () => rmSync(stateDir, { recursive: true, force: true })];

/** A case's policy: `rules` outgoing rules and `rules` fs regexes, none matching what is measured; null for none. */
function spec(rules: number): PolicySpec | null {
  if (rules === 0) return null;
  // Each rule has an address and a name but no ports, so that neither check is skipped: a rule whose ports miss
  // returns before looking at either.
  const block: OutgoingPolicyRule[] = Array.from({ length: rules }, (_, index) => ({
    ipBlock: index % 2 === 0 ? { cidr: `192.0.2.${index}/32` } : { cidr: '198.51.100.0/24', except: [`198.51.100.${index}/32`] },
    hostname: `^blocked-${index}\\.example\\.invalid$`,
  }));
  // Reads ask fs.notFound and fs.local (fs.readOnly only matters to writes), so the regexes are split between those two.
  const regexes = Array.from({ length: rules }, (_, index) => (index % 2 === 0 ? `^/srv/secret-${index}(/|$)` : `\\.key-${index}$`));
  const notFound = regexes.filter((_, index) => index % 2 === 0);
  const local = regexes.filter((_, index) => index % 2 === 1);
  return { network: { outgoing: { block } }, fs: { notFound, ...(local.length > 0 ? { local } : {}) } };
}

const CASES = [
  { name: 'no policy', rules: 0 },
  { name: '1 rule', rules: 1 },
  { name: '50 rules', rules: 50 },
] as const;
type Op = 'connectIp' | 'connectName' | 'read';
const OPS: Op[] = ['connectIp', 'connectName', 'read'];

// --- the operator --------------------------------------------------------------------------------------------------

writeFileSync(
  join(stateDir, 'operator.json'),
  JSON.stringify({
    listen: { host: '127.0.0.1', port: 0 },
    state_dir: join(stateDir, 'state'),
    users: [{ name: 'bench', token: TOKEN }],
    log_level: 'warn',
    // Read often, so that a case applies quickly; the agent kept between sessions, so that no case pays its start.
    policies: { dir: policyDir, reload: 0.2 },
    agents: { grace: 600 },
  }),
);
const operator = startChild(process.execPath, [distFile('cli.js'), 'operator', 'serve', '--config', join(stateDir, 'operator.json')], { stdio: ['ignore', 'pipe', 'inherit'] });
cleanups.unshift(() => stopChild(operator, 5000));

/** The policies the operator says a session on the pod would meet now. */
function appliedPolicies(base: string, ca: string): Promise<AppliedPolicy[]> {
  return new Promise((resolve, reject) => {
    const request = https.get(`${base}/apis/operator.remocal.dev/v1/namespaces/local/targets/pid.${pod.pid}`, { ca, headers: { authorization: `Bearer ${TOKEN}` }, timeout: REQUEST_TIMEOUT_MS }, (response) => {
      let body = '';
      response.setEncoding('utf8').on('data', (chunk: string) => (body += chunk));
      response.on('end', () => {
        if (response.statusCode !== 200) reject(new Error(`GET target: ${response.statusCode} ${body}`));
        else resolve((JSON.parse(body) as { status: { policies: AppliedPolicy[] } }).status.policies);
      });
    });
    request.on('timeout', () => request.destroy(new Error('GET target timed out')));
    request.on('error', reject);
  });
}

/** Writes (or removes) the case's policy and waits until the operator reports exactly it. */
async function applyCase(rules: number, base: string, ca: string): Promise<void> {
  const file = join(policyDir, `${POLICY_NAME}.json`);
  const wanted = spec(rules);
  if (wanted === null) rmSync(file, { force: true });
  else writeFileSync(file, JSON.stringify({ apiVersion: 'policies.remocal.dev/v1alpha1', kind: 'RemocalPolicy', metadata: { name: POLICY_NAME }, spec: wanted }));
  // The rule count tells the cases apart, as the same policy is rewritten from one case to the next.
  const reported = (policies: AppliedPolicy[]) => (policies.length === 0 ? 0 : policies.length === 1 ? (policies[0]!.spec.network?.outgoing?.block?.length ?? -1) : -1);
  const deadline = Date.now() + 10_000;
  while (reported(await appliedPolicies(base, ca)) !== rules) {
    if (Date.now() > deadline) throw new Error(`the operator did not apply the ${rules}-rule case within 10 s`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

interface Session {
  link: Link<IntproxyToAgent, AgentToIntproxy>;
  rpc: RpcClient<AgentRequest, AgentResults>;
  ws: WebSocket;
}

async function openSession(base: string, ca: string): Promise<Session> {
  // files=read: the session may read the target's files, which the read case needs.
  const ws = new WebSocket(`${base.replace(/^https:/, 'wss:')}/apis/operator.remocal.dev/v1/namespaces/local/targets/pid.${pod.pid}/portforward?files=read`, {
    headers: { authorization: `Bearer ${TOKEN}` },
    ca,
    perMessageDeflate: false,
  });
  // The stream is made in the 'open' listener: frames that came with the upgrade are emitted before an awaited
  // continuation runs, and would be lost.
  const transport = await new Promise<Duplex>((resolve) => ws.once('open', () => resolve(createWebSocketStream(ws))));
  const link = new Link<IntproxyToAgent, AgentToIntproxy>({ readable: transport, writable: transport }, { role: 'intproxy', streamIdParity: 'odd' });
  await link.handshake(10_000);
  return { link, rpc: new RpcClient<AgentRequest, AgentResults>(link, { defaultTimeoutMs: REQUEST_TIMEOUT_MS }), ws };
}

/** One operation, timed from request to answer (µs); anything but success ends the bench, since a refusal would time something else. */
async function timed(session: Session, op: Op): Promise<number> {
  if (op === 'read') {
    const started = process.hrtime.bigint();
    const answer = await session.rpc.request({ op: 'fs.readFile', path: pod.paths.greeting });
    const elapsed = Number(process.hrtime.bigint() - started) / 1000;
    if (!answer.ok) throw new Error(`fs.readFile ${pod.paths.greeting}: ${answer.error.code} ${answer.error.message}`);
    return elapsed;
  }
  const host = op === 'connectIp' ? pod.serviceIps.api : pod.names.dbFqdn;
  const stream = session.link.openStream();
  // The stream is destroyed right away; a reset or the link closing later must not surface as an unhandled error.
  stream.on('error', () => undefined);
  const started = process.hrtime.bigint();
  const answer = await session.rpc.request({ op: 'tcp.connect', host, port: pod.ports.db, stream: stream.id });
  const elapsed = Number(process.hrtime.bigint() - started) / 1000;
  stream.destroy();
  if (!answer.ok) throw new Error(`tcp.connect ${host}:${pod.ports.db}: ${answer.error.code} ${answer.error.message}`);
  return elapsed;
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

/** p50 of each operation in one fresh session. By IP goes first: a name connect teaches the session names for the address, which IP rules would then test too. */
async function measureCase(base: string, ca: string, counts = { connects: CONNECTS, reads: READS }): Promise<Record<Op, number>> {
  const session = await openSession(base, ca);
  try {
    const check = await session.rpc.request({ op: 'fs.readFile', path: pod.paths.greeting });
    if (!check.ok || Buffer.from(check.value.data, 'base64').toString('utf8') !== pod.files.greeting) throw new Error('the read did not return the pod\'s greeting');
    const result = {} as Record<Op, number>;
    for (const op of OPS) {
      const count = op === 'read' ? counts.reads : counts.connects;
      for (let index = 0; index < Math.min(WARMUP, count); index++) await timed(session, op);
      const times: number[] = [];
      for (let index = 0; index < count; index++) times.push(await timed(session, op));
      result[op] = median(times);
    }
    return result;
  } finally {
    session.link.close();
    session.ws.close();
  }
}

try {
  let out = '';
  operator.stdout!.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
  while (!/clients trust/.test(out)) await once(operator.stdout!, 'data');
  const [, base, caFile] = /listening at (\S+); clients trust (\S+) /.exec(out)!;
  const ca = readFileSync(caFile!, 'utf8');

  // p50s[case][op][round]
  const p50s = CASES.map(() => ({ connectIp: [] as number[], connectName: [] as number[], read: [] as number[] }));
  // One untimed pass over every case first: the first session of a run otherwise pays for the agent's and the
  // operator's JIT, which would land on whichever case came first.
  for (const each of CASES) {
    await applyCase(each.rules, base!, ca);
    await measureCase(base!, ca, { connects: Math.min(CONNECTS, 300), reads: Math.min(READS, 600) });
  }
  let rounds = 0;
  while (rounds < ROUNDS && (rounds === 0 || Date.now() < DEADLINE)) {
    for (let step = 0; step < CASES.length; step++) {
      const index = (rounds + step) % CASES.length;
      await applyCase(CASES[index]!.rules, base!, ca);
      const result = await measureCase(base!, ca);
      for (const op of OPS) p50s[index]![op].push(result[op]);
    }
    rounds++;
  }
  await applyCase(0, base!, ca);

  // Ratios within a round (its cases ran minutes apart at most), then the median over rounds.
  const ratio = (index: number, op: Op) => median(p50s[index]![op].map((value, round) => value / p50s[0]![op][round]!));
  const us = (value: number) => `${value.toFixed(0)} µs`;
  const row = (label: string, cells: string[]) => `${label.padEnd(12)}${cells.map((cell) => cell.padStart(18)).join('')}`;
  const header = row('', ['connect by IP', 'connect by name', 'file read']);
  console.log(`${rounds} round(s), cases interleaved; per case per round: ${CONNECTS} connects by IP, ${CONNECTS} by name, ${READS} reads (after ${WARMUP} warm-up each), sequential, one fresh session`);
  console.log('"50 rules" is one policy with 50 outgoing block rules and 50 fs regexes (25 fs.notFound, 25 fs.local)');
  console.log('');
  console.log('ratio of p50 to no policy in the same round, median over rounds:');
  console.log(header);
  console.log(row(CASES[0].name, OPS.map((op) => us(median(p50s[0]![op])))));
  for (let index = 1; index < CASES.length; index++) console.log(row(CASES[index]!.name, OPS.map((op) => `${ratio(index, op).toFixed(2)}x`)));
  console.log('');
  console.log('p50, median over rounds (each round\'s p50 in brackets):');
  console.log(header);
  for (let index = 0; index < CASES.length; index++) {
    console.log(row(CASES[index]!.name, OPS.map((op) => us(median(p50s[index]![op])))));
    console.log(`${''.padEnd(12)}per round: ${OPS.map((op) => `[${p50s[index]![op].map((value) => value.toFixed(0)).join(' ')}]`).join(' ')}`);
  }
} finally {
  for (const cleanup of cleanups) await cleanup();
}
