// Remote file benchmarks: a small file that exists only in the fixture pod, read by an app under `remocal exec`.
//   local sync:    fs.readFileSync of a file on this machine                              the floor
//   remote sync:   fs.readFileSync of the pod's file: main thread → sync worker → intproxy → agent
//   remote async:  fs.promises.readFile of the same file: main thread → intproxy → agent
//   fd reads:      64-byte fs.readSync calls on one remote fd, served by the read-ahead buffer
// Each round is one session; the figures are the medians over the rounds, and ratios are against figures of
// the same run. Not a test.
//
//   node --import tsx bench/files.ts [--iterations 2000] [--rounds 3]

import { writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { cleanupStalePods, createPod } from '../src/fixture/pod.js';
import { assertBuilt, cliPath, lastJson, repoRoot, runRemocal } from '../test/helpers/remocal.js';

const { values } = parseArgs({ options: { iterations: { type: 'string', default: '2000' }, rounds: { type: 'string', default: '3' } } });
const iterations = Number(values.iterations);
const rounds = Number(values.rounds);

type Percentiles = { p50: number; p99: number };
type Round = Record<'localSync' | 'remoteSync' | 'remoteAsync' | 'remoteFdSmallReads', Percentiles> & { bytes: number };

const median = (numbers: number[]) => [...numbers].sort((a, b) => a - b)[Math.floor(numbers.length / 2)]!;

assertBuilt();
await cleanupStalePods();
const pod = await createPod();
const dir = mkdtempSync(join(tmpdir(), 'remocal-bench-files-'));
try {
  const localFile = join(dir, 'local.txt');
  writeFileSync(localFile, pod.files.greeting);
  const results: Round[] = [];
  for (let round = 0; round < rounds; round += 1) {
    const run = await runRemocal(
      ['exec', '-q', '-t', `pid/${pod.pid}`, '--', process.execPath, join(repoRoot, 'bench/files-app.mjs'), pod.paths.greeting, localFile, String(iterations)],
      { cwd: dir, timeoutMs: 300_000 },
    );
    if (run.code !== 0) throw new Error(`round ${round + 1} failed (exit ${run.code}):\n${run.stderr}`);
    results.push(lastJson<Round>(run));
  }
  const figure = (key: keyof Omit<Round, 'bytes'>, q: 'p50' | 'p99') => median(results.map((r) => r[key][q]));
  const rows = (['localSync', 'remoteSync', 'remoteAsync', 'remoteFdSmallReads'] as const).map((key) => ({
    read: key,
    'p50 µs': figure(key, 'p50').toFixed(1),
    'p99 µs': figure(key, 'p99').toFixed(1),
  }));
  console.log(`remote files: ${results[0]!.bytes}-byte file, ${iterations} reads per form, median of ${rounds} sessions (${cliPath})`);
  console.table(rows);
  const syncP50 = figure('remoteSync', 'p50');
  console.log(`sync small remote read p50: ${syncP50.toFixed(0)} µs (target ≤ 300 µs: ${syncP50 <= 300 ? 'met' : 'missed'})`);
  console.log(`  ${(syncP50 / figure('localSync', 'p50')).toFixed(1)}× a local sync read, ${(syncP50 / figure('remoteAsync', 'p50')).toFixed(2)}× an async remote read`);
  console.log(`64-byte reads on a remote fd p50: ${figure('remoteFdSmallReads', 'p50').toFixed(1)} µs (${(figure('remoteFdSmallReads', 'p50') / figure('localSync', 'p50')).toFixed(2)}× a local readFileSync)`);
} finally {
  rmSync(dir, { recursive: true, force: true });
  await pod.destroy();
}
