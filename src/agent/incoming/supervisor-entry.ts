// The cleanup supervisor's process (see supervisor.ts): argv is <backend> <chain>; stdin is the pipe from the
// agent. It writes nothing: its stdout and stderr are closed. An agent that removed its chain itself says
// `released` before it closes the pipe; any other end of the pipe means the agent died with its chain in place.

import { BACKENDS, CHAIN_PATTERN, removeChain, type IptablesBackend } from './iptables.js';

// An agent killed while its iptables-restore ran leaves that child to commit after the first removal; the
// second pass takes away what it added.
const SECOND_PASS_DELAY_MS = 250;
// Whatever happens to iptables, the supervisor must not stay behind.
const GIVE_UP_AFTER_MS = 15_000;

const [backend, chain] = process.argv.slice(2) as [IptablesBackend, string];
if (!BACKENDS.includes(backend) || !CHAIN_PATTERN.test(chain)) {
  process.exitCode = 2;
} else {
  // Only the pipe decides when to clean up; a terminal's hang-up or interrupt is not the agent's exit.
  process.on('SIGINT', () => {});
  process.on('SIGHUP', () => {});
  let received = '';
  let started = false;
  const cleanUp = async () => {
    if (started) return;
    started = true;
    process.stdin.destroy();
    if (received.includes('released\n')) return;
    setTimeout(() => process.exit(1), GIVE_UP_AFTER_MS).unref();
    try {
      await removeChain(backend, chain);
      await new Promise((resolve) => setTimeout(resolve, SECOND_PASS_DELAY_MS));
      await removeChain(backend, chain);
    } catch {
      process.exitCode = 1;
    }
  };
  process.on('SIGTERM', () => void cleanUp());
  process.stdin.setEncoding('utf8');
  process.stdin.on('data', (chunk: string) => (received += chunk));
  process.stdin.on('error', () => void cleanUp());
  process.stdin.on('end', () => void cleanUp());
}
