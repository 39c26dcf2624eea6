// The command's environment: the developer's own, with the target's laid over it, as mirrord does it.
// A few variables describe the developer's machine rather than the app (where binaries are, who is logged
// in, the terminal), and taking the target's would break the command itself; they stay local unless the
// user includes them by name.
//
// Order: local → remote (include/exclude) → env_file → mapping → override → unset.

import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { parseEnv } from 'node:util';
import { ConfigError } from '../core/errors.js';
import { compileConfigRegex, type RemocalConfig } from '../config/index.js';

export type EnvPolicy = RemocalConfig['feature']['env'];

export const LOCAL_MACHINE_VARIABLES = ['PATH', 'HOME', 'USER', 'LOGNAME', 'SHELL', 'PWD', 'OLDPWD', 'SHLVL', 'TERM', 'TMPDIR', 'NODE_OPTIONS', '_'];

export function globToRegExp(pattern: string, flags = ''): RegExp {
  const body = pattern.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.');
  return new RegExp(`^${body}$`, flags);
}

export function mergeEnvironment(local: NodeJS.ProcessEnv, remote: Record<string, string> | null, policy: EnvPolicy, cwd = process.cwd()): Record<string, string> {
  const result: Record<string, string> = {};
  for (const [key, value] of Object.entries(local)) if (value !== undefined) result[key] = value;
  if (remote !== null && policy.enabled) {
    const include = policy.include?.map((pattern) => globToRegExp(pattern)) ?? null;
    const exclude = (policy.exclude ?? []).map((pattern) => globToRegExp(pattern));
    for (const [key, value] of Object.entries(remote)) {
      if (include !== null && !include.some((pattern) => pattern.test(key))) continue;
      if (exclude.some((pattern) => pattern.test(key))) continue;
      if (LOCAL_MACHINE_VARIABLES.includes(key) && !(policy.include ?? []).includes(key)) continue;
      result[key] = value;
    }
  }
  if (policy.env_file !== undefined) Object.assign(result, readEnvFile(resolve(cwd, policy.env_file)));
  for (const [pattern, value] of Object.entries(policy.mapping ?? {})) {
    const regex = compileConfigRegex(pattern);
    for (const key of Object.keys(result)) if (regex.test(key)) result[key] = value;
  }
  Object.assign(result, policy.override ?? {});
  const unset = (policy.unset ?? []).map((pattern) => globToRegExp(pattern, 'i'));
  for (const key of Object.keys(result)) if (unset.some((pattern) => pattern.test(key))) delete result[key];
  return result;
}

function readEnvFile(path: string): Record<string, string> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new ConfigError(`feature.env.env_file: cannot read ${path}: ${(error as Error).message}.`, { hint: 'Fix the path (it is relative to the working directory) or remove the option.' });
  }
  return parseEnv(text) as Record<string, string>;
}
