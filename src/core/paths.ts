// Where the package's own files are, from source (tests) or from the bundle (dist/*.js) alike.

import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

let root: string | undefined;

export function packageRoot(): string {
  if (root !== undefined) return root;
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const parent = dirname(dir);
    if (parent === dir) throw new Error('remocal: cannot find its package root');
    dir = parent;
  }
  root = dir;
  return dir;
}

/** A bundled entry point: dist/cli.js, dist/agent.js, dist/layer.cjs… */
export function distFile(name: string): string {
  return join(packageRoot(), 'dist', name);
}

let version: string | undefined;

/** This package's version: it names the agent image that matches this CLI. */
export function packageVersion(): string {
  version ??= (JSON.parse(readFileSync(join(packageRoot(), 'package.json'), 'utf8')) as { version: string }).version;
  return version;
}
