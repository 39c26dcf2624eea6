// Outgoing benchmarks: the same client, run three ways in one session, against a server in the fixture pod.
//   direct:  host → pod IP                                  (the floor)
//   socat:   host → socat on loopback → socat in the pod → server   (a plain two-hop relay)
//   remocal: app → layer/intproxy → agent in the pod → server     (`remocal exec`)
// Prints ratios against the direct and socat figures of the same run; the machine is shared and noisy, so
// absolute times mean little. Not a test: run it with `npm run bench`.
//
//   node --import tsx bench/outgoing.ts [--rounds 3] [--bulk-mib 512]

import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { cleanupStalePods, createPod, type Pod } from '../src/fixture/pod.js';
import { assertBuilt, cliPath, repoRoot } from '../test/helpers/remocal.js';

const { values } = parseArgs({
  options: {
    rounds: { type: 'string', default: '3' },
    'bulk-mib': { type: 'string', default: '512' },
    connects: { type: 'string', default: '300' },
    requests: { type: 'string', default: '3000' },
    starts: { type: 'string', default: '10' },
  },
});
const rounds = Number(values.rounds);
const bulkBytes = Number(values['bulk-mib']) * 1024 * 1024;

const ECHO = 9000;
const BULK = 9001;
const RELAY_OFFSET = 100;
const LOCAL_RELAY_OFFSET = 10_000;

interface Figures {
  connectP50Us: number;
  requestP50Us: number;
  requestP99Us: number;
  bytesPerSecond: number;
}

const children: ChildProcess[] = [];
function background(command: string, args: readonly string[]): ChildProcess {
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'inherit'] });
  children.push(child);
  return child;
}

function run(command: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, NODE_OPTIONS: '' } });
    let out = '';
    child.stdout!.on('data', (chunk: Buffer) => (out += chunk));
    child.on('close', (code) => (code === 0 ? resolve(out) : reject(new Error(`${command} ${args.join(' ')} exited with ${code}`))));
  });
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

async function main(): Promise<void> {
  assertBuilt();
  await cleanupStalePods();
  const pod: Pod = await createPod();
  try {
    const inPod = (args: string[]) => ['nsenter', [`--net=${pod.netnsPath}`, '--', ...args]] as const;
    const server = background(...inPod([process.execPath, join(repoRoot, 'bench/peer-server.mjs'), String(ECHO), String(BULK), String(bulkBytes)]));
    await once(server.stdout!, 'data');
    for (const port of [ECHO, BULK]) {
      background(...inPod(['socat', `TCP-LISTEN:${port + RELAY_OFFSET},bind=${pod.ip},fork,reuseaddr,nodelay`, `TCP:127.0.0.1:${port},nodelay`]));
      background('socat', [`TCP-LISTEN:${port + LOCAL_RELAY_OFFSET},bind=127.0.0.1,fork,reuseaddr,nodelay`, `TCP:${pod.ip}:${port + RELAY_OFFSET},nodelay`]);
    }
    await new Promise((resolve) => setTimeout(resolve, 300));

    const client = join(repoRoot, 'bench/peer-client.mjs');
    const clientArgs = (host: string, echo: number, bulk: number) => [client, host, String(echo), String(bulk), values.connects!, values.requests!, '1'];
    const ways: Record<string, () => Promise<string>> = {
      direct: () => run(process.execPath, clientArgs(pod.ip, ECHO, BULK)),
      socat: () => run(process.execPath, clientArgs('127.0.0.1', ECHO + LOCAL_RELAY_OFFSET, BULK + LOCAL_RELAY_OFFSET)),
      remocal: () => run(process.execPath, [cliPath, 'exec', '-q', '-t', `pid/${pod.pid}`, '--', process.execPath, ...clientArgs(pod.ip, ECHO, BULK)]),
    };
    const results: Record<string, Figures[]> = { direct: [], socat: [], remocal: [] };
    for (let round = 0; round < rounds; round++) {
      for (const [name, go] of Object.entries(ways)) {
        const line = (await go()).trim().split('\n').pop()!;
        results[name]!.push(JSON.parse(line) as Figures);
      }
    }

    // Start-up: the same do-nothing app, bare and through remocal, alternated.
    const noop = join(repoRoot, 'bench/noop.mjs');
    const bare: number[] = [];
    const wrapped: number[] = [];
    for (let i = 0; i < Number(values.starts); i++) {
      let started = performance.now();
      await run(process.execPath, [noop]);
      bare.push(performance.now() - started);
      started = performance.now();
      await run(process.execPath, [cliPath, 'exec', '-q', '-t', `pid/${pod.pid}`, '--', process.execPath, noop]);
      wrapped.push(performance.now() - started);
    }

    const figure = (name: string, key: keyof Figures) => median(results[name]!.map((entry) => entry[key]));
    const us = (value: number) => `${value.toFixed(0)} µs`;
    const rows: [string, string, string, string, string, string][] = [];
    const ratioRow = (label: string, key: keyof Figures, format: (v: number) => string, target: string, higherIsBetter = false) => {
      const d = figure('direct', key);
      const s = figure('socat', key);
      const r = figure('remocal', key);
      const vsDirect = higherIsBetter ? r / d : r / d;
      const vsSocat = r / s;
      rows.push([label, format(d), format(s), format(r), `${vsDirect.toFixed(2)}× direct, ${vsSocat.toFixed(2)}× socat`, target]);
    };
    ratioRow('connect latency p50', 'connectP50Us', us, '≤ 3× direct');
    ratioRow('request latency p50 (64 B echo)', 'requestP50Us', us, '≤ 1.5× socat');
    ratioRow('request latency p99', 'requestP99Us', us, '');
    ratioRow('single-stream throughput', 'bytesPerSecond', (v) => `${(v / 1e9).toFixed(2)} GB/s`, '≥ 1 GB/s', true);
    const bareMs = median(bare);
    const wrappedMs = median(wrapped);
    rows.push(['start-up (node noop.mjs)', `${bareMs.toFixed(0)} ms bare`, '', `${wrappedMs.toFixed(0)} ms`, `+${(wrappedMs - bareMs).toFixed(0)} ms`, '≤ +300 ms']);

    const header = ['', 'direct', 'socat 2-hop', 'remocal', 'ratio', 'target'];
    const widths = header.map((_, column) => Math.max(...[header, ...rows].map((row) => row[column]!.length)));
    const line = (row: readonly string[]) => row.map((cell, column) => cell.padEnd(widths[column]!)).join('  ');
    console.log(`outgoing benchmark: ${rounds} rounds (medians), ${values.connects} connects, ${values.requests} requests, ${values['bulk-mib']} MiB per bulk run`);
    console.log(line(header));
    for (const row of rows) console.log(line(row));
  } finally {
    for (const child of children) child.kill('SIGTERM');
    await pod.destroy();
  }
}

await main();
