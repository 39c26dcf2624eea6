// What the tests' stand-in agents (redirect-agent.ts, service-agent.ts) share: they run inside a pod's network
// namespace, take one JSON command a line on stdin and answer one JSON object a line on stdout, as AgentProcess
// (agent-process.ts) speaks to them.

import { createInterface } from 'node:readline';

export function report(message: Record<string, unknown>): void {
  process.stdout.write(`${JSON.stringify(message)}\n`);
}

/** Says it is ready, then answers each command in turn until `close`; a failed command answers with its error. */
export async function serveCommands<C extends { op: string }>(handle: (command: C) => Promise<Record<string, unknown>>): Promise<void> {
  report({ event: 'ready', pid: process.pid });
  for await (const line of createInterface({ input: process.stdin })) {
    const command = JSON.parse(line) as C;
    try {
      report({ event: 'done', op: command.op, ...(await handle(command)) });
    } catch (error) {
      const { code, hint } = error as { code?: string; hint?: string };
      report({ event: 'done', op: command.op, error: (error as Error).message, code, hint });
    }
    if (command.op === 'close') break;
  }
}
