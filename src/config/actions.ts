// The schema of `actions`: steps run before and after a session (docs/actions.md). Each step is checked on its
// own by its shape, then the list as a whole: names are unique, and every `${steps.<step>.<output>}` names an
// earlier step that runs by then and an output that step has. A bad reference is a config error at load time,
// never a surprise half-way through a session.

import { z } from 'zod';
import { namedGroups, parseReferences, ReferenceSyntaxError, STEP_NAME } from './action-refs.js';
import { didYouMean, suggest } from './errors.js';
import { addressPattern, port, regex } from './value-types.js';

export const ACTION_PHASES = ['before', 'after'] as const;

const stringMap = () => z.record(z.string(), z.string());

/** `host:port`; the port may be a reference (`127.0.0.1:${steps.db.port}`). */
const tcpAddress = z.string().superRefine((address, context) => {
  const at = address.lastIndexOf(':');
  const portText = address.slice(at + 1);
  const portOk = portText.startsWith('${') || port.safeParse(Number(portText)).success;
  if (at <= 0 || !portOk) {
    context.addIssue({ code: 'custom', message: `${JSON.stringify(address)} is not host:port (as in "127.0.0.1:5432").`, params: { value: address } });
  }
});

const httpUrl = z.string().regex(/^https?:\/\/./, 'expected an http:// or https:// URL');

const waitFor = z.union([
  z.strictObject({ tcp: tcpAddress }),
  z.strictObject({ log: regex() }),
  z.strictObject({ http: httpUrl, status: z.int().min(100).max(599).optional() }),
]);

const actionStep = z.strictObject({
  name: z.string().regex(STEP_NAME, 'a step name is letters, digits, "_" and "-", starting with a letter or "_"'),
  when: z.enum(ACTION_PHASES),
  run: z.union([z.string().min(1), z.array(z.string()).min(1)]).optional(),
  job: z.strictObject({ template: z.string().min(1) }).optional(),
  cwd: z.string().min(1).optional(),
  run_env: stringMap().optional(),
  wait_for: waitFor.optional(),
  timeout: z.int().min(1).optional(),
  env: stringMap().optional(),
  outgoing_local: z.array(addressPattern('outgoing')).optional(),
});

export type ActionStep = z.output<typeof actionStep>;

/**
 * What `${steps.<name>.<output>}` may name for this step; null when any name is allowed: a cluster step's outputs
 * are `job` (its Job's name) and the `NAME=value` lines at the end of its log, known only once it ran.
 */
export function stepOutputs(step: ActionStep): string[] | null {
  if (step.job !== undefined) return null;
  if (step.wait_for === undefined) return ['stdout'];
  if ('log' in step.wait_for) return namedGroups(step.wait_for.log);
  return [];
}

/** Every field of a step that may hold references, with its path in the step. */
export function referenceFields(step: ActionStep): { path: (string | number)[]; value: string }[] {
  const fields: { path: (string | number)[]; value: string }[] = [];
  if (typeof step.run === 'string') fields.push({ path: ['run'], value: step.run });
  else step.run?.forEach((arg, index) => fields.push({ path: ['run', index], value: arg }));
  if (step.cwd !== undefined) fields.push({ path: ['cwd'], value: step.cwd });
  for (const [key, value] of Object.entries(step.run_env ?? {})) fields.push({ path: ['run_env', key], value });
  if (step.wait_for !== undefined && 'tcp' in step.wait_for) fields.push({ path: ['wait_for', 'tcp'], value: step.wait_for.tcp });
  if (step.wait_for !== undefined && 'http' in step.wait_for) fields.push({ path: ['wait_for', 'http'], value: step.wait_for.http });
  for (const [key, value] of Object.entries(step.env ?? {})) fields.push({ path: ['env', key], value });
  return fields;
}

export function actionList() {
  return z.array(actionStep).superRefine((steps, context) => {
    const issue = (path: (string | number)[], message: string, value?: unknown) =>
      context.addIssue({ code: 'custom', path, message, params: { value } });
    const seen = new Map<string, { index: number; step: ActionStep }>();
    steps.forEach((step, index) => {
      if (seen.has(step.name)) issue([index, 'name'], `${JSON.stringify(step.name)} is the name of step ${seen.get(step.name)!.index} too: step names must be unique.`, step.name);
      if ((step.run === undefined) === (step.job === undefined)) {
        issue([index], 'give a step either "run" (a command run here) or "job" (a Job run in the cluster by the operator).');
      }
      if (step.job !== undefined) {
        for (const key of ['cwd', 'wait_for'] as const) {
          if (step[key] !== undefined) issue([index, key], `applies to "run" steps only: a "job" step is ready when its Job completes.`);
        }
      }
      if (step.when === 'after') {
        for (const key of ['env', 'outgoing_local'] as const) {
          if (step[key] !== undefined) issue([index, key], 'applies to "before" steps only: an "after" step runs when the command has ended.');
        }
      }
      // The command's `env` is set once the step is ready, so it may use the step's own outputs; the rest runs before.
      const withSelf = new Map(seen).set(step.name, { index, step });
      for (const field of referenceFields(step)) checkReferences(field, step, index, field.path[0] === 'env' ? withSelf : seen, issue);
      if (!seen.has(step.name)) seen.set(step.name, { index, step });
    });
  });
}

function checkReferences(
  field: { path: (string | number)[]; value: string },
  step: ActionStep,
  index: number,
  earlier: ReadonlyMap<string, { index: number; step: ActionStep }>,
  issue: (path: (string | number)[], message: string, value?: unknown) => void,
): void {
  const path = [index, ...field.path];
  let references;
  try {
    references = parseReferences(field.value).flatMap((part) => ('reference' in part ? [part.reference] : []));
  } catch (error) {
    if (!(error instanceof ReferenceSyntaxError)) throw error;
    issue(path, error.message, field.value);
    return;
  }
  // A `before` step can use only `before` steps; an `after` step, any earlier step.
  const usable = [...earlier.values()].filter((entry) => step.when === 'after' || entry.step.when === 'before').map((entry) => entry.step.name);
  const shown = usable.map((name) => (name === step.name && earlier.get(name)!.index === index ? `${name} (the step itself, once ready)` : name));
  for (const reference of references) {
    const target = earlier.get(reference.step);
    if (target === undefined || !usable.includes(reference.step)) {
      const why = target === undefined ? 'no earlier step has that name' : `step "${reference.step}" runs after the session, when this one has already run`;
      issue(
        path,
        `${reference.text} names an unknown step "${reference.step}": ${why}. ${usable.length === 0 ? 'No step runs before this one.' : `Steps it can use: ${shown.join(', ')}.`}${didYouMean(suggest(reference.step, usable))}`,
        field.value,
      );
      continue;
    }
    const outputs = stepOutputs(target.step);
    if (outputs !== null && !outputs.includes(reference.output)) {
      issue(
        path,
        `${reference.text} names an unknown output "${reference.output}" of step "${reference.step}". ${describeOutputs(outputs)}${didYouMean(suggest(reference.output, outputs))}`,
        field.value,
      );
    }
  }
}

function describeOutputs(outputs: string[]): string {
  if (outputs.length === 0) return 'It has none: outputs are the named groups of a `wait_for.log` regex, such as (?<port>\\d+), or `stdout` of a step that runs to its end.';
  return `Its outputs: ${outputs.join(', ')}.`;
}
