// The contract between the CLI and the intproxy process it starts: settings in, reports out (over IPC).

import type { SerializedError } from '../core/errors.js';
import type { AgentLaunch } from './agent-link.js';
import type { IncomingSettings } from './incoming.js';

export const INTPROXY_SETTINGS_ENV = 'REMOCAL_INTPROXY';

export interface IntproxySettings {
  socket: string;
  agent: AgentLaunch;
  logFile: string;
  logLevel: string;
  startupTimeoutMs: number;
  incoming: IncomingSettings;
}

export type IntproxyReport =
  | { type: 'ready'; env: Record<string, string> | null; agent: Record<string, string | number> | undefined }
  | { type: 'fatal'; error: SerializedError }
  /** A port of the target now sends its traffic to the app: the user sees it happen. */
  | { type: 'subscribed'; port: number; localPort: number; mode: 'mirror' | 'steal'; filtered: boolean }
  | { type: 'subscribe_failed'; port: number; code: string; message: string; hint?: string };
