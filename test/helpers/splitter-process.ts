// The splitter alone in a process, for tests that kill it:
// `node --import tsx splitter-process.ts <RMQ|NATS> <url> <queue>`.
// Reads commands on stdin, one a line: `add <id> <filter json>`, `remove <id>`, `start` (consume the queue, once
// the sessions known are added, as an operator restarting does), `stop` (which also exits); answers each with
// `ok <command>` or `error <message>`. Prints `ready` once connected.

import { createInterface } from 'node:readline';
import { QueueSplitter } from '../../src/operator/queues/splitter.js';
import { brokerKinds, connectDriver, type BrokerKind } from './split-brokers.js';

const [kind, url, queue] = process.argv.slice(2);
if (!brokerKinds.includes(kind as BrokerKind) || url === undefined || queue === undefined) {
  throw new Error('usage: splitter-process.ts <RMQ|NATS> <url> <queue>');
}
const driver = await connectDriver(kind as BrokerKind, url);
const splitter = new QueueSplitter({ driver, queue });
// A lost link ends the process: the test starts another, as the operator would reconnect.
void driver.lost.then((error) => {
  process.stderr.write(`${error.message}\n`);
  process.exit(3);
});
process.stdout.write('ready\n');

for await (const line of createInterface({ input: process.stdin })) {
  const [command, id, ...rest] = line.trim().split(' ');
  try {
    if (command === 'add' && id !== undefined) await splitter.addSession(id, JSON.parse(rest.join(' ')) as Record<string, string>);
    else if (command === 'remove' && id !== undefined) await splitter.removeSession(id);
    else if (command === 'start') await splitter.start();
    else if (command === 'stop') {
      await splitter.stop();
      process.stdout.write(`status ${JSON.stringify(splitter.status())}\n`);
      await driver.close();
      process.stdout.write('ok stop\n');
      process.exit(0);
    } else throw new Error(`unknown command: ${line}`);
    process.stdout.write(`ok ${command}\n`);
  } catch (error) {
    process.stdout.write(`error ${(error as Error).message}\n`);
  }
}
