// Kept apart from the schema (value-types.ts) so that the agent and the layer, which match these regexes at
// run time, do not bundle the schema library.

/**
 * The one way config regexes are compiled, so that validation here and matching in the layer and the agent
 * agree. mirrord's filters are case-insensitive, so these are too. The syntax is JavaScript's: mirrord's
 * Rust-only constructs (`(?i)`, `(?P<name>…)`) are reported as errors rather than silently misread.
 */
export function compileConfigRegex(pattern: string): RegExp {
  return new RegExp(pattern, 'i');
}

/** `text` as a regex that matches exactly it. */
export function escapeRegex(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
