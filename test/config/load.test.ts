import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { ConfigError, ConfigNotFoundError } from '../../src/core/errors.js';
import { discoverConfigFile, loadConfig } from '../../src/config/load.js';
import { projectTree } from './helpers.js';

test('discovery finds .remocal/config.json from a nested cwd, walking upwards', (t) => {
  const root = projectTree(t, { '.remocal/config.json': JSON.stringify({ target: 'pid/42' }) });
  const nested = join(root, 'services', 'api', 'src');
  mkdirSync(nested, { recursive: true });
  const { config, source } = loadConfig({ cwd: nested, env: {} });
  assert.equal(config.target.path, 'pid/42');
  assert.deepEqual(source, { file: join(root, '.remocal', 'config.json'), format: 'json', discovered: true });
});

test('discovery takes the nearest directory that has a config, and YAML as well as JSON', (t) => {
  const root = projectTree(t, {
    '.remocal/config.json': JSON.stringify({ target: 'pid/1' }),
    'app/.remocal/config.yaml': 'target: container/orders\n',
  });
  const { config, source } = loadConfig({ cwd: join(root, 'app'), env: {} });
  assert.equal(config.target.path, 'container/orders');
  assert.equal(source.format, 'yaml');
  assert.equal(source.file, join(root, 'app', '.remocal', 'config.yaml'));
});

test('discovery accepts .yml, prefers config.json when several exist, and says which it ignored', (t) => {
  const root = projectTree(t, { '.remocal/config.yml': 'target: pid/7\n' });
  assert.equal(loadConfig({ cwd: root, env: {} }).config.target.path, 'pid/7');

  const both = projectTree(t, { '.remocal/config.json': '{"target": "pid/1"}', '.remocal/config.yaml': 'target: pid/2\n' });
  const { config, warnings } = loadConfig({ cwd: both, env: {} });
  assert.equal(config.target.path, 'pid/1');
  assert.deepEqual(warnings.map((warning) => warning.origin), [{ kind: 'file', file: join(both, '.remocal', 'config.yaml') }]);
});

test('without a config file, the defaults apply and the source says so', (t) => {
  const root = projectTree(t, { 'package.json': '{}' });
  assert.equal(discoverConfigFile(root), null);
  const { config, source } = loadConfig({ cwd: root, env: {} });
  assert.deepEqual(source, { file: null, format: null, discovered: false });
  assert.equal(config.feature.network.incoming.mode, 'mirror');
  assert.equal(config.feature.fs.mode, 'read');
  assert.equal(config.agent.startup_timeout, 60);
});

test('-f reads a JSON file relative to cwd and skips discovery', (t) => {
  const root = projectTree(t, {
    '.remocal/config.json': JSON.stringify({ target: 'pid/1' }),
    'configs/staging.json': JSON.stringify({ target: 'pod/web', feature: { fs: 'write' } }),
  });
  const { config, source } = loadConfig({ cwd: root, file: 'configs/staging.json', env: {} });
  assert.equal(config.target.path, 'pod/web');
  assert.equal(config.feature.fs.mode, 'write');
  assert.deepEqual(source, { file: join(root, 'configs', 'staging.json'), format: 'json', discovered: false });
});

test('-f reads a YAML file', (t) => {
  const root = projectTree(t, {
    'staging.yaml': ['target:', '  path: deployment/api/container/app', '  namespace: staging', 'feature:', '  network:', '    incoming: steal', ''].join('\n'),
  });
  const { config, source } = loadConfig({ cwd: root, file: 'staging.yaml', env: {} });
  assert.equal(config.target.path, 'deployment/api/container/app');
  assert.equal(config.target.namespace, 'staging');
  assert.equal(config.feature.network.incoming.mode, 'steal');
  assert.equal(source.format, 'yaml');
});

test('-f naming a missing file throws ConfigNotFoundError', (t) => {
  const root = projectTree(t, {});
  assert.throws(() => loadConfig({ cwd: root, file: 'nope.json', env: {} }), (error: unknown) => {
    assert.ok(error instanceof ConfigNotFoundError);
    assert.equal((error as Error).message, `The config file ${join(root, 'nope.json')} does not exist.`);
    return true;
  });
});

test('a JSON syntax error is reported with its line and column', (t) => {
  const root = projectTree(t, { 'bad.json': '{\n  "target": "pid/1",\n}\n' });
  assert.throws(() => loadConfig({ cwd: root, file: 'bad.json', env: {} }), (error: unknown) => {
    assert.ok(error instanceof ConfigError);
    assert.match((error as Error).message, /\(top level\): the file is not valid JSON: .* at line 3, column 1\./);
    return true;
  });
});

test('a YAML syntax error is reported with its line', (t) => {
  const root = projectTree(t, { 'bad.yaml': 'target: pid/1\ntarget: pid/2\n' });
  assert.throws(() => loadConfig({ cwd: root, file: 'bad.yaml', env: {} }), /the file is not valid YAML: line 2, column 1: Map keys must be unique/);
});

test('an empty file is a file with no settings', (t) => {
  const root = projectTree(t, { '.remocal/config.yaml': '' });
  assert.equal(loadConfig({ cwd: root, env: {} }).config.feature.network.incoming.mode, 'mirror');
});

test('a real-looking mirrord.json loads, with a warning for each mirrord option remocal ignores', (t) => {
  const mirrordJson = {
    accept_invalid_certificates: false,
    skip_processes: 'ide-debugger',
    target: { path: 'pod/bear-pod', namespace: 'default' },
    connect_tcp: null,
    agent: {
      log_level: 'mirrord=debug,warn',
      json_log: false,
      labels: { user: 'meow' },
      annotations: { 'cats.io/inject': 'enabled' },
      namespace: 'default',
      image: 'ghcr.io/metalbear-co/mirrord:latest',
      image_pull_policy: 'IfNotPresent',
      image_pull_secrets: [{ name: 'secret' }],
      ttl: 30,
      ephemeral: false,
      communication_timeout: 30,
      startup_timeout: 360,
      flush_connections: true,
    },
    feature: {
      env: {
        include: 'DATABASE_USER;PUBLIC_ENV',
        exclude: 'DATABASE_PASSWORD;SECRET_ENV',
        override: { DATABASE_CONNECTION: 'db://localhost:7777/my-db', LOCAL_BEAR: 'panda' },
        mapping: { '.+_TIMEOUT': '1000' },
      },
      fs: { mode: 'write', read_write: '.+\\.json', read_only: ['.+\\.yaml', '.+important-file\\.txt'], local: ['.+\\.js', '.+\\.mjs'] },
      network: {
        incoming: {
          mode: 'steal',
          http_filter: { header_filter: 'host: api\\..+' },
          port_mapping: [[7777, 8888]],
          ignore_localhost: false,
          ignore_ports: [9999, 10000],
        },
        outgoing: {
          tcp: true,
          udp: true,
          filter: { local: ['tcp://1.1.1.0/24:1337', '1.1.5.0/24', 'google.com', ':53'] },
          ignore_localhost: false,
          unix_streams: 'bear.+',
        },
        dns: { enabled: true, filter: { local: ['1.1.1.0/24:1337', '1.1.5.0/24', 'google.com'] } },
      },
      copy_target: { scale_down: false },
      hostname: true,
    },
    operator: true,
    kubeconfig: '~/.kube/config',
    sip_binaries: 'bash',
    telemetry: true,
    kube_context: 'my-cluster',
  };
  const root = projectTree(t, { '.mirrord/mirrord.json': JSON.stringify(mirrordJson, null, 2) });
  const { config, warnings } = loadConfig({ cwd: root, file: '.mirrord/mirrord.json', env: {} });

  assert.equal(config.target.path, 'pod/bear-pod');
  assert.equal(config.agent.log_level, 'debug');
  assert.equal(config.agent.startup_timeout, 360);
  assert.deepEqual(config.feature.env.include, ['DATABASE_USER', 'PUBLIC_ENV']);
  assert.deepEqual(config.feature.fs.read_write, ['.+\\.json']);
  assert.equal(config.feature.network.incoming.mode, 'steal');
  assert.deepEqual(config.feature.network.incoming.port_mapping, [[7777, 8888]]);
  assert.deepEqual(config.feature.network.outgoing.filter, { local: ['tcp://1.1.1.0/24:1337', '1.1.5.0/24', 'google.com', ':53'] });
  assert.equal(config.feature.network.outgoing.ignore_localhost, false);
  assert.equal(config.kube_context, 'my-cluster');
  assert.deepEqual(config.feature.copy_target, { enabled: false, scale_down: false, exclude_containers: [], exclude_init_containers: [], command: 'auto', keep_labels: true });
  assert.ok(warnings.every((warning) => warning.origin?.kind === 'file'));

  assert.deepEqual(
    warnings.map((warning) => warning.message).sort(),
    [
      '`accept_invalid_certificates` is a mirrord option remocal does not support yet; it is ignored.',
      '`skip_processes` is a mirrord option remocal does not support yet; it is ignored.',
      '`agent.json_log` is a mirrord option remocal does not support yet; it is ignored.',
      '`agent.image_pull_policy` is a mirrord option remocal does not support yet; it is ignored.',
      '`agent.image_pull_secrets` is a mirrord option remocal does not support yet; it is ignored.',
      '`agent.communication_timeout` is a mirrord option remocal does not support yet; it is ignored.',
      '`agent.flush_connections` is a mirrord option remocal does not support yet; it is ignored.',
      '`feature.hostname` is a mirrord option remocal does not support yet; it is ignored.',
      '`sip_binaries` is a mirrord option remocal does not support yet; it is ignored.',
      '`telemetry` is a mirrord option remocal does not support yet; it is ignored.',
      '`feature.network.outgoing.unix_streams` is a mirrord option remocal does not support yet; it is ignored.',
    ].sort(),
  );
});

test('mirrord templates are not expanded, and the warning says so', (t) => {
  const root = projectTree(t, { 'm.json': JSON.stringify({ feature: { network: { incoming: { mode: 'steal', http_filter: { header_filter: 'x-session: {{ key }}' } } } } }) });
  const { warnings } = loadConfig({ cwd: root, file: 'm.json', env: {} });
  assert.match(warnings[0]!.message, /mirrord expands these templates, remocal does not/);
});

test('TOML is refused with a message saying what to do', (t) => {
  const root = projectTree(t, { 'mirrord.toml': 'target = "pod/x"\n' });
  assert.throws(() => loadConfig({ cwd: root, file: 'mirrord.toml', env: {} }), /TOML config files are not supported: write the same keys as JSON or YAML\./);
});

test('copy_target: mirrord\'s shorthand `true` is the object form with enabled', (t) => {
  const root = projectTree(t, { '.remocal/config.json': JSON.stringify({ feature: { copy_target: true } }) });
  const { config } = loadConfig({ cwd: root, env: {} });
  assert.equal(config.feature.copy_target.enabled, true);
  assert.equal(config.feature.copy_target.command, 'auto');
  const bad = projectTree(t, { '.remocal/config.json': JSON.stringify({ feature: { copy_target: { command: 'sleep' } } }) });
  assert.throws(() => loadConfig({ cwd: bad, env: {} }), /copy_target\.command/);
});
