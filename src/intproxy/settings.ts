// The contract between the CLI and the intproxy process it starts: settings in, reports out (over IPC).

import type { SerializedError } from '../core/errors.js';
import type { AgentLaunch } from './agent-link.js';

export const INTPROXY_SETTINGS_ENV = 'REMOCAL_INTPROXY';

export interface IntproxySettings {
  socket: string;
  agent: AgentLaunch;
  logFile: string;
  logLevel: string;
  startupTimeoutMs: number;
}

export type IntproxyReport =
  | { type: 'ready'; env: Record<string, string> | null; agent: Record<string, string | number> | undefined }
  | { type: 'fatal'; error: SerializedError };
