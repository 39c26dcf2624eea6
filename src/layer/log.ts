// What the layer writes to the app's stderr, which is the user's: its own log lines only as the session's log
// level asks, and the few lines the user must hear whatever it is.

import { writeSync } from 'node:fs';

export interface LayerLog {
  debug(message: string): void;
  warn(message: string): void;
}

/** For what the user must hear whatever the log level, such as a port of the target the app will not get. */
export function writeStderrLine(line: string): void {
  try {
    writeSync(2, `${line}\n`);
  } catch {
    // A closed or non-blocking stderr must never break the app.
  }
}

const LEVELS: Record<string, number> = { trace: 10, debug: 20, info: 30, warn: 40, error: 50, fatal: 60, silent: Infinity };

/**
 * The layer lives inside the app, whose stderr is the user's: it writes nothing unless the session's log level
 * asks for it. A synchronous write keeps lines whole and needs no stream object created early in the process.
 */
export function createLayerLog(logLevel: string): LayerLog {
  const threshold = LEVELS[logLevel] ?? Infinity;
  const write = (level: string, message: string) => {
    if ((LEVELS[level] ?? 0) < threshold) return;
    writeStderrLine(`remocal layer [${process.pid}] ${level}: ${message}`);
  };
  return { debug: (message) => write('debug', message), warn: (message) => write('warn', message) };
}
