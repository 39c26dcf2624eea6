// The life of a `remocal exec` session: stdio, exit codes and signals pass through; every failure has a
// message that says what failed and what to do; nothing is left running afterwards.

import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { after, before, describe, it } from 'node:test';
import { createPod, type Pod } from '../../src/fixture/pod.js';
import { findAgent, listProcesses, waitFor } from '../helpers/processes.js';
import { runRemocal, startRemocal, startPodWithApp, stopPodWithApp } from '../helpers/remocal.js';

let pod: Pod;
let app: { dir: string; remove: () => void };

const APP = String.raw`
const mode = process.argv[2];
if (mode === 'exit') process.exit(Number(process.argv[3]));
if (mode === 'cat') process.stdin.pipe(process.stdout);
if (mode === 'stderr') { process.stderr.write('to stderr\n'); }
if (mode === 'wait') {
  process.on('SIGTERM', () => { process.stdout.write('got SIGTERM\n'); process.exit(42); });
  process.on('SIGINT', () => { process.stdout.write('got SIGINT\n'); process.exit(43); });
  setInterval(() => {}, 1000);
  // Make one remote call first, so the layer is connected when the test pulls the rug.
  const dns = await import('node:dns');
  const session = JSON.parse(process.env.REMOCAL_LAYER).socket.replace(/\/[^/]*$/, '');
  dns.lookup('orders-api', () => process.stdout.write('ready ' + session + '\n'));
}
`;

before(async () => {
  ({ pod, app } = await startPodWithApp({ 'app.mjs': APP }));
});

after(() => stopPodWithApp(pod, app));

describe('remocal exec: passing through', () => {
  it("exits with the command's exit code", async () => {
    const result = await runRemocal(['exec', '-q', '-t', `pid/${pod.pid}`, '--', process.execPath, 'app.mjs', 'exit', '7'], { cwd: app.dir });
    assert.equal(result.code, 7, result.stderr);
  });

  it('passes stdin to the command and its stdout and stderr back', async () => {
    const result = await runRemocal(['exec', '-q', '-t', `pid/${pod.pid}`, '--', process.execPath, 'app.mjs', 'cat'], { cwd: app.dir, input: 'round trip\n' });
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout, 'round trip\n');
    const err = await runRemocal(['exec', '-q', '-t', `pid/${pod.pid}`, '--', process.execPath, 'app.mjs', 'stderr'], { cwd: app.dir });
    assert.equal(err.stderr, 'to stderr\n');
  });

  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    it(`forwards ${signal} to the command and leaves nothing behind`, async () => {
      const run = startRemocal(['exec', '-q', '-t', `pid/${pod.pid}`, '--', process.execPath, 'app.mjs', 'wait'], { cwd: app.dir });
      let stdout = '';
      run.child.stdout!.on('data', (chunk: Buffer) => (stdout += chunk));
      await waitFor(() => stdout.includes('ready'), 'the app to start');
      run.child.kill(signal);
      const result = await run.done;
      assert.match(result.stdout, new RegExp(`got ${signal}`));
      assert.equal(result.code, signal === 'SIGTERM' ? 42 : 43, result.stderr);
      assert.equal(findAgent(pod.pid), undefined, 'the agent must be gone');
      const sessionDir = /ready (\S+)/.exec(stdout)![1]!;
      assert.ok(sessionDir.startsWith(tmpdir()), sessionDir);
      assert.equal(existsSync(sessionDir), false, 'the session directory must be removed');
    });
  }

  it('prints progress lines on stderr unless --quiet', async () => {
    const result = await runRemocal(['exec', '-t', `pid/${pod.pid}`, '--', process.execPath, 'app.mjs', 'exit', '0'], { cwd: app.dir });
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stderr, /remocal: starting the agent in pid\/\d+ \(node\)…/);
    assert.match(result.stderr, /remocal: session ready \(\d+ ms\)/);
  });
});

describe('remocal exec: failures say what failed and what to do', () => {
  it('an unknown pid', async () => {
    const result = await runRemocal(['exec', '-t', 'pid/999999999', '--', 'true']);
    assert.equal(result.code, 125);
    assert.equal(
      result.stderr,
      'remocal: error: There is no process 999999999 (target pid/999999999).\n' +
        '  hint: Check the pid with `ps -p <pid>`; a restarted process has a new pid.\n' +
        '  (REMOCAL_TARGET_NOT_FOUND)\n',
    );
  });

  it('a malformed target', async () => {
    const result = await runRemocal(['exec', '-t', 'pid/abc', '--', 'true']);
    assert.equal(result.code, 125);
    assert.match(result.stderr, /pid\/abc/);
    assert.doesNotMatch(result.stderr, /    at /, 'no stack trace');
  });

  it('no target at all', async () => {
    const result = await runRemocal(['exec', '--', 'true'], { cwd: app.dir });
    assert.equal(result.code, 125);
    assert.match(result.stderr, /No target/);
    assert.match(result.stderr, /hint: Pass `-t deployment\/<name>` .*pid\/<pid>/);
  });

  it('no permission to enter the target', async () => {
    const result = await runRemocal(['exec', '-t', `pid/${pod.pid}`, '--', 'true'], { asUser: 65534, cwd: '/' });
    assert.equal(result.code, 125, result.stderr);
    assert.match(result.stderr, new RegExp(`No permission to enter the namespaces of pid/${pod.pid}`));
    assert.match(result.stderr, /run remocal with sudo/);
  });

  it('a command that does not exist', async () => {
    const result = await runRemocal(['exec', '-q', '-t', `pid/${pod.pid}`, '--', 'no-such-command-xyz']);
    assert.equal(result.code, 127);
    assert.match(result.stderr, /Command not found: no-such-command-xyz/);
    assert.equal(findAgent(pod.pid), undefined);
  });

  it('a container target without docker or podman running', async () => {
    const result = await runRemocal(['exec', '-t', 'container/orders', '--', 'true']);
    assert.equal(result.code, 125);
    assert.match(result.stderr, /container/);
    assert.doesNotMatch(result.stderr, /    at /);
  });

  it('the agent dies during the session', async () => {
    const run = startRemocal(['exec', '-q', '-t', `pid/${pod.pid}`, '--', process.execPath, 'app.mjs', 'wait'], { cwd: app.dir });
    let stdout = '';
    run.child.stdout!.on('data', (chunk: Buffer) => (stdout += chunk));
    await waitFor(() => stdout.includes('ready'), 'the app to start');
    const agent = await waitFor(() => findAgent(pod.pid), 'the agent');
    process.kill(agent.pid, 'SIGKILL');
    const result = await run.done;
    assert.equal(result.code, 125);
    assert.match(result.stderr, new RegExp(`remocal: error: The agent in pid/${pod.pid} was killed by SIGKILL`));
    assert.match(result.stderr, /REMOCAL_AGENT_LOST/);
    assert.match(result.stdout, /got SIGTERM/, 'the command is stopped, not left running');
  });

  it('the intproxy dies during the session', async () => {
    const run = startRemocal(['exec', '-q', '-t', `pid/${pod.pid}`, '--', process.execPath, 'app.mjs', 'wait'], { cwd: app.dir });
    let stdout = '';
    run.child.stdout!.on('data', (chunk: Buffer) => (stdout += chunk));
    await waitFor(() => stdout.includes('ready'), 'the app to start');
    const agent = await waitFor(() => findAgent(pod.pid), 'the agent');
    const intproxy = listProcesses().find((info) => info.pid === agent.ppid);
    assert.ok(intproxy?.argv.some((part) => part.endsWith('/dist/intproxy.js')), 'the agent is a child of the intproxy');
    process.kill(intproxy!.pid, 'SIGKILL');
    const result = await run.done;
    assert.equal(result.code, 125);
    assert.match(result.stderr, /The session's intproxy \(pid \d+\) was killed by SIGKILL/);
    assert.match(result.stderr, /REMOCAL_INTPROXY_LOST/);
    await waitFor(() => findAgent(pod.pid) === undefined, 'the orphaned agent to exit');
  });
});

describe('remocal exec: remocal itself is killed', () => {
  it('kill -9 of the CLI still takes down the intproxy and the agent, and removes the session directory', async () => {
    const run = startRemocal(['exec', '-q', '-t', `pid/${pod.pid}`, '--', process.execPath, 'app.mjs', 'wait'], { cwd: app.dir });
    let stdout = '';
    run.child.stdout!.on('data', (chunk: Buffer) => (stdout += chunk));
    await waitFor(() => stdout.includes('ready'), 'the app to start');
    const sessionDir = /ready (\S+)/.exec(stdout)![1]!;
    const agent = await waitFor(() => findAgent(pod.pid), 'the agent');
    const cliExited = new Promise((resolve) => run.child.once('exit', resolve));
    run.child.kill('SIGKILL');
    // Not run.done: the orphaned app still holds the CLI's stdout pipe open until the test ends it.
    await cliExited;
    await waitFor(() => findAgent(pod.pid) === undefined, 'the agent to exit');
    await waitFor(() => !listProcesses().some((info) => info.pid === agent.ppid), 'the intproxy to exit');
    await waitFor(() => !existsSync(sessionDir), 'the session directory to be removed');
    // The app is the user's: like any program whose parent died, it runs on (its own terminal's Ctrl-C
    // would still reach it); the test ends it.
    const orphan = listProcesses().find((info) => info.argv.includes('app.mjs') && info.argv.includes('wait') && info.ppid === 1);
    if (orphan) process.kill(orphan.pid, 'SIGKILL');
    await run.done;
  });
});

describe('remocal exec: the target goes away', () => {
  it('ends the session with a clear error when the target process exits', async () => {
    const own = await createPod();
    try {
      const run = startRemocal(['exec', '-q', '-t', `pid/${own.pid}`, '--', process.execPath, 'app.mjs', 'wait'], { cwd: app.dir });
      let stdout = '';
      run.child.stdout!.on('data', (chunk: Buffer) => (stdout += chunk));
      await waitFor(() => stdout.includes('ready'), 'the app to start');
      await own.stop();
      const result = await run.done;
      assert.equal(result.code, 125);
      assert.match(result.stderr, new RegExp(`remocal: error: The target pid/${own.pid} is gone: process ${own.pid} exited`));
      assert.match(result.stderr, /REMOCAL_TARGET_GONE/);
      assert.equal(existsSync(`/proc/${own.pid}`), false);
    } finally {
      await own.destroy();
    }
  });
});
