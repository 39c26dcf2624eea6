// The contract between the operator and a shared agent: one agent per target, many sessions on it.
//
//   operator ──control link (OperatorToAgent / AgentToOperator)── agent
//   operator ──one connection per session: SessionPreamble line, then an ordinary intproxy↔agent link── agent
//
// The control link is the agent's lifeline: the operator starts the agent with it on the agent's stdio (or, in
// a cluster, opens it as the first connection to the agent's port, with a ControlPreamble), and the agent ends
// (removing its rules) when it closes, so an operator that dies, even by SIGKILL, takes its agents with it. Each session connection starts with one JSON line naming the session; after it the bytes
// are the session's own link, exactly as a direct session's, so the intproxy and the layer cannot tell an
// agent behind the operator from their own.

import type { HttpFilterSpec, Hello, IncomingMode, RequestMessage, ResponseMessage } from './messages.js';
import type { AppliedPolicy } from './policy.js';

/** The first line of a session connection (JSON, then `\n`). */
export interface SessionPreamble {
  kind: 'session';
  /** The operator's id for the session: what `remocal session list` shows. */
  session: string;
  /** Who the session belongs to, for messages to other users ("port 8080 is held by … (alice)"). */
  owner: string;
  /** What this session may do with the target's files; never more than the agent's own --files. */
  files: 'off' | 'read' | 'write';
  /** The admins' policies that apply to the session, which the agent enforces on each of its operations. */
  policies?: AppliedPolicy[];
  /**
   * Variables the operator sets in this session's view of the target's environment, over the target's own: what
   * the operator arranged for the session alone (a split queue's temporary queue, docs/queues.md). Not the
   * target's secrets, so a policy that holds the environment back does not hold these.
   */
  env?: Record<string, string>;
}

/**
 * In a cluster the operator cannot own the agent's stdio: it reaches the agent's TCP port through a
 * port-forward, and the first connection that says this is the control link.
 */
export interface ControlPreamble {
  kind: 'control';
}

export type Preamble = SessionPreamble | ControlPreamble;

/** A preamble longer than this is refused: a few names and the session's policies, and the peer is only trusted so far. */
export const MAX_PREAMBLE_BYTES = 256 * 1024;

/** More policies than this on one session is a sign of a mistake, not a need. */
export const MAX_SESSION_POLICIES = 256;

const SESSION_ID = /^[a-z0-9][a-z0-9-]{0,62}$/;
/** Bounds of a session's env overrides: a handful of names the operator chose, never a whole environment. */
export const MAX_SESSION_ENV = 64;
const MAX_SESSION_ENV_VALUE_BYTES = 4096;
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,127}$/;

function parseSessionEnv(value: unknown): Record<string, string> | string {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return 'the preamble\'s env is not an object';
  const entries = Object.entries(value as Record<string, unknown>);
  if (entries.length > MAX_SESSION_ENV) return `the preamble sets more than ${MAX_SESSION_ENV} env vars`;
  const env: Record<string, string> = {};
  for (const [name, text] of entries) {
    if (!ENV_NAME.test(name)) return `the preamble's env holds ${JSON.stringify(name.slice(0, 80))}, which is not a variable name`;
    if (typeof text !== 'string' || Buffer.byteLength(text) > MAX_SESSION_ENV_VALUE_BYTES) return `the preamble's env ${name} is not a string of at most ${MAX_SESSION_ENV_VALUE_BYTES} bytes`;
    env[name] = text;
  }
  return env;
}

/** The preamble if `value` is a well-formed one, else why not. */
export function parsePreamble(line: string): Preamble | string {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    return 'the preamble is not JSON';
  }
  if (typeof value !== 'object' || value === null) return 'the preamble is not an object';
  const { kind, session, owner, files, policies, env } = value as Record<string, unknown>;
  if (kind === 'control') return { kind };
  if (kind !== 'session') return `unknown preamble kind ${JSON.stringify(kind)}`;
  if (typeof session !== 'string' || !SESSION_ID.test(session)) return 'the preamble names no valid session id';
  if (typeof owner !== 'string' || owner.length === 0 || owner.length > 512) return 'the preamble names no owner';
  if (files !== 'off' && files !== 'read' && files !== 'write') return 'the preamble gives no valid files mode';
  const preamble: SessionPreamble = { kind, session, owner, files };
  if (policies !== undefined) {
    const applied = parsePolicies(policies);
    if (typeof applied === 'string') return applied;
    preamble.policies = applied;
  }
  if (env !== undefined) {
    const overrides = parseSessionEnv(env);
    if (typeof overrides === 'string') return overrides;
    preamble.env = overrides;
  }
  return preamble;
}

/**
 * Policies as the operator sends them, or why not. The operator validated each against the CRD's schema; this only
 * keeps a malformed list from reaching the agent's compiler.
 */
export function parsePolicies(value: unknown): AppliedPolicy[] | string {
  if (!Array.isArray(value) || value.length > MAX_SESSION_POLICIES) return `the policies are not a list of at most ${MAX_SESSION_POLICIES}`;
  for (const policy of value as unknown[]) {
    const { kind, name, spec } = (policy ?? {}) as Record<string, unknown>;
    if ((kind !== 'RemocalPolicy' && kind !== 'RemocalClusterPolicy') || typeof name !== 'string' || typeof spec !== 'object' || spec === null) {
      return 'a policy is not { kind, name, spec }';
    }
  }
  return value as AppliedPolicy[];
}

export interface SubscriptionStats {
  port: number;
  mode: IncomingMode;
  /** Set for a filtered steal. */
  filter: HttpFilterSpec | null;
  /** Epoch ms. */
  since: number;
  /**
   * For a filtered steal: the other sessions whose filter matched a request this one's matched too, each with the
   * first such request line (`GET /orders/7`). Unset when there are none.
   */
  overlaps?: { session: string; owner: string; request: string }[];
}

export interface SessionStats {
  session: string;
  owner: string;
  /** The session's link finished its handshake. */
  ready: boolean;
  /** Epoch ms of the session's last request, incoming connection or request, or stream byte. */
  lastActivity: number;
  /** Incoming connections and HTTP requests routed to the session. */
  routed: number;
  subscriptions: SubscriptionStats[];
}

export interface AgentSessionsRequest {
  op: 'agent.sessions';
}
export interface AgentSessionsResult {
  sessions: SessionStats[];
}

/** Ends one session: it is told why (a `session_closed` event on its link), then its link closes. */
export interface SessionEndRequest {
  op: 'session.end';
  session: string;
  code: string;
  reason: string;
  hint?: string;
}
export interface SessionEndResult {
  found: boolean;
}

/** The policies that apply to a session changed: its new operations meet the new ones. */
export interface SessionPoliciesRequest {
  op: 'session.policies';
  session: string;
  policies: AppliedPolicy[];
}
export interface SessionPoliciesResult {
  found: boolean;
}

export type ControlRequest = AgentSessionsRequest | SessionEndRequest | SessionPoliciesRequest;
export interface ControlResults {
  'agent.sessions': AgentSessionsResult;
  'session.end': SessionEndResult;
  'session.policies': SessionPoliciesResult;
}

/** A session's link changed state on the agent's side. */
export interface SessionStateEvent {
  type: 'session';
  session: string;
  state: 'ready' | 'closed';
  /** For `closed`: why, in words. */
  reason?: string;
}

export type OperatorToAgent = Hello | RequestMessage<ControlRequest> | { type: 'ping'; id: number };
export type AgentToOperator = Hello | ResponseMessage<ControlResults> | { type: 'pong'; id: number } | SessionStateEvent;
