// resolveInTarget: symlinks followed inside a temp dir standing in for /proc/<pid>/root.

import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { MAX_SYMLINK_HOPS, resolveInTarget, targetPathOf } from '../../../src/agent/files/root.js';

describe('resolveInTarget', () => {
  let root: string;
  const inRoot = (...parts: string[]) => path.join(root, ...parts);

  before(() => {
    root = mkdtempSync(path.join(tmpdir(), 'rmc-root-'));
    mkdirSync(inRoot('run/data'), { recursive: true });
    mkdirSync(inRoot('var'));
    writeFileSync(inRoot('run/data/file.txt'), 'inside');
    symlinkSync('/run', inRoot('var/run'));
    symlinkSync('../run/data', inRoot('var/relative'));
    symlinkSync('/../../../../etc', inRoot('escape-abs'));
    symlinkSync('../../../../etc', inRoot('escape-rel'));
    symlinkSync('loop-b', inRoot('loop-a'));
    symlinkSync('loop-a', inRoot('loop-b'));
    symlinkSync('/nowhere/file', inRoot('dangling'));
    symlinkSync('/run/data/file.txt', inRoot('file-link'));
  });
  after(() => rmSync(root, { recursive: true, force: true }));

  it('re-roots an absolute symlink in a middle component', async () => {
    assert.equal(await resolveInTarget(root, '/var/run/data/file.txt'), inRoot('run/data/file.txt'));
  });

  it('follows a relative symlink from its own directory', async () => {
    assert.equal(await resolveInTarget(root, '/var/relative/file.txt'), inRoot('run/data/file.txt'));
  });

  it('keeps `..` from leaving the root, in the path and in link targets', async () => {
    assert.equal(await resolveInTarget(root, '/../../..'), `${root}/`);
    assert.equal(await resolveInTarget(root, '/run/../../../run/data'), inRoot('run/data'));
    assert.equal(await resolveInTarget(root, '/escape-abs'), inRoot('etc'));
    assert.equal(await resolveInTarget(root, '/escape-rel'), inRoot('etc'));
  });

  it('fails a symlink loop with ELOOP after the kernel limit', async () => {
    await assert.rejects(resolveInTarget(root, '/loop-a', {}, 'open'), { code: 'ELOOP', syscall: 'open', path: '/loop-a' });
    assert.equal(MAX_SYMLINK_HOPS, 40);
  });

  it('leaves the last component alone with nofollow, but not the others', async () => {
    assert.equal(await resolveInTarget(root, '/var/run', { nofollow: true }), inRoot('var/run'));
    assert.equal(await resolveInTarget(root, '/var/run/data', { nofollow: true }), inRoot('run/data'));
    assert.equal(await resolveInTarget(root, '/loop-a', { nofollow: true }), inRoot('loop-a'));
  });

  it('follows a final symlink under nofollow when the path ends in a slash', async () => {
    assert.equal(await resolveInTarget(root, '/var/run/', { nofollow: true }), `${inRoot('run')}/`);
  });

  it('appends what does not exist as is, re-rooting a dangling link', async () => {
    assert.equal(await resolveInTarget(root, '/run/new/deeper'), inRoot('run/new/deeper'));
    assert.equal(await resolveInTarget(root, '/dangling'), inRoot('nowhere/file'));
  });

  it('fails `missing/..` with ENOENT and `file/x` with ENOTDIR, as the kernel does', async () => {
    await assert.rejects(resolveInTarget(root, '/missing/../run'), { code: 'ENOENT' });
    await assert.rejects(resolveInTarget(root, '/file-link/x'), { code: 'ENOTDIR' });
  });

  it('maps host paths back to target paths', async () => {
    assert.equal(targetPathOf(root, await resolveInTarget(root, '/var/run/data')), '/run/data');
    assert.equal(targetPathOf(root, `${root}/`), '/');
  });
});
