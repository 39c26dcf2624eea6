// Sync fs calls through the real layer bundle when the session is unreachable: they must fail at once with a
// native-looking error, never block the app, and the layer's worker must not keep the process alive.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { LAYER_SETTINGS_ENV } from '../../src/protocol/contracts.js';
import { assertBuilt, repoRoot } from '../helpers/remocal.js';
import { layerSettings } from './fixtures/kit.js';

const dir = mkdtempSync(join(tmpdir(), 'remocal-fs-sync-'));
after(() => rmSync(dir, { recursive: true, force: true }));

describe('sync fs calls without a session', () => {
  it('fail with ECONNABORTED at once, leave local files alone, and let the app exit', () => {
    assertBuilt();
    writeFileSync(join(dir, 'local.txt'), 'local');
    const script = join(dir, 'app.cjs');
    writeFileSync(
      script,
      `const fs = require('fs');
const started = Date.now();
let remote;
try { fs.readFileSync('/etc/remocal-remote-only.conf'); remote = 'read'; } catch (e) { remote = { code: e.code, message: e.message }; }
let again;
try { fs.statSync('/etc/remocal-remote-only.conf'); again = 'stat'; } catch (e) { again = e.code; }
console.log(JSON.stringify({ remote, again, local: fs.readFileSync('local.txt', 'utf8'), ms: Date.now() - started }));
`,
    );
    const settings = { ...layerSettings({ files: { mode: 'read' } }), socket: join(dir, 'no-intproxy.sock') };
    const run = spawnSync(process.execPath, [script], {
      cwd: dir,
      encoding: 'utf8',
      timeout: 20_000,
      env: { ...process.env, NODE_OPTIONS: `--require ${join(repoRoot, 'dist', 'layer.cjs')}`, [LAYER_SETTINGS_ENV]: JSON.stringify(settings) },
    });
    assert.equal(run.status, 0, `${run.stderr}\n${run.error?.message ?? ''}`);
    const seen = JSON.parse(run.stdout.trim()) as { remote: { code: string; message: string }; again: string; local: string; ms: number };
    assert.equal(seen.remote.code, 'ECONNABORTED');
    assert.match(seen.remote.message, /intproxy is unreachable/);
    assert.equal(seen.again, 'ECONNABORTED');
    assert.equal(seen.local, 'local');
    assert.ok(seen.ms < 5000, `the failing calls took ${seen.ms} ms`);
  });
});
