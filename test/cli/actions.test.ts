// The action runner on real processes and sockets: wait_for probes, timeouts, outputs, process groups, the
// order of the `after` steps; and `exec --dry-run` / `--no-actions`, which start nothing.

import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer } from 'node:http';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { resolveConfig } from '../../src/config/resolve.js';
import { ActionFailedError } from '../../src/core/errors.js';
import { planActions, withOutgoingLocal, type ActionPlan } from '../../src/cli/actions/plan.js';
import { ActionRunner } from '../../src/cli/actions/runner.js';
import { waitForHttp, waitForLine, waitForTcp } from '../../src/cli/actions/wait-for.js';
import type { Progress } from '../../src/cli/progress.js';
import { listProcesses, waitFor } from '../helpers/processes.js';
import { assertBuilt, runRemocal } from '../helpers/remocal.js';

function plan(actions: unknown[], timeout = 10): ActionPlan {
  const { config, problems } = resolveConfig({ file: { path: 'test.json', data: { actions, actions_timeout: timeout } } });
  assert.deepEqual(problems, []);
  return planActions(config!);
}

function recorder(): Progress & { lines: string[] } {
  const lines: string[] = [];
  return {
    lines,
    step(text) {
      lines.push(`${text}…`);
      return { done: (result) => lines.push(result ?? 'done'), fail: () => lines.push('failed') };
    },
    note: (text) => lines.push(text),
  };
}

/** A marker no other process has in its command line, to find what a step left running. */
const marker = () => `rmc-action-${process.pid}-${Math.random().toString(36).slice(2)}`;
/** A process that runs until stopped and carries the marker in its command line. */
const idle = (mark: string) => `${process.execPath} -e 'setInterval(() => {}, 1000)' ${mark}`;
const running = (mark: string) => listProcesses().filter((info) => info.argv.some((arg) => arg.includes(mark)));

describe('wait_for probes', () => {
  it('tcp: passes once the port accepts', async () => {
    const server = createServer((socket) => socket.destroy());
    const reserved = createServer();
    await new Promise<void>((resolve) => reserved.listen(0, '127.0.0.1', resolve));
    const port = (reserved.address() as AddressInfo).port;
    await new Promise<void>((resolve) => reserved.close(() => resolve()));
    let passed = false;
    const probe = waitForTcp(`127.0.0.1:${port}`, AbortSignal.timeout(10_000)).then(() => (passed = true));
    assert.equal(passed, false);
    await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
    await probe;
    assert.equal(passed, true);
    server.close();
  });

  it('tcp: keeps trying while nothing listens, and ends when aborted', async () => {
    const signal = AbortSignal.timeout(300);
    await assert.rejects(waitForTcp('127.0.0.1:1', signal));
    assert.ok(signal.aborted, 'it ended because of the abort, not on the first refusal');
  });

  it('http: waits for the expected status, not just any answer', async () => {
    let status = 503;
    const server = createHttpServer((_, response) => response.writeHead(status).end());
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/health`;
    let requests = 0;
    server.on('request', () => (requests += 1));
    const probe = waitForHttp(url, 204, AbortSignal.timeout(10_000));
    await waitFor(() => requests >= 2, 'two answered probes');
    status = 204;
    await probe;
    server.close();
  });

  it('log: resolves with the named groups of the first matching line', async () => {
    const listeners = new Set<(line: string) => void>();
    const source = { onLine: (listener: (line: string) => void) => (listeners.add(listener), () => listeners.delete(listener)) };
    const probe = waitForLine(/listening on (?<host>[\d.]+):(?<port>\d+)/i, source, AbortSignal.timeout(10_000));
    for (const line of ['starting', 'Listening on 127.0.0.1:5433', 'listening on 0.0.0.0:1']) for (const listener of listeners) listener(line);
    assert.deepEqual(await probe, { host: '127.0.0.1', port: '5433' });
    assert.equal(listeners.size, 0, 'the probe stops listening');
  });
});

describe('the action runner', () => {
  it('runs before steps in order, with outputs from a log line and from stdout, and env overrides', async () => {
    const mark = marker();
    const runner = new ActionRunner(
      plan([
        { name: 'server', when: 'before', run: `echo boot; echo "ready on port 4321" >&2; exec ${idle(mark)}`, wait_for: { log: 'port (?<port>\\d+)' } },
        { name: 'token', when: 'before', run: ['sh', '-c', 'echo "t-$0"', '${steps.server.port}'], env: { URL: 'http://127.0.0.1:${steps.server.port}', TOKEN: '${steps.token.stdout}' } },
      ]),
      { progress: recorder(), verbose: false },
    );
    const overrides = await runner.runBefore(new AbortController().signal);
    assert.deepEqual(overrides, { URL: 'http://127.0.0.1:4321', TOKEN: 't-4321' });
    assert.equal(running(mark).length, 1, 'the server step keeps running during the session');
    await runner.finish();
    assert.deepEqual(running(mark), [], 'and is stopped at the end');
  });

  it('runs the after steps at the end, then stops the before steps, with progress lines', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'rmc-actions-'));
    const mark = marker();
    const progress = recorder();
    try {
      const runner = new ActionRunner(
        plan([
          { name: 'server', when: 'before', run: `echo up; exec ${idle(mark)}`, wait_for: { log: '^up$' } },
          // The server is still up while the after steps run.
          { name: 'check', when: 'after', run: `pgrep -f ${mark} > ${join(dir, 'seen')}` },
          { name: 'broken', when: 'after', run: 'echo oops; exit 4' },
          { name: 'last', when: 'after', run: `touch ${join(dir, 'last')}` },
        ]),
        { progress, verbose: false },
      );
      await runner.runBefore(new AbortController().signal);
      await runner.finish();
      await runner.finish();
      assert.deepEqual(running(mark), []);
      const { readFileSync, existsSync } = await import('node:fs');
      assert.match(readFileSync(join(dir, 'seen'), 'utf8'), /^\d+/);
      assert.ok(existsSync(join(dir, 'last')), 'a failed after step does not stop the next');
      assert.ok(progress.lines.includes(`action "server" (before): echo up; exec ${idle(mark)}…`), progress.lines.join('\n'));
      assert.ok(progress.lines.includes('action "server" ready: a line of its output matching /^up$/'));
      assert.ok(progress.lines.some((line) => /^warning: The after action step "broken" exited with code 4\.\nIts last output lines:\n {2}\| oops$/.test(line)), progress.lines.join('\n'));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a failing before step: its whole process group is killed, the error shows its last lines', async () => {
    const mark = marker();
    const runner = new ActionRunner(plan([{ name: 'db', when: 'before', run: `${idle(mark)} & echo one; echo two >&2; exit 3`, wait_for: { tcp: '127.0.0.1:1' } }]), {
      progress: recorder(),
      verbose: false,
    });
    await assert.rejects(runner.runBefore(new AbortController().signal), (error: unknown) => {
      assert.ok(error instanceof ActionFailedError);
      assert.equal(error.message, 'The before action step "db" exited with code 3.\nIts last output lines:\n  | one\n  | two');
      return true;
    });
    assert.deepEqual(running(mark), [], 'the background process of the step is gone');
    await runner.finish();
  });

  it('a step that does not get ready in time: killed, and the error names the timeout option', async () => {
    const mark = marker();
    const runner = new ActionRunner(plan([{ name: 'slow', when: 'before', run: `echo waiting; exec ${idle(mark)}`, wait_for: { log: 'never' }, timeout: 1 }]), {
      progress: recorder(),
      verbose: false,
    });
    await assert.rejects(runner.runBefore(new AbortController().signal), (error: unknown) => {
      assert.ok(error instanceof ActionFailedError);
      assert.equal(error.message, 'The before action step "slow" did not get ready within 1 s (waiting for a line of its output matching /never/).\nIts last output lines:\n  | waiting');
      assert.match(error.hint!, /raise actions\[0\]\.timeout \(1 s\)/);
      return true;
    });
    assert.deepEqual(running(mark), []);
  });

  it('a log probe fails at once when the step exits before printing the line', async () => {
    const runner = new ActionRunner(plan([{ name: 'x', when: 'before', run: 'echo nope', wait_for: { log: 'ready' } }]), { progress: recorder(), verbose: false });
    await assert.rejects(runner.runBefore(new AbortController().signal), /step "x" exited before a line of its output matched \/ready\//);
  });

  it('refuses job steps without the operator, before running any step', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'rmc-actions-'));
    try {
      const runner = new ActionRunner(plan([{ name: 'a', when: 'before', run: `touch ${join(dir, 'ran')}` }, { name: 'seed', when: 'before', job: { template: 'seed-db' } }]), {
        progress: recorder(),
        verbose: false,
      });
      await assert.rejects(runner.runBefore(new AbortController().signal), /Step "seed" is a `job` step: a `job` step needs the operator/);
      const { existsSync } = await import('node:fs');
      assert.equal(existsSync(join(dir, 'ran')), false);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('merges outgoing_local into a local filter and the DNS filter', () => {
    const layer = { outgoing: { filter: { local: ['10.0.0.0/8'] }, ignoreLocalhost: true, tcp: true, udp: true }, dns: { enabled: true, filter: {} } };
    const merged = withOutgoingLocal(layer, plan([{ name: 'a', when: 'before', run: 'true', outgoing_local: ['tcp://db.internal:5432', '127.0.0.2'] }]).steps);
    assert.deepEqual(merged.outgoing.filter, { local: ['10.0.0.0/8', 'tcp://db.internal:5432', '127.0.0.2'] });
    assert.deepEqual(merged.dns.filter, { local: ['db.internal'] });
    const remote = { ...layer, outgoing: { ...layer.outgoing, filter: { remote: ['api:443'] } } };
    assert.deepEqual(withOutgoingLocal(remote, plan([{ name: 'a', when: 'before', run: 'true', outgoing_local: ['db'] }]).steps).outgoing.filter, { remote: ['api:443'] });
  });
});

describe('remocal exec --dry-run and --no-actions', () => {
  let dir: string;
  const mark = marker();
  before(() => {
    assertBuilt();
    dir = mkdtempSync(join(tmpdir(), 'rmc-actions-dry-'));
    mkdirSync(join(dir, '.remocal'));
    writeFileSync(
      join(dir, '.remocal', 'config.json'),
      JSON.stringify({
        target: 'pid/999999999',
        feature: { fs: { mode: 'local' }, network: { incoming: 'steal' } },
        actions: [
          { name: 'db', when: 'before', run: `touch ${join(dir, 'ran')}; echo "port 5433"; sleep 1 ${mark}`, wait_for: { log: 'port (?<port>\\d+)' }, env: { DATABASE_URL: 'postgres://127.0.0.1:${steps.db.port}/app' }, outgoing_local: ['db.internal'] },
          { name: 'stop', when: 'after', run: ['pg_ctl', 'stop'], timeout: 5 },
        ],
      }),
    );
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('prints the steps, the overrides and what goes local or remote, and starts nothing', async () => {
    const result = await runRemocal(['exec', '--dry-run', '--', 'node', 'app.js'], { cwd: dir });
    assert.equal(result.code, 0, result.stderr);
    assert.equal(
      result.stdout,
      [
        'remocal exec plan (dry run: nothing was started)',
        '',
        'target:   pid/999999999',
        'command:  node app.js',
        '',
        'what goes where:',
        '  outgoing:  remote, except local: db.internal (loopback stays local)',
        '  dns:       remote, except local: db.internal',
        '  files:     mode local (all local)',
        '  incoming:  steal',
        '',
        'actions:',
        `  before db: run touch ${join(dir, 'ran')}; echo "port 5433"; sleep 1 ${mark}`,
        '      wait for: log /port (?<port>\\d+)/',
        '      timeout: 60 s',
        '      outgoing local: db.internal',
        '  after stop: run pg_ctl stop',
        '      timeout: 5 s',
        '',
        "environment overrides (over the target's environment):",
        '  DATABASE_URL=postgres://127.0.0.1:${steps.db.port}/app   (from db)',
        '',
      ].join('\n'),
    );
    const { existsSync } = await import('node:fs');
    assert.equal(existsSync(join(dir, 'ran')), false, 'no step ran');
  });

  it('--no-actions leaves the steps, their overrides and outgoing_local out of the plan', async () => {
    const result = await runRemocal(['exec', '--dry-run', '--no-actions', '--', 'node', 'app.js'], { cwd: dir });
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /outgoing: {2}remote \(loopback stays local\)\n {2}dns: {7}remote\n/);
    assert.match(result.stdout, /\nactions: skipped \(--no-actions\)\n$/);
  });
});
