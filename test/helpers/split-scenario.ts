// The proofs of queue splitting, run the same on every broker (split-brokers.ts): under a steady stream of 10,000
// messages whose `x-dest` header picks session a, session b or the deployed app, what a session gets must match
// its filter; what was routed to a session that then ended goes back to the original queue and, from there, to
// the deployed app; nothing is lost, duplicates are counted; and no temporary queue is left at the end. Then the
// same with the splitter killed (-9) mid-stream and started again.

import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { after, before, describe, it, type TestContext } from 'node:test';
import { fileURLToPath } from 'node:url';
import { startChild } from '../../src/core/child.js';
import { QueueSplitter, tempQueueName, type SplitterStatus } from '../../src/operator/queues/splitter.js';
import { waitFor } from './processes.js';
import { allConsumed, consumeAs, recorder, summary, type AppConsumer, type Recorder } from './queue-traffic.js';
import { startSplitBroker, type BrokerKind, type SplitBroker } from './split-brokers.js';

const total = 10_000;
const perSecond = 2500;
const filterOf = (id: string) => ({ 'x-dest': `^${id}$` });

/** Registers both scenarios for `kind`, on one broker started for them. */
export function describeSplitScenarios(kind: BrokerKind): void {
  describe(`queue splitter on ${kind}`, { timeout: 300_000 }, () => {
    let broker: SplitBroker;

    before(async () => {
      broker = await startSplitBroker(kind);
    });

    after(async () => {
      await broker?.stop();
    });

    it('routes 10,000 messages while two sessions start and stop twice each: 0 lost, no queue left', (t) => sessionsComeAndGo(t, broker));
    it('loses nothing when the splitter is killed with -9 mid-stream and started again', (t) => splitterKilled(t, broker));
  });
}

/** What every run must show, whoever ran the splitter. */
function checkRun(t: TestContext, broker: SplitBroker, record: Recorder, statuses: SplitterStatus[]): void {
  const { lost, duplicates, byConsumer } = summary(record, total);
  const redelivered = record.consumed.filter((entry) => entry.redelivered).length;
  t.diagnostic(`${broker.name}: consumed ${JSON.stringify(byConsumer)}; lost ${lost}; duplicates ${duplicates}; consumed flagged redelivered ${redelivered}`);
  for (const status of statuses) {
    t.diagnostic(`splitter: ${status.destinations.map((d) => `${d.id} forwarded ${d.forwarded} (redelivered ${d.redelivered}), drained back ${d.drainedBack}, failed ${d.failed}`).join('; ')}`);
  }
  assert.equal(lost, 0, 'no message lost');
  const misrouted = record.consumed.filter((entry) => entry.by !== 'deployed' && entry.by !== entry.dest);
  assert.deepEqual(misrouted, [], 'a session consumes only messages its filter matches');
  assert.ok((byConsumer.a ?? 0) > 0 && (byConsumer.b ?? 0) > 0, 'both sessions got messages');
}

/** Resolves once the original queue holds nothing more for the app consuming it. */
async function originalTaken(broker: SplitBroker, queue: string): Promise<void> {
  await waitFor(async () => (await broker.queuesOf(queue)).find((entry) => entry.name === queue)?.messages === 0, `the original queue ${queue} to be taken`, 30_000);
}

async function onlyOriginalLeft(broker: SplitBroker, queue: string): Promise<void> {
  assert.deepEqual(await broker.queuesOf(queue), [{ name: queue, messages: 0 }], 'no temporary queue left, the original one empty');
}

async function declare(broker: SplitBroker, queue: string): Promise<void> {
  const setup = await broker.connect();
  await setup.ensureQueue(queue);
  await setup.close();
}

async function sessionsComeAndGo(t: TestContext, broker: SplitBroker): Promise<void> {
  const queue = 'orders';
  const driver = await broker.connect();
  await driver.ensureQueue(queue);
  const splitter = new QueueSplitter({ driver, queue });
  const record = recorder();
  let deployedApp = await consumeAs(broker.traffic, await splitter.start(), 'deployed', record);
  const apps = new Map<string, AppConsumer>();
  const begin = async (id: string): Promise<void> => {
    apps.set(id, await consumeAs(broker.traffic, await splitter.addSession(id, filterOf(id)), id, record));
  };
  // A session ends as the operator sees it: its app went away first.
  const end = async (id: string): Promise<void> => {
    await apps.get(id)?.stop();
    apps.delete(id);
    await splitter.removeSession(id);
  };
  const timeline: Array<[number, () => Promise<void>]> = [
    [1000, () => begin('a')],
    [2000, () => begin('b')],
    [3500, () => end('a')],
    [4500, () => begin('a')],
    [5500, () => end('b')],
    [6500, () => begin('b')],
    [8000, () => end('a')],
    [9000, () => end('b')],
  ];
  let steps = Promise.resolve();
  let next = 0;
  // How many were sent when each step began: the steps must fall inside the stream, not after it.
  const sentAtStep: number[] = [];
  let sentNow = 0;
  await broker.traffic.produce({
    queue,
    total,
    perSecond,
    onSent: (sent) => {
      sentNow = sent;
      for (; next < timeline.length && sent >= timeline[next]![0]; next += 1) {
        const step = timeline[next]![1];
        steps = steps.then(() => {
          sentAtStep.push(sentNow);
          return step();
        });
      }
    },
  });
  await steps;
  assert.equal(next, timeline.length);
  t.diagnostic(`sent when each session step began: ${sentAtStep.join(', ')}`);

  // The last session ended: the deployed app is back on the original queue, and the splitter drains to it.
  await deployedApp.stop();
  // What drains back at the end joins the original queue's tail, behind newer messages (splitter.ts): order is kept
  // per destination while the split runs, not across the drain.
  const consumedWhileSplit = record.consumed.length;
  await splitter.stop();
  deployedApp = await consumeAs(broker.traffic, queue, 'deployed', record);
  await allConsumed(record, total, 60_000);
  // Every message was seen; a duplicate drained back may still be on its way: the app takes it, and it is counted.
  await originalTaken(broker, queue);
  await deployedApp.stop();
  await driver.close();

  const status = splitter.status();
  checkRun(t, broker, record, [status]);
  assert.ok(record.consumed.some((entry) => entry.by === 'deployed' && entry.dest === 'a'), 'messages for an absent session went to the deployed app');
  // Both lives of each session fell inside the stream: a session end that stalls the splitter's changes (they run
  // one at a time) would push the later ones past its end.
  for (const id of ['a', 'b']) {
    const lives = status.destinations.filter((d) => d.id === id).map((d) => d.forwarded);
    assert.ok(lives.length === 2 && lives.every((forwarded) => forwarded > 0), `session ${id} lived twice, each time with messages: ${lives.join(', ')}`);
  }
  const forwarded = (id: string) => status.destinations.filter((d) => d.id === id).reduce((sum, d) => sum + d.forwarded - d.drainedBack, 0);
  const { duplicates } = summary(record, total);
  if (duplicates === 0) {
    // Everything forwarded to a session and not drained back was consumed there, exactly once.
    for (const id of ['a', 'b']) assert.equal(record.consumed.filter((entry) => entry.by === id).length, forwarded(id), id);
  }
  // Order per destination: the deployed app's own messages, first deliveries, came in the order they were sent.
  const own = record.consumed.slice(0, consumedWhileSplit).filter((entry) => entry.by === 'deployed' && entry.dest === 'deployed' && !entry.redelivered).map((entry) => entry.seq);
  assert.ok(own.every((seq, i) => i === 0 || seq > own[i - 1]!), 'the deployed app got its messages in order');
  await onlyOriginalLeft(broker, queue);
}

async function splitterKilled(t: TestContext, broker: SplitBroker): Promise<void> {
  const queue = 'payments';
  const record = recorder();
  await declare(broker, queue);

  const startSplitter = async (): Promise<SplitterProcess> => {
    const splitter = await SplitterProcess.start(broker, queue);
    await splitter.command(`add a ${JSON.stringify(filterOf('a'))}`);
    await splitter.command(`add b ${JSON.stringify(filterOf('b'))}`);
    await splitter.command('start');
    return splitter;
  };
  const first = await startSplitter();
  const apps = [
    await consumeAs(broker.traffic, tempQueueName(queue, 'deployed'), 'deployed', record),
    await consumeAs(broker.traffic, tempQueueName(queue, 'a'), 'a', record),
    await consumeAs(broker.traffic, tempQueueName(queue, 'b'), 'b', record),
  ];

  let restarted: Promise<SplitterProcess> | undefined;
  await broker.traffic.produce({
    queue,
    total,
    perSecond,
    onSent: (sent) => {
      if (sent < total * 0.4 || restarted) return;
      // -9: no chance to ack what it forwarded, nor to cancel its consumer.
      first.kill();
      restarted = first.exited.then(startSplitter);
    },
  });
  assert.ok(restarted, 'the splitter was killed mid-stream');
  const second = await restarted;
  // Let the new splitter take the whole stream before the sessions end. On NATS the depth counts delivered but
  // unacked messages too: it reads 0 only once the dead splitter's deliveries came back (after the ack_wait) and
  // were forwarded again.
  const watcher = await broker.connect();
  await waitFor(async () => (await watcher.depth(queue)) === 0, `the original queue ${queue} to be taken`, 30_000);
  await watcher.close();

  for (const app of apps) await app.stop();
  const status = await second.stop();
  const backOnOriginal = await consumeAs(broker.traffic, queue, 'deployed', record);
  await allConsumed(record, total, 60_000);
  await originalTaken(broker, queue);
  await backOnOriginal.stop();
  assert.equal(first.signal, 'SIGKILL');
  checkRun(t, broker, record, [status]);
  // Both sessions lived throughout: the deployed app got their messages only from their queues' drain at the end.
  const drained = status.destinations.filter((d) => d.id !== 'deployed').reduce((sum, d) => sum + d.drainedBack, 0);
  const foreign = new Set(record.consumed.filter((entry) => entry.by === 'deployed' && entry.dest !== 'deployed').map((entry) => entry.seq));
  assert.ok(foreign.size <= drained, `the deployed app got ${foreign.size} session messages, ${drained} were drained back`);
  await onlyOriginalLeft(broker, queue);
}

/** The splitter in a child process (splitter-process.ts), driven over stdin. */
class SplitterProcess {
  private lines: AsyncIterator<string>;
  readonly exited: Promise<void>;

  private constructor(private readonly child: ChildProcess) {
    this.lines = createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
    this.exited = new Promise((resolve) => child.once('exit', () => resolve()));
  }

  static async start(broker: SplitBroker, queue: string): Promise<SplitterProcess> {
    const script = fileURLToPath(new URL('./splitter-process.ts', import.meta.url));
    // startChild kills it if this process exits first.
    const child = startChild(process.execPath, ['--import', 'tsx', script, broker.kind, broker.url, queue], { stdio: ['pipe', 'pipe', 'inherit'] });
    const splitter = new SplitterProcess(child);
    assert.equal(await splitter.line(), 'ready');
    return splitter;
  }

  get signal(): NodeJS.Signals | null {
    return this.child.signalCode;
  }

  private async line(): Promise<string> {
    const next = await this.lines.next();
    if (next.done) throw new Error('the splitter process ended');
    return next.value;
  }

  async command(line: string): Promise<void> {
    this.child.stdin!.write(`${line}\n`);
    const answer = await this.line();
    assert.equal(answer, `ok ${line.split(' ')[0]}`);
  }

  /** Stops the split (drains and deletes the temporary queues) and returns its last status. */
  async stop(): Promise<SplitterStatus> {
    this.child.stdin!.write('stop\n');
    const status = await this.line();
    assert.match(status, /^status /);
    assert.equal(await this.line(), 'ok stop');
    await this.exited;
    return JSON.parse(status.slice('status '.length)) as SplitterStatus;
  }

  kill(): void {
    this.child.kill('SIGKILL');
  }
}
