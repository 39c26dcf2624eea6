// The value types options are built from: ports, mirrord's "list or single value" lists, regexes, address
// patterns, target paths, Kubernetes names. Each checks its value fully here, so a bad value is reported at
// load time with its reason, not when the layer or the agent first uses it.

import { z } from 'zod';
import { compileConfigRegex } from './regex.js';
import { parseAddressPattern, AddressPatternSyntaxError } from './address-pattern.js';
import { didYouMean, suggest } from './errors.js';

export const port = z.int().min(1).max(65535);

/** A pair of ports, `[local, remote]` (port_mapping) or `[remote, local]` (listen_ports). */
export const portPair = z.tuple([port, port]);

/**
 * mirrord's list of names: an array, or one string of `;`-separated items ("DATABASE_USER;PUBLIC_*"). Names
 * never contain `;`, so a single string is always split.
 */
export function nameList() {
  return z.union([z.string(), z.array(z.string())]).transform((value) =>
    (typeof value === 'string' ? value.split(';') : value).map((item) => item.trim()).filter((item) => item !== ''),
  );
}

export { compileConfigRegex } from './regex.js';

export function regex() {
  return z.string().superRefine((pattern, context) => {
    try {
      compileConfigRegex(pattern);
    } catch (error) {
      const reason = error instanceof Error ? error.message.replace(/^Invalid regular expression: \/.*\/[a-z]*: /s, '') : String(error);
      context.addIssue({ code: 'custom', message: `${JSON.stringify(pattern)} is not a valid regular expression: ${reason}.`, params: { value: pattern } });
    }
  });
}

/** One regex or an array of them (mirrord's VecOrSingle); a single string is one pattern, never split. */
export function regexList() {
  return z.union([regex(), z.array(regex())]).transform((value) => (typeof value === 'string' ? [value] : value));
}

export function addressPattern(use: 'outgoing' | 'dns') {
  return z.string().superRefine((pattern, context) => {
    try {
      const parsed = parseAddressPattern(pattern);
      if (use === 'dns' && parsed.protocol !== null) {
        context.addIssue({
          code: 'custom',
          message: `${JSON.stringify(pattern)} is not a DNS filter pattern: a DNS query has no tcp:// or udp:// protocol. Expected host-or-ip[/prefix][:port].`,
          params: { value: pattern },
        });
      }
    } catch (error) {
      if (!(error instanceof AddressPatternSyntaxError)) throw error;
      context.addIssue({ code: 'custom', message: error.message, params: { value: pattern } });
    }
  });
}

/**
 * mirrord's `{ local: [...] }` or `{ remote: [...] }` filter of address patterns: exactly one of the two.
 * The resolved value always has the list in array form.
 */
export function addressFilter(use: 'outgoing' | 'dns') {
  const list = z.union([addressPattern(use), z.array(addressPattern(use))]).transform((value) => (typeof value === 'string' ? [value] : value));
  return z
    .strictObject({ local: list.optional(), remote: list.optional() })
    .superRefine((filter, context) => {
      const given = (['local', 'remote'] as const).filter((side) => filter[side] !== undefined);
      if (given.length === 2) {
        context.addIssue({
          code: 'custom',
          message: 'give either "local" (these go local, the rest remote) or "remote" (these go remote, the rest local), not both.',
          params: { value: filter, allowed: ['local', 'remote'] },
        });
      } else if (given.length === 0) {
        context.addIssue({ code: 'custom', message: 'give "local" or "remote" with a list of patterns.', params: { value: filter, allowed: ['local', 'remote'] } });
      }
    })
    .transform((filter): { local: string[]; remote?: undefined } | { remote: string[]; local?: undefined } =>
      filter.local !== undefined ? { local: filter.local } : { remote: filter.remote ?? [] },
    );
}

// --- Kubernetes names ----------------------------------------------------------------------------------------

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

export function kubernetesNamespace() {
  return z.string().superRefine((name, context) => {
    if (name.length > 63 || !DNS_LABEL.test(name)) {
      context.addIssue({
        code: 'custom',
        message: `${JSON.stringify(name)} is not a Kubernetes namespace name: use at most 63 lowercase letters, digits and "-", starting and ending with a letter or digit.`,
        params: { value: name },
      });
    }
  });
}

// --- targets ----------------------------------------------------------------------------------------------------

/** Targets on this machine, reached through the local platform. */
export const LOCAL_TARGET_KINDS = ['pid', 'container', 'netns'] as const;
/** Targets in a Kubernetes cluster; all take an optional `/container/<name>`. */
export const KUBERNETES_TARGET_KINDS = ['pod', 'deployment', 'statefulset', 'job', 'cronjob', 'rollout', 'service', 'replicaset'] as const;

export type TargetKind = (typeof LOCAL_TARGET_KINDS)[number] | (typeof KUBERNETES_TARGET_KINDS)[number];

export type ParsedTarget = { kind: 'targetless' } | { kind: TargetKind; name: string; container?: string };

const TARGET_SHAPES =
  'Targets look like pid/<pid>, container/<name-or-id>, netns/<name>, pod/<name>[/container/<container>], ' +
  'deployment/<name>[/container/<container>] (also statefulset, job, cronjob, rollout, service, replicaset), or targetless.';

/** Parses a target path; throws an Error whose message says what is wrong with it. */
export function parseTargetPath(path: string): ParsedTarget {
  const fail = (reason: string, extra: { allowed?: string[]; suggestion?: string } = {}): never => {
    throw Object.assign(new Error(`${JSON.stringify(path)} is not a target: ${reason}.${didYouMean(extra.suggestion)} ${TARGET_SHAPES}`), extra);
  };
  if (path === 'targetless') return { kind: 'targetless' };
  const parts = path.split('/');
  const kind = parts[0]!;
  const kinds: readonly string[] = [...LOCAL_TARGET_KINDS, ...KUBERNETES_TARGET_KINDS, 'targetless'];
  if (!kinds.includes(kind)) {
    const suggestion = suggest(kind.replace(/s$/, ''), kinds) ?? suggest(kind, kinds);
    fail(parts.length === 1 ? 'it names no kind of target' : `unknown kind "${kind}"`, { allowed: [...kinds], ...(suggestion === undefined ? {} : { suggestion }) });
  }
  const name = parts[1] ?? '';
  if (name === '') fail(`it has no name after "${kind}/"`);
  if (kind === 'pid') {
    if (parts.length !== 2 || !/^[1-9]\d*$/.test(name)) fail('a pid target is pid/<number>, the process id of the target');
    return { kind, name };
  }
  if (kind === 'container' || kind === 'netns') {
    if (parts.length !== 2) fail(`a ${kind} target is ${kind}/<name> with no further "/"`);
    return { kind: kind as TargetKind, name };
  }
  if (name.length > 253 || !DNS_SUBDOMAIN.test(name)) fail(`"${name}" is not a Kubernetes object name (lowercase letters, digits, "-" and ".")`);
  if (parts.length === 2) return { kind: kind as TargetKind, name };
  if (parts.length === 4 && parts[2] === 'container' && parts[3] !== '') {
    const container = parts[3]!;
    if (container.length > 63 || !DNS_LABEL.test(container)) fail(`"${container}" is not a container name (lowercase letters, digits and "-")`);
    return { kind: kind as TargetKind, name, container };
  }
  return fail(`after ${kind}/${name} only /container/<container> may follow`);
}

export function targetPathString() {
  return z.string().superRefine((path, context) => {
    try {
      parseTargetPath(path);
    } catch (error) {
      const extra = error as Error & { allowed?: string[]; suggestion?: string };
      context.addIssue({ code: 'custom', message: extra.message, params: { value: path, allowed: extra.allowed, suggestion: extra.suggestion } });
    }
  });
}

/**
 * mirrord's object form of a target path, `{ "pod": "web", "container": "app" }`, resolved to the string
 * form so that the rest of remocal sees one shape.
 */
function targetPathObject() {
  const name = z.string().optional();
  return z
    .strictObject({
      pod: name,
      deployment: name,
      statefulset: name,
      job: name,
      cronjob: name,
      rollout: name,
      service: name,
      replicaset: name,
      container: name,
    })
    .superRefine((object, context) => {
      const kinds = KUBERNETES_TARGET_KINDS.filter((kind) => object[kind] !== undefined);
      if (kinds.length !== 1) {
        context.addIssue({
          code: 'custom',
          message: `give exactly one kind of target (${KUBERNETES_TARGET_KINDS.join(', ')}), and optionally "container"; got ${kinds.length === 0 ? 'none' : kinds.join(' and ')}.`,
          params: { value: object, allowed: [...KUBERNETES_TARGET_KINDS, 'container'] },
        });
      }
    })
    .transform((object) => {
      const kind = KUBERNETES_TARGET_KINDS.find((candidate) => object[candidate] !== undefined)!;
      return `${kind}/${object[kind]!}${object.container === undefined ? '' : `/container/${object.container}`}`;
    })
    .pipe(targetPathString());
}

export function targetPath() {
  return z.union([targetPathString(), targetPathObject()]);
}

// --- log levels -------------------------------------------------------------------------------------------------

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];
const VERBOSITY: readonly LogLevel[] = ['silent', 'fatal', 'error', 'warn', 'info', 'debug', 'trace'];

/**
 * A log level. mirrord's agent takes RUST_LOG directives ("mirrord=debug,warn"); remocal's agent logs with
 * pino, so such a string resolves to the most verbose level it names, which is what its author wanted to see.
 */
export function logLevel() {
  return z.string().transform((text, context): LogLevel => {
    const named = text
      .split(',')
      .map((directive) => (directive.includes('=') ? directive.slice(directive.indexOf('=') + 1) : directive).trim().toLowerCase())
      .map((level) => (level === 'warning' ? 'warn' : level === 'off' ? 'silent' : level))
      .filter((level): level is LogLevel => (LOG_LEVELS as readonly string[]).includes(level));
    if (named.length === 0) {
      const suggestion = suggest(text, LOG_LEVELS);
      context.addIssue({
        code: 'custom',
        message: `${JSON.stringify(text)} is not a log level. Allowed: ${LOG_LEVELS.join(', ')} (or RUST_LOG directives naming them).${didYouMean(suggestion)}`,
        params: { value: text, allowed: [...LOG_LEVELS], suggestion },
      });
      return z.NEVER;
    }
    return named.reduce((most, level) => (VERBOSITY.indexOf(level) > VERBOSITY.indexOf(most) ? level : most));
  });
}
