// Loading: find the config file (or take the one given with -f), parse it as JSON or YAML, and resolve it
// with the env vars and the CLI flags. Synchronous on purpose: it runs once, before anything else starts.

import { existsSync, readFileSync, statSync } from 'node:fs';
import { dirname, extname, join, resolve } from 'node:path';
import { LineCounter, parseDocument } from 'yaml';
import { ConfigNotFoundError } from '../core/errors.js';
import { ConfigValidationError, describeJsonError, type ConfigProblem, type ConfigWarning } from './errors.js';
import type { ConfigFlags, RemocalConfig } from './options.js';
import { resolveConfig } from './resolve.js';

/** Where remocal looks, in each directory from the cwd up to the root; the first name found wins. */
export const CONFIG_DIR = '.remocal';
export const CONFIG_FILE_NAMES = ['config.json', 'config.yaml', 'config.yml'] as const;

export type ConfigFormat = 'json' | 'yaml';

export interface ConfigSource {
  /** Absolute path of the file read, or null when none was given or found (defaults, env and flags only). */
  file: string | null;
  format: ConfigFormat | null;
  /** True when the file was found by looking upwards from the cwd, false when given with -f. */
  discovered: boolean;
}

export interface LoadConfigOptions {
  cwd: string;
  /** -f FILE: a path, relative to cwd. When given, nothing is discovered. */
  file?: string | undefined;
  env?: Readonly<Record<string, string | undefined>> | undefined;
  flags?: Readonly<ConfigFlags> | undefined;
}

export interface LoadedConfig {
  config: RemocalConfig;
  source: ConfigSource;
  /** Things that load but deserve a note: mirrord keys remocal ignores, keys that have no effect here. */
  warnings: ConfigWarning[];
}

/**
 * Loads and validates the configuration. Throws ConfigNotFoundError when -f names a missing file, and
 * ConfigValidationError (a ConfigError) listing every problem when anything is invalid.
 */
export function loadConfig(options: LoadConfigOptions): LoadedConfig {
  const gathered = gatherConfig(options);
  if (gathered.missingFile !== undefined) {
    throw new ConfigNotFoundError(`The config file ${gathered.missingFile} does not exist.`, {
      hint: 'Check the path given with -f, or leave -f out to use .remocal/config.json (or .yaml) found from the current directory upwards.',
    });
  }
  if (gathered.problems.length > 0 || gathered.config === undefined) {
    throw new ConfigValidationError(gathered.problems, { file: gathered.source.file });
  }
  return { config: gathered.config, source: gathered.source, warnings: gathered.warnings };
}

export interface GatheredConfig {
  config: RemocalConfig | undefined;
  source: ConfigSource;
  problems: ConfigProblem[];
  warnings: ConfigWarning[];
  /** Set when the file given with -f does not exist. */
  missingFile?: string;
}

/** loadConfig without throwing: every problem comes back as data (verify-config reports them all). */
export function gatherConfig(options: LoadConfigOptions): GatheredConfig {
  const warnings: ConfigWarning[] = [];
  let source: ConfigSource = { file: null, format: null, discovered: false };
  if (options.file !== undefined) {
    const file = resolve(options.cwd, options.file);
    source = { file, format: formatOf(file), discovered: false };
    if (!existsSync(file)) {
      return { config: undefined, source, problems: [{ path: '', message: `the file ${file} does not exist.` }], warnings, missingFile: file };
    }
  } else {
    const found = discoverConfigFile(options.cwd);
    if (found !== null) {
      source = { file: found.file, format: formatOf(found.file), discovered: true };
      for (const ignored of found.ignored) warnings.push({ path: '', origin: { kind: 'file', file: ignored }, message: `ignored: ${found.file} is used, as it comes first.` });
    }
  }

  let data: unknown;
  if (source.file !== null) {
    const read = readConfigFile(source.file);
    warnings.push(...read.warnings);
    if (read.problems.length > 0) return { config: undefined, source, problems: read.problems, warnings };
    data = read.data;
  }
  const resolution = resolveConfig({
    file: source.file === null ? undefined : { path: source.file, data },
    env: options.env,
    flags: options.flags,
  });
  return { config: resolution.config, source, problems: resolution.problems, warnings: [...warnings, ...resolution.warnings] };
}

/** The config file that applies in `cwd`: `.remocal/config.{json,yaml,yml}` in cwd or the nearest parent. */
export function discoverConfigFile(cwd: string): { file: string; ignored: string[] } | null {
  let directory = resolve(cwd);
  for (;;) {
    const present = CONFIG_FILE_NAMES.map((name) => join(directory, CONFIG_DIR, name)).filter((candidate) => isFile(candidate));
    if (present.length > 0) return { file: present[0]!, ignored: present.slice(1) };
    const parent = dirname(directory);
    if (parent === directory) return null;
    directory = parent;
  }
}

function isFile(path: string): boolean {
  try {
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

/** JSON for .json (a mirrord.json as is), YAML for .yaml/.yml; anything else is read as YAML, which JSON is a subset of. */
function formatOf(file: string): ConfigFormat {
  return extname(file).toLowerCase() === '.json' ? 'json' : 'yaml';
}

export function readConfigFile(file: string): { data: unknown; problems: ConfigProblem[]; warnings: ConfigWarning[] } {
  const origin = { kind: 'file', file } as const;
  const warnings: ConfigWarning[] = [];
  let text: string;
  try {
    if (statSync(file).isDirectory()) return { data: undefined, problems: [{ path: '', origin, message: `${file} is a directory, not a config file.` }], warnings };
    text = readFileSync(file, 'utf8');
  } catch (error) {
    return { data: undefined, problems: [{ path: '', origin, message: `cannot read ${file}: ${(error as Error).message}.` }], warnings };
  }
  if (extname(file).toLowerCase() === '.toml') {
    return { data: undefined, problems: [{ path: '', origin, message: 'TOML config files are not supported: write the same keys as JSON or YAML.' }], warnings };
  }
  if (/\{\{|\{%/.test(text)) {
    warnings.push({
      path: '',
      origin,
      message: 'the file contains {{ … }} or {% … %}: mirrord expands these templates, remocal does not, so the values are taken literally.',
    });
  }

  if (formatOf(file) === 'json') {
    try {
      return { data: JSON.parse(text), problems: [], warnings };
    } catch (error) {
      return { data: undefined, problems: [{ path: '', origin, message: `the file is not valid JSON: ${describeJsonError(text, error)}.` }], warnings };
    }
  }
  const lineCounter = new LineCounter();
  const document = parseDocument(text, { prettyErrors: false, lineCounter });
  if (document.errors.length > 0) {
    const problems = document.errors.map((error): ConfigProblem => {
      const at = lineCounter.linePos(error.pos[0]);
      return { path: '', origin, message: `the file is not valid YAML: line ${at.line}, column ${at.col}: ${error.message}.` };
    });
    return { data: undefined, problems, warnings };
  }
  return { data: document.toJS(), problems: [], warnings };
}
