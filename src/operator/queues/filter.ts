// A split queue's message filter, in mirrord's shape: `{ "<header or property>": "<regex>" }`. A message
// matches when every entry matches; an empty filter matches nothing, since a session that took every message
// would starve the deployed app without anyone having asked for it.
//
// Each name is looked up among the message's headers first, by exact name (AMQP header names are case
// sensitive), then among its broker properties (RabbitMQ's spec names: `content_type`, `message_id`,
// `correlation_id`, `reply_to`, `type`, `app_id`…; NATS: `subject`). A name found in neither does not match.
// Regexes are compiled once, here, the way every config regex is (case-insensitive, JavaScript syntax), and
// are found anywhere in the value unless anchored with ^…$.

import { compileConfigRegex } from '../../config/regex.js';
import { ConfigError } from '../../core/errors.js';
import type { QueueMessage } from './driver.js';

/** A bound on each pattern, and on how many there are: every message of the queue runs them all. */
const maxPatternLength = 1024;
const maxEntries = 32;

export type MessageFilterSpec = Record<string, string>;

export interface MessageFilter {
  readonly spec: MessageFilterSpec;
  matches(message: Pick<QueueMessage, 'headers' | 'properties'>): boolean;
}

export function compileMessageFilter(spec: MessageFilterSpec, where = 'message_filter'): MessageFilter {
  const entries = Object.entries(spec);
  if (entries.length === 0) {
    throw new ConfigError(`${where} is empty.`, { hint: 'Name at least one header or property and the regex its value must match, e.g. { "x-dev": "^alice$" }.' });
  }
  if (entries.length > maxEntries) throw new ConfigError(`${where} has ${entries.length} entries; at most ${maxEntries} are allowed.`);
  const compiled = entries.map(([name, pattern]) => {
    if (typeof pattern !== 'string') throw new ConfigError(`${where}.${name} must be a regex string.`);
    if (pattern.length > maxPatternLength) {
      throw new ConfigError(`${where}.${name} is ${pattern.length} characters long; at most ${maxPatternLength} are allowed.`);
    }
    try {
      return { name, regex: compileConfigRegex(pattern) };
    } catch (error) {
      throw new ConfigError(`${where}.${name} is not a valid regex: ${(error as Error).message}`, { cause: error });
    }
  });
  return {
    spec: { ...spec },
    matches(message) {
      return compiled.every(({ name, regex }) => {
        const value = Object.hasOwn(message.headers, name) ? message.headers[name] : message.properties[name];
        return value !== undefined && regex.test(value);
      });
    },
  };
}
