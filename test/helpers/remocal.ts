// Runs the built CLI the way a user does: a real `remocal exec` process, with real children.

import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cleanupStalePods, createPod, type Pod } from '../../src/fixture/pod.js';

export const repoRoot = fileURLToPath(new URL('../..', import.meta.url));
export const cliPath = join(repoRoot, 'dist', 'cli.js');

export function assertBuilt(): void {
  for (const file of ['cli.js', 'intproxy.js', 'agent.js', 'layer.cjs', 'layer-fs-worker.cjs', 'pod.js']) {
    if (!existsSync(join(repoRoot, 'dist', file))) throw new Error(`dist/${file} is missing: run \`npm run build\` first`);
  }
}

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  input?: string;
  timeoutMs?: number;
  /** Runs the CLI as another user, through setpriv. */
  asUser?: number;
}

export function startRemocal(args: readonly string[], options: RunOptions = {}): { child: ChildProcess; done: Promise<RunResult> } {
  const base = [process.execPath, cliPath, ...args];
  const argv = options.asUser === undefined ? base : ['setpriv', `--reuid=${options.asUser}`, `--regid=${options.asUser}`, '--clear-groups', ...base];
  const child = spawn(argv[0]!, argv.slice(1), {
    cwd: options.cwd ?? repoRoot,
    env: { ...process.env, NODE_OPTIONS: '', ...options.env },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  if (options.input !== undefined) child.stdin!.end(options.input);
  else child.stdin!.end();
  const timeoutMs = options.timeoutMs ?? 30_000;
  const done = new Promise<RunResult>((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
  return { child, done };
}

export function runRemocal(args: readonly string[], options: RunOptions = {}): Promise<RunResult> {
  return startRemocal(args, options).done;
}

/** A directory of app files, removed by the returned function. */
export function writeApp(files: Record<string, string>): { dir: string; remove: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'remocal-app-'));
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Parses the last JSON line of an app's stdout, with the whole run in the error when it is not there. */
export function lastJson<T = Record<string, unknown>>(result: RunResult): T {
  const line = result.stdout.trim().split('\n').filter((entry) => entry.startsWith('{')).pop();
  if (line === undefined) throw new Error(`no JSON output (exit ${result.code})\nstdout: ${result.stdout}\nstderr: ${result.stderr}`);
  return JSON.parse(line) as T;
}

/** What most end-to-end files share: a built CLI, a fresh fixture pod, and the app's files in a directory. */
export async function startPodWithApp(files: Record<string, string>): Promise<{ pod: Pod; app: { dir: string; remove: () => void } }> {
  assertBuilt();
  await cleanupStalePods();
  return { pod: await createPod(), app: writeApp(files) };
}

export async function stopPodWithApp(pod: Pod | undefined, app: { remove: () => void } | undefined): Promise<void> {
  app?.remove();
  await pod?.destroy();
}
