import assert from 'node:assert/strict';
import { test } from 'node:test';
import { toLayerSettings } from '../../src/config/layer-settings.js';
import type { ConfigFlags, RemocalConfig } from '../../src/config/options.js';
import { resolveConfig } from '../../src/config/resolve.js';
import { readLayerSettings } from '../../src/layer/settings.js';
import { LAYER_SETTINGS_ENV } from '../../src/protocol/contracts.js';

function configFrom(data: unknown): RemocalConfig {
  const resolution = resolveConfig({ file: { path: 'c.json', data } });
  assert.deepEqual(resolution.problems, []);
  return resolution.config!;
}

const session = { socket: '/run/remocal/s1.sock', session: 's1' };

test('defaults: no filter, loopback stays local, TCP, DNS and file reads from the target, silent layer', () => {
  assert.deepEqual(toLayerSettings(configFrom({}), session), {
    socket: '/run/remocal/s1.sock',
    session: 's1',
    outgoing: { filter: {}, ignoreLocalhost: true, tcp: true, udp: true },
    dns: { enabled: true, filter: {} },
    incoming: { mode: 'mirror', portMapping: [], listenPorts: [], ignorePorts: [], ports: null, ignoreLocalhost: false },
    files: { mode: 'read', readWrite: [], readOnly: [], local: [], notFound: [] },
    logLevel: 'silent',
  });
});

test('the dns filter carries over', () => {
  const config = configFrom({ feature: { network: { dns: { filter: { local: ['*.corp.example'] } } } } });
  assert.deepEqual(toLayerSettings(config, session).dns, { enabled: true, filter: { local: ['*.corp.example'] } });
});

test('the incoming options carry over', () => {
  const config = configFrom({
    feature: { network: { incoming: { mode: 'steal', port_mapping: [[3000, 80]], listen_ports: [[80, 8080]], ignore_ports: [9229], ignore_localhost: true } } },
  });
  assert.deepEqual(toLayerSettings(config, session).incoming, {
    mode: 'steal',
    portMapping: [[3000, 80]],
    listenPorts: [[80, 8080]],
    ignorePorts: [9229],
    ports: null,
    ignoreLocalhost: true,
  });
});

test('the outgoing filter, mirrord\'s ignore_localhost, tcp, dns and the layer log level carry over', () => {
  const config = configFrom({
    feature: { network: { outgoing: { tcp: false, udp: false, ignore_localhost: false, filter: { remote: 'db.internal:5432' } }, dns: false } },
    layer: { log_level: 'debug' },
  });
  assert.deepEqual(toLayerSettings(config, session), {
    socket: '/run/remocal/s1.sock',
    session: 's1',
    outgoing: { filter: { remote: ['db.internal:5432'] }, ignoreLocalhost: false, tcp: false, udp: false },
    dns: { enabled: false, filter: {} },
    incoming: { mode: 'mirror', portMapping: [], listenPorts: [], ignorePorts: [], ports: null, ignoreLocalhost: false },
    files: { mode: 'read', readWrite: [], readOnly: [], local: [], notFound: [] },
    logLevel: 'debug',
  });
});

test('the fs mode and its lists carry over, a shorthand expanded', () => {
  const lists = { read_write: ['^/data/'], read_only: ['^/etc/app'], local: ['\\.log$'], not_found: ['^/secrets'] };
  assert.deepEqual(toLayerSettings(configFrom({ feature: { fs: { mode: 'write', ...lists } } }), session).files, {
    mode: 'write',
    readWrite: ['^/data/'],
    readOnly: ['^/etc/app'],
    local: ['\\.log$'],
    notFound: ['^/secrets'],
  });
  assert.equal(toLayerSettings(configFrom({ feature: { fs: false } }), session).files.mode, 'local');
  assert.equal(toLayerSettings(configFrom({ feature: { fs: 'localwithoverrides' } }), session).files.mode, 'localwithoverrides');
});

test('the settings survive the trip through the REMOCAL_LAYER env var, and share nothing with the config', () => {
  const config = configFrom({ feature: { network: { outgoing: { filter: { local: [':53', '10.0.0.0/8'] } } } } });
  const settings = toLayerSettings(config, session);
  assert.deepEqual(readLayerSettings({ [LAYER_SETTINGS_ENV]: JSON.stringify(settings) }), settings);
  settings.outgoing.filter.local!.push('changed');
  assert.deepEqual(config.feature.network.outgoing.filter, { local: [':53', '10.0.0.0/8'] });
});

test('types: the resolved config and the flags are typed from the declarations', () => {
  // Checked by `npm run typecheck`: a renamed option or flag fails to compile here.
  const config = configFrom({});
  const mode: 'mirror' | 'steal' | 'off' = config.feature.network.incoming.mode;
  const timeout: number = config.agent.startup_timeout;
  const include: string[] | undefined = config.feature.env.include;
  const flags: ConfigFlags = { target: 'pid/1', namespace: 'ns', fsMode: 'read', steal: true };
  // @ts-expect-error mirrord-only keys are not part of the resolved config
  void config.feature.db_branches;
  // @ts-expect-error there is no such flag
  void flags.stealing;
  assert.deepEqual([mode, timeout, include], ['mirror', 60, undefined]);
});
