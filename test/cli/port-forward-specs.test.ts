import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseLocalForward, parseRemoteForward } from '../../src/cli/port-forward/specs.js';
import { UsageError } from '../../src/core/errors.js';

describe('port-forward specs', () => {
  it('-L takes [local_port:]host:port, with bracketed IPv6 hosts', () => {
    assert.deepEqual(parseLocalForward('5432:postgres.staging:5432'), { localPort: 5432, host: 'postgres.staging', port: 5432 });
    assert.deepEqual(parseLocalForward('db:6379'), { localPort: 6379, host: 'db', port: 6379 });
    assert.deepEqual(parseLocalForward('8080:[fd00::1]:80'), { localPort: 8080, host: 'fd00::1', port: 80 });
    for (const bad of ['postgres', '5432', 'a:b:c', '0:db:1', 'db:65536', '']) assert.throws(() => parseLocalForward(bad), UsageError, bad);
  });

  it('-R takes [remote_port:]local_port', () => {
    assert.deepEqual(parseRemoteForward('8080:3000'), { remotePort: 8080, localPort: 3000 });
    assert.deepEqual(parseRemoteForward('3000'), { remotePort: 3000, localPort: 3000 });
    for (const bad of ['x', '1:2:3', '0', '70000:80']) assert.throws(() => parseRemoteForward(bad), UsageError, bad);
  });
});
