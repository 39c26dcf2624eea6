// Writes docs/config.md and schema/remocal.schema.json from the option declarations.
//
//   node --import tsx src/config/generate.ts           write both files
//   node --import tsx src/config/generate.ts --check   exit 1 if either is missing or stale (CI)

import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { renderConfigDocs, renderJsonSchema } from './render.js';

const repositoryRoot = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

export const GENERATED_FILES = {
  docs: join(repositoryRoot, 'docs', 'config.md'),
  schema: join(repositoryRoot, 'schema', 'remocal.schema.json'),
} as const;

export function generatedContents(): Map<string, string> {
  return new Map([
    [GENERATED_FILES.docs, renderConfigDocs()],
    [GENERATED_FILES.schema, `${JSON.stringify(renderJsonSchema(), null, 2)}\n`],
  ]);
}

/** The generated files whose content on disk differs from what the declarations give. */
export function staleFiles(): string[] {
  return [...generatedContents()].filter(([file, content]) => readOrNull(file) !== content).map(([file]) => file);
}

function readOrNull(file: string): string | null {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return null;
  }
}

function main(argv: string[]): number {
  if (argv.includes('--check')) {
    const stale = staleFiles();
    for (const file of stale) process.stderr.write(`${relative(process.cwd(), file)} is out of date: run node --import tsx src/config/generate.ts\n`);
    return stale.length === 0 ? 0 : 1;
  }
  for (const [file, content] of generatedContents()) {
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(file, content);
    process.stdout.write(`wrote ${relative(process.cwd(), file)}\n`);
  }
  return 0;
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  process.exitCode = main(process.argv.slice(2));
}
