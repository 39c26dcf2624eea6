// What every platform does for a session, in one shape: resolve the target, ready an agent beside it, and say
// how the intproxy reaches that agent. With it the CLI stays blind to where targets live, and a new way to
// reach a target (the operator, which will hand back a launch that connects to the operator instead of an
// agent) is one more implementation rather than one more branch in every command.

import type { AgentLaunch } from '../protocol/contracts.js';
import type { Target } from './target.js';

export interface PrepareRequest {
  /** The session mirrors or steals: the agent redirects ports with iptables (and needs NET_ADMIN for it). */
  redirects: boolean;
  /** What the agent may do with the target's files; a target with no process gets `off` whatever is asked. */
  files: 'off' | 'read' | 'write';
  /** The agent's log level. */
  logLevel: string;
  startupTimeoutMs: number;
  /** A wait worth showing begins; `done` when it ends. */
  onStep: (text: string) => { done(result?: string): void };
  onNote: (text: string) => void;
  /** Ends the waits (Ctrl-C); what was created is still removed. */
  signal?: AbortSignal | undefined;
}

export interface PreparedSession {
  /** What the intproxy runs: a process whose stdio is the link to the agent. */
  launch: AgentLaunch;
  /** The target for messages: "pid/4242 (node)", "pod/orders-… (picked from deployment/orders), container app". */
  description: string;
  /** The progress line while the intproxy runs the launch: "starting the agent in …", "connecting to the agent". */
  linkStep: string;
  /** False when there is no process behind the target (netns, targetless): no environment and no files of its own. */
  hasProcess: boolean;
  /**
   * Paths the admins' policies keep from the target (behind the operator). The agent refuses them whatever asks; the
   * layer also takes them as its own config's lists, so that the app opens its local file, as the policy means,
   * rather than meeting a refusal.
   */
  policyFiles?: { readOnly: string[]; local: string[]; notFound: string[] };
  /**
   * Lines the CLI prints when the command ended, given the session's id on the operator (from the agent's hello):
   * what the session received that only the operator counted (its split queues). Never throws.
   */
  summary?(session: string): Promise<string[]>;
  /** Removes what preparing created; idempotent. */
  cleanup(): Promise<void>;
}

/** On failure, `prepare` has already removed what it created. */
export interface Platform<T extends Target> {
  prepare(target: T, request: PrepareRequest): Promise<PreparedSession>;
}
