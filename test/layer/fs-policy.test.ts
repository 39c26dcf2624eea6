// The file policy alone: the order of its rules, each mode, and the default local set.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createFilePolicy, defaultLocalFilePatterns, type LocalFacts } from '../../src/layer/policy.js';
import type { LayerSettings } from '../../src/protocol/contracts.js';

const facts: LocalFacts = {
  cwd: '/home/dev/shop',
  appDirectories: ['/home/dev/shop/src', '/home/dev/shop'],
  home: '/home/dev',
  tmpdir: '/tmp',
  execPath: '/usr/local/bin/node',
  remocalDirectory: '/opt/tools/remocal',
};

function policy(files: Partial<LayerSettings['files']>, localFacts: LocalFacts = facts) {
  return createFilePolicy({ mode: 'read', readWrite: [], readOnly: [], local: [], notFound: [], ...files }, localFacts);
}

describe('file policy', () => {
  it('read mode: reads remote, writes local', () => {
    const p = policy({});
    assert.equal(p.route('/etc/app/config.yaml', 'read'), 'remote');
    assert.equal(p.route('/etc/app/config.yaml', 'write'), 'local');
  });

  it('write mode: both remote; local mode: nothing remote, the lists included', () => {
    assert.equal(policy({ mode: 'write' }).route('/var/lib/app/state', 'write'), 'remote');
    const local = policy({ mode: 'local', readWrite: ['.*'], notFound: ['.*'] });
    assert.equal(local.route('/etc/app/config.yaml', 'read'), 'local');
  });

  it('localwithoverrides: local unless a list says otherwise', () => {
    const p = policy({ mode: 'localwithoverrides', readOnly: ['^/etc/app/'], readWrite: ['^/data/'] });
    assert.equal(p.route('/etc/passwd', 'read'), 'local');
    assert.equal(p.route('/etc/app/config.yaml', 'read'), 'remote');
    assert.equal(p.route('/etc/app/config.yaml', 'write'), 'local');
    assert.equal(p.route('/data/x', 'write'), 'remote');
  });

  it('not_found wins over read_write, read_write over read_only, read_only over local', () => {
    const p = policy({ mode: 'write', notFound: ['secret'], readWrite: ['^/a/'], readOnly: ['^/a/b/', '^/c/'], local: ['^/c/', '^/d/'] });
    assert.equal(p.route('/a/secret.txt', 'read'), 'not-found');
    assert.equal(p.route('/a/b/x', 'write'), 'remote');
    assert.equal(p.route('/c/x', 'read'), 'remote');
    assert.equal(p.route('/c/x', 'write'), 'local');
    assert.equal(p.route('/d/x', 'read'), 'local');
  });

  it('patterns are case-insensitive regexes on the absolute path', () => {
    const p = policy({ notFound: ['\\.ENV$'] });
    assert.equal(p.route('/srv/app/.env', 'read'), 'not-found');
    assert.equal(p.route('/srv/app/.envrc', 'read'), 'remote');
  });

  it('keeps the default local set local, and the user\'s lists override it', () => {
    const p = policy({});
    for (const path of [
      '/home/dev/shop/package.json',
      '/home/dev/shop/src/index.js',
      '/home/dev/.npmrc',
      '/srv/other/node_modules/pg/index.js',
      '/usr/local/lib/node_modules/npm/index.js',
      '/opt/tools/remocal/dist/layer.cjs',
      '/proc/self/status',
      '/sys/fs/cgroup/cpu.max',
      '/dev/urandom',
      '/tmp/x',
      '/var/tmp/x',
      '/usr/share/zoneinfo/UTC',
      '/lib/x86_64-linux-gnu/libc.so.6',
      '/srv/native/addon.so',
      '/etc/ld.so.cache',
    ]) {
      assert.equal(p.route(path, 'read'), 'local', path);
    }
    for (const path of ['/etc/resolv.conf', '/etc/hosts', '/var/run/secrets/kubernetes.io/serviceaccount/token', '/app/config.json', '/home/devops/x']) {
      assert.equal(p.route(path, 'read'), 'remote', path);
    }
    assert.equal(policy({ readOnly: ['^/tmp/shared/'] }).route('/tmp/shared/x', 'read'), 'remote');
    assert.equal(policy({ mode: 'write', readWrite: ['^/home/dev/shop/data/'] }).route('/home/dev/shop/data/x', 'write'), 'remote');
  });

  it('never makes the root directory local by way of a cwd or home of /', () => {
    const patterns = defaultLocalFilePatterns({ ...facts, cwd: '/', home: '/', appDirectories: ['/'] });
    assert.ok(!patterns.includes('^(/|$)'));
    assert.equal(policy({}, { ...facts, cwd: '/', home: '/', appDirectories: ['/'] }).route('/etc/app.yaml', 'read'), 'remote');
  });
});
