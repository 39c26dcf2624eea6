// TargetFiles against a temp dir standing in for /proc/<pid>/root: each operation, and each failure with its
// native code and the target's own path.

import assert from 'node:assert/strict';
import { constants, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { constants as osConstants, tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { TargetFiles } from '../../../src/agent/files/service.js';
import { FILE_TOO_LARGE } from '../../../src/protocol/contracts.js';
import type { FileResult } from '../../../src/protocol/messages.js';

function value<T>(result: FileResult<T>): T {
  if (!result.ok) assert.fail(`expected success, got ${result.error.message}`);
  return result.value;
}

function failureOf(result: FileResult<unknown>) {
  if (result.ok) assert.fail('expected a failure');
  return result.error;
}

const errnoCodes = osConstants.errno;
const b64 = (text: string) => Buffer.from(text).toString('base64');
const text = (data: string) => Buffer.from(data, 'base64').toString('utf8');

describe('TargetFiles', () => {
  let root: string;
  const inRoot = (...parts: string[]) => path.join(root, ...parts);

  before(() => {
    root = mkdtempSync(path.join(tmpdir(), 'rmc-files-'));
    mkdirSync(inRoot('run/data'), { recursive: true });
    mkdirSync(inRoot('var'));
    writeFileSync(inRoot('run/data/greeting.txt'), 'hello inside');
    writeFileSync(inRoot('run/data/plain.txt'), 'no exec bit', { mode: 0o644 });
    symlinkSync('/run', inRoot('var/run'));
    symlinkSync('loop', inRoot('loop'));
  });
  after(() => rmSync(root, { recursive: true, force: true }));

  describe('read mode', () => {
    const files = () => new TargetFiles(root);

    it('stat follows re-rooted links; lstat does not', async () => {
      const followed = value(await files().stat('/var/run'));
      assert.equal(followed.mode & constants.S_IFMT, constants.S_IFDIR);
      const link = value(await files().lstat('/var/run'));
      assert.equal(link.mode & constants.S_IFMT, constants.S_IFLNK);
      assert.equal(value(await files().stat('/var/run/data/greeting.txt')).size, 'hello inside'.length);
    });

    it('fails with ENOENT naming the target path, never the host path', async () => {
      const error = failureOf(await files().stat('/var/run/missing'));
      assert.equal(error.code, 'ENOENT');
      assert.equal(error.errno, -errnoCodes.ENOENT);
      assert.equal(error.syscall, 'stat');
      assert.equal(error.path, '/var/run/missing');
      assert.equal(error.message, "ENOENT: no such file or directory, stat '/var/run/missing'");
      assert.ok(!error.message.includes(root));
    });

    it('fails a symlink loop with ELOOP', async () => {
      const error = failureOf(await files().readFile('/loop'));
      assert.equal(error.code, 'ELOOP');
      assert.equal(error.path, '/loop');
    });

    it('fails ENOTDIR through a file and EISDIR reading a directory', async () => {
      assert.equal(failureOf(await files().stat('/run/data/greeting.txt/x')).code, 'ENOTDIR');
      const error = failureOf(await files().readFile('/run/data'));
      assert.equal(error.code, 'EISDIR');
      assert.equal(error.path, '/run/data');
    });

    it('access checks mode bits and reports EACCES', async () => {
      value(await files().access('/run/data/plain.txt', constants.R_OK));
      const error = failureOf(await files().access('/run/data/plain.txt', constants.X_OK));
      assert.equal(error.code, 'EACCES');
      assert.equal(error.syscall, 'access');
    });

    it('readdir gives names with their types', async () => {
      const { entries } = value(await files().readdir('/var'));
      assert.deepEqual(entries, [{ name: 'run', type: 'symlink' }]);
      const data = value(await files().readdir('/var/run/data'));
      assert.deepEqual(data.entries.map((entry) => entry.type), ['file', 'file']);
      assert.equal(failureOf(await files().readdir('/run/data/plain.txt')).code, 'ENOTDIR');
    });

    it('realpath gives the path inside the target; readlink the raw link text', async () => {
      assert.deepEqual(value(await files().realpath('/var/run/data/../data/greeting.txt')), { path: '/run/data/greeting.txt' });
      assert.deepEqual(value(await files().realpath('/')), { path: '/' });
      const missing = failureOf(await files().realpath('/var/run/nope'));
      assert.equal(missing.code, 'ENOENT');
      assert.equal(missing.syscall, 'realpath');
      assert.deepEqual(value(await files().readlink('/var/run')), { path: '/run' });
      assert.equal(failureOf(await files().readlink('/run')).code, 'EINVAL');
    });

    it('reads small files whole and refuses large ones', async () => {
      assert.equal(text(value(await files().readFile('/var/run/data/greeting.txt')).data), 'hello inside');
      const small = new TargetFiles(root, { maxReadFileBytes: 4 });
      assert.equal(failureOf(await small.readFile('/run/data/greeting.txt')).code, FILE_TOO_LARGE);
    });

    it('reads through handles, sequentially and at positions, then closes them', async () => {
      const session = files();
      const { handle } = value(await session.open('/var/run/data/greeting.txt'));
      assert.equal(text(value(await session.read(handle, 5)).data), 'hello');
      assert.equal(text(value(await session.read(handle, 100)).data), ' inside');
      assert.equal(value(await session.read(handle, 100)).data, '');
      assert.equal(text(value(await session.read(handle, 6, 6)).data), 'inside');
      value(await session.close(handle));
      assert.equal(failureOf(await session.read(handle, 1)).code, 'EBADF');
      assert.equal(failureOf(await session.close(handle)).code, 'EBADF');
      assert.equal(failureOf(await session.open('/nope')).code, 'ENOENT');
    });

    it('bounds the open handles of a session', async () => {
      const session = new TargetFiles(root, { maxHandles: 2 });
      value(await session.open('/run/data/greeting.txt'));
      value(await session.open('/run/data/greeting.txt'));
      assert.equal(failureOf(await session.open('/run/data/greeting.txt')).code, 'EMFILE');
      await session.closeAll();
      assert.equal(session.openHandles, 0);
      value(await session.open('/run/data/greeting.txt'));
      await session.closeAll();
    });

    it('refuses every write with EROFS and changes nothing', async () => {
      const session = files();
      const attempts = [
        session.writeFile('/run/new.txt', b64('x')),
        session.appendFile('/run/data/greeting.txt', b64('x')),
        session.mkdir('/run/newdir'),
        session.rm('/run/data/greeting.txt'),
        session.unlink('/run/data/greeting.txt'),
        session.rename('/run/data/greeting.txt', '/run/moved.txt'),
        session.truncate('/run/data/greeting.txt', 0),
      ];
      for (const result of await Promise.all(attempts)) assert.equal(failureOf(result).code, 'EROFS');
      assert.equal(readFileSync(inRoot('run/data/greeting.txt'), 'utf8'), 'hello inside');
      assert.equal(existsSync(inRoot('run/new.txt')), false);
    });
  });

  describe('write mode', () => {
    const files = () => new TargetFiles(root, { writable: true });

    it('writes, appends and truncates through re-rooted links', async () => {
      value(await files().writeFile('/var/run/w.txt', b64('one')));
      value(await files().appendFile('/var/run/w.txt', b64(' two')));
      assert.equal(readFileSync(inRoot('run/w.txt'), 'utf8'), 'one two');
      value(await files().truncate('/var/run/w.txt', 3));
      assert.equal(readFileSync(inRoot('run/w.txt'), 'utf8'), 'one');
      assert.equal(failureOf(await files().writeFile('/var/run/data', b64('x'))).code, 'EISDIR');
      assert.equal(failureOf(await files().writeFile('/var/run/absent/w.txt', b64('x'))).code, 'ENOENT');
    });

    it('mkdir, recursive or not, reports target paths', async () => {
      assert.deepEqual(value(await files().mkdir('/var/run/a/b/c', { recursive: true })), { first: '/var/run/a' });
      assert.deepEqual(value(await files().mkdir('/var/run/a/b/c', { recursive: true })), { first: null });
      assert.equal(failureOf(await files().mkdir('/var/run/a')).code, 'EEXIST');
      assert.equal(failureOf(await files().mkdir('/var/run/x/y')).code, 'ENOENT');
      assert.ok(existsSync(inRoot('run/a/b/c')));
    });

    it('renames inside the target, and rm/unlink remove entries, not what links point to', async () => {
      value(await files().writeFile('/run/r.txt', b64('r')));
      value(await files().rename('/var/run/r.txt', '/run/data/r2.txt'));
      assert.equal(readFileSync(inRoot('run/data/r2.txt'), 'utf8'), 'r');
      const missing = failureOf(await files().rename('/run/r.txt', '/run/r3.txt'));
      assert.equal(missing.code, 'ENOENT');
      assert.equal(missing.dest, '/run/r3.txt');
      value(await files().unlink('/run/data/r2.txt'));
      assert.equal(failureOf(await files().unlink('/run/data')).code, 'EISDIR');

      symlinkSync('/run/data', inRoot('data-link'));
      value(await files().rm('/data-link'));
      assert.ok(existsSync(inRoot('run/data/greeting.txt')));
      const notRecursive = failureOf(await files().rm('/run/a'));
      assert.equal(notRecursive.code, 'ERR_FS_EISDIR');
      assert.ok(!notRecursive.message.includes(root), notRecursive.message);
      assert.ok(notRecursive.message.includes("/run/a"), notRecursive.message);
      value(await files().rm('/run/a', { recursive: true }));
      assert.equal(existsSync(inRoot('run/a')), false);
      assert.equal(failureOf(await files().rm('/run/none')).code, 'ENOENT');
      value(await files().rm('/run/none', { force: true }));
    });
  });
});
