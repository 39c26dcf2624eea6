// Incoming benchmarks: HTTP requests from the host to the pod's port, with and without a filtered steal.
//   direct:   host → pod:8080 (the target answers)                                   the floor
//   socat:    host → socat on loopback → socat in the pod → target                   a plain two-hop relay
//   stolen:   host → pod:8080 → agent → intproxy → local app (request carries the header)
//   passed:   host → pod:8080 → agent → target (no header: the filter lets it through)
// Then non-matching traffic at a steady rate while a filtered steal session starts and stops three times:
// every failed request is counted. Ratios are against figures of the same run. Not a test.
//
//   node --import tsx bench/incoming.ts [--requests 2000] [--seconds 3] [--rate 1000]

import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { cleanupStalePods, createPod, type Pod } from '../src/fixture/pod.js';
import { assertBuilt, cliPath, repoRoot } from '../test/helpers/remocal.js';

const { values } = parseArgs({
  options: {
    requests: { type: 'string', default: '2000' },
    seconds: { type: 'string', default: '3' },
    rate: { type: 'string', default: '1000' },
    connections: { type: 'string', default: '50' },
  },
});

const HEADER = 'x-bench: me';
const RELAY_PORT = 18_180;
const LOCAL_RELAY_PORT = 28_180;
const children: ChildProcess[] = [];

function background(command: string, args: readonly string[]): ChildProcess {
  const child = spawn(command, args, { stdio: ['ignore', 'ignore', 'inherit'] });
  children.push(child);
  return child;
}

function load(args: string[]): Promise<Record<string, number>> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [join(repoRoot, 'bench/http-load.mjs'), ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout!.on('data', (chunk: Buffer) => (out += chunk));
    child.on('close', (code) => (code === 0 ? resolve(JSON.parse(out.trim().split('\n').pop()!)) : reject(new Error(`load ${args.join(' ')} exited ${code}`))));
  });
}

/** A filtered-steal session with the bench app; resolves once the port is subscribed. */
async function startSession(pod: Pod): Promise<{ stop: () => Promise<void> }> {
  const child = spawn(
    process.execPath,
    [cliPath, 'exec', '-t', `pid/${pod.pid}`, '-f', join(repoRoot, 'bench/steal.json'), '--', process.execPath, join(repoRoot, 'bench/bench-app.mjs'), String(pod.ports.target)],
    { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, NODE_OPTIONS: '' } },
  );
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk));
  const deadline = Date.now() + 20_000;
  while (!/remocal: stealing/.test(stderr)) {
    if (Date.now() > deadline || child.exitCode !== null) throw new Error(`the session did not start:\n${stderr}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return {
    stop: () =>
      new Promise((resolve) => {
        child.once('close', () => resolve());
        child.kill('SIGTERM');
      }),
  };
}

async function main(): Promise<void> {
  assertBuilt();
  await cleanupStalePods();
  const pod = await createPod();
  const target = String(pod.ports.target);
  try {
    background('nsenter', [`--net=${pod.netnsPath}`, '--', 'socat', `TCP-LISTEN:${RELAY_PORT},bind=${pod.ip},fork,reuseaddr,nodelay`, `TCP:127.0.0.1:${target},nodelay`]);
    background('socat', [`TCP-LISTEN:${LOCAL_RELAY_PORT},bind=127.0.0.1,fork,reuseaddr,nodelay`, `TCP:${pod.ip}:${RELAY_PORT},nodelay`]);
    await new Promise((resolve) => setTimeout(resolve, 300));

    const n = values.requests!;
    const direct = await load(['latency', pod.ip, target, n]);
    const socat = await load(['latency', '127.0.0.1', String(LOCAL_RELAY_PORT), n]);
    const directRps = await load(['rps', pod.ip, target, values.connections!, values.seconds!]);

    const session = await startSession(pod);
    let stolen: Record<string, number>;
    let passed: Record<string, number>;
    let stolenRps: Record<string, number>;
    let passedRps: Record<string, number>;
    try {
      stolen = await load(['latency', pod.ip, target, n, HEADER]);
      passed = await load(['latency', pod.ip, target, n]);
      stolenRps = await load(['rps', pod.ip, target, values.connections!, values.seconds!, HEADER]);
      passedRps = await load(['rps', pod.ip, target, values.connections!, values.seconds!]);
    } finally {
      await session.stop();
    }

    // Non-matching traffic must never notice sessions coming and going.
    const rate = Number(values.rate);
    const steadySeconds = 12;
    const steady = load(['steady', pod.ip, target, String(rate), String(steadySeconds)]);
    const churnStarted = Date.now();
    for (let i = 0; i < 3; i++) {
      await new Promise((resolve) => setTimeout(resolve, 500));
      const churn = await startSession(pod);
      await new Promise((resolve) => setTimeout(resolve, 1000));
      await churn.stop();
    }
    const churnSeconds = (Date.now() - churnStarted) / 1000;
    const steadyResult = await steady;

    const us = (value: number | undefined) => `${(value ?? 0).toFixed(0)} µs`;
    const rows: string[][] = [
      ['filtered steal p50 (stolen)', us(direct.p50Us), us(socat.p50Us), us(stolen.p50Us), `${(stolen.p50Us! / socat.p50Us!).toFixed(2)}× socat, ${(stolen.p50Us! / direct.p50Us!).toFixed(2)}× direct`, '≤ 1.5× socat'],
      ['filtered steal p99 (stolen)', us(direct.p99Us), us(socat.p99Us), us(stolen.p99Us), `${(stolen.p99Us! / direct.p99Us!).toFixed(2)}× direct`, '≤ 3× direct'],
      ['passed through p50 (no match)', us(direct.p50Us), us(socat.p50Us), us(passed.p50Us), `${(passed.p50Us! / direct.p50Us!).toFixed(2)}× direct`, ''],
      ['passed through p99 (no match)', us(direct.p99Us), us(socat.p99Us), us(passed.p99Us), `${(passed.p99Us! / direct.p99Us!).toFixed(2)}× direct`, ''],
      [`rps, ${values.connections} keep-alive conns (stolen)`, directRps.rps!.toFixed(0), '', stolenRps.rps!.toFixed(0), `${((100 * stolenRps.rps!) / directRps.rps!).toFixed(0)}% of direct`, '≥ 50% of direct'],
      [`rps, ${values.connections} keep-alive conns (no match)`, directRps.rps!.toFixed(0), '', passedRps.rps!.toFixed(0), `${((100 * passedRps.rps!) / directRps.rps!).toFixed(0)}% of direct`, ''],
      [
        `passthrough errors, ${rate}/s, 3 session starts/stops`,
        '',
        '',
        `${steadyResult.errors} of ${steadyResult.sent}`,
        JSON.stringify(steadyResult.failures),
        '0',
      ],
    ];
    const header = ['', 'direct', 'socat 2-hop', 'remocal', 'ratio', 'target'];
    const widths = header.map((_, column) => Math.max(...[header, ...rows].map((row) => row[column]!.length)));
    const line = (row: readonly string[]) => row.map((cell, column) => cell.padEnd(widths[column]!)).join('  ');
    console.log(`incoming benchmark: ${n} sequential requests, ${values.seconds} s of ${values.connections} connections, churn over ${churnSeconds.toFixed(1)} s`);
    console.log(line(header));
    for (const row of rows) console.log(line(row));
    console.log(`(also: ${stolenRps.errors} errors in the stolen rps run, ${passedRps.errors} in the passed-through one, ${directRps.errors} direct)`);
  } finally {
    for (const child of children) child.kill('SIGTERM');
    await pod.destroy();
  }
}

await main();
