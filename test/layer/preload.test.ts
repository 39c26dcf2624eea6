// The preload entry as NODE_OPTIONS loads it, on Node 20, 22 and 24: the real src/layer/preload.ts bundled as
// CommonJS (its intproxy client swapped for a pretend target), run under real processes: a worker thread of the
// app is covered, npm and npx themselves are not (the scripts they start are), a process without session
// settings is left alone, and a preload given twice installs once.

import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { isPackageManagerCli } from '../../src/layer/policy.js';
import { LAYER_SETTINGS_ENV } from '../../src/protocol/contracts.js';
import { ORDERS, ORDERS_IP, layerSettings } from './fixtures/kit.js';
import { bundlePreload, nodeBinaries, runNode, type NodeBinary } from './helpers.js';

interface Recorded {
  event: 'start' | 'install';
  pid: number;
  threadId: number;
  argv1: string | null;
}

let layerBundle: string;
let echo: net.Server;
let echoPort: number;
const dir = mkdtempSync(join(tmpdir(), 'remocal-preload-'));
process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
// A second preload, given before the layer, that records every Node process and thread that starts.
const recorder = join(dir, 'recorder.cjs');
writeFileSync(
  recorder,
  `require('fs').appendFileSync(process.env.REMOCAL_TEST_RECORD, JSON.stringify({ event: 'start', pid: process.pid, threadId: require('worker_threads').threadId, argv1: process.argv[1] || null }) + '\\n');\n`,
);
// The app's child script: one connection to a cluster name, then its reply and the peer it saw.
const childScript = join(dir, 'child.cjs');
writeFileSync(
  childScript,
  `const net = require('net');
const socket = net.connect(80, ${JSON.stringify(ORDERS)});
let reply = '', peer;
socket.on('connect', () => { peer = socket.remoteAddress; });
socket.on('data', (chunk) => { reply += chunk; });
socket.on('end', () => console.log(JSON.stringify({ reply, peer, patched: Symbol.for('remocal.layer.replacement') in net.Socket.prototype.connect })));
socket.on('error', (error) => { console.log(JSON.stringify({ error: error.message })); process.exitCode = 1; });
socket.end('from the child');
`,
);

before(async () => {
  layerBundle = await bundlePreload();
  echo = net.createServer((socket) => socket.pipe(socket)).listen(0, '127.0.0.1');
  await once(echo, 'listening');
  echoPort = (echo.address() as net.AddressInfo).port;
});

after(() => {
  echo.close();
  echo.unref();
});

function sessionEnv(node: NodeBinary, record: string, options: { preloads?: string[]; withSettings?: boolean } = {}): NodeJS.ProcessEnv {
  const preloads = options.preloads ?? [recorder, layerBundle];
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    PATH: `${dirname(node.path)}:${process.env.PATH ?? ''}`,
    NODE_OPTIONS: preloads.map((file) => `--require ${file}`).join(' '),
    REMOCAL_TEST_RECORD: record,
    REMOCAL_TEST_REMOTE: JSON.stringify({ hosts: { [ORDERS]: [ORDERS_IP] }, routes: { [`${ORDERS_IP}:80`]: echoPort } }),
    // npm must stay off the network: no update check, no registry.
    npm_config_update_notifier: 'false',
    npm_config_offline: 'true',
    npm_config_fund: 'false',
    npm_config_audit: 'false',
  };
  if (options.withSettings ?? true) env[LAYER_SETTINGS_ENV] = JSON.stringify(layerSettings());
  else delete env[LAYER_SETTINGS_ENV];
  return env;
}

function records(file: string): Recorded[] {
  try {
    return readFileSync(file, 'utf8').trim().split('\n').filter(Boolean).map((line) => JSON.parse(line) as Recorded);
  } catch {
    return [];
  }
}

let runs = 0;
function recordFile(): string {
  return join(dir, `record-${++runs}.jsonl`);
}

function lastJsonLine(stdout: string): Record<string, unknown> {
  const lines = stdout.trim().split('\n').filter((line) => line.startsWith('{'));
  assert.ok(lines.length > 0, `no JSON output in:\n${stdout}`);
  return JSON.parse(lines[lines.length - 1]!) as Record<string, unknown>;
}

describe('isPackageManagerCli', () => {
  it('knows npm and npx by their cli scripts and by the shims that link to them', () => {
    assert.equal(isPackageManagerCli('/usr/lib/node_modules/npm/bin/npm-cli.js'), true);
    assert.equal(isPackageManagerCli('C:\\Program Files\\nodejs\\node_modules\\npm\\bin\\npx-cli.js'), true);
    assert.equal(isPackageManagerCli('/srv/app/server.js'), false);
    assert.equal(isPackageManagerCli(undefined), false);
    assert.equal(isPackageManagerCli('/nonexistent/bin/npm'), false, 'a file named npm that is not npm');
  });
});

for (const node of nodeBinaries()) {
  describe(`layer preload on Node ${node.version}`, () => {
    it('covers the app and a worker thread it starts, and starts nothing itself', async () => {
      const record = recordFile();
      const app = join(dir, 'worker-app.mjs');
      writeFileSync(
        app,
        `import { Worker } from 'node:worker_threads';
const worker = new Worker(${JSON.stringify(childScript)});
worker.on('exit', (code) => { process.exitCode = code; });
`,
      );
      const result = await runNode(node, [app], { env: sessionEnv(node, record) });
      assert.equal(result.code, 0, result.stderr);
      assert.deepEqual(lastJsonLine(result.stdout), { reply: 'from the child', peer: ORDERS_IP, patched: true });
      const seen = records(record);
      const installs = seen.filter((entry) => entry.event === 'install');
      assert.deepEqual(
        installs.map((entry) => entry.threadId).sort(),
        [0, 1],
        'one install in the main thread, one in the worker, nothing else',
      );
      assert.equal(new Set(seen.map((entry) => entry.pid)).size, 1, 'no process was started');
    });

    for (const [cli, args] of [
      ['npm run', ['run', 'app', '--silent']],
      ['npx -c', ['--yes', '-c', 'node child.cjs']],
    ] as const) {
      it(`stays out of ${cli} itself and covers the script it runs`, async () => {
        const record = recordFile();
        writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'preload-app', version: '1.0.0', scripts: { app: 'node child.cjs' } }));
        const executable = cli.startsWith('npm') ? 'npm' : 'npx';
        const run = await runCommand(executable, [...args], { cwd: dir, env: sessionEnv(node, record) });
        assert.equal(run.code, 0, `${run.stdout}\n${run.stderr}`);
        assert.deepEqual(lastJsonLine(run.stdout), { reply: 'from the child', peer: ORDERS_IP, patched: true });
        const seen = records(record);
        const cliStart = seen.find((entry) => entry.event === 'start' && /np[mx](-cli\.js)?$/.test(entry.argv1 ?? ''));
        assert.ok(cliStart, `the ${executable} process itself loaded the preloads: ${JSON.stringify(seen)}`);
        const child = seen.find((entry) => entry.event === 'start' && entry.argv1 === childScript);
        assert.ok(child, `the script ran under the preloads: ${JSON.stringify(seen)}`);
        const installs = seen.filter((entry) => entry.event === 'install');
        assert.ok(installs.every((entry) => entry.pid !== cliStart.pid), `${executable} installed the layer`);
        assert.ok(installs.some((entry) => entry.pid === child.pid), 'the script did not get the layer');
      });
    }

    it('does nothing without session settings', async () => {
      const record = recordFile();
      const result = await runNode(node, ['-e', `console.log(JSON.stringify({ patched: Symbol.for('remocal.layer.replacement') in require('net').Socket.prototype.connect }))`], {
        env: sessionEnv(node, record, { withSettings: false }),
      });
      assert.equal(result.code, 0, result.stderr);
      assert.deepEqual(lastJsonLine(result.stdout), { patched: false });
      assert.equal(records(record).filter((entry) => entry.event === 'install').length, 0);
      assert.equal(result.stderr, '', 'the layer printed nothing');
    });

    it('installs once when the preload is given twice', async () => {
      const record = recordFile();
      const result = await runNode(node, [childScript], { env: sessionEnv(node, record, { preloads: [recorder, layerBundle, layerBundle] }) });
      assert.equal(result.code, 0, result.stderr);
      assert.deepEqual(lastJsonLine(result.stdout), { reply: 'from the child', peer: ORDERS_IP, patched: true });
      assert.equal(records(record).filter((entry) => entry.event === 'install').length, 1);
      assert.equal(result.stderr, '', 'the layer printed nothing');
    });
  });
}

async function runCommand(command: string, args: string[], options: { cwd: string; env: NodeJS.ProcessEnv }) {
  const { spawn } = await import('node:child_process');
  return new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve, reject) => {
    const child = spawn(command, args, { ...options, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}
