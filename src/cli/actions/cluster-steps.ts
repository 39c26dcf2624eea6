// The seam for `job` steps, which run in the cluster as a Job from a template in the target's namespace, started
// by the operator with its own identity checks. The runner does not know how: operator-steps.ts does, and the CLI
// passes it in when a step needs it. Without one, a `job` step is refused before any step runs.

import type { ActionStep } from '../../config/actions.js';
import type { Progress } from '../progress.js';

export interface ClusterSteps {
  /** Runs the step's Job to completion; resolves with its outputs (what `${steps.<name>.<output>}` reads). */
  run(step: ActionStep & { job: { template: string }; timeoutMs: number }, signal: AbortSignal, progress: Progress): Promise<Record<string, string>>;
  /** Removes every Job this session's steps created; called once, when the session ends. */
  cleanup(): Promise<void>;
}
