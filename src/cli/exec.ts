// `remocal exec`: run a command as if it ran in the target.
//
//   resolve the target → start the intproxy (which starts the agent beside the target) → read the target's
//   environment → run the command with the layer preloaded → wait → tear everything down.
//
// The command's stdio, exit code and signals are passed through. remocal's own failures exit with 125, a
// command that cannot be run with 126/127, as `env` and `docker run` do.

import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { constants as osConstants } from 'node:os';
import { randomBytes } from 'node:crypto';
import type { ChildProcess } from 'node:child_process';
import { startChild, childExited, stopChild } from '../core/child.js';
import {
  CommandNotFoundError,
  FeatureUnavailableError,
  FilterConflictError,
  PortHeldError,
  IntproxyLostError,
  UsageError,
  type RemocalError,
} from '../core/errors.js';
import { distFile } from '../core/paths.js';
import {
  INTPROXY_SETTINGS_ENV,
  LAYER_SETTINGS_ENV,
  type IncomingSettings,
  type IntproxyReport,
  type IntproxySettings,
  type LayerSettings,
} from '../protocol/contracts.js';
import type { OnConcurrentSteal } from '../protocol/messages.js';
import { deserializeError } from '../protocol/wire-error.js';
import type { PreparedSession } from '../platform/platform.js';
import { prepareSession, type PlatformSettings } from '../platform/platforms.js';
import { formatTarget, parseTarget, type Target } from '../platform/target.js';
import { mergeEnvironment, type EnvPolicy } from './env.js';
import type { Progress } from './progress.js';
import { startIntproxy, takePrewarmedIntproxy } from './prewarm.js';
import type { ActionPlan } from './actions/plan.js';
import { ActionRunner } from './actions/runner.js';

export interface ExecRequest {
  command: string[];
  incoming: IncomingSettings;
  target: string | undefined;
  env: EnvPolicy;
  layer: Omit<LayerSettings, 'socket' | 'session'>;
  agentLogLevel: string;
  startupTimeoutMs: number;
  progress: Progress;
  verbose: boolean;
  /** Variables for the command on top of the session's environment (remocal's own commands use them). */
  commandEnv?: Record<string, string>;
  /** What each platform needs beyond the target (for Kubernetes: how to reach the cluster, where to place the agent). */
  platforms: PlatformSettings;
  /** Steps run before and after the command (docs/actions.md); undefined with --no-actions. */
  actions?: ActionPlan | undefined;
}

export const EXIT_REMOCAL_FAILED = 125;
export const EXIT_NOT_EXECUTABLE = 126;
export const EXIT_NOT_FOUND = 127;

export async function runExec(request: ExecRequest): Promise<number> {
  const { progress } = request;
  if (request.command.length === 0) throw new UsageError('No command to run: put it after `--`, as in `remocal exec -t pid/4242 -- node server.js`.');
  if (request.target === undefined) {
    throw new UsageError('No target: say which process the command should run as if inside.', {
      hint: 'Pass `-t deployment/<name>` (or pod/…, targetless for the cluster\'s network alone; pid/<pid>, container/<name>, netns/<name> on this host), or set "target" in .remocal/config.json.',
    });
  }
  const target = parseTarget(request.target);
  const cleanups: (() => Promise<void> | void)[] = [];
  const cleanup = async () => {
    for (const step of cleanups.splice(0).reverse()) await step();
  };
  // Until the command runs (resolving, starting an agent: minutes with a slow image pull), a Ctrl-C or SIGTERM
  // must not kill remocal with the agent's Job or a CronJob's Job still in the cluster: it ends the start-up and
  // cleans up. The handlers stay until the cleanup is done, so a second Ctrl-C cannot cut it short.
  const state = { commandStarted: false };
  let interrupted: (signal: NodeJS.Signals) => void = () => {};
  const interrupt = new Promise<NodeJS.Signals>((resolve) => (interrupted = resolve));
  const onStartupSignal = (signal: NodeJS.Signals) => {
    if (!state.commandStarted) interrupted(signal);
  };
  for (const signal of STARTUP_SIGNALS) process.on(signal, onStartupSignal);
  const abort = new AbortController();
  try {
    const session = runSession(request, target, cleanups, state, abort.signal);
    const outcome = await Promise.race([session, interrupt.then((signal) => ({ signal }))]);
    if (typeof outcome === 'number') return outcome;
    // The start-up's waits end on the abort; whatever they fail with now is no news.
    abort.abort();
    await session.catch(() => undefined);
    progress.note(`${outcome.signal}: stopping, and removing what the session started`);
    return 128 + (osConstants.signals[outcome.signal] ?? 0);
  } finally {
    await cleanup();
    for (const signal of STARTUP_SIGNALS) process.off(signal, onStartupSignal);
  }
}

const STARTUP_SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;

/** Resolves the target and readies its agent; what that creates is undone by the cleanups. */
async function prepareTarget(
  request: ExecRequest,
  target: Target,
  cleanups: (() => Promise<void> | void)[],
  signal: AbortSignal,
): Promise<{ prepared: PreparedSession; files: LayerSettings['files'] }> {
  const { progress } = request;
  const prepared = await prepareSession(target, request.platforms, {
    // Mirror uses the same iptables redirect as steal: both need NET_ADMIN.
    redirects: request.incoming.mode !== 'off',
    files: agentFileAccess(request.layer.files),
    logLevel: request.agentLogLevel,
    startupTimeoutMs: request.startupTimeoutMs,
    onStep: (text) => progress.step(text),
    onNote: (text) => progress.note(text),
    signal,
  });
  cleanups.push(() => prepared.cleanup());
  let files = request.layer.files;
  const fromPolicies = prepared.policyFiles;
  if (fromPolicies !== undefined) {
    files = { ...files, readOnly: [...files.readOnly, ...fromPolicies.readOnly], local: [...files.local, ...fromPolicies.local], notFound: [...files.notFound, ...fromPolicies.notFound] };
  }
  if (!prepared.hasProcess && files.mode !== 'local') {
    progress.note(`${formatTarget(target)} has no file system of its own: the command's files stay local.`);
    files = { ...files, mode: 'local' };
  }
  return { prepared, files };
}

async function runSession(
  request: ExecRequest,
  target: Target,
  cleanups: (() => Promise<void> | void)[],
  state: { commandStarted: boolean },
  signal: AbortSignal,
): Promise<number> {
  const { progress } = request;
  const { prepared, files } = await prepareTarget(request, target, cleanups, signal);
  signal.throwIfAborted();

  const session = randomBytes(4).toString('hex');
  const sessionDir = mkdtempSync(join(tmpdir(), `remocal-${session}-`));
  const settings: IntproxySettings = {
    socket: join(sessionDir, 'intproxy.sock'),
    agent: prepared.launch,
    logFile: join(sessionDir, 'session.log'),
    logLevel: request.verbose ? 'debug' : 'info',
    startupTimeoutMs: request.startupTimeoutMs,
    incoming: request.incoming,
  };

  cleanups.push(() => rmSync(sessionDir, { recursive: true, force: true }));
  {
    const step = progress.step(prepared.linkStep);
    let intproxy = takePrewarmedIntproxy();
    if (intproxy !== undefined) {
      intproxy.send({ type: 'start', settings });
    } else {
      intproxy = startIntproxy({ ...process.env, [INTPROXY_SETTINGS_ENV]: JSON.stringify(settings) });
    }
    const intproxyStderr: string[] = [];
    intproxy.stderr!.on('data', (chunk: Buffer) => intproxyStderr.push(chunk.toString()));
    // From the start: a notice can come with the session's first answers (a policy holding back the environment).
    intproxy.on('message', (message: IntproxyReport) => {
      if (message.type === 'notice') progress.note(describeNotice(message));
    });
    cleanups.push(() => stopIntproxy(intproxy));

    const lost = watchIntproxy(intproxy, intproxyStderr, settings.logFile);
    const ready = await Promise.race([firstReport(intproxy), lost.then((error) => Promise.reject(error))]);
    if (ready.type === 'fatal') throw deserializeError(ready.error);
    step.done(`session ready`);
    if (ready.env === null) progress.note(`${formatTarget(target)} has no process: the command keeps its local environment.`);

    // The steps run once the session is ready (a target that cannot be reached starts none), and their `after`
    // half runs from the cleanups, so it runs however the session ends.
    let overrides: Record<string, string> = {};
    if (request.actions !== undefined && request.actions.steps.length > 0) {
      const runner = new ActionRunner(request.actions, { progress, verbose: request.verbose });
      cleanups.push(() => runner.finish());
      overrides = await Promise.race([runner.runBefore(signal), lost.then((error) => Promise.reject(error))]);
    }

    // The steps' overrides go over the target's environment: the app gets the local database's URL, not the target's.
    const env = { ...mergeEnvironment(process.env, ready.env, request.env), ...overrides, ...request.commandEnv };
    env.NODE_OPTIONS = [`--require ${quoteNodeOption(distFile('layer.cjs'))}`, process.env.NODE_OPTIONS ?? ''].join(' ').trim();
    const layerSettings: LayerSettings = { ...request.layer, files, socket: settings.socket, session };
    env[LAYER_SETTINGS_ENV] = JSON.stringify(layerSettings);

    progress.note(`running ${request.command.join(' ')}`);
    const command = startChild(request.command[0]!, request.command.slice(1), { stdio: 'inherit', env, keepOnExit: false });
    const spawnError = new Promise<never>((_, reject) =>
      command.once('error', (error: NodeJS.ErrnoException) => {
        reject(
          new CommandNotFoundError(
            error.code === 'ENOENT' ? `Command not found: ${request.command[0]}.` : `Cannot run ${request.command[0]}: ${error.message}.`,
            { hint: 'Check the command name and that it is on your PATH.', details: { exitCode: error.code === 'ENOENT' ? EXIT_NOT_FOUND : EXIT_NOT_EXECUTABLE } },
          ),
        );
      }),
    );
    state.commandStarted = true;
    const removeSignalForwarding = forwardSignals(command);
    cleanups.push(removeSignalForwarding);

    const fatal = new Promise<RemocalError>((resolve) => {
      intproxy.on('message', (message: IntproxyReport) => {
        if (message.type === 'fatal') resolve(deserializeError(message.error));
        else if (message.type === 'subscribed') progress.note(describeSubscription(message, formatTarget(target)));
        else if (message.type === 'subscribe_failed') progress.note(describeSubscribeFailure(message, formatTarget(target), request.incoming.onConcurrentSteal));
      });
    });
    const outcome = await Promise.race([
      childExited(command).then((exit) => ({ exit })),
      fatal.then((error) => ({ error })),
      lost.then((error) => ({ error })),
      spawnError,
    ]);
    if ('error' in outcome) {
      await stopChild(command, 3000);
      throw outcome.error;
    }
    const { code, signal: exitSignal } = outcome.exit;
    const sessionId = ready.agent?.session;
    if (prepared.summary !== undefined && typeof sessionId === 'string') for (const line of await prepared.summary(sessionId)) progress.note(line);
    if (exitSignal !== null) return 128 + (osConstants.signals[exitSignal] ?? 0);
    return code ?? EXIT_REMOCAL_FAILED;
  }
}

/** What the agent must allow: nothing when files stay local, changes only when some path can be written remotely. */
function agentFileAccess(files: LayerSettings['files']): 'off' | 'read' | 'write' {
  if (files.mode === 'local') return 'off';
  if (files.mode === 'write' || files.readWrite.length > 0) return 'write';
  return 'read';
}

/**
 * As the CLI prints an error: message, then the hint and the code of a remocal error (not of an errno). A port
 * held by another session reaches here only with on_concurrent_steal `continue` (else the session ends), which the
 * user is reminded of: the session runs, without that port.
 */
function describeSubscribeFailure(message: Extract<IntproxyReport, { type: 'subscribe_failed' }>, target: string, onConcurrentSteal: OnConcurrentSteal | undefined): string {
  const lines = [`could not subscribe to port ${message.port} of ${target}: ${message.message}`];
  if (onConcurrentSteal === 'continue' && (message.code === PortHeldError.code || message.code === FilterConflictError.code)) {
    lines.push(`  the session goes on without port ${message.port} (on_concurrent_steal: continue)`);
  } else if (message.hint) {
    lines.push(`  hint: ${message.hint}`);
  }
  if (message.code.startsWith('REMOCAL_')) lines.push(`  (${message.code})`);
  return lines.join('\n');
}

/** A notice from the agent, as the CLI prints a failure: message, hint, code. */
function describeNotice(message: Extract<IntproxyReport, { type: 'notice' }>): string {
  return [message.message, ...(message.hint ? [`  hint: ${message.hint}`] : []), `  (${message.code})`].join('\n');
}

function describeSubscription(message: Extract<IntproxyReport, { type: 'subscribed' }>, target: string): string {
  const local = message.localPort === message.port ? `port ${message.port}` : `local port ${message.localPort}`;
  if (message.mode === 'mirror') return `mirroring port ${message.port} of ${target}: your app on ${local} gets a copy of its traffic`;
  if (message.filtered) return `stealing the HTTP requests that match the filter on port ${message.port} of ${target} to ${local}; the rest reach the target`;
  const taken = message.displaced?.map((other) => `${other.owner} (session ${other.session})`).join(', ');
  return `stealing port ${message.port} of ${target}: its traffic goes to your app on ${local}${taken === undefined ? '' : `; taken over from ${taken}, who goes on without it`}`;
}

/** The intproxy's first word: ready, or why not. */
function firstReport(intproxy: ChildProcess): Promise<Extract<IntproxyReport, { type: 'ready' | 'fatal' }>> {
  return new Promise((resolve) => {
    const onMessage = (message: IntproxyReport) => {
      if (message.type !== 'ready' && message.type !== 'fatal') return;
      intproxy.off('message', onMessage);
      resolve(message);
    };
    intproxy.on('message', onMessage);
  });
}

/** Resolves with an error if the intproxy exits on its own (not after a shutdown we asked for). */
function watchIntproxy(intproxy: ChildProcess, stderr: string[], logFile: string): Promise<RemocalError> {
  return childExited(intproxy).then(({ code, signal }) => {
    const how = signal !== null ? `was killed by ${signal}` : `exited with code ${code}`;
    let detail = stderr.join('').trim().split('\n').slice(-3).join('\n');
    if (detail === '') {
      try {
        detail = readFileSync(logFile, 'utf8').trim().split('\n').slice(-2).join('\n');
      } catch {
        // No log yet.
      }
    }
    return new IntproxyLostError(`The session's intproxy (pid ${intproxy.pid}) ${how}.${detail ? `\nIts last words: ${detail}` : ''}`);
  });
}

async function stopIntproxy(intproxy: ChildProcess): Promise<void> {
  if (intproxy.exitCode !== null || intproxy.signalCode !== null) return;
  if (intproxy.connected) intproxy.send({ type: 'shutdown' });
  const timer = setTimeout(() => intproxy.kill('SIGKILL'), 3000);
  await childExited(intproxy);
  clearTimeout(timer);
}

/**
 * SIGTERM always reaches the command through remocal. SIGINT from a terminal's Ctrl-C already reaches the
 * command (it is in the terminal's foreground process group), so it is forwarded only when remocal has no
 * terminal: an app that counts Ctrl-C presses must not see each one twice.
 */
function forwardSignals(command: ChildProcess): () => void {
  const onTerm = () => command.kill('SIGTERM');
  const onInt = () => {
    if (!process.stdin.isTTY) command.kill('SIGINT');
  };
  const onHup = () => command.kill('SIGHUP');
  process.on('SIGTERM', onTerm);
  process.on('SIGINT', onInt);
  process.on('SIGHUP', onHup);
  return () => {
    process.off('SIGTERM', onTerm);
    process.off('SIGINT', onInt);
    process.off('SIGHUP', onHup);
  };
}

/** NODE_OPTIONS splits on spaces unless a value is double-quoted. */
function quoteNodeOption(value: string): string {
  return /[\s"\\]/.test(value) ? `"${value.replace(/(["\\])/g, '\\$1')}"` : value;
}
