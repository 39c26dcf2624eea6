// The app side of bench/files.ts, run under `remocal exec`: times small reads of a local file, of a file that
// exists only in the pod (sync and async), and small reads through one remote fd. Prints one JSON line.
import fs from 'node:fs';
import fsp from 'node:fs/promises';


const [remoteFile, localFile, iterationsText] = process.argv.slice(2);
const iterations = Number(iterationsText);

function percentiles(samples) {
  const sorted = [...samples].sort((a, b) => a - b);
  const at = (q) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
  return { p50: at(0.5), p99: at(0.99) };
}

function timeSync(run) {
  for (let i = 0; i < Math.min(200, iterations); i += 1) run();
  const samples = [];
  for (let i = 0; i < iterations; i += 1) {
    const start = process.hrtime.bigint();
    run();
    samples.push(Number(process.hrtime.bigint() - start) / 1000);
  }
  return percentiles(samples);
}

async function timeAsync(run) {
  for (let i = 0; i < Math.min(200, iterations); i += 1) await run();
  const samples = [];
  for (let i = 0; i < iterations; i += 1) {
    const start = process.hrtime.bigint();
    await run();
    samples.push(Number(process.hrtime.bigint() - start) / 1000);
  }
  return percentiles(samples);
}

const expected = fs.readFileSync(remoteFile, 'utf8');
if (expected.length === 0) throw new Error('the remote file is empty');

const result = {
  localSync: timeSync(() => fs.readFileSync(localFile, 'utf8')),
  remoteSync: timeSync(() => fs.readFileSync(remoteFile, 'utf8')),
  remoteAsync: await timeAsync(() => fsp.readFile(remoteFile, 'utf8')),
};
// 64-byte reads through one remote fd: the read-ahead buffer answers most of them without a round trip.
const fd = fs.openSync(remoteFile, 'r');
const buffer = Buffer.alloc(64);
result.remoteFdSmallReads = timeSync(() => fs.readSync(fd, buffer, 0, 64, 0));
fs.closeSync(fd);
result.iterations = iterations;
result.bytes = Buffer.byteLength(expected);
process.stdout.write(JSON.stringify(result) + '\n');
