// How config problems are described. Validation never stops at the first problem: every unknown key and bad
// value in the file, the env vars and the flags is collected, then reported at once, each with the key path,
// the bad value, what is allowed and, when a near miss is obvious, a "did you mean". The same list is
// available as data (ConfigProblem[]) for `verify-config --json`.

import { z } from 'zod';
import { ConfigError, type RemocalErrorOptions } from '../core/errors.js';

export type ConfigOrigin = { kind: 'file'; file: string } | { kind: 'env'; name: string } | { kind: 'flag'; name: string };

export interface ConfigProblem {
  /** Dotted key path, array items as [i]: `feature.network.outgoing.filter.local[1]`. Empty for the whole file. */
  path: string;
  /** A complete sentence, including the allowed values and the suggestion when there are some. */
  message: string;
  /** Where the bad value came from; absent for problems between several values (two exclusive keys). */
  origin?: ConfigOrigin;
  value?: unknown;
  allowed?: string[];
  suggestion?: string;
}

export interface ConfigWarning {
  path: string;
  message: string;
  origin?: ConfigOrigin;
}

/** A ConfigError that carries the structured list of problems. */
export class ConfigValidationError extends ConfigError {
  readonly problems: ConfigProblem[];

  constructor(problems: ConfigProblem[], { file = null, ...options }: RemocalErrorOptions & { file?: string | null } = {}) {
    super(formatProblems(problems, file), { ...options, details: { ...options.details, problems } });
    this.problems = problems;
  }
}

export function formatProblems(problems: readonly ConfigProblem[], file: string | null): string {
  const count = problems.length === 1 ? '1 problem' : `${problems.length} problems`;
  const where = file === null ? '' : ` in ${file}`;
  return [`Invalid remocal configuration${where} (${count}):`, ...problems.map((problem) => `  - ${formatProblem(problem)}`)].join('\n');
}

export function formatProblem(problem: ConfigProblem): string {
  return `${describeLocation(problem.path, problem.origin)}: ${problem.message}`;
}

export function formatWarning(warning: ConfigWarning): string {
  return `${describeLocation(warning.path, warning.origin)}: ${warning.message}`;
}

function describeLocation(path: string, origin: ConfigOrigin | undefined): string {
  const key = path === '' ? '(top level)' : path;
  if (origin?.kind === 'env') return `${origin.name} (${key})`;
  if (origin?.kind === 'flag') return `${origin.name} (${key})`;
  return key;
}

// --- did you mean ------------------------------------------------------------------------------------------

/**
 * Edit distance where swapping two neighbouring letters costs one edit, since "mdoe" for "mode" is the
 * commonest typo in hand-written config.
 */
export function editDistance(a: string, b: string): number {
  const rows = a.length + 1;
  const cols = b.length + 1;
  const table: number[][] = Array.from({ length: rows }, (_, i) => Array.from({ length: cols }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  for (let i = 1; i < rows; i++) {
    for (let j = 1; j < cols; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let best = Math.min(table[i - 1]![j]! + 1, table[i]![j - 1]! + 1, table[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) best = Math.min(best, table[i - 2]![j - 2]! + 1);
      table[i]![j] = best;
    }
  }
  return table[a.length]![b.length]!;
}

/** The candidate the user most likely meant, or undefined when none is close enough to be a fair guess. */
export function suggest(input: string, candidates: readonly string[]): string | undefined {
  const typed = input.toLowerCase();
  let best: { candidate: string; distance: number } | undefined;
  for (const candidate of candidates) {
    const wanted = candidate.toLowerCase();
    if (wanted === typed) return candidate;
    const distance = editDistance(typed, wanted);
    const closeEnough = distance <= Math.max(1, Math.floor(wanted.length / 3)) || (typed.length >= 3 && wanted.startsWith(typed));
    if (closeEnough && (best === undefined || distance < best.distance)) best = { candidate, distance };
  }
  return best?.candidate;
}

export function showValue(value: unknown): string {
  if (value === undefined) return 'nothing';
  const text = JSON.stringify(value);
  if (text === undefined) return String(value);
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

/** JSON.parse's complaint with a line and column instead of an offset (Node versions word the offset differently). */
export function describeJsonError(text: string, error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  const position = / in JSON at position (\d+)(?: \(line \d+ column \d+\))?$/.exec(message);
  if (position === null) return message;
  const before = text.slice(0, Number(position[1]));
  const line = before.split('\n').length;
  const column = before.length - before.lastIndexOf('\n');
  return `${message.slice(0, position.index)} at line ${line}, column ${column}`;
}

export function joinPath(base: string, segments: readonly PropertyKey[]): string {
  let path = base;
  for (const segment of segments) {
    if (typeof segment === 'number') path += `[${segment}]`;
    else path += path === '' ? String(segment) : `.${String(segment)}`;
  }
  return path;
}

// --- zod issues → problems --------------------------------------------------------------------------------

type Issue = z.core.$ZodIssue;

export interface IssueContext {
  /** The schema that produced the issues, to name what was expected and which keys exist. */
  schema: z.ZodType;
  /** The value that was validated, to show the bad part of it. */
  input: unknown;
  /** Key path of the validated value. */
  basePath: string;
  origin: ConfigOrigin | undefined;
}

export function issuesToProblems(issues: readonly Issue[], context: IssueContext): ConfigProblem[] {
  const problems = issues.flatMap((issue) => issueToProblems(issue, context, []));
  // `{ "heder": "x" }` is one typo, not also a missing "header": when an unknown key suggests a missing one,
  // only the unknown key is reported.
  const suggested = new Set(problems.flatMap((problem) => (problem.suggestion === undefined ? [] : [`${parentPath(problem.path)}.${problem.suggestion}`])));
  return problems.filter((problem) => !(problem.value === undefined && suggested.has(problem.path)));
}

function parentPath(path: string): string {
  const cut = Math.max(path.lastIndexOf('.'), path.lastIndexOf('['));
  return cut < 0 ? '' : path.slice(0, cut);
}

function issueToProblems(issue: Issue, context: IssueContext, prefix: PropertyKey[]): ConfigProblem[] {
  const segments = [...prefix, ...issue.path];
  const path = joinPath(context.basePath, segments);
  const params = issue.code === 'custom' ? ((issue.params ?? {}) as { value?: unknown; allowed?: string[]; suggestion?: string }) : {};
  const value = 'value' in params ? params.value : valueAt(context.input, segments);
  const base = { path, ...(context.origin === undefined ? {} : { origin: context.origin }) };

  switch (issue.code) {
    case 'unrecognized_keys': {
      const known = knownKeysAt(context.schema, segments);
      return issue.keys.map((key) => {
        const suggestion = suggest(key, known);
        return {
          ...base,
          path: joinPath(path, [key]),
          message: `unknown key "${key}".${known.length > 0 ? ` Known keys here: ${known.join(', ')}.` : ''}${didYouMean(suggestion)}`,
          value: valueAt(context.input, [...segments, key]),
          allowed: known,
          ...(suggestion === undefined ? {} : { suggestion }),
        };
      });
    }
    case 'invalid_value': {
      const allowed = issue.values.map((allowedValue) => showValue(allowedValue));
      const suggestion = typeof value === 'string' ? suggest(value, issue.values.filter((v): v is string => typeof v === 'string')) : undefined;
      return [
        {
          ...base,
          message: `${showValue(value)} is not allowed. Allowed: ${allowed.join(', ')}.${didYouMean(suggestion)}`,
          value,
          allowed: issue.values.map(String),
          ...(suggestion === undefined ? {} : { suggestion }),
        },
      ];
    }
    case 'invalid_union': {
      // A union fails as a whole; what helps is the failure of the branch whose shape the value had (for a
      // string given to `string | string[]`, the string branch's complaint).
      const matchingShape = issue.errors.filter((branch) => !branch.some((inner) => inner.path.length === 0 && (inner.code === 'invalid_type' || inner.code === 'invalid_union')));
      if (matchingShape.length > 0) {
        // Among object branches, the one the value fits best: unknown and missing keys weigh most, so that
        // `{ "path": "(" }` is reported as a bad path regex and not as a header filter missing its header.
        const weight = (branch: Issue[]): number =>
          branch.reduce((sum, inner) => {
            if (inner.code === 'unrecognized_keys') return sum + 10 * inner.keys.length;
            if (inner.code === 'invalid_type' && valueAt(context.input, [...segments, ...inner.path]) === undefined) return sum + 5;
            return sum + 1;
          }, 0);
        const best = matchingShape.reduce((chosen, branch) => (weight(branch) < weight(chosen) ? branch : chosen));
        return best.flatMap((inner) => issueToProblems(inner, context, segments));
      }
      return [{ ...base, message: `expected ${typeLabelAt(context.schema, segments)}, got ${showValue(value)}.`, value }];
    }
    case 'invalid_type':
      return [{ ...base, message: `expected ${typeLabelAt(context.schema, segments)}, got ${showValue(value)}.`, value }];
    case 'too_small':
    case 'too_big': {
      const bound = issue.code === 'too_small' ? issue.minimum : issue.maximum;
      const word = issue.code === 'too_small' ? 'at least' : 'at most';
      const what = issue.origin === 'array' ? `${word} ${String(bound)} item(s)` : issue.origin === 'string' ? `${word} ${String(bound)} character(s)` : `${word} ${String(bound)}`;
      const message = issue.origin === 'array' || issue.origin === 'string' ? `must have ${what}, got ${showValue(value)}.` : `${showValue(value)} is out of range: must be ${what}.`;
      return [{ ...base, message, value }];
    }
    case 'invalid_key':
      // A bad record key (a regex key of feature.env.mapping): the key is the value at fault.
      return issue.issues.flatMap((inner) => issueToProblems(inner as Issue, context, segments));
    case 'custom':
      return [
        {
          ...base,
          message: issue.message,
          value,
          ...(params.allowed === undefined ? {} : { allowed: params.allowed }),
          ...(params.suggestion === undefined ? {} : { suggestion: params.suggestion }),
        },
      ];
    default:
      return [{ ...base, message: `${showValue(value)}: ${issue.message}.`, value }];
  }
}

export function didYouMean(suggestion: string | undefined): string {
  return suggestion === undefined ? '' : ` Did you mean "${suggestion}"?`;
}

function valueAt(input: unknown, segments: readonly PropertyKey[]): unknown {
  let current = input;
  for (const segment of segments) {
    if (current === null || typeof current !== 'object') return undefined;
    current = (current as Record<PropertyKey, unknown>)[segment];
  }
  return current;
}

// --- looking inside zod schemas -----------------------------------------------------------------------------
// Zod issues say where a value failed, not what the schema expected there; these walk the schema's own
// definition to find the keys that exist at a path and the type it expects.

interface SchemaDef {
  type: string;
  innerType?: z.ZodType;
  in?: z.ZodType;
  shape?: Record<string, z.ZodType>;
  element?: z.ZodType;
  items?: z.ZodType[];
  valueType?: z.ZodType;
  options?: z.ZodType[];
  getter?: () => z.ZodType;
}

function defOf(schema: z.ZodType): SchemaDef {
  return (schema as unknown as { _zod: { def: SchemaDef } })._zod.def;
}

/** The schemas a value at `segments` may be checked against (several when unions are crossed). */
function schemasAt(schema: z.ZodType, segments: readonly PropertyKey[]): z.ZodType[] {
  let current = [schema];
  for (const segment of segments) {
    current = current.flatMap((candidate) => unwrapUnions(candidate)).flatMap((candidate) => {
      const def = defOf(candidate);
      if (def.type === 'object' && typeof segment === 'string' && def.shape?.[segment] !== undefined) return [def.shape[segment]];
      if (def.type === 'array' && typeof segment === 'number' && def.element !== undefined) return [def.element];
      if (def.type === 'tuple' && typeof segment === 'number' && def.items?.[segment] !== undefined) return [def.items[segment]];
      if (def.type === 'record' && def.valueType !== undefined) return [def.valueType];
      return [];
    });
  }
  return current;
}

function unwrap(schema: z.ZodType): z.ZodType {
  let current = schema;
  for (;;) {
    const def = defOf(current);
    if ((def.type === 'optional' || def.type === 'nullable' || def.type === 'default' || def.type === 'prefault' || def.type === 'readonly' || def.type === 'catch') && def.innerType) current = def.innerType;
    else if (def.type === 'pipe' && def.in) current = def.in;
    else if (def.type === 'lazy' && def.getter) current = def.getter();
    else return current;
  }
}

function unwrapUnions(schema: z.ZodType): z.ZodType[] {
  const inner = unwrap(schema);
  const def = defOf(inner);
  if (def.type === 'union' && def.options) return def.options.flatMap((option) => unwrapUnions(option));
  return [inner];
}

export function knownKeysAt(schema: z.ZodType, segments: readonly PropertyKey[]): string[] {
  const keys = new Set<string>();
  for (const candidate of schemasAt(schema, segments).flatMap((s) => unwrapUnions(s))) {
    const def = defOf(candidate);
    if (def.type === 'object' && def.shape) for (const key of Object.keys(def.shape)) keys.add(key);
  }
  return [...keys];
}

function typeLabelAt(schema: z.ZodType, segments: readonly PropertyKey[]): string {
  const candidates = schemasAt(schema, segments);
  if (candidates.length === 0) return 'a different value';
  return [...new Set(candidates.map((candidate) => typeLabel(jsonSchemaOf(candidate))))].join(' | ');
}

export function jsonSchemaOf(schema: z.ZodType): JsonSchema {
  return z.toJSONSchema(schema, { io: 'input', target: 'draft-7', unrepresentable: 'any' }) as JsonSchema;
}

export interface JsonSchema {
  type?: string | string[];
  enum?: unknown[];
  const?: unknown;
  anyOf?: JsonSchema[];
  oneOf?: JsonSchema[];
  items?: JsonSchema | JsonSchema[];
  properties?: Record<string, JsonSchema>;
  additionalProperties?: JsonSchema | boolean;
  description?: string;
  default?: unknown;
  [key: string]: unknown;
}

/** A short human name for a JSON Schema type: `string | string[]`, `"mirror" | "steal" | "off"`, `[port, port][]`. */
export function typeLabel(schema: JsonSchema): string {
  const alternatives = schema.anyOf ?? schema.oneOf;
  if (alternatives) return [...new Set(alternatives.map((alternative) => typeLabel(alternative)))].join(' | ');
  if (schema.enum) return schema.enum.map((value) => showValue(value)).join(' | ');
  if ('const' in schema) return showValue(schema.const);
  const type = Array.isArray(schema.type) ? schema.type.join(' | ') : schema.type;
  switch (type) {
    case 'array': {
      if (Array.isArray(schema.items)) return `[${schema.items.map((item) => typeLabel(item)).join(', ')}]`;
      const item = schema.items === undefined ? 'value' : typeLabel(schema.items);
      return item.includes(' | ') ? `(${item})[]` : `${item}[]`;
    }
    case 'object':
      if (schema.properties === undefined && typeof schema.additionalProperties === 'object') return `{ [key]: ${typeLabel(schema.additionalProperties)} }`;
      return 'object';
    case 'integer':
      return 'integer';
    case undefined:
      return 'any value';
    default:
      return type;
  }
}
