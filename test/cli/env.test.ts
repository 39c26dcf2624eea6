// The command's environment: the target's laid over the local one, with mirrord's include/exclude/override/
// unset/env_file/mapping. Pure, so tested without a target.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { mergeEnvironment, type EnvPolicy } from '../../src/cli/env.js';

const local = { PATH: '/usr/bin', HOME: '/home/dev', AWS_PROFILE: 'dev', LOG_LEVEL: 'info' };
const remote = { PATH: '/pod/bin', HOME: '/root', DATABASE_URL: 'postgres://db', DATABASE_POOL: '5', API_KEY: 'secret', LOG_LEVEL: 'warn', HTTP_TIMEOUT: '30' };
const none: EnvPolicy = { enabled: true, include: undefined, exclude: undefined, override: undefined, unset: undefined, env_file: undefined, mapping: undefined };

describe('mergeEnvironment', () => {
  it('lays the target over the local environment, keeping the variables of the local machine', () => {
    const env = mergeEnvironment(local, remote, none);
    assert.equal(env.DATABASE_URL, 'postgres://db');
    assert.equal(env.LOG_LEVEL, 'warn');
    assert.equal(env.AWS_PROFILE, 'dev');
    assert.equal(env.PATH, '/usr/bin');
    assert.equal(env.HOME, '/home/dev');
  });

  it('include: only matching remote variables, with * and ?; naming PATH takes it too', () => {
    const env = mergeEnvironment(local, remote, { ...none, include: ['DATABASE_*', 'API_KE?', 'PATH'] });
    assert.equal(env.DATABASE_URL, 'postgres://db');
    assert.equal(env.DATABASE_POOL, '5');
    assert.equal(env.API_KEY, 'secret');
    assert.equal(env.LOG_LEVEL, 'info', 'not included: the local value stays');
    assert.equal(env.PATH, '/pod/bin');
  });

  it('exclude: every remote variable but the matching ones', () => {
    const env = mergeEnvironment(local, remote, { ...none, exclude: ['DATABASE_*'] });
    assert.equal(env.DATABASE_URL, undefined);
    assert.equal(env.API_KEY, 'secret');
  });

  it('env_file, then mapping, then override, then unset (case-insensitive)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'remocal-env-'));
    try {
      writeFileSync(join(dir, '.env'), 'API_KEY=from-file\nEXTRA="quoted value"\n');
      const env = mergeEnvironment(local, remote, { ...none, env_file: '.env', mapping: { '.+_TIMEOUT$': '1000' }, override: { LOG_LEVEL: 'debug', API_KEY: 'override' }, unset: ['aws_profile'] }, dir);
      assert.equal(env.EXTRA, 'quoted value');
      assert.equal(env.API_KEY, 'override');
      assert.equal(env.HTTP_TIMEOUT, '1000');
      assert.equal(env.LOG_LEVEL, 'debug');
      assert.equal(env.AWS_PROFILE, undefined);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('enabled: false and a target without a process keep the local environment', () => {
    assert.equal(mergeEnvironment(local, remote, { ...none, enabled: false }).DATABASE_URL, undefined);
    assert.equal(mergeEnvironment(local, null, none).DATABASE_URL, undefined);
  });

  it('a missing env_file is a config error that names the option', () => {
    assert.throws(() => mergeEnvironment(local, remote, { ...none, env_file: 'no-such.env' }, tmpdir()), /feature\.env\.env_file: cannot read/);
  });
});
