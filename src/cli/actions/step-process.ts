// One local action step as a process: started in a process group of its own, its output read line by line
// (for `wait_for.log`, the `stdout` output and the last lines shown when it fails), and stopped as a group.
//
// Its own group, because a step is usually a shell that starts the real work (a server, `sleep`, a pipeline):
// killing the shell alone would leave those running. It also keeps a terminal's Ctrl-C, which the terminal
// sends to its foreground group, away from the steps: the database must still run when the `after` step
// that stops it runs.

import type { ChildProcess } from 'node:child_process';
import { childExited, startChild } from '../../core/child.js';

const TAIL_LINES = 15;
/** `stdout` of a step is meant for a value (a token, a URL): more than this is cut. */
const STDOUT_LIMIT = 64 * 1024;

export interface StepCommand {
  /** A string runs through /bin/sh -c; a list runs as is. */
  run: string | string[];
  cwd: string | undefined;
  env: Record<string, string>;
}

export class StepProcess {
  private readonly child: ChildProcess;
  private readonly tail: string[] = [];
  private stdoutText = '';
  private readonly lineListeners = new Set<(line: string) => void>();
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; error?: Error }>;
  /** Both of its output pipes ended: every line has been read (the exit can come before the last of them). */
  readonly outputClosed: Promise<void>;

  constructor(command: StepCommand, onLine?: (line: string) => void) {
    const [file, args] = typeof command.run === 'string' ? ['/bin/sh', ['-c', command.run]] : [command.run[0]!, command.run.slice(1)];
    this.child = startChild(file, args, { cwd: command.cwd, env: command.env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    const spawnError = new Promise<Error>((resolve) => this.child.once('error', resolve));
    this.exited = Promise.race([childExited(this.child), spawnError.then((error) => ({ code: null, signal: null, error }))]);
    if (onLine !== undefined) this.lineListeners.add(onLine);
    this.outputClosed = Promise.all([this.readLines(this.child.stdout!, true), this.readLines(this.child.stderr!, false)]).then(() => undefined);
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  /** The last lines of its output, stdout and stderr interleaved as they came. */
  lastLines(): string[] {
    return [...this.tail];
  }

  stdout(): string {
    return this.stdoutText.trim();
  }

  onLine(listener: (line: string) => void): () => void {
    this.lineListeners.add(listener);
    return () => this.lineListeners.delete(listener);
  }

  /**
   * SIGTERM to the whole group, SIGKILL to what is left after `graceMs`. Also when the leader has already exited:
   * what it started in the background is still in the group.
   */
  async stop(graceMs: number): Promise<void> {
    const group = this.child.pid;
    if (group === undefined || !groupAlive(group)) return;
    signalGroup(group, 'SIGTERM');
    const deadline = Date.now() + graceMs;
    while (groupAlive(group) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
    if (groupAlive(group)) signalGroup(group, 'SIGKILL');
    await this.exited;
  }

  /**
   * Output read after the process exited, for at most `boundMs`: a background process it started may hold the
   * pipes open for as long as it runs.
   */
  async settledOutput(boundMs = 500): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.outputClosed, new Promise((resolve) => (timer = setTimeout(resolve, boundMs)))]);
    clearTimeout(timer);
  }

  private readLines(stream: NodeJS.ReadableStream, isStdout: boolean): Promise<void> {
    let partial = '';
    stream.setEncoding('utf8');
    const emit = (line: string) => {
      this.tail.push(line);
      if (this.tail.length > TAIL_LINES) this.tail.shift();
      for (const listener of this.lineListeners) listener(line);
    };
    stream.on('data', (chunk: string) => {
      if (isStdout && this.stdoutText.length < STDOUT_LIMIT) this.stdoutText += chunk.slice(0, STDOUT_LIMIT - this.stdoutText.length);
      const lines = (partial + chunk).split('\n');
      partial = lines.pop()!;
      for (const line of lines) emit(line.replace(/\r$/, ''));
    });
    return new Promise((resolve) => {
      const end = () => {
        if (partial !== '') emit(partial);
        partial = '';
        resolve();
      };
      stream.once('end', end);
      stream.once('close', end);
    });
  }
}

/** Whether any process of the group is left (signal 0 only checks). */
function groupAlive(group: number): boolean {
  try {
    process.kill(-group, 0);
    return true;
  } catch {
    return false;
  }
}

function signalGroup(group: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-group, signal);
  } catch {
    // The group emptied in between.
  }
}
