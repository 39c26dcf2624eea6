// Remote files under `remocal exec` against the fixture pod: every fs form (sync, callback, promises, streams,
// FileHandle, Dir) reads files that exist only in the pod's mount namespace, errors are Node's own, each mode
// and each override list does what the config docs say, and writes in `write` mode land in the pod and not on
// this machine.

import assert from 'node:assert/strict';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { constants } from 'node:os';
import { after, before, describe, it } from 'node:test';
import type { Pod } from '../../src/fixture/pod.js';
// @ts-expect-error: a plain ES module script without type declarations.
import { ensureNode } from '../../scripts/node-versions.mjs';
import { lastJson, runRemocal, startPodWithApp, stopPodWithApp } from '../helpers/remocal.js';

let pod: Pod;
let app: { dir: string; remove: () => void };

const APP = String.raw`
import fs from 'node:fs';
import { readFileSync as namedReadFileSync } from 'node:fs';
import fsp from 'node:fs/promises';
import { Worker } from 'node:worker_threads';
const [mode, ...args] = process.argv.slice(2);
const out = (value) => process.stdout.write(JSON.stringify(value) + '\n');
const fields = (e) => ({ code: e.code, errno: e.errno, syscall: e.syscall, path: e.path, dest: e.dest, message: e.message });
const attempt = (fn) => { try { return { value: fn() }; } catch (e) { return { error: fields(e) }; } };
const attemptAsync = async (fn) => { try { return { value: await fn() }; } catch (e) { return { error: fields(e) }; } };
const viaCallback = (fn, ...a) => new Promise((resolve, reject) => fn(...a, (e, v) => (e ? reject(e) : resolve(v))));
const kind = (s) => ({ file: s.isFile(), dir: s.isDirectory(), link: s.isSymbolicLink(), size: s.size, stats: s instanceof fs.Stats, mtime: s.mtime instanceof Date });

switch (mode) {
  case 'read-forms': {
    const [file, dir, config] = args;
    const r = {};
    r.readFileSync = fs.readFileSync(file, 'utf8');
    r.namedImport = namedReadFileSync(file).toString();
    r.existsSync = [fs.existsSync(file), fs.existsSync(file + '.missing')];
    r.statSync = kind(fs.statSync(file));
    r.bigint = typeof fs.statSync(file, { bigint: true }).size;
    r.throwIfNoEntry = fs.statSync(file + '.missing', { throwIfNoEntry: false }) === undefined;
    r.lstatSync = kind(fs.lstatSync('/var/run'));
    fs.accessSync(file, fs.constants.R_OK);
    r.readdirSync = fs.readdirSync(dir).sort();
    r.readdirTypes = fs.readdirSync(dir, { withFileTypes: true }).map((d) => [d.name, d.isFile(), d.parentPath ?? d.path]).sort();
    r.readdirRecursive = fs.readdirSync('/var/run', { recursive: true }).filter((n) => n.startsWith('pod-data')).sort();
    const dirSync = fs.opendirSync(dir); const names = []; for (let e = dirSync.readSync(); e; e = dirSync.readSync()) names.push(e.name); dirSync.closeSync();
    r.opendirSync = names.sort();
    r.realpathSync = [fs.realpathSync(file), fs.realpathSync.native(file)];
    r.readlinkSync = fs.readlinkSync('/var/run');
    const fd = fs.openSync(config, 'r');
    const first = Buffer.alloc(4); const second = Buffer.alloc(4);
    r.fdReads = [fs.readSync(fd, first, 0, 4, null), first.toString(), fs.readSync(fd, second, { position: 1 }), second.toString()];
    r.fstatSync = kind(fs.fstatSync(fd));
    r.readFileOfFd = fs.readFileSync(fd, 'utf8');
    fs.closeSync(fd);

    r.readFile = await viaCallback(fs.readFile, file, 'utf8');
    r.exists = await new Promise((resolve) => fs.exists(file, resolve));
    r.stat = kind(await viaCallback(fs.stat, file));
    r.lstat = kind(await viaCallback(fs.lstat, '/var/run'));
    r.access = await viaCallback(fs.access, file) ?? 'ok';
    r.readdir = (await viaCallback(fs.readdir, dir)).sort();
    const dirCb = await viaCallback(fs.opendir, dir); const cbNames = []; for await (const e of dirCb) cbNames.push(e.name);
    r.opendir = cbNames.sort();
    r.realpath = [await viaCallback(fs.realpath, file), await viaCallback(fs.realpath.native, file)];
    r.readlink = await viaCallback(fs.readlink, '/var/run');
    const cbFd = await viaCallback(fs.open, config, 'r');
    const cbBuffer = Buffer.alloc(64);
    const cbRead = await new Promise((resolve, reject) => fs.read(cbFd, cbBuffer, 0, 64, 0, (e, n, b) => (e ? reject(e) : resolve(b.subarray(0, n).toString()))));
    r.fdCallback = [cbRead, kind(await viaCallback(fs.fstat, cbFd)).size];
    await viaCallback(fs.close, cbFd);

    r.promisesReadFile = await fsp.readFile(file, { encoding: 'utf8' });
    r.promisesStat = kind(await fsp.stat(file));
    r.promisesLstat = kind(await fsp.lstat('/var/run'));
    r.promisesAccess = (await fsp.access(file)) ?? 'ok';
    r.promisesReaddir = (await fsp.readdir(dir)).sort();
    const dirP = await fsp.opendir(dir); const pNames = []; for await (const e of dirP) pNames.push(e.name);
    r.promisesOpendir = pNames.sort();
    r.promisesRealpath = await fsp.realpath(file);
    r.promisesReadlink = await fsp.readlink('/var/run');
    const handle = await fsp.open(config);
    const { bytesRead, buffer } = await handle.read(Buffer.alloc(8), 0, 8, 0);
    r.fileHandle = [buffer.subarray(0, bytesRead).toString(), (await handle.stat()).size, await handle.readFile('utf8')];
    await handle.close();

    r.stream = await new Promise((resolve, reject) => {
      let text = '';
      fs.createReadStream(file, { encoding: 'utf8', highWaterMark: 16 }).on('data', (d) => (text += d)).on('error', reject).on('close', () => resolve(text));
    });
    r.streamRange = await new Promise((resolve, reject) => {
      let text = '';
      fs.createReadStream(config, { encoding: 'utf8', start: 1, end: 4 }).on('data', (d) => (text += d)).on('error', reject).on('close', () => resolve(text));
    });
    out(r);
    break;
  }
  case 'errors': {
    const [file, dir] = args;
    out({
      enoent: attempt(() => fs.readFileSync(dir + '/missing.txt')),
      enoentPromise: await attemptAsync(() => fsp.stat(dir + '/missing.txt')),
      enoentCallback: await attemptAsync(() => viaCallback(fs.open, dir + '/missing.txt', 'r')),
      eisdir: attempt(() => fs.readFileSync(dir)),
      enotdir: attempt(() => fs.readdirSync(file)),
      enotdirPath: attempt(() => fs.statSync(file + '/child')),
      eacces: attempt(() => fs.accessSync(file, fs.constants.X_OK)),
    });
    break;
  }
  case 'read': {
    out(Object.fromEntries(args.map((file) => [file, attempt(() => fs.readFileSync(file, 'utf8'))])));
    break;
  }
  case 'write': {
    const [file, text] = args;
    out({ write: attempt(() => fs.writeFileSync(file, text)), read: attempt(() => fs.readFileSync(file, 'utf8')) });
    break;
  }
  case 'write-forms': {
    const [dir] = args;
    const r = {};
    r.mkdirSync = fs.mkdirSync(dir + '/a/b', { recursive: true });
    fs.writeFileSync(dir + '/a/sync.txt', 'sync');
    await viaCallback(fs.writeFile, dir + '/a/callback.txt', 'callback');
    await fsp.writeFile(dir + '/a/promise.txt', 'promise');
    fs.appendFileSync(dir + '/a/sync.txt', '+appended');
    await fsp.appendFile(dir + '/a/promise.txt', '+appended');
    await new Promise((resolve, reject) => {
      const stream = fs.createWriteStream(dir + '/a/stream.txt');
      stream.on('error', reject).on('close', resolve);
      stream.write('stream-');
      stream.end('ended');
    });
    const handle = await fsp.open(dir + '/a/handle.txt', 'w');
    await handle.write('handle');
    await handle.close();
    const fd = fs.openSync(dir + '/a/fd.txt', 'w+');
    fs.writeSync(fd, 'fd-write');
    const back = Buffer.alloc(8);
    r.readBack = [fs.readSync(fd, back, 0, 8, 0), back.toString()];
    fs.closeSync(fd);
    fs.writeFileSync(dir + '/a/to-rename.txt', 'renamed');
    fs.renameSync(dir + '/a/to-rename.txt', dir + '/a/renamed.txt');
    await fsp.rename(dir + '/a/callback.txt', dir + '/a/callback-renamed.txt');
    fs.writeFileSync(dir + '/a/truncate.txt', 'truncate-me');
    fs.truncateSync(dir + '/a/truncate.txt', 8);
    fs.writeFileSync(dir + '/a/unlink.txt', 'x');
    fs.unlinkSync(dir + '/a/unlink.txt');
    await fsp.mkdir(dir + '/gone/deeper', { recursive: true });
    await fsp.rm(dir + '/gone', { recursive: true });
    r.listing = fs.readdirSync(dir + '/a').sort();
    r.contents = Object.fromEntries(r.listing.filter((n) => n.endsWith('.txt')).map((n) => [n, fs.readFileSync(dir + '/a/' + n, 'utf8')]));
    r.crossRename = attempt(() => fs.renameSync(dir + '/a/sync.txt', process.cwd() + '/moved.txt'));
    out(r);
    break;
  }
  case 'write-refused': {
    const [dir] = args;
    out({
      writeFileSync: attempt(() => fs.writeFileSync(dir + '/x.txt', 'x')),
      mkdir: await attemptAsync(() => fsp.mkdir(dir + '/sub')),
      stream: await new Promise((resolve) => fs.createWriteStream(dir + '/s.txt').on('error', (e) => resolve(fields(e))).on('open', () => resolve('opened'))),
    });
    break;
  }
  case 'worker': {
    // A sync remote read in a worker thread of the app, and in the main thread while async reads are in flight.
    const [file] = args;
    const inWorker = await new Promise((resolve, reject) => {
      const worker = new Worker("const fs = require('node:fs'); const { parentPort, workerData } = require('node:worker_threads'); parentPort.postMessage(fs.readFileSync(workerData, 'utf8'));", { eval: true, workerData: file });
      worker.once('message', resolve).once('error', reject);
    });
    const pending = Array.from({ length: 20 }, () => fsp.readFile(file, 'utf8'));
    const sync = Array.from({ length: 20 }, () => fs.readFileSync(file, 'utf8'));
    const async = await Promise.all(pending);
    out({ inWorker, sync: new Set(sync).size === 1 ? sync[0] : sync, async: new Set(async).size === 1 ? async[0] : async });
    break;
  }
  case 'local-set': {
    out({
      cwdFile: fs.readFileSync('local.txt', 'utf8'),
      ownProc: fs.readFileSync('/proc/self/status', 'utf8').match(/^Pid:\s+(\d+)/m)[1] === String(process.pid),
      tmpdir: fs.existsSync(process.argv[1]),
    });
    break;
  }
}
`;

before(async () => {
  ({ pod, app } = await startPodWithApp({ 'app.mjs': APP, 'local.txt': 'from this machine' }));
});

after(() => stopPodWithApp(pod, app));

function exec(args: string[], flags: string[] = [], node = process.execPath) {
  return runRemocal(['exec', '-q', '-t', `pid/${pod.pid}`, ...flags, '--', node, 'app.mjs', ...args], { cwd: app.dir });
}

/** A config file in the app's directory, for the options that have no flag (the regex lists). */
function withConfig(name: string, fs: Record<string, unknown>): string[] {
  writeFileSync(join(app.dir, name), JSON.stringify({ feature: { fs } }));
  return ['-f', name];
}

type Attempt<T = string> = { value?: T; error?: { code: string; errno: number; syscall: string; path?: string; dest?: string; message: string } };

function expectError(attempt: Attempt<unknown> | undefined, code: string, syscall: string, path: string): void {
  assert.ok(attempt?.error, `expected ${code}, got ${JSON.stringify(attempt)}`);
  const errno = (constants.errno as Record<string, number>)[code]!;
  assert.deepEqual(attempt.error, {
    code,
    errno: -errno,
    syscall,
    path,
    message: attempt.error.message,
  });
  assert.match(attempt.error.message, new RegExp(`^${code}: .+, ${syscall} '${path.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}'$`));
}

function expectedReadForms(): Record<string, unknown> {
  const greeting = pod.files.greeting;
  const config = pod.files.config;
  const fileKind = { file: true, dir: false, link: false, size: Buffer.byteLength(greeting), stats: true, mtime: true };
  const linkKind = { file: false, dir: false, link: true, size: 4, stats: true, mtime: true };
  const listing = ['config.json', 'greeting.txt'];
  const real = pod.paths.greeting.replace(/^\/var\/run\//, '/run/');
  return {
    readFileSync: greeting,
    namedImport: greeting,
    existsSync: [true, false],
    statSync: fileKind,
    bigint: 'bigint',
    throwIfNoEntry: true,
    lstatSync: linkKind,
    readdirSync: listing,
    readdirTypes: [
      ['config.json', true, pod.paths.dataDir],
      ['greeting.txt', true, pod.paths.dataDir],
    ],
    readdirRecursive: ['pod-data', 'pod-data/config.json', 'pod-data/greeting.txt'],
    opendirSync: listing,
    realpathSync: [real, real],
    readlinkSync: '/run',
    fdReads: [4, config.slice(0, 4), 4, config.slice(1, 5)],
    fstatSync: { ...fileKind, size: Buffer.byteLength(config) },
    readFileOfFd: config.slice(4),
    readFile: greeting,
    exists: true,
    stat: fileKind,
    lstat: linkKind,
    access: 'ok',
    readdir: listing,
    opendir: listing,
    realpath: [real, real],
    readlink: '/run',
    fdCallback: [config.slice(0, 64), Buffer.byteLength(config)],
    promisesReadFile: greeting,
    promisesStat: fileKind,
    promisesLstat: linkKind,
    promisesAccess: 'ok',
    promisesReaddir: listing,
    promisesOpendir: listing,
    promisesRealpath: real,
    promisesReadlink: '/run',
    fileHandle: [config.slice(0, 8), Buffer.byteLength(config), config],
    stream: greeting,
    streamRange: config.slice(1, 5),
  };
}

describe('remote files under remocal exec', () => {
  for (const major of [20, 22, 24]) {
    it(`serves every read form from the pod on Node ${major}: sync, callback, promises, streams, FileHandle and Dir`, async () => {
      // The premise: none of it exists on this machine.
      assert.equal(existsSync(pod.paths.greeting), false);
      const node = major === Number(process.versions.node.split('.')[0]) ? process.execPath : (ensureNode(major) as { binary: string }).binary;
      const result = await exec(['read-forms', pod.paths.greeting, pod.paths.dataDir, pod.paths.config], [], node);
      assert.equal(result.code, 0, result.stderr);
      assert.deepEqual(lastJson(result), expectedReadForms());
    });
  }

  it('fails as Node does inside the pod: ENOENT, EISDIR, ENOTDIR, EACCES with errno, syscall and path', async () => {
    const { greeting, dataDir } = pod.paths;
    const result = await exec(['errors', greeting, dataDir]);
    assert.equal(result.code, 0, result.stderr);
    const r = lastJson<Record<string, Attempt>>(result);
    expectError(r.enoent, 'ENOENT', 'open', `${dataDir}/missing.txt`);
    expectError(r.enoentPromise, 'ENOENT', 'stat', `${dataDir}/missing.txt`);
    expectError(r.enoentCallback, 'ENOENT', 'open', `${dataDir}/missing.txt`);
    assert.equal(r.eisdir?.error?.code, 'EISDIR');
    assert.equal(r.eisdir?.error?.syscall, 'read');
    expectError(r.enotdir, 'ENOTDIR', 'scandir', greeting);
    expectError(r.enotdirPath, 'ENOTDIR', 'stat', `${greeting}/child`);
    expectError(r.eacces, 'EACCES', 'access', greeting);
  });

  it('in write mode, writes of every form land in the pod and not on this machine', async () => {
    const dir = `${pod.paths.dataDir}/written`;
    const result = await exec(['write-forms', dir], ['--fs-mode', 'write']);
    assert.equal(result.code, 0, result.stderr);
    const r = lastJson(result);
    assert.equal(r.mkdirSync, dir);
    assert.deepEqual(r.readBack, [8, 'fd-write']);
    assert.deepEqual(r.listing, ['b', 'callback-renamed.txt', 'fd.txt', 'handle.txt', 'promise.txt', 'renamed.txt', 'stream.txt', 'sync.txt', 'truncate.txt']);
    assert.deepEqual(r.contents, {
      'callback-renamed.txt': 'callback',
      'fd.txt': 'fd-write',
      'handle.txt': 'handle',
      'promise.txt': 'promise+appended',
      'renamed.txt': 'renamed',
      'stream.txt': 'stream-ended',
      'sync.txt': 'sync+appended',
      'truncate.txt': 'truncate',
    });
    // A rename from the target to this machine cannot be done by a rename: EXDEV, as across file systems.
    assert.equal((r.crossRename as Attempt).error?.code, 'EXDEV');
    // Seen from inside the pod's own mount namespace; absent on this machine.
    const inside = await pod.exec(['cat', `${dir}/a/sync.txt`, `${dir}/a/stream.txt`], { mountNamespace: true });
    assert.equal(inside.stdout, 'sync+appendedstream-ended');
    assert.equal(existsSync(dir), false);
    assert.equal(existsSync(join(app.dir, 'moved.txt')), false);
  });

  it('reports EROFS for a write to a read-only mount of the pod', async () => {
    const dir = pod.paths.readOnlyDir;
    const result = await exec(['write-refused', dir], ['--fs-mode', 'write']);
    assert.equal(result.code, 0, result.stderr);
    const r = lastJson<Record<string, Attempt | Attempt['error']>>(result);
    expectError(r.writeFileSync as Attempt, 'EROFS', 'open', `${dir}/x.txt`);
    expectError(r.mkdir as Attempt, 'EROFS', 'mkdir', `${dir}/sub`);
    assert.equal((r.stream as Attempt['error'])?.code, 'EROFS');
  });

  it('in read mode (the default), writes stay local: the pod is not changed', async () => {
    const file = `${pod.paths.dataDir}/should-stay-local.txt`;
    const result = await exec(['write', file, 'x']);
    const r = lastJson<Record<string, Attempt>>(result);
    // This machine has no such directory, so the local write fails as it would without remocal.
    assert.equal(r.write?.error?.code, 'ENOENT');
    const inside = await pod.exec(['ls', pod.paths.dataDir], { mountNamespace: true });
    assert.doesNotMatch(inside.stdout, /should-stay-local/);
  });

  it('in local mode nothing is remote; localwithoverrides sends only the listed paths', async () => {
    const { greeting, config } = pod.paths;
    const local = lastJson<Record<string, Attempt>>(await exec(['read', greeting], ['--fs-mode', 'local']));
    assert.equal(local[greeting]?.error?.code, 'ENOENT');

    const flags = withConfig('overrides.json', { mode: 'localwithoverrides', read_only: ['config\\.json$'] });
    const overrides = lastJson<Record<string, Attempt>>(await exec(['read', greeting, config], flags));
    assert.equal(overrides[greeting]?.error?.code, 'ENOENT');
    assert.equal(overrides[config]?.value, pod.files.config);
  });

  it('not_found hides a path the pod has; local keeps a path local; read_only keeps writes local in write mode', async () => {
    const { greeting, config } = pod.paths;
    const hidden = lastJson<Record<string, Attempt>>(await exec(['read', greeting, config], withConfig('not-found.json', { not_found: ['greeting'] })));
    expectError(hidden[greeting], 'ENOENT', 'open', greeting);
    assert.equal(hidden[config]?.value, pod.files.config);

    const kept = lastJson<Record<string, Attempt>>(await exec(['read', greeting], withConfig('local.json', { local: ['^/var/run/pod-data/greeting'] })));
    assert.equal(kept[greeting]?.error?.code, 'ENOENT');

    const file = `${pod.paths.dataDir}/read-only-override.txt`;
    const readOnly = lastJson<Record<string, Attempt>>(await exec(['write', file, 'x'], withConfig('read-only.json', { mode: 'write', read_only: ['^/var/run/pod-data/'] })));
    assert.equal(readOnly.write?.error?.code, 'ENOENT', 'the write went to this machine, which has no such directory');
    assert.equal(readOnly.read?.error?.code, 'ENOENT');
    const inside = await pod.exec(['ls', pod.paths.dataDir], { mountNamespace: true });
    assert.doesNotMatch(inside.stdout, /read-only-override/);
  });

  it('keeps the default local set local: the cwd, the app itself, /proc', async () => {
    const result = await exec(['local-set']);
    assert.equal(result.code, 0, result.stderr);
    assert.deepEqual(lastJson(result), { cwdFile: 'from this machine', ownProc: true, tmpdir: true });
  });

  it('answers sync calls in the app\'s worker threads and among async calls in flight, without blocking', async () => {
    const result = await exec(['worker', pod.paths.greeting]);
    assert.equal(result.code, 0, result.stderr);
    assert.deepEqual(lastJson(result), { inWorker: pod.files.greeting, sync: pod.files.greeting, async: pod.files.greeting });
  });
});
