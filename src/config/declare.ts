// The vocabulary in which options.ts declares every option exactly once. A declaration is plain data (a zod
// schema, a default, a description, maybe an env var name or a CLI flag); everything else — the resolved
// TypeScript type, validation, the env and flag layers, the JSON Schema, the docs — is derived from the
// tree of declarations by walking it, so adding an option is adding one `option({...})` in one place.
//
// Three kinds of node:
// - option: a leaf with one value, one env var, at most one CLI flag;
// - group: an object of named children; it may also accept a shorthand (mirrord's `"incoming": "steal"`,
//   `"fs": false`…) that expands into the object form before validation;
// - ignored: a key that is accepted and ignored: a mirrord key remocal does not support yet (so that a team's
//   mirrord.json loads, with a warning naming it), or `$schema` for editors.

import type { z } from 'zod';

/** A CLI flag bound to an option. The flag's value goes through the option's schema like any other value. */
export type FlagSpec =
  | {
      /** Long name without dashes, kebab-case: `fs-mode`. */
      name: string;
      /** One letter, without the dash. */
      short?: string;
      /** The flag takes a value, parsed like the option's env var; shown as `--name <ARGUMENT>`. */
      argument: string;
      description?: string;
    }
  | {
      name: string;
      short?: string;
      /** A switch: its presence sets the option to this value (`--steal` sets incoming mode to "steal"). */
      sets: unknown;
      description?: string;
    };

export interface OptionDecl<S extends z.ZodType = z.ZodType, HasDefault extends boolean = boolean, F extends FlagSpec | undefined = FlagSpec | undefined> {
  readonly kind: 'option';
  readonly schema: S;
  readonly hasDefault: HasDefault;
  /** Undefined when the option has no default (then the resolved value may be undefined). */
  readonly default: z.output<S> | undefined;
  readonly description: string;
  /** Env var name; derived from the key path (REMOCAL_FEATURE_FS_MODE) unless given. */
  readonly env: string | undefined;
  readonly flag: F;
  /** How the docs describe the default when there is none, or when it depends on the run. */
  readonly docsDefault: string | undefined;
  /** Declared with its type so that it is validated, but remocal does not act on it yet: setting it warns. */
  readonly notYetSupported: boolean;
}

export interface ShorthandSpec<S extends z.ZodType = z.ZodType> {
  readonly schema: S;
  /** Turns the shorthand into the object form, which is then read as if the file had said it. */
  readonly expand: (value: z.output<S>) => Record<string, unknown>;
  readonly description: string;
}

/** What a group's cross-field check can report; paths are relative to the group. */
export interface GroupCheckContext {
  error(path: string, message: string, extra?: { value?: unknown; allowed?: string[] }): void;
  warn(path: string, message: string): void;
}

export interface GroupDecl<C extends Record<string, Decl> = Record<string, Decl>> {
  readonly kind: 'group';
  readonly description: string;
  readonly children: C;
  readonly shorthand: ShorthandSpec | undefined;
  // A method, not a function property, so that a group of specific children is still a GroupDecl.
  check?(value: ResolvedGroup<C>, context: GroupCheckContext): void;
}

export interface IgnoredDecl {
  readonly kind: 'ignored';
  readonly description: string;
  /** True for mirrord keys remocal does not support yet: setting one warns. */
  readonly mirrord: boolean;
}

export type Decl = OptionDecl | GroupDecl<any> | IgnoredDecl;

interface OptionSpec<S extends z.ZodType, F extends FlagSpec | undefined> {
  schema: S;
  description: string;
  env?: string;
  flag?: F;
  docsDefault?: string;
  notYetSupported?: boolean;
}

// Two signatures so that whether a default was given is part of the type (the resolved value is then never
// undefined). NoInfer: the flag's literal type must come from the spec, not from the group's expected type.
export function option<S extends z.ZodType, const F extends FlagSpec | undefined = undefined>(spec: OptionSpec<S, F> & { default: z.output<S> }): OptionDecl<S, true, NoInfer<F>>;
export function option<S extends z.ZodType, const F extends FlagSpec | undefined = undefined>(spec: OptionSpec<S, F> & { default?: undefined }): OptionDecl<S, false, NoInfer<F>>;
export function option(spec: OptionSpec<z.ZodType, FlagSpec | undefined> & { default?: unknown }): OptionDecl {
  return {
    kind: 'option',
    schema: spec.schema,
    hasDefault: spec.default !== undefined,
    default: spec.default,
    description: spec.description,
    env: spec.env,
    flag: spec.flag,
    docsDefault: spec.docsDefault,
    notYetSupported: spec.notYetSupported ?? false,
  };
}

export function group<const C extends Record<string, Decl>, S extends z.ZodType = z.ZodNever>(spec: {
  description: string;
  children: C;
  shorthand?: ShorthandSpec<S>;
  check?: (value: ResolvedGroup<C>, context: GroupCheckContext) => void;
}): GroupDecl<C> {
  return {
    kind: 'group',
    description: spec.description,
    children: spec.children,
    shorthand: spec.shorthand as ShorthandSpec | undefined,
    ...(spec.check === undefined ? {} : { check: spec.check }),
  };
}

/** A mirrord key remocal does not support yet: accepted, warned about, ignored. */
export function mirrordOnly(description: string): IgnoredDecl {
  return { kind: 'ignored', description, mirrord: true };
}

/** A key accepted silently and ignored (`$schema`, which is for editors). */
export function editorOnly(description: string): IgnoredDecl {
  return { kind: 'ignored', description, mirrord: false };
}

// --- derived types -----------------------------------------------------------------------------------------

export type ResolvedOf<D> =
  D extends OptionDecl<infer S, infer HasDefault, any>
    ? HasDefault extends true
      ? z.output<S>
      : z.output<S> | undefined
    : D extends GroupDecl<infer C>
      ? ResolvedGroup<C>
      : never;

export type ResolvedGroup<C> = {
  -readonly [K in keyof C as C[K] extends IgnoredDecl ? never : K]: ResolvedOf<C[K]>;
};

type KebabToCamel<S extends string> = S extends `${infer Head}-${infer Tail}` ? `${Head}${Capitalize<KebabToCamel<Tail>>}` : S;

type UnionToIntersection<U> = (U extends unknown ? (arg: U) => void : never) extends (arg: infer I) => void ? I : never;

type FlagEntry<F> = F extends { name: infer N extends string; sets: unknown }
  ? { [K in KebabToCamel<N>]?: boolean }
  : F extends { name: infer N extends string; argument: string }
    ? { [K in KebabToCamel<N>]?: string }
    : never;

type FlagEntriesOf<D> =
  D extends OptionDecl<any, any, infer F> ? FlagEntry<F> : D extends GroupDecl<infer C> ? { [K in keyof C]: FlagEntriesOf<C[K]> }[keyof C] : never;

/**
 * The CLI flags of a declaration tree, keyed as commander names a flag's attribute (`--fs-mode` → `fsMode`):
 * switches are booleans, flags with an argument are strings. A flag renamed or removed in options.ts fails
 * to compile wherever the CLI still reads it.
 */
export type FlagsOf<D> = UnionToIntersection<FlagEntriesOf<D>> extends infer I ? { [K in keyof I]: I[K] } : never;

// --- walking ------------------------------------------------------------------------------------------------

export interface DeclaredOption {
  /** Dotted key path: `feature.network.incoming.mode`. */
  path: string;
  keys: string[];
  decl: OptionDecl;
  envName: string;
}

export interface DeclaredNode {
  path: string;
  keys: string[];
  decl: Decl;
}

/** Every node of the tree, parents before children, in declaration order (which is also the docs' order). */
export function walkDeclarations(root: GroupDecl, keys: string[] = []): DeclaredNode[] {
  const nodes: DeclaredNode[] = [];
  for (const [key, decl] of Object.entries(root.children)) {
    const childKeys = [...keys, key];
    nodes.push({ path: childKeys.join('.'), keys: childKeys, decl });
    if (decl.kind === 'group') nodes.push(...walkDeclarations(decl, childKeys));
  }
  return nodes;
}

export function listOptions(root: GroupDecl): DeclaredOption[] {
  return walkDeclarations(root).flatMap((node) =>
    node.decl.kind === 'option' ? [{ path: node.path, keys: node.keys, decl: node.decl, envName: node.decl.env ?? deriveEnvName(node.keys) }] : [],
  );
}

export function deriveEnvName(keys: readonly string[]): string {
  return `REMOCAL_${keys.join('_').toUpperCase().replace(/[^A-Z0-9]+/g, '_')}`;
}

export function flagAttribute(name: string): string {
  return name.replace(/-([a-z0-9])/g, (_, letter: string) => letter.toUpperCase());
}
