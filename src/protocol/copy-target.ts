// Copy target: what a session asks of the operator when it wants to run against a copy of its target rather than
// the target itself (`feature.copy_target`). The CLI sends it as the `copy` query parameter of the target GET and of
// the session's portforward request, as JSON; the operator reads it as hostile input, so the parser here bounds and
// checks every field and answers in words. Append-only: a field added later must be optional, with the old meaning
// when absent.

/** What the copy runs: the target's own command, an idle one (for a command that crashes or ends), or idle only when the original crashes or ends. */
export const COPY_COMMANDS = ['keep', 'idle', 'auto'] as const;
export type CopyCommand = (typeof COPY_COMMANDS)[number];

export interface CopyTargetRequest {
  /** Scale the workload to 0 for the session's lifetime, and back afterwards. */
  scaleDown: boolean;
  /** Containers of the pod template the copy goes without. */
  excludeContainers: string[];
  excludeInitContainers: string[];
  command: CopyCommand;
  /** Keep the target's own labels (less those a controller adopts pods by), so Services send the copy its share of traffic. */
  keepLabels: boolean;
}

/** The query parameter that carries a CopyTargetRequest as JSON. */
export const COPY_TARGET_PARAM = 'copy';

/** Bounds for what a client may send: a pod has at most a few dozen containers, and their names are DNS labels. */
export const MAX_EXCLUDED_CONTAINERS = 64;
const MAX_REQUEST_CHARS = 8 * 1024;
const CONTAINER_NAME = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

export function encodeCopyTargetRequest(request: CopyTargetRequest): string {
  return JSON.stringify(request);
}

/** The request a client sent, or why it is not one. */
export function parseCopyTargetRequest(text: string): { ok: true; value: CopyTargetRequest } | { ok: false; error: string } {
  if (text.length > MAX_REQUEST_CHARS) return { ok: false, error: `the copy-target request is longer than ${MAX_REQUEST_CHARS} characters` };
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    return { ok: false, error: 'the copy-target request is not JSON' };
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return { ok: false, error: 'the copy-target request is not an object' };
  const record = raw as Record<string, unknown>;
  const names = (key: string): string[] | string => {
    const value = record[key] ?? [];
    if (!Array.isArray(value)) return `${key} must be a list of container names`;
    if (value.length > MAX_EXCLUDED_CONTAINERS) return `${key} names more than ${MAX_EXCLUDED_CONTAINERS} containers`;
    const bad = value.find((name) => typeof name !== 'string' || !CONTAINER_NAME.test(name));
    if (bad !== undefined) return `${key} holds ${JSON.stringify(bad).slice(0, 80)}, which is not a container name`;
    return [...new Set(value as string[])];
  };
  const excludeContainers = names('excludeContainers');
  if (typeof excludeContainers === 'string') return { ok: false, error: excludeContainers };
  const excludeInitContainers = names('excludeInitContainers');
  if (typeof excludeInitContainers === 'string') return { ok: false, error: excludeInitContainers };
  const command = record.command ?? 'auto';
  if (typeof command !== 'string' || !(COPY_COMMANDS as readonly string[]).includes(command)) return { ok: false, error: `command must be one of ${COPY_COMMANDS.join(', ')}` };
  const flag = (key: string, fallback: boolean): boolean | string => {
    const value = record[key] ?? fallback;
    return typeof value === 'boolean' ? value : `${key} must be true or false`;
  };
  const scaleDown = flag('scaleDown', false);
  if (typeof scaleDown === 'string') return { ok: false, error: scaleDown };
  const keepLabels = flag('keepLabels', true);
  if (typeof keepLabels === 'string') return { ok: false, error: keepLabels };
  return { ok: true, value: { scaleDown, excludeContainers, excludeInitContainers, command: command as CopyCommand, keepLabels } };
}
