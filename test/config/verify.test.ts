import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { formatVerifyReport, verifyConfig } from '../../src/config/verify.js';
import { projectTree } from './helpers.js';

test('a valid discovered file: ok, with its warnings', (t) => {
  const root = projectTree(t, { '.remocal/config.json': JSON.stringify({ target: 'pid/1', feature: { hostname: true } }) });
  const report = verifyConfig({ cwd: join(root) });
  assert.equal(report.ok, true);
  assert.equal(report.file, join(root, '.remocal', 'config.json'));
  assert.deepEqual(report.problems, []);
  assert.deepEqual(report.warnings.map((warning) => warning.path), ['feature.hostname']);
  assert.equal(
    formatVerifyReport(report),
    `${report.file}: valid.\n  warning: feature.hostname: \`feature.hostname\` is a mirrord option remocal does not support yet; it is ignored.\n`,
  );
});

test('an invalid file given by path: every problem, as data and as text', (t) => {
  const root = projectTree(t, { 'staging.yaml': 'target: pods/web\nfeature:\n  network:\n    incoming:\n      mode: stael\n' });
  const report = verifyConfig({ cwd: root, file: 'staging.yaml' });
  assert.equal(report.ok, false);
  assert.equal(report.format, 'yaml');
  assert.deepEqual(
    report.problems.map(({ path, suggestion }) => ({ path, suggestion })),
    [
      { path: 'target', suggestion: 'pod' },
      { path: 'feature.network.incoming.mode', suggestion: 'steal' },
    ],
  );
  const text = formatVerifyReport(report);
  assert.match(text, /: 2 problems\.\n {2}error: target: "pods\/web" is not a target/);
  assert.doesNotThrow(() => JSON.parse(JSON.stringify(report)));
});

test('a missing file is a problem, not an exception', (t) => {
  const root = projectTree(t, {});
  const report = verifyConfig({ cwd: root, file: 'missing.json' });
  assert.equal(report.ok, false);
  assert.equal(report.problems[0]!.message, `the file ${join(root, 'missing.json')} does not exist.`);
});

test('no file found: ok, with a note; env vars are checked only when passed', (t) => {
  const root = projectTree(t, {});
  const report = verifyConfig({ cwd: root });
  assert.equal(report.ok, true);
  assert.equal(report.file, null);
  assert.match(report.warnings[0]!.message, /no \.remocal\/config\.json/);
  assert.equal(verifyConfig({ cwd: root, env: { REMOCAL_FEATURE_FS_MODE: 'raed' } }).problems[0]!.suggestion, 'read');
});
