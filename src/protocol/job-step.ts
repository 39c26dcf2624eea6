// A step of a session's actions run in the cluster, as a Job the operator starts from a template (see
// docs/actions.md). The CLI opens a WebSocket to
//
//   GET /apis/operator.remocal.dev/v1/namespaces/NS/jobsteps/TEMPLATE/run?timeout=S&env=NAME%3Dvalue…
//
// and holds it for the session's lifetime: the operator sends the step's events as JSON text messages, and
// deletes the Job when the socket closes, however the CLI ended. What the client sends is bounded here, and the
// operator checks it again.

import type { SerializedError } from './contracts.js';

/** The annotation that makes a CronJob a template of job steps; any other CronJob is refused. */
export const JOB_TEMPLATE_ANNOTATION = 'remocal.dev/job-template';
/** Labels the operator puts on the Jobs it starts, to find them again (its orphans at start). */
export const JOB_STEP_LABEL = 'remocal.dev/job-step';
export const JOB_STEP_OWNER_ANNOTATION = 'remocal.dev/owner';

export const MAX_JOB_STEP_ENV = 32;
export const MAX_JOB_STEP_ENV_VALUE_BYTES = 4096;
export const MAX_JOB_STEP_TIMEOUT_SECONDS = 3600;
/** How many lines of the Job's log the last event carries. */
export const JOB_STEP_LOG_TAIL_LINES = 20;
/** A name the Kubernetes API takes for an env var and a CronJob, before the API server is even asked. */
export const JOB_STEP_ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,127}$/;
export const JOB_TEMPLATE_NAME = /^[a-z0-9]([-a-z0-9]{0,50}[a-z0-9])?$/;

/** What the operator tells the CLI while a job step runs, in order: created, progress*, then succeeded or failed. */
export type JobStepEvent =
  | { type: 'created'; namespace: string; job: string }
  | { type: 'progress'; message: string }
  | { type: 'succeeded'; job: string; seconds: number; logTail: string[] }
  | { type: 'failed'; error: SerializedError; logTail: string[] };

export interface JobStepRequest {
  template: string;
  timeoutSeconds: number;
  env: Record<string, string>;
}

/** The query a job step's WebSocket carries. */
export function jobStepQuery(request: Omit<JobStepRequest, 'template'>): URLSearchParams {
  const query = new URLSearchParams({ timeout: String(request.timeoutSeconds) });
  for (const [name, value] of Object.entries(request.env)) query.append('env', `${name}=${value}`);
  return query;
}

/** The request a query stands for, or why it is refused. */
export function parseJobStepQuery(template: string, query: URLSearchParams): JobStepRequest | { refused: string } {
  if (!JOB_TEMPLATE_NAME.test(template)) return { refused: `"${template.slice(0, 80)}" is not a CronJob name (lower-case letters, digits and '-', at most 52)` };
  const timeout = Number(query.get('timeout') ?? '300');
  if (!Number.isInteger(timeout) || timeout < 1 || timeout > MAX_JOB_STEP_TIMEOUT_SECONDS) return { refused: `timeout must be a whole number of seconds from 1 to ${MAX_JOB_STEP_TIMEOUT_SECONDS}` };
  const pairs = query.getAll('env');
  if (pairs.length > MAX_JOB_STEP_ENV) return { refused: `at most ${MAX_JOB_STEP_ENV} env vars, not ${pairs.length}` };
  const env: Record<string, string> = {};
  for (const pair of pairs) {
    const equals = pair.indexOf('=');
    const name = equals < 0 ? pair : pair.slice(0, equals);
    if (!JOB_STEP_ENV_NAME.test(name)) return { refused: `"${name.slice(0, 80)}" is not an env var name` };
    const value = pair.slice(equals + 1);
    if (equals < 0 || Buffer.byteLength(value) > MAX_JOB_STEP_ENV_VALUE_BYTES) return { refused: `env ${name} needs a value of at most ${MAX_JOB_STEP_ENV_VALUE_BYTES} bytes` };
    if (Object.hasOwn(env, name)) return { refused: `env ${name} is given twice` };
    env[name] = value;
  }
  return { template, timeoutSeconds: timeout, env };
}
