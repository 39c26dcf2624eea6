// Resolution: from the parsed file, the env vars and the CLI flags to one validated RemocalConfig. Pure (no
// file system), so that load.ts, verify.ts and the tests share it.
//
// Each layer is read into a flat map of option path → validated value, collecting every problem on the way;
// then, option by option, the first layer that has a value wins (flag > env > file > default). Group checks
// (keys that exclude each other) run last, on the merged config.

import {
  listOptions,
  walkDeclarations,
  flagAttribute,
  type DeclaredOption,
  type GroupDecl,
  type GroupCheckContext,
  type FlagSpec,
} from './declare.js';
import {
  describeJsonError,
  didYouMean,
  issuesToProblems,
  joinPath,
  jsonSchemaOf,
  showValue,
  suggest,
  typeLabel,
  type ConfigOrigin,
  type ConfigProblem,
  type ConfigWarning,
  type JsonSchema,
} from './errors.js';
import { configOptions, type ConfigFlags, type RemocalConfig } from './options.js';

export interface ConfigInputs {
  /** The parsed config file, if there is one. `path` is only used to say where a problem is. */
  file?: { path: string; data: unknown } | undefined;
  env?: Readonly<Record<string, string | undefined>> | undefined;
  /** The CLI's parsed options; only the attributes of the declared config flags are read. */
  flags?: Readonly<ConfigFlags> | undefined;
}

export interface Resolution {
  /** Undefined when there are problems. */
  config: RemocalConfig | undefined;
  problems: ConfigProblem[];
  warnings: ConfigWarning[];
}

/** Option path → validated value, with where it came from. */
type Values = Map<string, { value: unknown; origin: ConfigOrigin }>;

interface Collector {
  problems: ConfigProblem[];
  warnings: ConfigWarning[];
}

export function resolveConfig(inputs: ConfigInputs, root: GroupDecl = configOptions): Resolution {
  const collector: Collector = { problems: [], warnings: [] };
  const options = listOptions(root);

  const fileValues: Values = new Map();
  if (inputs.file !== undefined) {
    const origin: ConfigOrigin = { kind: 'file', file: inputs.file.path };
    const data = inputs.file.data;
    if (data === null || data === undefined) {
      // An empty file is a file with no settings.
    } else if (!isPlainObject(data)) {
      collector.problems.push({ path: '', origin, message: `the file must hold an object of settings, not ${showValue(data)}.`, value: data });
    } else {
      readGroup(root, data, [], fileValues, collector, origin);
    }
  }
  const envValues = readEnv(options, inputs.env ?? {}, collector);
  const flagValues = readFlags(options, inputs.flags ?? {}, collector);

  const config: Record<string, unknown> = {};
  const byPath = new Map(options.map((entry) => [entry.path, entry]));
  for (const node of walkDeclarations(root)) {
    if (node.decl.kind === 'group') setAt(config, node.keys, {});
    const entry = byPath.get(node.path);
    if (entry === undefined) continue;
    const given = [flagValues, envValues, fileValues].find((values) => values.has(entry.path))?.get(entry.path);
    setAt(config, entry.keys, given === undefined ? structuredClone(entry.decl.default) : given.value);
    if (entry.decl.notYetSupported && given !== undefined) collector.warnings.push({ path: entry.path, origin: given.origin, message: notSupportedMessage(entry.path) });
  }

  if (collector.problems.length === 0) runGroupChecks(root, config, [], collector);
  return {
    config: collector.problems.length === 0 ? (config as RemocalConfig) : undefined,
    problems: collector.problems,
    warnings: collector.warnings,
  };
}

function notSupportedMessage(path: string): string {
  return `\`${path}\` is a mirrord option remocal does not support yet; it is ignored.`;
}

// --- the file ---------------------------------------------------------------------------------------------

function readGroup(group: GroupDecl, data: Record<string, unknown>, keys: string[], out: Values, collector: Collector, origin: ConfigOrigin): void {
  for (const [key, value] of Object.entries(data)) {
    const childKeys = [...keys, key];
    const path = childKeys.join('.');
    const decl = Object.hasOwn(group.children, key) ? group.children[key] : undefined;
    if (decl === undefined) {
      const candidates = Object.keys(group.children);
      const suggestion = suggest(key, candidates);
      const known = candidates.filter((candidate) => group.children[candidate]!.kind !== 'ignored');
      collector.problems.push({
        path,
        origin,
        message: `unknown key "${key}". Known keys here: ${known.join(', ')}.${didYouMean(suggestion)}`,
        value,
        allowed: known,
        ...(suggestion === undefined ? {} : { suggestion }),
      });
      continue;
    }
    // mirrord writes `null` for "not set" (its options are Option<T>), so null is read as absent.
    if (value === null || value === undefined) continue;
    if (decl.kind === 'ignored') {
      if (decl.mirrord) collector.warnings.push({ path, origin, message: notSupportedMessage(path) });
    } else if (decl.kind === 'group') {
      readGroupValue(decl, value, childKeys, out, collector, origin);
    } else {
      const result = decl.schema.safeParse(value);
      if (result.success) out.set(path, { value: result.data, origin });
      else collector.problems.push(...issuesToProblems(result.error.issues, { schema: decl.schema, input: value, basePath: path, origin }));
    }
  }
}

function readGroupValue(group: GroupDecl, value: unknown, keys: string[], out: Values, collector: Collector, origin: ConfigOrigin): void {
  if (isPlainObject(value)) {
    readGroup(group, value, keys, out, collector, origin);
    return;
  }
  const path = keys.join('.');
  const shorthand = group.shorthand;
  if (shorthand === undefined) {
    collector.problems.push({ path, origin, message: `expected an object, got ${showValue(value)}.`, value });
    return;
  }
  const result = shorthand.schema.safeParse(value);
  if (result.success) {
    readGroup(group, shorthand.expand(result.data), keys, out, collector, origin);
    return;
  }
  const shorthandSchema = jsonSchemaOf(shorthand.schema);
  const accepted = acceptedJsonTypes(shorthandSchema);
  const type = jsonTypeOf(value);
  if (accepted.has(type) || (type === 'string' && accepted.has('enum')) || (type === 'integer' && accepted.has('number'))) {
    // The value has the shorthand's type (a string where a mode string is allowed): say what is wrong with it.
    collector.problems.push(...issuesToProblems(result.error.issues, { schema: shorthand.schema, input: value, basePath: path, origin }));
  } else {
    collector.problems.push({ path, origin, message: `expected an object or ${typeLabel(shorthandSchema)}, got ${showValue(value)}.`, value });
  }
}

// --- env vars and flags -------------------------------------------------------------------------------------

function readEnv(options: readonly DeclaredOption[], env: Readonly<Record<string, string | undefined>>, collector: Collector): Values {
  const values: Values = new Map();
  for (const entry of options) {
    const text = env[entry.envName];
    // An empty variable (`REMOCAL_X= cmd`) reads as unset, as shells make it easy to leave one empty.
    if (text === undefined || text === '') continue;
    readText(entry, text, { kind: 'env', name: entry.envName }, values, collector);
  }
  return values;
}

function readFlags(options: readonly DeclaredOption[], flags: Readonly<Record<string, unknown>>, collector: Collector): Values {
  const values: Values = new Map();
  for (const entry of options) {
    const flag = entry.decl.flag as FlagSpec | undefined;
    if (flag === undefined) continue;
    const given = flags[flagAttribute(flag.name)];
    if (given === undefined || given === false) continue;
    const origin: ConfigOrigin = { kind: 'flag', name: `--${flag.name}` };
    if ('sets' in flag) {
      values.set(entry.path, { value: flag.sets, origin });
    } else if (typeof given === 'string') {
      readText(entry, given, origin, values, collector);
    } else {
      validateInto(entry, given, origin, values, collector);
    }
  }
  return values;
}

function readText(entry: DeclaredOption, text: string, origin: ConfigOrigin, values: Values, collector: Collector): void {
  const parsed = parseText(text, jsonSchemaOf(entry.decl.schema));
  if (!parsed.ok) {
    collector.problems.push({ path: entry.path, origin, message: `${showValue(text)} ${parsed.reason}.`, value: text });
    return;
  }
  validateInto(entry, parsed.value, origin, values, collector);
}

function validateInto(entry: DeclaredOption, value: unknown, origin: ConfigOrigin, values: Values, collector: Collector): void {
  const result = entry.decl.schema.safeParse(value);
  if (result.success) values.set(entry.path, { value: result.data, origin });
  else collector.problems.push(...issuesToProblems(result.error.issues, { schema: entry.decl.schema, input: value, basePath: entry.path, origin }));
}

/**
 * Reads an env var or flag text as the option's type expects: JSON for objects and arrays (`[...]`, `{...}`),
 * `true`/`false` for booleans, numbers, and mirrord's `;`-separated lists ("80;8080") for arrays. Text the
 * option takes as a string is kept as it is, so a regex or a target needs no quoting.
 */
export function parseText(text: string, schema: JsonSchema): { ok: true; value: unknown } | { ok: false; reason: string } {
  const types = acceptedJsonTypes(schema);
  const trimmed = text.trim();
  if ((types.has('array') || types.has('object')) && /^[[{]/.test(trimmed)) {
    try {
      return { ok: true, value: JSON.parse(trimmed) };
    } catch (error) {
      return { ok: false, reason: `is not valid JSON (${describeJsonError(trimmed, error)})` };
    }
  }
  if (types.has('string')) return { ok: true, value: text };
  if (enumValues(schema).includes(trimmed)) return { ok: true, value: trimmed };
  if (types.has('boolean')) {
    const lower = trimmed.toLowerCase();
    if (['true', '1', 'yes', 'on'].includes(lower)) return { ok: true, value: true };
    if (['false', '0', 'no', 'off'].includes(lower)) return { ok: true, value: false };
  }
  if ((types.has('number') || types.has('integer')) && /^-?\d+(\.\d+)?$/.test(trimmed)) return { ok: true, value: Number(trimmed) };
  if (types.has('array')) {
    const item = arrayItemSchema(schema);
    const items = trimmed.split(';').map((part) => part.trim()).filter((part) => part !== '');
    return { ok: true, value: items.map((part) => { const inner = item === undefined ? undefined : parseText(part, item); return inner?.ok ? inner.value : part; }) };
  }
  return { ok: true, value: text };
}

/** JSON types a schema accepts as free values; a string enum counts as "enum", not "string". */
function acceptedJsonTypes(schema: JsonSchema): Set<string> {
  const types = new Set<string>();
  const visit = (node: JsonSchema): void => {
    for (const alternative of node.anyOf ?? node.oneOf ?? []) visit(alternative);
    if (node.enum !== undefined || 'const' in node) {
      for (const value of node.enum ?? [node.const]) types.add(typeof value === 'string' ? 'enum' : jsonTypeOf(value));
      return;
    }
    for (const type of Array.isArray(node.type) ? node.type : node.type === undefined ? [] : [node.type]) types.add(type);
  };
  visit(schema);
  return types;
}

function enumValues(schema: JsonSchema): unknown[] {
  return [...(schema.enum ?? []), ...('const' in schema ? [schema.const] : []), ...(schema.anyOf ?? schema.oneOf ?? []).flatMap((alternative) => enumValues(alternative))];
}

function arrayItemSchema(schema: JsonSchema): JsonSchema | undefined {
  if (schema.type === 'array' && schema.items !== undefined && !Array.isArray(schema.items)) return schema.items;
  for (const alternative of schema.anyOf ?? schema.oneOf ?? []) {
    const item = arrayItemSchema(alternative);
    if (item !== undefined) return item;
  }
  return undefined;
}

function jsonTypeOf(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  if (typeof value === 'number') return Number.isInteger(value) ? 'integer' : 'number';
  return typeof value;
}

// --- checks across keys --------------------------------------------------------------------------------------

function runGroupChecks(group: GroupDecl, value: Record<string, unknown>, keys: string[], collector: Collector): void {
  for (const [key, child] of Object.entries(group.children)) {
    if (child.kind === 'group') runGroupChecks(child, value[key] as Record<string, unknown>, [...keys, key], collector);
  }
  if (group.check === undefined) return;
  const at = (relative: string): string => joinPath(keys.join('.'), relative === '' ? [] : relative.split('.'));
  const context: GroupCheckContext = {
    error: (relative, message, extra = {}) => collector.problems.push({ path: at(relative), message, ...extra }),
    warn: (relative, message) => collector.warnings.push({ path: at(relative), message }),
  };
  group.check(value as never, context);
}

// --- helpers ------------------------------------------------------------------------------------------------

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function setAt(target: Record<string, unknown>, keys: readonly string[], value: unknown): void {
  let node = target;
  for (const key of keys.slice(0, -1)) node = node[key] as Record<string, unknown>;
  node[keys[keys.length - 1]!] = value;
}
