// Runs a session's action steps (docs/actions.md): the `before` steps, in order, once the session is ready and
// before the command starts; the `after` steps, in order, when the session ends, however it ends; then every
// `before` step's process group is terminated, so a server a step started lives exactly as long as the session.
//
// A failed `before` step ends the session: its group is killed at once, and the error carries its last output
// lines. A failed `after` step is only reported: the exit code stays the command's, and the next step still runs.

import { resolve as resolvePath } from 'node:path';
import type { ActionStep } from '../../config/actions.js';
import { substituteReferences, type StepReference } from '../../config/action-refs.js';
import { ActionFailedError } from '../../core/errors.js';
import type { Progress } from '../progress.js';
import type { ClusterSteps } from './cluster-steps.js';
import { describeRun, describeTimeoutOption, type ActionPlan, type PlannedStep } from './plan.js';
import { StepProcess } from './step-process.js';
import { describeProbe, waitForReady, type ReadyProbe } from './wait-for.js';

/** How long a step's group gets between SIGTERM and SIGKILL. */
const STOP_GRACE_MS = 5000;

export interface ActionRunnerOptions {
  progress: Progress;
  /** Each line of a step's output on stderr, as `[name] line`. */
  verbose: boolean;
  cwd?: string;
}

export class ActionRunner {
  private readonly outputs = new Map<string, Record<string, string>>();
  private readonly started: { name: string; process: StepProcess }[] = [];
  private beforeBegun = false;
  private finishing: Promise<void> | undefined;

  constructor(
    private readonly plan: ActionPlan,
    private readonly options: ActionRunnerOptions,
  ) {}

  /** Runs the `before` steps; resolves with the command's environment overrides. */
  async runBefore(signal: AbortSignal): Promise<Record<string, string>> {
    const clusterStep = this.plan.steps.find((step) => step.job !== undefined);
    if (clusterStep !== undefined && this.plan.cluster === undefined) {
      throw new ActionFailedError(
        `Step "${clusterStep.name}" is a \`job\` step: a \`job\` step needs the operator, which runs it as a Job in the target's cluster, and this session does not go through one.`,
        { hint: 'Run the session through the remocal operator (`operator: true`), or make the step a local `run` step.' },
      );
    }
    this.beforeBegun = true;
    const overrides: Record<string, string> = {};
    for (const step of this.plan.steps.filter((entry) => entry.when === 'before')) {
      signal.throwIfAborted();
      await this.runStep(step, signal);
      for (const [key, value] of Object.entries(step.env ?? {})) overrides[key] = this.substitute(value);
    }
    return overrides;
  }

  /** The `after` steps, then the end of every `before` step's processes. Idempotent; never throws. */
  finish(): Promise<void> {
    this.finishing ??= this.runFinish();
    return this.finishing;
  }

  private async runFinish(): Promise<void> {
    const { progress } = this.options;
    if (this.beforeBegun) {
      for (const step of this.plan.steps.filter((entry) => entry.when === 'after')) {
        try {
          // No outer signal: an `after` step is bounded by its own timeout only, so that a second Ctrl-C cannot skip it.
          await this.runStep(step, new AbortController().signal);
        } catch (error) {
          progress.note(`warning: ${error instanceof Error ? error.message : String(error)}`);
        }
      }
    }
    for (const { process } of this.started.splice(0).reverse()) await process.stop(STOP_GRACE_MS);
    await this.plan.cluster?.cleanup().catch((error: unknown) => progress.note(`warning: cleaning up the cluster steps failed: ${String(error)}`));
  }

  private substitute(value: string): string {
    return substituteReferences(
      value,
      (reference) => this.outputs.get(reference.step)?.[reference.output],
      (reference) => missingOutput(reference),
    );
  }

  private async runStep(step: PlannedStep, outer: AbortSignal): Promise<void> {
    const { progress } = this.options;
    const label = `action "${step.name}"`;
    if (step.job !== undefined) {
      const shown = progress.step(`${label} (${step.when}): Job from template ${step.job.template} in the cluster`);
      const signal = AbortSignal.any([outer, AbortSignal.timeout(step.timeoutMs)]);
      const runEnv = Object.fromEntries(Object.entries(step.run_env ?? {}).map(([key, value]) => [key, this.substitute(value)]));
      this.outputs.set(step.name, await this.plan.cluster!.run({ ...step, job: step.job, run_env: runEnv }, signal, progress));
      shown.done(`${label} done`);
      return;
    }
    const run = typeof step.run === 'string' ? this.substitute(step.run) : step.run!.map((arg) => this.substitute(arg));
    const env: Record<string, string> = {};
    for (const [key, value] of Object.entries(process.env)) if (value !== undefined) env[key] = value;
    for (const [key, value] of Object.entries(step.run_env ?? {})) env[key] = this.substitute(value);
    const cwd = step.cwd === undefined ? undefined : resolvePath(this.options.cwd ?? process.cwd(), this.substitute(step.cwd));
    const probe = readyProbe(step, (value) => this.substitute(value));

    const shown = progress.step(`${label} (${step.when}): ${describeRun(run)}`);
    const child = new StepProcess({ run, cwd, env }, this.options.verbose ? (line) => progress.note(`[${step.name}] ${line}`) : undefined);
    if (step.when === 'before') this.started.push({ name: step.name, process: child });
    const timeout = new AbortController();
    const timer = setTimeout(() => timeout.abort(), step.timeoutMs);
    const signal = AbortSignal.any([outer, timeout.signal]);
    // Ends the probe when the race is decided another way (the step exited first): it would go on polling.
    const settled = new AbortController();
    const probeSignal = AbortSignal.any([signal, settled.signal]);
    try {
      const outputs = await Promise.race([
        probe === undefined ? ranToEnd(child) : waitForReady(probe, child, probeSignal),
        exitedTooEarly(child, probe),
        new Promise<never>((_, reject) => {
          const onAbort = () => reject(signal.reason);
          if (signal.aborted) onAbort();
          else signal.addEventListener('abort', onAbort, { once: true });
        }),
      ]);
      this.outputs.set(step.name, outputs);
      shown.done(probe === undefined ? `${label} done` : `${label} ready: ${describeProbe(probe)}`);
      // What an `after` step leaves behind has no session to live for.
      if (step.when === 'after') await child.stop(STOP_GRACE_MS);
    } catch (error) {
      shown.fail();
      await child.stop(STOP_GRACE_MS);
      if (outer.aborted && !timeout.signal.aborted) throw outer.reason;
      throw this.stepFailure(step, child, probe, timeout.signal.aborted ? null : error);
    } finally {
      clearTimeout(timer);
      settled.abort();
    }
  }

  private stepFailure(step: PlannedStep, child: StepProcess, probe: ReadyProbe | undefined, error: unknown): ActionFailedError {
    const seconds = step.timeoutMs / 1000;
    const what =
      error === null
        ? probe === undefined
          ? `did not finish within ${seconds} s`
          : `did not get ready within ${seconds} s (waiting for ${describeProbe(probe)})`
        : error instanceof Error
          ? error.message
          : String(error);
    const lines = child.lastLines();
    const output = lines.length === 0 ? 'It printed nothing.' : `Its last output lines:\n${lines.map((line) => `  | ${line}`).join('\n')}`;
    return new ActionFailedError(`The ${step.when} action step "${step.name}" ${what}.\n${output}`, {
      ...(error === null ? { hint: `If it is only slow, raise ${describeTimeoutOption(step)}; --no-actions skips the steps.` } : {}),
      details: { step: step.name },
    });
  }
}

function missingOutput(reference: StepReference): Error {
  return new ActionFailedError(`${reference.text} has no value: step "${reference.step}" did not run to the point where it gives "${reference.output}".`);
}

function readyProbe(step: ActionStep, substitute: (value: string) => string): ReadyProbe | undefined {
  const wait = step.wait_for;
  if (wait === undefined) return undefined;
  if ('tcp' in wait) return { tcp: substitute(wait.tcp) };
  if ('http' in wait) return { http: substitute(wait.http), status: wait.status ?? 200 };
  return { log: wait.log };
}

/** A step without `wait_for` is done when its process exits 0; its stdout is its `stdout` output. */
async function ranToEnd(child: StepProcess): Promise<Record<string, string>> {
  const exit = await child.exited;
  if (exit.error !== undefined || exit.code !== 0) return new Promise(() => {}); // exitedTooEarly reports it
  await child.settledOutput();
  return { stdout: child.stdout() };
}

/**
 * Rejects when the step's process fails: a spawn error or a non-zero exit, at any time before it is ready. An exit
 * with 0 is fine while a TCP or HTTP probe can still pass (`pg_ctl start` exits once the server is forked), but
 * ends a log probe, since no more lines will come.
 */
async function exitedTooEarly(child: StepProcess, probe: ReadyProbe | undefined): Promise<never> {
  const exit = await child.exited;
  // The lines it printed last (its reason to fail, or the line the log probe waits for) may still be in the pipe.
  await child.settledOutput();
  if (exit.error !== undefined) throw new Error(`could not be started: ${exit.error.message}`);
  if (exit.signal !== null) throw new Error(`was killed by ${exit.signal}`);
  if (exit.code !== 0) throw new Error(`exited with code ${exit.code}`);
  if (probe !== undefined && 'log' in probe) throw new Error(`exited before a line of its output matched /${probe.log}/`);
  return new Promise(() => {});
}
