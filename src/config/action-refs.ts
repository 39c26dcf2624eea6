// The reference syntax of action steps: a value may use what an earlier step produced.
//
//   ${steps.<step>.<output>}     the output <output> of the step named <step>
//   $${                          a literal "${" (so a shell's own ${VAR} can still be written)
//
// Any other "${…}" is an error, so that a typo is reported at load time and never reaches a command as text.
// Pure and free of the schema library: the config validates references with it, the CLI substitutes them.

export interface StepReference {
  step: string;
  output: string;
  /** The reference as written, for messages. */
  text: string;
}

export type ReferencePart = { literal: string } | { reference: StepReference };

/** Step names: what references and progress lines use. Output names: a regex's named groups, or `stdout`. */
export const STEP_NAME = /^[A-Za-z_][A-Za-z0-9_-]*$/;
const REFERENCE = /^\$\{steps\.([A-Za-z_][A-Za-z0-9_-]*)\.([A-Za-z_][A-Za-z0-9_]*)\}/;

export class ReferenceSyntaxError extends Error {}

/** Splits a value into literal text and references; throws ReferenceSyntaxError on a malformed "${". */
export function parseReferences(value: string): ReferencePart[] {
  const parts: ReferencePart[] = [];
  let literal = '';
  let at = 0;
  while (at < value.length) {
    if (value.startsWith('$${', at)) {
      literal += '${';
      at += 3;
      continue;
    }
    if (value.startsWith('${', at)) {
      const match = REFERENCE.exec(value.slice(at));
      if (match === null) {
        const end = value.indexOf('}', at);
        const shown = end < 0 ? value.slice(at) : value.slice(at, end + 1);
        throw new ReferenceSyntaxError(
          `${JSON.stringify(shown)} is not a reference: write \${steps.<step>.<output>}, or $\${ for a literal "\${".`,
        );
      }
      if (literal !== '') parts.push({ literal });
      literal = '';
      parts.push({ reference: { step: match[1]!, output: match[2]!, text: match[0] } });
      at += match[0].length;
      continue;
    }
    literal += value[at];
    at += 1;
  }
  if (literal !== '') parts.push({ literal });
  return parts;
}

export function referencesIn(value: string): StepReference[] {
  return parseReferences(value).flatMap((part) => ('reference' in part ? [part.reference] : []));
}

/**
 * The value with every reference replaced by the output it names. `lookup` answers undefined for an output
 * that is not there (a step that did not run), which becomes the error `missing` builds.
 */
export function substituteReferences(value: string, lookup: (reference: StepReference) => string | undefined, missing: (reference: StepReference) => Error): string {
  return parseReferences(value)
    .map((part) => {
      if ('literal' in part) return part.literal;
      const found = lookup(part.reference);
      if (found === undefined) throw missing(part.reference);
      return found;
    })
    .join('');
}

/**
 * The named capture groups of a regex's source: `(?<port>\d+)`. Lookbehinds (`(?<=`, `(?<!`) have no name, and an
 * escaped parenthesis is no group.
 */
export function namedGroups(source: string): string[] {
  const names: string[] = [];
  for (const match of source.matchAll(/(\\*)\(\?<([A-Za-z_$][A-Za-z0-9_$]*)>/g)) {
    if (match[1]!.length % 2 === 0) names.push(match[2]!);
  }
  return names;
}
