// TargetFiles against a real fixture pod: files that exist only in the pod's mount namespace, read through
// /proc/<pid>/root, with /var/run (-> /run) followed inside the pod and not into the host's /run.

import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { TargetFiles } from '../../../src/agent/files/service.js';
import type { Pod } from '../../../src/fixture/pod.js';
import type { FileResult } from '../../../src/protocol/messages.js';
import { createTestPod } from '../../helpers/pod.js';

function value<T>(result: FileResult<T>): T {
  if (!result.ok) assert.fail(`expected success, got ${result.error.message}`);
  return result.value;
}

describe('TargetFiles in a fixture pod', () => {
  let pod: Pod;
  let files: TargetFiles;

  before(async () => {
    pod = await createTestPod();
    files = new TargetFiles(`/proc/${pod.pid}/root`);
  });
  after(async () => {
    await files?.closeAll();
    await pod?.destroy();
  });

  it('reads a file that exists only inside the pod, through /var/run', async () => {
    // The premise: the host has no such file, and the kernel's own lookup under /proc/<pid>/root misses it.
    assert.equal(existsSync(pod.paths.greeting), false);
    assert.equal(existsSync(`/proc/${pod.pid}/root${pod.paths.greeting}`), false);

    const { data } = value(await files.readFile(pod.paths.greeting));
    assert.equal(Buffer.from(data, 'base64').toString('utf8'), pod.files.greeting);
    assert.deepEqual(value(await files.realpath(pod.paths.greeting)), { path: pod.paths.greeting.replace(/^\/var\/run\//, '/run/') });
    assert.deepEqual(value(await files.readlink('/var/run')), { path: '/run' });
  });

  it('lists the pod-only directory and reads the config through a handle', async () => {
    const { entries } = value(await files.readdir(pod.paths.dataDir));
    assert.deepEqual(entries.map((entry) => entry.name).sort(), ['config.json', 'greeting.txt']);
    const { handle } = value(await files.open(pod.paths.config));
    const { data } = value(await files.read(handle, 1 << 20));
    assert.equal(Buffer.from(data, 'base64').toString('utf8'), pod.files.config);
    value(await files.close(handle));
  });

  it('sees the pod\'s own resolv.conf and refuses writes in read mode', async () => {
    const { data } = value(await files.readFile(pod.paths.resolvConf));
    assert.match(Buffer.from(data, 'base64').toString('utf8'), new RegExp(pod.names.searchDomain.replace(/\./g, '\\.')));
    const write = await files.writeFile(`${pod.paths.dataDir}/new.txt`, '');
    assert.equal(write.ok ? 'ok' : write.error.code, 'EROFS');
  });
});
