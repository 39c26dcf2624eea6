// The rest of what a user meets with `remocal exec`: apps on other Node majors, npm scripts, the config file
// found from the working directory, netns and container targets, and the demo.

import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createPod, cleanupStalePods, type Pod } from '../../src/fixture/pod.js';
// @ts-expect-error: a plain ES module script without type declarations.
import { ensureNode } from '../../scripts/node-versions.mjs';
import { assertBuilt, lastJson, runRemocal, writeApp } from '../helpers/remocal.js';

let pod: Pod;
let app: { dir: string; remove: () => void };

const APP = String.raw`
import http from 'node:http';
import dns from 'node:dns';
const get = (url) => new Promise((resolve, reject) => {
  http.get(url, (res) => { const peer = res.socket.remoteAddress; let body = ''; res.setEncoding('utf8'); res.on('data', (c) => body += c); res.on('end', () => resolve({ status: res.statusCode, from: JSON.parse(body).from, peer })); }).on('error', reject);
});
const target = process.argv[2];
const result = { node: process.version, greeting: process.env.GREETING ?? null, override: process.env.FROM_CONFIG ?? null, database: process.env.DATABASE_URL ?? null };
if (target) Object.assign(result, await get(target));
else result.lookup = await dns.promises.lookup('orders-api').then((r) => r.address, (e) => e.code);
process.stdout.write(JSON.stringify(result) + '\n');
`;

before(async () => {
  assertBuilt();
  await cleanupStalePods();
  pod = await createPod();
  app = writeApp({
    'app.mjs': APP,
    'package.json': JSON.stringify({ name: 'app', private: true, scripts: { start: 'node app.mjs' } }),
  });
});

after(async () => {
  app?.remove();
  await pod?.destroy();
});

describe('remocal exec: apps on other Node majors', () => {
  for (const major of ['22', '24']) {
    it(`covers an app running on Node ${major}`, async () => {
      const { binary } = ensureNode(major) as { binary: string };
      const result = await runRemocal(['exec', '-q', '-t', `pid/${pod.pid}`, '--', binary, 'app.mjs', `http://${pod.names.apiName}/`], { cwd: app.dir });
      assert.equal(result.code, 0, result.stderr);
      const seen = lastJson(result);
      assert.match(String(seen.node), new RegExp(`^v${major}\\.`));
      assert.equal(seen.from, 'orders-api');
      assert.equal(seen.peer, pod.serviceIps.api);
      assert.equal(seen.greeting, pod.env.GREETING);
    });
  }
});

describe('remocal exec: npm scripts', () => {
  it('covers the node process an `npm run` script starts', async () => {
    const result = await runRemocal(['exec', '-q', '-t', `pid/${pod.pid}`, '--', 'npm', 'run', '--silent', 'start', '--', `http://${pod.names.apiName}/`], {
      cwd: app.dir,
      env: { npm_config_update_notifier: 'false', npm_config_offline: 'true' },
    });
    assert.equal(result.code, 0, result.stderr);
    const seen = lastJson(result);
    assert.equal(seen.from, 'orders-api');
    assert.equal(seen.greeting, pod.env.GREETING);
  });
});

describe('remocal exec: the config file', () => {
  it('finds .remocal/config.json upwards from the working directory, and env vars and flags override it', async () => {
    const project = writeApp({ 'app.mjs': APP });
    try {
      mkdirSync(join(project.dir, '.remocal'));
      mkdirSync(join(project.dir, 'packages', 'api'), { recursive: true });
      writeFileSync(join(project.dir, 'packages', 'api', 'app.mjs'), APP);
      writeFileSync(
        join(project.dir, '.remocal', 'config.json'),
        JSON.stringify({
          target: 'pid/999999999',
          feature: { env: { include: 'GREETING;DATABASE_*', override: { FROM_CONFIG: 'yes' } } },
        }),
      );
      const cwd = join(project.dir, 'packages', 'api');
      // The file's target is wrong on purpose: the flag must win over it.
      const result = await runRemocal(['exec', '-q', '-t', `pid/${pod.pid}`, '--', process.execPath, 'app.mjs'], { cwd });
      assert.equal(result.code, 0, result.stderr);
      const seen = lastJson(result);
      assert.equal(seen.greeting, pod.env.GREETING);
      assert.equal(seen.database, pod.env.DATABASE_URL);
      assert.equal(seen.override, 'yes');
      assert.equal(seen.lookup, pod.serviceIps.api);

      const excluded = await runRemocal(['exec', '-q', '--', process.execPath, 'app.mjs'], {
        cwd,
        env: { REMOCAL_TARGET: `pid/${pod.pid}`, REMOCAL_FEATURE_ENV_INCLUDE: 'GREETING' },
      });
      assert.equal(excluded.code, 0, excluded.stderr);
      const only = lastJson(excluded);
      assert.equal(only.greeting, pod.env.GREETING);
      assert.equal(only.database, null, 'include from the env var replaces the file\'s');

      const fileTarget = await runRemocal(['exec', '-q', '--', process.execPath, 'app.mjs'], { cwd });
      assert.equal(fileTarget.code, 125);
      assert.match(fileTarget.stderr, /There is no process 999999999/);
    } finally {
      project.remove();
    }
  });

  it('rejects a bad config with the key, the value and what would be right', async () => {
    const project = writeApp({ 'app.mjs': APP });
    try {
      mkdirSync(join(project.dir, '.remocal'));
      writeFileSync(join(project.dir, '.remocal', 'config.json'), JSON.stringify({ feature: { netwrok: {} } }));
      const result = await runRemocal(['exec', '-q', '-t', `pid/${pod.pid}`, '--', 'true'], { cwd: project.dir });
      assert.equal(result.code, 125);
      assert.match(result.stderr, /feature\.netwrok/);
      assert.match(result.stderr, /did you mean "network"/i);
      assert.doesNotMatch(result.stderr, /    at /);
    } finally {
      project.remove();
    }
  });
});

describe('remocal exec: netns and container targets', () => {
  it('a netns target gives network only, and says the environment stays local', async () => {
    const result = await runRemocal(['exec', '-t', `netns/${pod.name}`, '--', process.execPath, 'app.mjs', `http://${pod.serviceIps.api}/`], { cwd: app.dir });
    assert.equal(result.code, 0, result.stderr);
    const seen = lastJson(result);
    assert.equal(seen.from, 'orders-api');
    assert.equal(seen.greeting, null);
    assert.match(result.stderr, new RegExp(`netns/${pod.name} has no process: the command keeps its local environment`));
  });

  it('an unknown netns', async () => {
    const result = await runRemocal(['exec', '-t', 'netns/rmc-no-such-ns', '--', 'true']);
    assert.equal(result.code, 125);
    assert.match(result.stderr, /There is no network namespace named "rmc-no-such-ns"/);
    assert.match(result.stderr, /ip netns list/);
  });

  it('a container target when neither docker nor podman is installed', async () => {
    const result = await runRemocal(['exec', '-t', 'container/orders', '--', 'true'], { env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin' } });
    assert.equal(result.code, 125);
    assert.match(result.stderr, /container\/orders needs docker or podman to find the container, and neither is installed/);
    assert.match(result.stderr, /target the container's main process directly with pid\/<pid>/);
  });
});

describe('remocal demo', () => {
  it('shows the app seeing the pod, then removes the pod', async () => {
    const result = await runRemocal(['demo'], { timeoutMs: 60_000 });
    assert.equal(result.code, 0, result.stderr + result.stdout);
    assert.match(result.stdout, /app │ env GREETING\s+"hello from the pod"/);
    assert.match(result.stdout, /app │ readFileSync\(\/var\/run\/pod-data\/…\)\s+"hello from [^"]+: this file exists only inside the pod"/);
    assert.match(result.stdout, /app │ dns\.lookup\("orders-api"\)\s+10\.202\.\d+\.20/);
    assert.match(result.stdout, /app │ dns\.lookup\("hosts-only\.internal"\)\s+10\.202\.\d+\.30/);
    assert.match(result.stdout, /app │ GET http:\/\/orders-api\s+200 from orders-api/);
    const name = /pod (rmc-pod-\d+):/.exec(result.stdout)?.[1];
    assert.ok(name);
    const { execFileSync } = await import('node:child_process');
    assert.doesNotMatch(execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' }), new RegExp(`^${name} `, 'm'));
  });
});
