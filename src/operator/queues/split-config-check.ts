// A RemocalSplitConfig object checked as the API server checks the custom resource (the CRD's structural schema,
// unknown fields pruned), and then for what the schema cannot say: every key of `queues` is a queue id, as sessions
// name them in feature.split_queues. So an object the server let through (or one written before a schema change)
// reaches the splitter only when it means what it says.

import { queueIdProblem, type SplitConfigSpec } from '../../protocol/split-queues.js';
import { SPLIT_CONFIG_SCHEMA } from '../split-config-crd.js';
import { validateAgainstSchema } from '../structural.js';

/** The spec with unknown fields pruned, or what is wrong with the object (in the server's words where it has them). */
export function checkSplitConfigObject(object: unknown): { ok: true; spec: SplitConfigSpec } | { ok: false; errors: string[] } {
  const checked = validateAgainstSchema(SPLIT_CONFIG_SCHEMA, object);
  if (checked.errors.length > 0) return { ok: false, errors: checked.errors };
  const spec = (checked.value as { spec: SplitConfigSpec }).spec;
  const errors = Object.keys(spec.queues).flatMap((id) => {
    const problem = queueIdProblem(id);
    return problem === null ? [] : [`spec.queues: Invalid value: ${problem}`];
  });
  return errors.length > 0 ? { ok: false, errors } : { ok: true, spec };
}
