// The HTTP filter of a filtered steal (feature.network.incoming.http_filter), compiled once into a predicate
// the router asks for every request. Semantics follow mirrord so that a team's mirrord.json steals the same
// requests: a header regex is tried on each header line as `Name: value`, a path regex on the path with its
// query string and without it, a method by case-insensitive equality.

import type { HttpFilterSpec } from '../../protocol/messages.js';
import { compileConfigRegex } from '../../config/regex.js';

export type HttpFilterConfig = HttpFilterSpec;

/** What a filter looks at: the request head as the client sent it. */
export interface FilterableRequest {
  method: string;
  /** The request target as sent, query string included. */
  path: string;
  /** Node's flat `[name, value, name, value, …]` list, in the client's order and casing. */
  rawHeaders: readonly string[];
}

export interface HttpFilter {
  (request: FilterableRequest): boolean;
  /** Whether requests on this target port are filtered; on the other ports the connection is stolen whole. */
  appliesToPort(port: number): boolean;
  /** False when the config sets no filter at all: then nothing is filtered and whole connections are stolen. */
  readonly isSet: boolean;
}

type InnerFilter = { header: string } | { path: string } | { method: string };
type Predicate = (request: FilterableRequest) => boolean;

export function compileHttpFilter(config: HttpFilterConfig): HttpFilter {
  const predicate = compileTopLevel(config);
  const ports = config.ports === undefined ? undefined : new Set(config.ports);
  const filter = ((request: FilterableRequest) => (predicate === undefined ? true : predicate(request))) as HttpFilter;
  filter.appliesToPort = (port: number) => predicate !== undefined && (ports === undefined || ports.has(port));
  Object.defineProperty(filter, 'isSet', { value: predicate !== undefined, enumerable: true });
  return filter;
}

/**
 * A canonical text of what a filter matches on a port it applies to, so that two sessions with the same filter
 * are told apart from two with different ones: key order, the order of all_of / any_of parts (both are
 * commutative) and the case of a method do not count, nor do `ports`, since both filters apply to the port they
 * are compared on.
 */
export function filterIdentity(config: HttpFilterConfig): string {
  const { ports: _ports, ...predicate } = config;
  return canonical(predicate);
}

function canonical(value: unknown, key?: string): string {
  if (Array.isArray(value)) return `[${value.map((item) => canonical(item)).sort().join(',')}]`;
  if (typeof value === 'object' && value !== null) {
    const entries = Object.entries(value).filter(([, item]) => item !== undefined);
    return `{${entries.sort(([a], [b]) => (a < b ? -1 : 1)).map(([name, item]) => `${JSON.stringify(name)}:${canonical(item, name)}`).join(',')}}`;
  }
  return JSON.stringify(key === 'method' || key === 'method_filter' ? String(value).toUpperCase() : value);
}

function compileTopLevel(config: HttpFilterConfig): Predicate | undefined {
  if (config.header_filter !== undefined) return headerMatcher(config.header_filter);
  if (config.path_filter !== undefined) return pathMatcher(config.path_filter);
  if (config.method_filter !== undefined) return methodMatcher(config.method_filter);
  if (config.all_of !== undefined) {
    const parts = config.all_of.map(compileInner);
    return (request) => parts.every((part) => part(request));
  }
  if (config.any_of !== undefined) {
    const parts = config.any_of.map(compileInner);
    return (request) => parts.some((part) => part(request));
  }
  return undefined;
}

function compileInner(filter: InnerFilter): Predicate {
  if ('header' in filter) return headerMatcher(filter.header);
  if ('path' in filter) return pathMatcher(filter.path);
  return methodMatcher(filter.method);
}

function headerMatcher(pattern: string): Predicate {
  const regex = compileConfigRegex(pattern);
  return ({ rawHeaders }) => {
    for (let index = 0; index + 1 < rawHeaders.length; index += 2) {
      if (regex.test(`${rawHeaders[index]}: ${rawHeaders[index + 1]}`)) return true;
    }
    return false;
  };
}

function pathMatcher(pattern: string): Predicate {
  const regex = compileConfigRegex(pattern);
  return ({ path }) => {
    if (regex.test(path)) return true;
    // An anchored pattern such as `^/api/users$` should match `/api/users?page=2` as mirrord's does.
    const queryStart = path.indexOf('?');
    return queryStart !== -1 && regex.test(path.slice(0, queryStart));
  };
}

function methodMatcher(method: string): Predicate {
  const wanted = method.toUpperCase();
  return (request) => request.method.toUpperCase() === wanted;
}
