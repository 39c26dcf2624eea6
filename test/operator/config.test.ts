// The operator's config and its token check: bad files say what is wrong, and only the users' tokens get in.

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { ConfigError } from '../../src/core/errors.js';
import { loadOperatorConfig } from '../../src/operator/config.js';
import { TokenAuthenticator } from '../../src/operator/identity.js';
import { checkTargetAccess } from '../../src/operator/target-access.js';

const dir = mkdtempSync(join(tmpdir(), 'remocal-operator-config-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function write(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

function requestWith(authorization: string | undefined): IncomingMessage {
  return { headers: authorization === undefined ? {} : { authorization } } as IncomingMessage;
}

describe('operator config', () => {
  it('fills in every default from a minimal YAML file', () => {
    const config = loadOperatorConfig(write('min.yaml', 'users:\n  - { name: alice, token: alice-token-0123456789 }\n'));
    assert.equal(config.mode, 'local');
    assert.deepEqual(config.listen, { host: '0.0.0.0', port: 7443 });
    assert.deepEqual(config.sessions, { setup_timeout: 15, idle_timeout: 3600, max_duration: 43200, keep_closed: 200 });
    assert.deepEqual(config.agents, { grace: 30, startup_timeout: 20 });
    assert.equal(config.users[0]!.admin, false);
  });

  it('names every bad key, with what is wrong', () => {
    const path = write('bad.json', JSON.stringify({ listen: { port: 70000 }, users: [{ name: 'bob', token: 'short' }, { name: 'eve' }], extra: 1 }));
    assert.throws(() => loadOperatorConfig(path), (error: unknown) => {
      assert.ok(error instanceof ConfigError);
      assert.match(error.message, /listen\.port/);
      assert.match(error.message, /users\.0\.token: a token has at least 16 characters/);
      assert.match(error.message, /users\.1: give each user exactly one of token and token_sha256/);
      assert.match(error.message, /Unrecognized key.*extra/);
      assert.match(error.hint ?? '', /docs\/operator\.md/);
      return true;
    });
  });

  it('refuses a config with no user, and a file that does not parse', () => {
    assert.throws(() => loadOperatorConfig(write('none.yaml', 'users: []\n')), /list at least one user/);
    assert.throws(() => loadOperatorConfig(write('broken.json', '{ "users": ')), /is not valid JSON/);
    assert.throws(() => loadOperatorConfig(join(dir, 'missing.yaml')), /Cannot read the operator config/);
  });
});

describe('operator target access', () => {
  const alice = { user: 'alice', groups: [], admin: false, extra: {} };
  it('allows the targets the patterns name, and only those', () => {
    checkTargetAccess(alice, 'container/orders-1', ['container/orders-*']);
    assert.throws(() => checkTargetAccess(alice, 'container/payments', ['container/orders-*']), /alice may not open sessions on container\/payments/);
    assert.throws(() => checkTargetAccess(alice, 'pid/1', ['pid/1?']), /may not/, 'a pattern is no regex: ? is itself');
    checkTargetAccess(alice, 'pid/1?', ['pid/1?']);
  });
  it('a user\'s own list replaces the operator-wide one', () => {
    assert.throws(() => checkTargetAccess({ ...alice, targets: ['netns/*'] }, 'pid/7', ['pid/*']), /the operator allows netns\/\*/);
  });
});

describe('operator tokens', () => {
  const aliceToken = 'alice-token-0123456789';
  const auth = new TokenAuthenticator([
    { name: 'alice', token: aliceToken, admin: false },
    { name: 'ops', token_sha256: createHash('sha256').update('ops-token-0123456789ab').digest('hex'), admin: true },
  ]);

  it('lets in a user by token, or by the digest of it in the config', () => {
    assert.deepEqual(auth.authenticate(requestWith(`Bearer ${aliceToken}`)), { ok: true, identity: { user: 'alice', groups: [], admin: false, extra: {} } });
    const ops = auth.authenticate(requestWith('Bearer ops-token-0123456789ab'));
    assert.ok(ops.ok && ops.identity.user === 'ops' && ops.identity.admin);
  });

  it('refuses no token, a token of nobody, and a header that is not a bearer token', () => {
    assert.deepEqual(auth.authenticate(requestWith(undefined)), { ok: false, message: 'no token was sent: this operator lets in only the users of its config, each with a token' });
    assert.deepEqual(auth.authenticate(requestWith(`Bearer ${aliceToken}x`)), { ok: false, message: "the token is not one of this operator's users" });
    assert.deepEqual(auth.authenticate(requestWith(`Basic ${Buffer.from('alice:x').toString('base64')}`)), { ok: false, message: 'the Authorization header is not a bearer token' });
    assert.equal(auth.authenticate(requestWith(`Bearer ${'a'.repeat(600)}`)).ok, false, 'an overlong token is refused before hashing');
  });
});
