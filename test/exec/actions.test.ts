// Actions end to end, with real PostgreSQL clusters: the pod has its own database (a postgres in the pod's network
// namespace, which the pod's DATABASE_URL names), and a `before` step starts a local one that the app's
// DATABASE_URL is overridden to. The app is a Node program covered by the layer, speaking PostgreSQL's wire
// protocol itself, so its connection goes wherever the session sends it.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { appendFileSync, chownSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { cleanupStalePods, createPod, type Pod } from '../../src/fixture/pod.js';
import { podIptablesRules } from '../helpers/pod.js';
import { findAgent, listProcesses, waitFor } from '../helpers/processes.js';
import { assertBuilt, runRemocal, startRemocal, writeApp } from '../helpers/remocal.js';

const POD_DB_PORT = 15432;

/** A minimal PostgreSQL client (startup, trust auth, one simple query): enough to ask which cluster answers. */
const APP = String.raw`
import net from 'node:net';
const url = new URL(process.env.DATABASE_URL);
const [sql, mode] = process.argv.slice(2);
const frame = (type, body) => {
  const length = Buffer.alloc(4);
  length.writeInt32BE(body.length + 4);
  return Buffer.concat([Buffer.from(type), length, body]);
};
const socket = net.connect({ host: url.hostname, port: Number(url.port) });
socket.on('connect', () => {
  const version = Buffer.alloc(4);
  version.writeInt32BE(196608);
  socket.write(frame('', Buffer.concat([version, Buffer.from('user\0' + (url.username || 'postgres') + '\0database\0' + url.pathname.slice(1) + '\0\0')])));
});
socket.on('error', (error) => { console.error('connect failed: ' + error.message); process.exit(3); });
let buffer = Buffer.alloc(0);
let queried = false;
const rows = [];
socket.on('data', (chunk) => {
  buffer = Buffer.concat([buffer, chunk]);
  while (buffer.length >= 5 && buffer.length >= buffer.readInt32BE(1) + 1) {
    const type = String.fromCharCode(buffer[0]);
    const body = buffer.subarray(5, buffer.readInt32BE(1) + 1);
    buffer = buffer.subarray(buffer.readInt32BE(1) + 1);
    if (type === 'E') { console.error('postgres error: ' + body.toString()); process.exit(2); }
    if (type === 'D') {
      const row = [];
      for (let i = 0, at = 2; i < body.readInt16BE(0); i++) {
        const length = body.readInt32BE(at);
        row.push(length < 0 ? null : body.subarray(at + 4, at + 4 + length).toString());
        at += 4 + Math.max(length, 0);
      }
      rows.push(row);
    }
    if (type === 'Z' && !queried) { queried = true; socket.write(frame('Q', Buffer.from(sql + '\0'))); }
    else if (type === 'Z') {
      console.log(JSON.stringify({ url: process.env.DATABASE_URL, rows }));
      socket.end();
      if (mode === 'wait') {
        process.on('SIGINT', () => { console.log('got SIGINT'); process.exit(130); });
        setInterval(() => {}, 1000);
        console.log('waiting');
      }
    }
  }
});
`;

const QUERY = "INSERT INTO visits(who) VALUES ('app'); SELECT current_setting('data_directory'), count(*) FROM visits";

const root = process.getuid?.() === 0;
const pgBin = existsSync('/usr/lib/postgresql') ? readdirSync('/usr/lib/postgresql').map((version) => `/usr/lib/postgresql/${version}/bin`).find((dir) => existsSync(join(dir, 'pg_ctl'))) : undefined;
const postgresUser = spawnSync('id', ['-u', 'postgres'], { encoding: 'utf8' });
const skip = !root ? 'needs root' : pgBin === undefined || postgresUser.status !== 0 ? "needs Debian's postgresql package (apt-get install postgresql)" : false;

/** Runs a PostgreSQL tool as the postgres user: the server refuses to run as root. */
function asPostgres(args: string[]): string[] {
  return ['setpriv', '--reuid=postgres', '--regid=postgres', '--init-groups', '--', ...args];
}

function run(argv: string[]): string {
  const result = spawnSync(argv[0]!, argv.slice(1), { encoding: 'utf8', timeout: 60_000, env: { ...process.env, PATH: `${pgBin}:${process.env.PATH}` } });
  assert.equal(result.status, 0, `${argv.join(' ')}: ${result.stderr}`);
  return result.stdout;
}

/** A directory the postgres user owns. */
function postgresDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  chownSync(dir, Number(postgresUser.stdout.trim()), 0);
  return dir;
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/**
 * The local database as action steps: create the cluster, run the server (a step that keeps running, ready when it
 * logs its port), wait until it takes queries, create the app's table; after the session, record what the app wrote, then stop the server.
 */
function localDatabaseActions(dir: string, port: number): unknown[] {
  const data = join(dir, 'data');
  const psql = ['psql', '-h', '127.0.0.1', '-p', '${steps.db.port}', '-U', 'postgres', '-v', 'ON_ERROR_STOP=1'];
  return [
    { name: 'init', when: 'before', run: asPostgres(['initdb', '-D', data, '-U', 'postgres', '--auth=trust']) },
    {
      name: 'db',
      when: 'before',
      run: asPostgres(['postgres', '-D', data, '-p', String(port), '-k', dir, '-c', 'listen_addresses=127.0.0.1']),
      wait_for: { log: 'listening on IPv4 address "127\\.0\\.0\\.1", port (?<port>\\d+)' },
      env: { DATABASE_URL: 'postgres://postgres@127.0.0.1:${steps.db.port}/orders' },
    },
    // It logs its port before it accepts queries ("the database system is starting up"): wait until it does.
    { name: 'ready', when: 'before', run: 'until pg_isready -q -h 127.0.0.1 -p ${steps.db.port}; do sleep 0.1; done' },
    { name: 'schema', when: 'before', run: [...psql, '-c', 'CREATE DATABASE orders'] },
    { name: 'table', when: 'before', run: [...psql, '-d', 'orders', '-c', 'CREATE TABLE visits(who text)'] },
    { name: 'record', when: 'after', run: `${psql.join(' ')} -d orders -tAc 'SELECT count(*) FROM visits' > ${join(dir, 'local-visits')}` },
    { name: 'stop', when: 'after', run: asPostgres(['pg_ctl', '-D', data, 'stop', '-m', 'fast']) },
  ];
}

describe('actions, end to end with PostgreSQL', { skip }, () => {
  let pod: Pod;
  let podDb: string;
  let app: { dir: string; remove: () => void };
  const env = { PATH: `${pgBin}:${process.env.PATH}` };

  const podVisits = () =>
    run(['nsenter', `--net=${pod.netnsPath}`, 'psql', '-h', pod.serviceIps.api, '-p', String(POD_DB_PORT), '-U', 'postgres', '-d', 'orders', '-tAc', 'SELECT count(*) FROM visits']).trim();

  const writeConfig = (config: unknown) => writeFileSync(join(app.dir, 'remocal.json'), JSON.stringify(config));

  before(async () => {
    assertBuilt();
    await cleanupStalePods();
    // The pod's own database, which its DATABASE_URL names: a short name its DNS resolves to a pod-only address.
    pod = await createPod({ env: { DATABASE_URL: `postgres://postgres@orders-db:${POD_DB_PORT}/orders` } });
    app = writeApp({ 'app.mjs': APP });
    podDb = postgresDir('rmc-pod-pg-');
    run(asPostgres(['initdb', '-D', join(podDb, 'data'), '-U', 'postgres', '--auth=trust']));
    // initdb trusts loopback only; the pod's clients come from its service address.
    appendFileSync(join(podDb, 'data', 'pg_hba.conf'), `host all all ${pod.serviceIps.api}/32 trust\n`);
    const options = `-p ${POD_DB_PORT} -k ${podDb} -c listen_addresses=${pod.serviceIps.api}`;
    run(['nsenter', `--net=${pod.netnsPath}`, ...asPostgres(['pg_ctl', '-D', join(podDb, 'data'), '-w', '-l', join(podDb, 'log'), '-o', options, 'start'])]);
    const psql = ['nsenter', `--net=${pod.netnsPath}`, 'psql', '-h', pod.serviceIps.api, '-p', String(POD_DB_PORT), '-U', 'postgres', '-v', 'ON_ERROR_STOP=1'];
    run([...psql, '-c', 'CREATE DATABASE orders']);
    run([...psql, '-d', 'orders', '-c', 'CREATE TABLE visits(who text)']);
  });

  after(async () => {
    if (podDb !== undefined) {
      spawnSync('setpriv', ['--reuid=postgres', '--regid=postgres', '--init-groups', '--', `${pgBin}/pg_ctl`, '-D', join(podDb, 'data'), 'stop', '-m', 'immediate']);
      rmSync(podDb, { recursive: true, force: true });
    }
    app?.remove();
    await pod?.destroy();
  });

  it('without actions, the app reaches the pod\'s own database', async () => {
    writeConfig({ actions: localDatabaseActions('/nonexistent', 1) });
    const result = await runRemocal(['exec', '-f', 'remocal.json', '--no-actions', '-t', `pid/${pod.pid}`, '--', process.execPath, 'app.mjs', QUERY], { cwd: app.dir, env, timeoutMs: 60_000 });
    assert.equal(result.code, 0, result.stderr);
    const answer = JSON.parse(result.stdout.trim().split('\n').pop()!) as { url: string; rows: string[][] };
    assert.deepEqual(answer.rows, [[join(podDb, 'data'), '1']]);
    assert.equal(podVisits(), '1');
  });

  it('a before step starts a local database, the app writes to it, the pod\'s stays untouched, the after step stops it', async () => {
    const dir = postgresDir('rmc-local-pg-');
    try {
      const port = await freePort();
      writeConfig({ actions: localDatabaseActions(dir, port), actions_timeout: 60 });
      const before = podVisits();
      const result = await runRemocal(['exec', '-f', 'remocal.json', '-t', `pid/${pod.pid}`, '--', process.execPath, 'app.mjs', QUERY], { cwd: app.dir, env, timeoutMs: 90_000 });
      assert.equal(result.code, 0, result.stderr);
      const answer = JSON.parse(result.stdout.trim().split('\n').pop()!) as { url: string; rows: string[][] };
      assert.equal(answer.url, `postgres://postgres@127.0.0.1:${port}/orders`, 'DATABASE_URL is overridden with the port the step logged');
      assert.deepEqual(answer.rows, [[join(dir, 'data'), '1']], 'the query ran in the local cluster');
      assert.equal(podVisits(), before, "the pod's database is untouched");
      assert.equal(readFileSync(join(dir, 'local-visits'), 'utf8').trim(), '1', 'the after step saw the row in the local database');
      assert.match(result.stderr, /remocal: action "db" ready: a line of its output matching/);
      assert.match(result.stderr, /remocal: action "stop" done/);
      assert.equal(existsSync(join(dir, 'data', 'postmaster.pid')), false, 'the after step stopped the server');
      assert.deepEqual(listProcesses().filter((info) => info.argv.includes(join(dir, 'data'))), []);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('Ctrl-C runs the after steps', async () => {
    const dir = postgresDir('rmc-local-pg-');
    try {
      writeConfig({ actions: localDatabaseActions(dir, await freePort()), actions_timeout: 60 });
      const session = startRemocal(['exec', '-f', 'remocal.json', '-t', `pid/${pod.pid}`, '--', process.execPath, 'app.mjs', QUERY, 'wait'], { cwd: app.dir, env, timeoutMs: 90_000 });
      let stdout = '';
      session.child.stdout!.on('data', (chunk: Buffer) => (stdout += chunk));
      await waitFor(() => stdout.includes('waiting'), 'the app to write and wait', 60_000);
      assert.ok(existsSync(join(dir, 'data', 'postmaster.pid')), 'the local server runs during the session');
      session.child.kill('SIGINT');
      const result = await session.done;
      assert.equal(result.code, 130, result.stderr);
      assert.match(result.stdout, /got SIGINT/);
      assert.equal(readFileSync(join(dir, 'local-visits'), 'utf8').trim(), '1');
      assert.match(result.stderr, /remocal: action "stop" done/);
      assert.equal(existsSync(join(dir, 'data', 'postmaster.pid')), false);
      assert.deepEqual(listProcesses().filter((info) => info.argv.includes(join(dir, 'data'))), []);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a failing before step leaves nothing behind and exits 125 with its last lines', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'rmc-failing-'));
    const mark = `rmc-failing-step-${process.pid}`;
    try {
      writeConfig({
        feature: { network: { incoming: 'steal' } },
        actions: [
          { name: 'broken', when: 'before', run: `${process.execPath} -e 'setInterval(() => {}, 1000)' ${mark} & echo preparing; echo 'FATAL: could not bind' >&2; exit 1` },
          { name: 'never', when: 'before', run: `touch ${join(dir, 'never')}` },
          { name: 'cleanup', when: 'after', run: `touch ${join(dir, 'cleaned')}` },
        ],
      });
      const result = await runRemocal(['exec', '-f', 'remocal.json', '-t', `pid/${pod.pid}`, '--', process.execPath, 'app.mjs', QUERY], { cwd: app.dir, env, timeoutMs: 60_000 });
      assert.equal(result.code, 125, result.stderr);
      assert.match(
        result.stderr,
        /remocal: error: The before action step "broken" exited with code 1\.\nIts last output lines:\n {2}\| preparing\n {2}\| FATAL: could not bind\n(.*\n)*? {2}\(REMOCAL_ACTION_FAILED\)/,
      );
      assert.equal(result.stdout, '', 'the app never ran');
      assert.equal(existsSync(join(dir, 'never')), false, 'no later step ran');
      assert.ok(existsSync(join(dir, 'cleaned')), 'the after steps ran');
      assert.deepEqual(listProcesses().filter((info) => info.argv.includes(mark)), [], 'nothing the step started is left');
      assert.equal(findAgent(pod.pid), undefined, 'no agent is left');
      assert.doesNotMatch(await podIptablesRules(pod), /REMOCAL-/, 'no iptables rule is left');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
