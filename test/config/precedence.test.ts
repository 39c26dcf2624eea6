// Every source beats the ones below it: flag > env > file > default. One test per pair.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { resolveConfig } from '../../src/config/resolve.js';
import type { RemocalConfig } from '../../src/config/options.js';

function resolved(inputs: Parameters<typeof resolveConfig>[0]): RemocalConfig {
  const resolution = resolveConfig(inputs);
  assert.deepEqual(resolution.problems, []);
  return resolution.config!;
}

const file = (data: unknown) => ({ path: '/project/.remocal/config.json', data });

test('flag beats env', () => {
  const config = resolved({ env: { REMOCAL_FEATURE_FS_MODE: 'local' }, flags: { fsMode: 'write' } });
  assert.equal(config.feature.fs.mode, 'write');
});

test('flag beats file', () => {
  const config = resolved({ file: file({ target: 'pid/1' }), flags: { target: 'pid/2' } });
  assert.equal(config.target.path, 'pid/2');
});

test('flag beats default', () => {
  assert.equal(resolved({ flags: { steal: true } }).feature.network.incoming.mode, 'steal');
});

test('env beats file', () => {
  const config = resolved({ file: file({ feature: { network: { incoming: 'steal' } } }), env: { REMOCAL_FEATURE_NETWORK_INCOMING_MODE: 'off' } });
  assert.equal(config.feature.network.incoming.mode, 'off');
});

test('env beats default', () => {
  const config = resolved({ env: { REMOCAL_AGENT_STARTUP_TIMEOUT: '5' } });
  assert.equal(config.agent.startup_timeout, 5);
});

test('file beats default', () => {
  const config = resolved({ file: file({ agent: { startup_timeout: 90 }, target: { namespace: 'staging' } }) });
  assert.equal(config.agent.startup_timeout, 90);
  assert.equal(config.target.namespace, 'staging');
});

test('precedence is per option: each option takes its own highest source', () => {
  const config = resolved({
    file: file({ target: { path: 'pod/web', namespace: 'from-file' }, feature: { fs: 'write' } }),
    env: { REMOCAL_TARGET: 'pod/api' },
    flags: { namespace: 'from-flag' },
  });
  assert.equal(config.target.path, 'pod/api');
  assert.equal(config.target.namespace, 'from-flag');
  assert.equal(config.feature.fs.mode, 'write');
  assert.equal(config.feature.network.dns.enabled, true);
});

test('a switch that is off (false) leaves the option to the sources below it', () => {
  const config = resolved({ file: file({ feature: { network: { incoming: 'off' } } }), flags: { steal: false } });
  assert.equal(config.feature.network.incoming.mode, 'off');
});

test('an empty env var counts as unset', () => {
  const config = resolved({ file: file({ target: 'pid/1' }), env: { REMOCAL_TARGET: '' } });
  assert.equal(config.target.path, 'pid/1');
});

test('env values are read as the option type expects', () => {
  const config = resolved({
    env: {
      REMOCAL_FEATURE_NETWORK_OUTGOING_TCP: 'false',
      REMOCAL_FEATURE_NETWORK_INCOMING_IGNORE_PORTS: '80;8080',
      REMOCAL_FEATURE_NETWORK_INCOMING_PORT_MAPPING: '[[9333, 80]]',
      REMOCAL_FEATURE_NETWORK_OUTGOING_FILTER: '{"local": [":53", "10.0.0.0/8"]}',
      REMOCAL_FEATURE_ENV_INCLUDE: 'DATABASE_*;PUBLIC_ENV',
      REMOCAL_FEATURE_ENV_OVERRIDE: '{"REGION": "eu-1"}',
      REMOCAL_FEATURE_FS_READ_ONLY: '^/etc/app/.+\\.yaml$',
      REMOCAL_AGENT_TTL: '30',
      REMOCAL_OPERATOR: 'false',
    },
  });
  assert.equal(config.feature.network.outgoing.tcp, false);
  assert.deepEqual(config.feature.network.incoming.ignore_ports, [80, 8080]);
  assert.deepEqual(config.feature.network.incoming.port_mapping, [[9333, 80]]);
  assert.deepEqual(config.feature.network.outgoing.filter, { local: [':53', '10.0.0.0/8'] });
  assert.deepEqual(config.feature.env.include, ['DATABASE_*', 'PUBLIC_ENV']);
  assert.deepEqual(config.feature.env.override, { REGION: 'eu-1' });
  assert.deepEqual(config.feature.fs.read_only, ['^/etc/app/.+\\.yaml$']);
  assert.equal(config.agent.ttl, 30);
  assert.equal(config.operator, false);
});

test('defaults are fresh copies: changing one resolved config does not change the next', () => {
  const first = resolved({});
  first.agent.labels.team = 'x';
  first.feature.network.incoming.port_mapping.push([1, 2]);
  const second = resolved({});
  assert.deepEqual(second.agent.labels, {});
  assert.deepEqual(second.feature.network.incoming.port_mapping, []);
});
