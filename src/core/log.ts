// Logging for remocal's own processes (cli, intproxy, agent). Logs never go to the user's terminal by default:
// the agent's stdout is the protocol link, and the app's output must stay the app's. The intproxy and the agent
// write to the session's log file (or stderr, which the intproxy also sends to that file).

import { pino, type Logger } from 'pino';

export type { Logger };

export function createLogger(component: string, options: { level?: string; file?: string | undefined } = {}): Logger {
  const level = options.level ?? process.env.REMOCAL_LOG_LEVEL ?? 'info';
  const destination = options.file === undefined ? pino.destination({ fd: 2, sync: true }) : pino.destination({ dest: options.file, sync: true, mkdir: true });
  // The reader of stderr (the intproxy, for the agent) may be gone while this process still finishes its
  // work: a lost log line must not become a crash.
  destination.on('error', () => undefined);
  return pino({ level, base: { component, pid: process.pid } }, destination);
}
