// The JSON Schema (for editors) and the Markdown reference (docs/config.md), both generated from the option
// declarations in options.ts. generate.ts writes them to disk; CI checks that the files on disk are current.

import { z } from 'zod';
import { flagAttribute, listOptions, walkDeclarations, type Decl, type DeclaredNode, type FlagSpec, type GroupDecl } from './declare.js';
import { jsonSchemaOf, typeLabel, type JsonSchema } from './errors.js';
import { CONFIG_DIR, CONFIG_FILE_NAMES } from './load.js';
import { configOptions } from './options.js';

interface SchemaMeta {
  description?: string;
}

export function renderJsonSchema(root: GroupDecl = configOptions): Record<string, unknown> {
  // A private registry: option schemas are shared values (one `port` schema serves many options), so the
  // per-option metadata goes on clones kept out of zod's global registry.
  const registry = z.registry<SchemaMeta>();
  const envNames = new Map(listOptions(root).map((entry) => [entry.path, entry.envName]));

  const build = (decl: Decl, path: string): z.ZodType => {
    if (decl.kind === 'ignored') {
      const schema = z.unknown();
      registry.add(schema, { description: decl.mirrord ? `mirrord option that remocal accepts and ignores (${decl.description})` : decl.description });
      return schema;
    }
    if (decl.kind === 'option') {
      const schema = decl.schema.clone();
      const notes = [`Env: ${envNames.get(path)!}.`, ...(decl.flag === undefined ? [] : [`Flag: ${flagUsage(decl.flag)}.`])];
      registry.add(schema, {
        description: `${decl.notYetSupported ? '(Not supported by remocal yet: accepted and ignored.) ' : ''}${decl.description} ${notes.join(' ')}`,
      });
      return schema;
    }
    const shape = Object.fromEntries(Object.entries(decl.children as Record<string, Decl>).map(([key, child]) => [key, build(child, path === '' ? key : `${path}.${key}`).optional()]));
    const object = z.strictObject(shape);
    const whole = decl.shorthand === undefined ? object : z.union([decl.shorthand.schema.clone(), object]);
    registry.add(whole, { description: decl.shorthand === undefined ? decl.description : `${decl.description} ${decl.shorthand.description}` });
    return whole;
  };

  const schema = z.toJSONSchema(build(root, ''), { io: 'input', target: 'draft-7', metadata: registry, unrepresentable: 'any' }) as JsonSchema;
  // Defaults are set here rather than through the registry: zod leaves them out of input-side schemas of
  // options whose value is transformed (log levels, lists), since a default describes the output.
  for (const entry of listOptions(root)) {
    if (entry.decl.default !== undefined) propertyAt(schema, entry.keys).default = entry.decl.default;
  }
  const { $schema, ...rest } = schema;
  return { $schema, title: 'remocal configuration', ...rest };
}

/** The JSON Schema node of the option at `keys`, following groups through their object form. */
function propertyAt(schema: JsonSchema, keys: readonly string[]): JsonSchema {
  let node = schema;
  for (const key of keys) {
    const objectForm = node.anyOf?.find((branch) => branch.properties !== undefined) ?? node;
    node = objectForm.properties![key]!;
  }
  return node;
}

export function flagUsage(flag: FlagSpec): string {
  const long = `--${flag.name}${'argument' in flag ? ` <${flag.argument}>` : ''}`;
  return flag.short === undefined ? long : `-${flag.short}, ${long}`;
}

export interface ConfigFlagInfo {
  /** Dotted path of the option the flag sets. */
  path: string;
  /** Long name, kebab-case, without dashes. */
  name: string;
  short: string | undefined;
  /** The attribute commander gives the flag's value (`fs-mode` → `fsMode`), which is the key in ConfigFlags. */
  attribute: string;
  /** Commander's flag syntax: `-t, --target <TARGET>`, `--steal`. */
  usage: string;
  description: string;
}

/** The flags the CLI registers on commands that load the config (exec). */
export function configFlags(root: GroupDecl = configOptions): ConfigFlagInfo[] {
  return listOptions(root).flatMap((entry) => {
    const flag = entry.decl.flag;
    if (flag === undefined) return [];
    return [
      {
        path: entry.path,
        name: flag.name,
        short: flag.short,
        attribute: flagAttribute(flag.name),
        usage: flagUsage(flag),
        description: flag.description ?? `${firstSentence(entry.decl.description)} (${entry.path})`,
      },
    ];
  });
}

function firstSentence(text: string): string {
  const end = text.search(/\.(\s|$)/);
  return end < 0 ? text : text.slice(0, end);
}

// --- docs --------------------------------------------------------------------------------------------------

export function renderConfigDocs(root: GroupDecl = configOptions): string {
  const envNames = new Map(listOptions(root).map((entry) => [entry.path, entry.envName]));
  const nodes = walkDeclarations(root);
  const out: string[] = [];
  const files = CONFIG_FILE_NAMES.map((name) => `\`${CONFIG_DIR}/${name}\``).join(', ');

  out.push(
    '# remocal configuration',
    '',
    '<!-- Generated from src/config/options.ts by `node --import tsx src/config/generate.ts`. Edit the declarations, not this file. -->',
    '',
    `remocal reads its configuration from the first of ${files} found in the current directory or the nearest`,
    'parent directory, or from the file given with `-f FILE` (`.json` is read as JSON, `.yaml`/`.yml` as YAML).',
    'The keys are mirrord\'s, so a `mirrord.json` can be given to `-f` as it is: mirrord options remocal does not',
    'support yet are accepted with a warning and ignored ([list](#mirrord-options-remocal-ignores)).',
    '',
    'Every option can also be set by an environment variable, and some by a CLI flag. For each option the first',
    'of these that is set wins: **CLI flag, then environment variable, then config file, then default**.',
    '',
    '- Environment variables are named after the key path (`feature.fs.mode` → `REMOCAL_FEATURE_FS_MODE`) unless a',
    '  shorter name is listed. Their text is read as the option\'s type: `true`/`false` (or `1`/`0`), numbers, JSON for',
    '  objects and arrays, or a `;`-separated list for arrays (`80;8080`). An empty variable counts as unset.',
    '- Some options have a short form, written in place of their object (`"incoming": "steal"`).',
    '- `null` counts as not set.',
    '- Check a file with `remocal verify-config [FILE]`; editors can validate it with `schema/remocal.schema.json`',
    '  (`"$schema": "…/remocal.schema.json"` in the file).',
    '',
    '## Options',
  );

  for (const node of nodes) {
    if (node.decl.kind === 'ignored') continue;
    out.push('', `${'#'.repeat(Math.min(node.keys.length + 2, 6))} \`${node.path}\``, '');
    if (node.decl.kind === 'group') {
      out.push(node.decl.description);
      if (node.decl.shorthand !== undefined) {
        out.push('', `Short form: \`${escapeCell(typeLabel(jsonSchemaOf(node.decl.shorthand.schema)))}\`. ${node.decl.shorthand.description}`);
      }
      continue;
    }
    const decl = node.decl;
    if (decl.notYetSupported) out.push('*Accepted for mirrord compatibility; remocal does not act on it yet (setting it warns).*', '');
    out.push(decl.description, '');
    out.push(
      '| Type | Default | Env var | Flag |',
      '| --- | --- | --- | --- |',
      `| \`${escapeCell(typeLabel(jsonSchemaOf(decl.schema)))}\` | ${escapeCell(describeDefault(node))} | \`${envNames.get(node.path)!}\` | ${decl.flag === undefined ? '' : `\`${flagUsage(decl.flag)}\``} |`,
    );
  }

  out.push(
    '',
    '## mirrord options remocal ignores',
    '',
    'These mirrord keys load without error, with a warning that names them; remocal does not act on them (yet).',
    '',
    '| Key | In mirrord |',
    '| --- | --- |',
    ...nodes.flatMap((node) => (node.decl.kind === 'ignored' && node.decl.mirrord ? [`| \`${node.path}\` | ${escapeCell(node.decl.description)} |`] : [])),
    '',
  );
  return out.join('\n');
}

function describeDefault(node: DeclaredNode): string {
  if (node.decl.kind !== 'option') return '';
  const decl = node.decl;
  if (decl.default !== undefined) return `\`${JSON.stringify(decl.default)}\``;
  return decl.docsDefault ?? 'not set';
}

function escapeCell(text: string): string {
  return text.replace(/\|/g, '\\|').replace(/\n/g, ' ');
}

