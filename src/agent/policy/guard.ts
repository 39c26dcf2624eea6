// A session's policies as the agent enforces them: the operator hands over the policies that apply to the session
// (protocol/policy.ts) and this compiles them once into the checks the session's handlers ask on every operation.
// Whatever the client is (remocal's CLI, a modified one, a raw protocol client), the answers are the same, since
// the checks run here, on the target's side.
//
// Several policies combine by intersection: each must allow an operation. A refusal names the first policy that
// refuses, and its rule, so that the user knows whom to ask.

import path from 'node:path';
import { compileConfigRegex } from '../../config/regex.js';
import type { AgentSubscribeRequest, RemoteFailure } from '../../protocol/messages.js';
import { POLICY_BLOCKED, type AppliedPolicy, type PolicyBlock } from '../../protocol/policy.js';
import type { FilterableRequest } from '../incoming/http-filter.js';
import { compileOutgoingRule, parseDestination, type Destination, type DestinationMatcher } from './outgoing-rules.js';

export const POLICY_HINT = 'An admin\'s policy forbids it: `remocal policy check -t <target>` shows what the policies on the target allow. Ask the policy\'s owner if you need it.';

/** Who refused and by which rule: `shop/no-prod-db`, `network.outgoing.block[0]`. */
export interface Refusal {
  policy: string;
  rule: string;
}

/** A pattern as the admin wrote it (for refusals) and as compiled (for matching). */
interface Pattern {
  text: string;
  regex: RegExp;
}

interface CompiledPolicy {
  name: string;
  blocks: ReadonlySet<PolicyBlock>;
  envExclude: Pattern[];
  readOnly: Pattern[];
  local: Pattern[];
  notFound: Pattern[];
  /** All of the file patterns in one regex, so that a path none of them matches costs one test, not one per rule. */
  anyFilePattern: RegExp | undefined;
  headerFilter: Pattern | undefined;
  allow: DestinationMatcher[] | undefined;
  block: DestinationMatcher[];
}

export type FileAccess = 'read' | 'write';

/** What a file refusal looks like: the errno the app meets, and the policy behind it. */
export interface FileRefusal extends Refusal {
  code: 'ENOENT' | 'EACCES';
}

export class SessionGuard {
  static readonly NONE = new SessionGuard([]);

  private readonly policies: CompiledPolicy[];
  /** Only the policies with a file rule, so that file operations under none pay nothing. */
  private readonly filePolicies: CompiledPolicy[];

  constructor(applied: readonly AppliedPolicy[]) {
    this.policies = applied.map(compilePolicy);
    this.filePolicies = this.policies.filter((policy) => policy.notFound.length + policy.local.length + policy.readOnly.length > 0 || policy.blocks.has('fs-write'));
  }

  /** The names of the policies in force, for logs and `remocal session list`. */
  get names(): string[] {
    return this.policies.map((policy) => policy.name);
  }

  /** The first policy that blocks `what` outright. */
  blocked(what: PolicyBlock): Refusal | null {
    const policy = this.policies.find((candidate) => candidate.blocks.has(what));
    return policy === undefined ? null : { policy: policy.name, rule: `block: ${what}` };
  }

  /** Why a subscription is refused, or null. `filtered`: its HTTP filter applies to the port. */
  subscribeRefusal(request: AgentSubscribeRequest, filtered: boolean): RemoteFailure | null {
    const port = `port ${request.port} of the target`;
    if (request.mode === 'mirror') {
      const refusal = this.blocked('mirror');
      return refusal === null ? null : policyFailure(refusal, `mirroring ${port}`);
    }
    const refusal = this.blocked('steal') ?? (filtered ? null : this.blocked('steal-without-filter'));
    if (refusal !== null) return policyFailure(refusal, filtered ? `stealing ${port}` : `stealing ${port} without an HTTP filter`);
    for (const policy of this.policies) {
      if (policy.headerFilter === undefined) continue;
      const required = policy.headerFilter;
      if (!filtered || request.filter === null || !filterIsTagged(request.filter, required.regex)) {
        const quoted = JSON.stringify(required.text);
        return policyFailure(
          { policy: policy.name, rule: `network.incoming.httpFilter.headerFilter: ${quoted}` },
          `stealing ${port} without a header filter that matches ${quoted}`,
          `Steal with a header filter that the policy's pattern ${quoted} matches, such as "header_filter": "^x-dev: <your name>$".`,
        );
      }
    }
    return null;
  }

  /** The failure to answer with when a subscription would take a port from other sessions, if a policy forbids it. */
  overrideRefusal(port: number): RemoteFailure | undefined {
    const refusal = this.blocked('override');
    return refusal === null ? undefined : policyFailure(refusal, `taking port ${port} over from other sessions (on_concurrent_steal: override)`);
  }

  /** Whether a request may be routed to this session: a policy's header filter must match one of its headers too. */
  admits(request: FilterableRequest): boolean {
    for (const policy of this.policies) {
      if (policy.headerFilter !== undefined && !hasHeader(request.rawHeaders, policy.headerFilter.regex)) return false;
    }
    return true;
  }

  /** Why an outgoing connection (or datagram) to `destination` is refused, or null. */
  outgoingRefusal(asked: Destination): Refusal | null {
    const blocked = this.blocked('outgoing');
    if (blocked !== null) return blocked;
    if (!this.policies.some((policy) => policy.allow !== undefined || policy.block.length > 0)) return null;
    const destination = parseDestination(asked);
    for (const policy of this.policies) {
      if (policy.allow !== undefined && !policy.allow.some((matches) => matches(destination))) {
        return { policy: policy.name, rule: 'network.outgoing.allow (no rule allows it)' };
      }
      const index = policy.block.findIndex((matches) => matches(destination));
      if (index !== -1) return { policy: policy.name, rule: `network.outgoing.block[${index}]` };
    }
    return null;
  }

  /**
   * Why a file operation is refused, or null. `paths` are the target's paths the operation touches: as asked and
   * as resolved (symlinks followed in the target), so that neither a link nor `..` walks around a rule.
   */
  fileRefusal(access: FileAccess, paths: readonly string[]): FileRefusal | null {
    if (this.filePolicies.length === 0) return null;
    const all = [...new Set(paths.map((each) => path.posix.resolve('/', each)))];
    const matching = (patterns: Pattern[]) => patterns.find(({ regex }) => all.some((each) => regex.test(each)));
    for (const policy of this.filePolicies) {
      const mayMatch = policy.anyFilePattern === undefined || all.some((each) => policy.anyFilePattern!.test(each));
      if (!mayMatch) {
        if (access === 'write' && policy.blocks.has('fs-write')) return { code: 'EACCES', policy: policy.name, rule: 'block: fs-write' };
        continue;
      }
      const notFound = matching(policy.notFound);
      if (notFound !== undefined) return { code: 'ENOENT', policy: policy.name, rule: `fs.notFound: ${notFound.text}` };
      const local = matching(policy.local);
      if (local !== undefined) return { code: 'EACCES', policy: policy.name, rule: `fs.local: ${local.text}` };
      if (access === 'write') {
        if (policy.blocks.has('fs-write')) return { code: 'EACCES', policy: policy.name, rule: 'block: fs-write' };
        const readOnly = matching(policy.readOnly);
        if (readOnly !== undefined) return { code: 'EACCES', policy: policy.name, rule: `fs.readOnly: ${readOnly.text}` };
      }
    }
    return null;
  }

  /** The target's environment as the session may see it, and the policies that held variables back. */
  filterEnv(env: Record<string, string>): { env: Record<string, string>; excluded: { name: string; refusal: Refusal }[] } {
    const kept: Record<string, string> = {};
    const excluded: { name: string; refusal: Refusal }[] = [];
    for (const [name, value] of Object.entries(env)) {
      const refusal = this.envRefusal(name);
      if (refusal === null) kept[name] = value;
      else excluded.push({ name, refusal });
    }
    return { env: kept, excluded };
  }

  private envRefusal(name: string): Refusal | null {
    for (const policy of this.policies) {
      const pattern = policy.envExclude.find(({ regex }) => regex.test(name));
      if (pattern !== undefined) return { policy: policy.name, rule: `env.exclude: ${pattern.text}` };
    }
    return null;
  }
}

/** A refusal as a failure on the wire: the code the CLI shows it with, the policy and rule in the message. */
export function policyFailure(refusal: Refusal, what: string, hint: string = POLICY_HINT): RemoteFailure {
  return { code: POLICY_BLOCKED, message: `policy ${refusal.policy} forbids ${what} (${refusal.rule})`, hint };
}

function compilePolicy({ name, spec }: AppliedPolicy): CompiledPolicy {
  const regexes = (patterns: readonly string[] | undefined) => (patterns ?? []).map((text) => ({ text, regex: compileConfigRegex(text) }));
  const headerFilter = spec.network?.incoming?.httpFilter?.headerFilter;
  const files = [...(spec.fs?.notFound ?? []), ...(spec.fs?.local ?? []), ...(spec.fs?.readOnly ?? [])];
  return {
    name,
    blocks: new Set(spec.block ?? []),
    envExclude: (spec.env?.exclude ?? []).map((text) => ({ text, regex: globRegex(text) })),
    readOnly: regexes(spec.fs?.readOnly),
    local: regexes(spec.fs?.local),
    notFound: regexes(spec.fs?.notFound),
    anyFilePattern: files.length === 0 ? undefined : alternation(files),
    headerFilter: headerFilter === undefined ? undefined : { text: headerFilter, regex: compileConfigRegex(headerFilter) },
    allow: spec.network?.outgoing?.allow?.map(compileOutgoingRule),
    block: (spec.network?.outgoing?.block ?? []).map(compileOutgoingRule),
  };
}

/**
 * The patterns as one regex (`(?:a)|(?:b)`), or undefined where that would change their meaning: numbered or
 * named back-references count groups across the whole regex, and a name used twice does not compile.
 */
function alternation(patterns: readonly string[]): RegExp | undefined {
  if (patterns.some((pattern) => /\\[1-9]|\\k<|\(\?</.test(pattern))) return undefined;
  try {
    return compileConfigRegex(patterns.map((pattern) => `(?:${pattern})`).join('|'));
  } catch {
    return undefined;
  }
}

/** An env name pattern (`AWS_*`) as an exact regex; names are case-sensitive, as the environment is. */
function globRegex(glob: string): RegExp {
  return new RegExp(`^${glob.split('*').map((part) => part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('.*')}$`);
}

/**
 * Whether every request a filter matches carries a header that `pattern` describes: its header filter matches the
 * pattern; for an `all_of`, one of its header parts does (each is required); for an `any_of`, every part is a header
 * that does (any branch may be the one that matched).
 */
function filterIsTagged(filter: NonNullable<AgentSubscribeRequest['filter']>, pattern: RegExp): boolean {
  const tagged = (header: string | undefined) => header !== undefined && pattern.test(unanchored(header));
  const headerOf = (part: { header: string } | { path: string } | { method: string }) => ('header' in part ? part.header : undefined);
  if (filter.header_filter !== undefined) return tagged(filter.header_filter);
  if (filter.all_of !== undefined) return filter.all_of.some((part) => tagged(headerOf(part)));
  if (filter.any_of !== undefined) return filter.any_of.every((part) => tagged(headerOf(part)));
  return false;
}

/** A header filter's text without its anchors, as the policy's pattern is matched against it. */
function unanchored(pattern: string): string {
  return pattern.replace(/^\^/, '').replace(/\$$/, '');
}

function hasHeader(rawHeaders: readonly string[], pattern: RegExp): boolean {
  for (let index = 0; index + 1 < rawHeaders.length; index += 2) {
    if (pattern.test(`${rawHeaders[index]}: ${rawHeaders[index + 1]}`)) return true;
  }
  return false;
}
