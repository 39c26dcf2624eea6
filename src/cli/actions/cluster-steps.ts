// The seam for `job` steps, which run in the cluster as a Job from a template in the target's namespace, started
// by the operator with its own identity checks. The runner does not know how; whoever can (the operator's
// client) passes an implementation in. Without one, a `job` step is refused before any step runs.

import type { ActionStep } from '../../config/actions.js';
import type { Progress } from '../progress.js';

export interface ClusterSteps {
  /** Runs the step's Job to completion; resolves with its outputs (what `${steps.<name>.<output>}` reads). */
  run(step: ActionStep & { job: { template: string } }, signal: AbortSignal, progress: Progress): Promise<Record<string, string>>;
  /** Removes every Job this session's steps created; called once, when the session ends. */
  cleanup(): Promise<void>;
}
