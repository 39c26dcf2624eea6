// What a user reads when the configuration is wrong. The expected messages are written out in full (this
// Node has no t.assert.snapshot), so that any change to them is a deliberate one.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ConfigError, isRemocalError } from '../../src/core/errors.js';
import { ConfigValidationError, editDistance, suggest } from '../../src/config/errors.js';
import { loadConfig } from '../../src/config/load.js';
import { resolveConfig, type ConfigInputs } from '../../src/config/resolve.js';
import { projectTree } from './helpers.js';

const FILE = '/project/.remocal/config.json';

function errorFor(inputs: ConfigInputs): ConfigValidationError {
  const { problems } = resolveConfig(inputs);
  assert.ok(problems.length > 0, 'expected problems');
  return new ConfigValidationError(problems, { file: inputs.file?.path ?? null });
}

const inFile = (data: unknown): ConfigInputs => ({ file: { path: FILE, data } });

test('unknown key, with did-you-mean', () => {
  const error = errorFor(inFile({ feature: { network: { incoming: { mdoe: 'steal' } } } }));
  assert.equal(
    error.message,
    `Invalid remocal configuration in ${FILE} (1 problem):\n` +
      '  - feature.network.incoming.mdoe: unknown key "mdoe". Known keys here: mode, http_filter, port_mapping, ignore_localhost, ignore_ports, ports, listen_ports, on_concurrent_steal. Did you mean "mode"?',
  );
  assert.deepEqual(error.problems[0], {
    path: 'feature.network.incoming.mdoe',
    origin: { kind: 'file', file: FILE },
    message: 'unknown key "mdoe". Known keys here: mode, http_filter, port_mapping, ignore_localhost, ignore_ports, ports, listen_ports, on_concurrent_steal. Did you mean "mode"?',
    value: 'steal',
    allowed: ['mode', 'http_filter', 'port_mapping', 'ignore_localhost', 'ignore_ports', 'ports', 'listen_ports', 'on_concurrent_steal'],
    suggestion: 'mode',
  });
});

test('unknown key inside a value object (a toleration), with did-you-mean', () => {
  const error = errorFor(inFile({ agent: { tolerations: [{ key: 'gpu', opertor: 'Exists' }] } }));
  assert.equal(
    error.problems.map((problem) => `${problem.path}: ${problem.message}`).join('\n'),
    'agent.tolerations[0].opertor: unknown key "opertor". Known keys here: key, operator, value, effect, tolerationSeconds. Did you mean "operator"?',
  );
});

test('bad enum value lists the allowed values', () => {
  const error = errorFor(inFile({ feature: { network: { incoming: { mode: 'stael' } } } }));
  assert.equal(
    error.message,
    `Invalid remocal configuration in ${FILE} (1 problem):\n` +
      '  - feature.network.incoming.mode: "stael" is not allowed. Allowed: "mirror", "steal", "off". Did you mean "steal"?',
  );
  assert.deepEqual(error.problems[0]!.allowed, ['mirror', 'steal', 'off']);
  assert.equal(error.problems[0]!.suggestion, 'steal');
  assert.equal(error.problems[0]!.value, 'stael');
});

test('bad short form value lists the modes', () => {
  const error = errorFor(inFile({ feature: { fs: 'raed' } }));
  assert.equal(error.problems[0]!.message, '"raed" is not allowed. Allowed: "local", "localwithoverrides", "read", "write". Did you mean "read"?');
  assert.equal(errorFor(inFile({ feature: { network: { dns: 'yes' } } })).problems[0]!.message, 'expected an object or boolean, got "yes".');
});

test('bad outgoing filter pattern names the pattern and why', () => {
  const error = errorFor(inFile({ feature: { network: { outgoing: { filter: { local: ['10.0.0.0/8', 'tcp://1.1.1.0/33:1337', 'http://example.com'] } } } } }));
  assert.equal(
    error.message,
    `Invalid remocal configuration in ${FILE} (2 problems):\n` +
      '  - feature.network.outgoing.filter.local[1]: "tcp://1.1.1.0/33:1337" is not an address pattern: the prefix /33 is not between /0 and /32. Expected [tcp://|udp://]host-or-ip[/prefix][:port], e.g. "tcp://10.0.0.0/8:5432" or "db.internal".\n' +
      '  - feature.network.outgoing.filter.local[2]: "http://example.com" is not an address pattern: unknown protocol "http" (use tcp:// or udp://). Expected [tcp://|udp://]host-or-ip[/prefix][:port], e.g. "tcp://10.0.0.0/8:5432" or "db.internal".',
  );
  assert.equal(error.problems[0]!.value, 'tcp://1.1.1.0/33:1337');
});

test('a DNS filter pattern takes no protocol', () => {
  const error = errorFor(inFile({ feature: { network: { dns: { filter: { remote: 'udp://10.0.0.1:53' } } } } }));
  assert.equal(
    error.problems[0]!.message,
    '"udp://10.0.0.1:53" is not a DNS filter pattern: a DNS query has no tcp:// or udp:// protocol. Expected host-or-ip[/prefix][:port].',
  );
  assert.equal(error.problems[0]!.path, 'feature.network.dns.filter.remote');
});

test('both local and remote outgoing filters given', () => {
  const error = errorFor(inFile({ feature: { network: { outgoing: { filter: { local: [':53'], remote: ['10.0.0.0/8'] } } } } }));
  assert.equal(
    error.message,
    `Invalid remocal configuration in ${FILE} (1 problem):\n` +
      '  - feature.network.outgoing.filter: give either "local" (these go local, the rest remote) or "remote" (these go remote, the rest local), not both.',
  );
  assert.deepEqual(error.problems[0]!.allowed, ['local', 'remote']);
});

test('bad regex, in a plain filter, a composite filter and a pattern list', () => {
  const error = errorFor(
    inFile({
      feature: {
        network: { incoming: { mode: 'steal', http_filter: { all_of: [{ header: '^x-user: (alice' }, { path: '^/api/' }] } } },
        fs: { read_only: ['^/etc/(?i)app'] },
      },
    }),
  );
  assert.equal(
    error.message,
    `Invalid remocal configuration in ${FILE} (2 problems):\n` +
      '  - feature.network.incoming.http_filter.all_of[0].header: "^x-user: (alice" is not a valid regular expression: Unterminated group.\n' +
      '  - feature.fs.read_only[0]: "^/etc/(?i)app" is not a valid regular expression: Invalid group.',
  );
  const single = errorFor(inFile({ feature: { network: { incoming: { http_filter: { header_filter: '[a-' } } } } }));
  assert.equal(single.problems[0]!.path, 'feature.network.incoming.http_filter.header_filter');
  assert.equal(single.problems[0]!.value, '[a-');
});

test('bad env var value names the env var', () => {
  const error = errorFor({ env: { REMOCAL_AGENT_STARTUP_TIMEOUT: 'soon', REMOCAL_FEATURE_NETWORK_INCOMING_MODE: 'stael', REMOCAL_AGENT_LABELS: '{team: x}' } });
  assert.equal(
    error.message,
    'Invalid remocal configuration (3 problems):\n' +
      '  - REMOCAL_AGENT_STARTUP_TIMEOUT (agent.startup_timeout): expected integer, got "soon".\n' +
      '  - REMOCAL_AGENT_LABELS (agent.labels): "{team: x}" is not valid JSON (Expected property name or \'}\' at line 1, column 2).\n' +
      '  - REMOCAL_FEATURE_NETWORK_INCOMING_MODE (feature.network.incoming.mode): "stael" is not allowed. Allowed: "mirror", "steal", "off". Did you mean "steal"?',
  );
  assert.deepEqual(error.problems[0]!.origin, { kind: 'env', name: 'REMOCAL_AGENT_STARTUP_TIMEOUT' });
});

test('bad flag value names the flag', () => {
  const error = errorFor({ flags: { fsMode: 'wirte', target: 'pods/web' } });
  assert.equal(
    error.message,
    'Invalid remocal configuration (2 problems):\n' +
      '  - --target (target.path): "pods/web" is not a target: unknown kind "pods". Did you mean "pod"? Targets look like pid/<pid>, container/<name-or-id>, netns/<name>, pod/<name>[/container/<container>], deployment/<name>[/container/<container>] (also statefulset, job, cronjob, rollout, service, replicaset), or targetless.\n' +
      '  - --fs-mode (feature.fs.mode): "wirte" is not allowed. Allowed: "local", "localwithoverrides", "read", "write". Did you mean "write"?',
  );
});

test('bad target strings say what is wrong with them', () => {
  const messages = ['pid/abc', 'pod/', 'pod/Web', 'deployment/api/containers/app', 'container/a/b', { path: { pod: 'a', job: 'b' } }].map(
    (target) => errorFor(inFile({ target })).problems[0]!.message.replace(/ Targets look like .*$/, ''),
  );
  assert.deepEqual(messages, [
    '"pid/abc" is not a target: a pid target is pid/<number>, the process id of the target.',
    '"pod/" is not a target: it has no name after "pod/".',
    '"pod/Web" is not a target: "Web" is not a Kubernetes object name (lowercase letters, digits, "-" and ".").',
    '"deployment/api/containers/app" is not a target: after deployment/api only /container/<container> may follow.',
    '"container/a/b" is not a target: a container target is container/<name> with no further "/".',
    'give exactly one kind of target (pod, deployment, statefulset, job, cronjob, rollout, service, replicaset), and optionally "container"; got pod and job.',
  ]);
});

test('every problem is collected in one error, from the file, the env and the flags', () => {
  const error = errorFor({
    file: { path: FILE, data: { targte: 'pid/1', agent: { startup_timeout: 0 }, feature: { network: { outgoing: 'sometimes' } } } },
    env: { REMOCAL_FEATURE_NETWORK_DNS_ENABLED: 'maybe' },
    flags: { fsMode: 'nope' },
  });
  assert.deepEqual(
    error.problems.map((problem) => problem.path),
    ['targte', 'agent.startup_timeout', 'feature.network.outgoing', 'feature.network.dns.enabled', 'feature.fs.mode'],
  );
  assert.equal(error.problems[0]!.suggestion, 'target');
  assert.equal(error.problems[1]!.message, '0 is out of range: must be at least 1.');
  assert.equal(error.problems[2]!.message, '"sometimes" is not allowed. Allowed: "remote", "local".');
  assert.equal(error.problems[3]!.message, 'expected boolean, got "maybe".');
});

test('keys that exclude each other are reported after merging', () => {
  const error = errorFor(inFile({ feature: { network: { incoming: { mode: 'steal', ports: [80], ignore_ports: [9000], http_filter: { header_filter: 'x', path_filter: '^/' } } } } }));
  assert.deepEqual(
    error.problems.map((problem) => `${problem.path}: ${problem.message}`),
    [
      'feature.network.incoming.http_filter: give one kind of HTTP filter, not header_filter and path_filter: combine several with "all_of" or "any_of".',
      'feature.network.incoming: give either "ports" (only these are mirrored or stolen) or "ignore_ports" (all but these), not both.',
    ],
  );
});

test('loadConfig throws a ConfigError carrying the structured problems', (t) => {
  const root = projectTree(t, { '.remocal/config.json': JSON.stringify({ feature: { network: { incomng: 'steal' } } }) });
  assert.throws(() => loadConfig({ cwd: root, env: {} }), (error: unknown) => {
    assert.ok(error instanceof ConfigError);
    assert.ok(isRemocalError(error));
    assert.equal((error as ConfigError).code, 'REMOCAL_CONFIG_INVALID');
    assert.equal((error as ConfigError).category, 'config');
    assert.ok(error instanceof ConfigValidationError);
    assert.equal(error.problems[0]!.suggestion, 'incoming');
    assert.deepEqual((error.details as { problems: unknown }).problems, error.problems);
    return true;
  });
});

test('suggestions: transpositions count as one edit; far-off words get none', () => {
  assert.equal(editDistance('mdoe', 'mode'), 1);
  assert.equal(suggest('stael', ['mirror', 'steal', 'off']), 'steal');
  assert.equal(suggest('incomng', ['incoming', 'outgoing', 'dns']), 'incoming');
  assert.equal(suggest('deploy', ['pod', 'deployment']), 'deployment');
  assert.equal(suggest('banana', ['mirror', 'steal', 'off']), undefined);
});
