// `actions`: the reference syntax, and the config errors a bad step or reference gives at load time.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { namedGroups, parseReferences, substituteReferences } from '../../src/config/action-refs.js';
import { resolveConfig } from '../../src/config/resolve.js';

const FILE = '/project/.remocal/config.json';

function problems(actions: unknown[]): string[] {
  return resolveConfig({ file: { path: FILE, data: { actions } } }).problems.map((problem) => `${problem.path}: ${problem.message}`);
}

const db = { name: 'db', when: 'before', run: 'postgres -p 5433', wait_for: { log: 'port (?<port>\\d+)' } };

describe('action references', () => {
  it('splits a value into text and references, with $${ as a literal', () => {
    assert.deepEqual(parseReferences('postgres://127.0.0.1:${steps.db.port}/app?x=$${HOME}'), [
      { literal: 'postgres://127.0.0.1:' },
      { reference: { step: 'db', output: 'port', text: '${steps.db.port}' } },
      { literal: '/app?x=${HOME}' },
    ]);
  });

  it('refuses any other ${…}', () => {
    assert.throws(() => parseReferences('${HOME}/x'), /"\$\{HOME\}" is not a reference: write \$\{steps\.<step>\.<output>\}, or \$\$\{ for a literal/);
    assert.throws(() => parseReferences('${steps.db}'), /"\$\{steps\.db\}" is not a reference/);
  });

  it('substitutes outputs, and says which reference has no value', () => {
    const outputs: Record<string, Record<string, string>> = { db: { port: '5433' } };
    const lookup = (reference: { step: string; output: string }) => outputs[reference.step]?.[reference.output];
    assert.equal(substituteReferences('h:${steps.db.port}', lookup, () => new Error('missing')), 'h:5433');
    assert.throws(() => substituteReferences('${steps.db.user}', lookup, (reference) => new Error(`no ${reference.text}`)), /no \$\{steps\.db\.user\}/);
  });

  it("finds a regex's named groups, not lookbehinds or escaped parentheses", () => {
    assert.deepEqual(namedGroups('(?<host>[^:]+):(?<port>\\d+)(?<=x)(?<!y)\\(?<no>)'), ['host', 'port']);
  });
});

describe('actions in the config', () => {
  it('loads a valid list, with the default timeout', () => {
    const resolution = resolveConfig({
      file: { path: FILE, data: { actions: [db, { name: 'app-env', when: 'before', run: ['echo', 'x'], env: { URL: 'x:${steps.db.port}', TOKEN: '${steps.app-env.stdout}' } }] } },
    });
    assert.deepEqual(resolution.problems, []);
    assert.equal(resolution.config!.actions.length, 2);
    assert.equal(resolution.config!.actions_timeout, 60);
  });

  it('names an unknown step, with the steps it could use and a did-you-mean', () => {
    assert.deepEqual(problems([db, { name: 'app', when: 'before', run: 'true', env: { URL: 'x:${steps.dbb.port}' } }]), [
      'actions[1].env.URL: ${steps.dbb.port} names an unknown step "dbb": no earlier step has that name. Steps it can use: db, app (the step itself, once ready). Did you mean "db"?',
    ]);
  });

  it('names an unknown output, with the outputs the step has', () => {
    assert.deepEqual(problems([db, { name: 'app', when: 'before', run: 'echo ${steps.db.prot}' }]), [
      'actions[1].run: ${steps.db.prot} names an unknown output "prot" of step "db". Its outputs: port. Did you mean "port"?',
    ]);
    assert.deepEqual(problems([{ name: 'web', when: 'before', run: 'x', wait_for: { tcp: '127.0.0.1:80' } }, { name: 'b', when: 'before', run: 'echo ${steps.web.port}' }]), [
      'actions[1].run: ${steps.web.port} names an unknown output "port" of step "web". It has none: outputs are the named groups of a `wait_for.log` regex, such as (?<port>\\d+), or `stdout` of a step that runs to its end.',
    ]);
  });

  it('refuses a before step that uses an after step, and a reference to a later step', () => {
    assert.deepEqual(problems([{ name: 'late', when: 'after', run: 'true' }, { name: 'b', when: 'before', run: 'echo ${steps.late.stdout}' }]), [
      'actions[1].run: ${steps.late.stdout} names an unknown step "late": step "late" runs after the session, when this one has already run. No step runs before this one.',
    ]);
    assert.equal(problems([{ name: 'b', when: 'before', run: 'echo ${steps.db.port}' }, db]).length, 1);
  });

  it('lets an after step use a before step', () => {
    assert.deepEqual(problems([db, { name: 'stop', when: 'after', run: ['pg_ctl', 'stop', '-o', '-p ${steps.db.port}'] }]), []);
  });

  it('refuses duplicate names, run with job, env on after steps, and a malformed reference', () => {
    assert.deepEqual(
      problems([
        { name: 'a', when: 'before', run: 'true' },
        { name: 'a', when: 'before', run: 'true', job: { template: 'seed' } },
        { name: 'c', when: 'after', run: 'true', env: { X: '1' }, outgoing_local: ['db'] },
        { name: 'd', when: 'before', run: 'echo ${HOME}' },
      ]),
      [
        'actions[1].name: "a" is the name of step 0 too: step names must be unique.',
        'actions[1]: give a step either "run" (a command run here) or "job" (a Job run in the cluster by the operator).',
        'actions[2].env: applies to "before" steps only: an "after" step runs when the command has ended.',
        'actions[2].outgoing_local: applies to "before" steps only: an "after" step runs when the command has ended.',
        'actions[3].run: "${HOME}" is not a reference: write ${steps.<step>.<output>}, or $${ for a literal "${".',
      ],
    );
  });

  it('checks wait_for and outgoing_local values', () => {
    const found = problems([
      { name: 'a', when: 'before', run: 'x', wait_for: { tcp: 'localhost' } },
      { name: 'b', when: 'before', run: 'x', wait_for: { log: '(' } },
      { name: 'c', when: 'before', run: 'x', outgoing_local: ['ftp://db'] },
      { name: 'd', when: 'before', run: 'x', timeout: 0 },
    ]);
    assert.equal(found.length, 4, found.join('\n'));
    assert.match(found[0]!, /^actions\[0\]\.wait_for\.tcp: "localhost" is not host:port/);
    assert.match(found[1]!, /^actions\[1\]\.wait_for\.log: "\(" is not a valid regular expression/);
    assert.match(found[2]!, /^actions\[2\]\.outgoing_local\[0\]: "ftp:\/\/db" is not an address pattern/);
    assert.match(found[3]!, /^actions\[3\]\.timeout: /);
  });
});
