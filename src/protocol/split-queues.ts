// Queue splitting (docs/queues.md): what a session asks of the operator when its config has
// `feature.split_queues`, and the shape of the RemocalSplitConfig a platform team writes for a workload. The CLI
// sends the request with the session; the operator reads it as hostile input, so the parser here bounds and checks
// every field (names, counts, lengths, that each regex compiles) and answers in words. The bounds are shared with the
// user's config (config/options.ts) and the CRD's schema (operator/split-config-crd.ts), so that what one accepts the
// others accept. Append-only: a field added later must be optional, with the old meaning when absent.

export const SPLIT_GROUP = 'queues.remocal.dev';
export const SPLIT_VERSION = 'v1alpha1';
export const SPLIT_CONFIG_KIND = 'RemocalSplitConfig';

/** The brokers a queue may live on, spelled as mirrord spells them. Append-only. */
export const QUEUE_TYPES = ['RMQ', 'NATS'] as const;
export type QueueType = (typeof QUEUE_TYPES)[number];

/** Queues one session may split: a workload consumes a handful, never dozens. */
export const MAX_SPLIT_QUEUES = 16;
/** Entries of one message filter (headers and properties matched together). */
export const MAX_FILTER_ENTRIES = 16;
/** A header or property name: AMQP's shortstr is at most 255 bytes. */
export const MAX_FILTER_KEY_LENGTH = 255;
/** The longest regex of a filter, as for the policies' regexes. */
export const MAX_FILTER_REGEX_LENGTH = 1024;
/** A queue id names an entry of the RemocalSplitConfig: a DNS label, with `_` and `.` allowed, at most 63 characters. */
export const QUEUE_ID_PATTERN = '^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$';
const QUEUE_ID = new RegExp(QUEUE_ID_PATTERN);
/** A header or property name: printable ASCII without spaces. */
export const FILTER_KEY_PATTERN = '^[!-~]+$';
const FILTER_KEY = new RegExp(FILTER_KEY_PATTERN);
const MAX_REQUEST_CHARS = 64 * 1024;

/** One queue a session splits: every entry of `messageFilter` must match a message for the session to get it. */
export interface SplitQueueRequest {
  queueType: QueueType;
  /** Header or property name → regex over its value (case-insensitive, JavaScript syntax, as config regexes are). */
  messageFilter: Record<string, string>;
}

/** What the CLI sends: queue id → what of it the session takes. */
export type SplitQueuesRequest = Record<string, SplitQueueRequest>;

/** The query parameter that carries a SplitQueuesRequest as JSON. */
export const SPLIT_QUEUES_PARAM = 'splitQueues';

export function encodeSplitQueuesRequest(request: SplitQueuesRequest): string {
  return JSON.stringify(request);
}

/**
 * How filter regexes are compiled everywhere: case-insensitive, as config/regex.ts compiles the config's (the
 * protocol may not import config; test/protocol/split-queues.test.ts holds the two to the same answers).
 */
export function compileFilterRegex(pattern: string): RegExp {
  return new RegExp(pattern, 'i');
}

/** What is wrong with one queue's message filter, or null. Shared by the parser and the config's validation. */
export function messageFilterProblem(filter: unknown): string | null {
  if (typeof filter !== 'object' || filter === null || Array.isArray(filter)) return 'message_filter must be an object of header or property name → regex';
  const entries = Object.entries(filter as Record<string, unknown>);
  if (entries.length === 0) return 'message_filter is empty: it would take every message of the queue; give at least one header or property';
  if (entries.length > MAX_FILTER_ENTRIES) return `message_filter has ${entries.length} entries, more than ${MAX_FILTER_ENTRIES}`;
  for (const [key, pattern] of entries) {
    if (key.length > MAX_FILTER_KEY_LENGTH || !FILTER_KEY.test(key)) return `${JSON.stringify(key.slice(0, 80))} is not a header or property name (printable ASCII without spaces, at most ${MAX_FILTER_KEY_LENGTH} characters)`;
    if (typeof pattern !== 'string') return `the filter of ${JSON.stringify(key)} must be a regex string`;
    if (pattern.length > MAX_FILTER_REGEX_LENGTH) return `the filter of ${JSON.stringify(key)} is longer than ${MAX_FILTER_REGEX_LENGTH} characters`;
    try {
      compileFilterRegex(pattern);
    } catch (error) {
      return `the filter of ${JSON.stringify(key)} is not a valid regular expression: ${(error as Error).message.replace(/^Invalid regular expression: \/.*\/[a-z]*: /s, '')}`;
    }
  }
  return null;
}

/** What is wrong with a queue id, or null. */
export function queueIdProblem(id: string): string | null {
  return QUEUE_ID.test(id) ? null : `${JSON.stringify(id.slice(0, 80))} is not a queue id (letters, digits, -, _ and ., at most 63, starting and ending with a letter or digit)`;
}

/** The request a client sent, or why it is not one. */
export function parseSplitQueuesRequest(text: string): { ok: true; value: SplitQueuesRequest } | { ok: false; error: string } {
  const fail = (error: string) => ({ ok: false as const, error: `split queues: ${error}` });
  if (text.length > MAX_REQUEST_CHARS) return fail(`the request is longer than ${MAX_REQUEST_CHARS} characters`);
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    return fail('the request is not JSON');
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return fail('the request is not an object of queue id → queue');
  const queues = Object.entries(raw as Record<string, unknown>);
  if (queues.length === 0) return fail('the request names no queue');
  if (queues.length > MAX_SPLIT_QUEUES) return fail(`the request names ${queues.length} queues, more than ${MAX_SPLIT_QUEUES}`);
  // A null-prototype object: a queue id such as `__proto__` is then a key like any other, never the prototype.
  const value: SplitQueuesRequest = Object.create(null) as SplitQueuesRequest;
  for (const [id, queue] of queues) {
    const badId = queueIdProblem(id);
    if (badId !== null) return fail(badId);
    if (typeof queue !== 'object' || queue === null || Array.isArray(queue)) return fail(`${id}: a queue is an object with queueType and messageFilter`);
    const { queueType, messageFilter } = queue as Record<string, unknown>;
    if (typeof queueType !== 'string' || !(QUEUE_TYPES as readonly string[]).includes(queueType)) return fail(`${id}: queueType must be one of ${QUEUE_TYPES.join(', ')}`);
    const badFilter = messageFilterProblem(messageFilter);
    if (badFilter !== null) return fail(`${id}: ${badFilter}`);
    value[id] = { queueType: queueType as QueueType, messageFilter: { ...(messageFilter as Record<string, string>) } };
  }
  return { ok: true, value };
}

/** The workload kinds a RemocalSplitConfig may name, as their `kind`. */
export const SPLIT_TARGET_KINDS = ['Deployment', 'StatefulSet'] as const;
export type SplitTargetKind = (typeof SPLIT_TARGET_KINDS)[number];

/** Where the queue's (or subject's) name lives in the workload: one of the two. */
export interface QueueNameLocation {
  /** An environment variable of a container (the container may be omitted when the pod has only one). */
  env?: { container?: string; name: string };
  /** A key of a config file. Declared for the future; the operator refuses it for now, in words. */
  configKey?: { path: string; key: string };
}

/** The RemocalSplitConfig's spec, as the platform team writes it. */
export interface SplitConfigSpec {
  targetRef: { kind: SplitTargetKind; name: string };
  queues: Record<string, {
    queueType: QueueType;
    queueName: QueueNameLocation;
    /** The Secret of the workload's namespace whose `key` holds the broker's URL, credentials included. */
    connection: { secretRef: { name: string; key: string } };
  }>;
}

