// `remocal verify-config` and `remocal schema` as a user or an editor runs them.

import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { assertBuilt, repoRoot, runRemocal, writeApp } from '../helpers/remocal.js';

describe('remocal verify-config', () => {
  it('says a good file is good, and explains a bad one, as text and as JSON', async () => {
    assertBuilt();
    const project = writeApp({});
    try {
      writeFileSync(join(project.dir, 'good.json'), JSON.stringify({ target: 'pid/1', feature: { network: { incoming: 'steal' } } }));
      const good = await runRemocal(['verify-config', 'good.json'], { cwd: project.dir });
      assert.equal(good.code, 0, good.stdout + good.stderr);

      writeFileSync(join(project.dir, 'bad.json'), JSON.stringify({ feature: { network: { incoming: { mode: 'stael' } } } }));
      const bad = await runRemocal(['verify-config', 'bad.json'], { cwd: project.dir });
      assert.equal(bad.code, 1);
      assert.match(bad.stdout, /feature\.network\.incoming\.mode/);
      assert.match(bad.stdout, /steal/);

      const json = await runRemocal(['verify-config', '--json', 'bad.json'], { cwd: project.dir });
      assert.equal(json.code, 1);
      const report = JSON.parse(json.stdout) as { ok: boolean; problems: { path: string; suggestion?: string }[] };
      assert.equal(report.ok, false);
      assert.equal(report.problems[0]?.path, 'feature.network.incoming.mode');
    } finally {
      project.remove();
    }
  });

  it('remocal schema prints the schema the repository ships', async () => {
    const result = await runRemocal(['schema']);
    assert.equal(result.code, 0);
    assert.deepEqual(JSON.parse(result.stdout), JSON.parse(readFileSync(join(repoRoot, 'schema/remocal.schema.json'), 'utf8')));
  });
});
