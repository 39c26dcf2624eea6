// The splitter on a real RabbitMQ, under a steady stream of 10,000 messages whose `x-dest` header picks session
// a, session b or the deployed app. What a session gets must match its filter; what was routed to a session that
// then ended goes back to the original queue and, from there, to the deployed app; nothing is lost, duplicates
// are counted; and no temporary queue is left at the end. Then the same with the splitter killed (-9) mid-stream.

import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { after, before, describe, it, type TestContext } from 'node:test';
import { fileURLToPath } from 'node:url';
import { connectRabbitMq } from '../../../src/operator/queues/rabbitmq.js';
import { QueueSplitter, tempQueueName, type SplitterStatus } from '../../../src/operator/queues/splitter.js';
import { allConsumed, consumeAs, produce, recorder, summary, type AppConsumer, type Recorder } from '../../helpers/queue-traffic.js';
import { startRabbitMq, type RabbitMqNode } from '../../helpers/rabbitmq.js';

const total = 10_000;
const perSecond = 2500;
const filterOf = (id: string) => ({ 'x-dest': `^${id}$` });

/** What every run must show, whoever ran the splitter. */
function checkRun(t: TestContext, record: Recorder, statuses: SplitterStatus[]): void {
  const { lost, duplicates, byConsumer } = summary(record, total);
  const redelivered = record.consumed.filter((entry) => entry.redelivered).length;
  t.diagnostic(`consumed: ${JSON.stringify(byConsumer)}; lost ${lost}; duplicates ${duplicates}; consumed flagged redelivered ${redelivered}`);
  for (const status of statuses) {
    t.diagnostic(`splitter: ${status.destinations.map((d) => `${d.id} forwarded ${d.forwarded} (redelivered ${d.redelivered}), drained back ${d.drainedBack}, failed ${d.failed}`).join('; ')}`);
  }
  assert.equal(lost, 0, 'no message lost');
  const misrouted = record.consumed.filter((entry) => entry.by !== 'deployed' && entry.by !== entry.dest);
  assert.deepEqual(misrouted, [], 'a session consumes only messages its filter matches');
  assert.ok((byConsumer.a ?? 0) > 0 && (byConsumer.b ?? 0) > 0, 'both sessions got messages');
}

async function onlyOriginalLeft(node: RabbitMqNode, queue: string): Promise<void> {
  const queues = await node.listQueues();
  const ours = queues.filter((entry) => entry.name === queue || entry.name.startsWith(`${queue}.`));
  assert.deepEqual(ours, [{ name: queue, messages: 0 }], 'no temporary queue left, the original one empty');
}

describe('queue splitter on RabbitMQ', { timeout: 300_000 }, () => {
  let node: RabbitMqNode;

  before(async () => {
    node = await startRabbitMq();
  });

  after(async () => {
    await node?.stop();
  });

  it('routes 10,000 messages while two sessions start and stop twice each: 0 lost, no queue left', async (t) => {
    const queue = 'orders';
    const driver = await connectRabbitMq({ url: node.url });
    await driver.ensureQueue(queue);
    const splitter = new QueueSplitter({ driver, queue });
    const record = recorder();
    let deployedApp = await consumeAs(node.url, await splitter.start(), 'deployed', record);
    const apps = new Map<string, AppConsumer>();
    const begin = async (id: string): Promise<void> => {
      apps.set(id, await consumeAs(node.url, await splitter.addSession(id, filterOf(id)), id, record));
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
    await produce({
      url: node.url,
      queue,
      total,
      perSecond,
      onSent: (sent) => {
        for (; next < timeline.length && sent >= timeline[next]![0]; next += 1) steps = steps.then(timeline[next]![1]);
      },
    });
    await steps;
    assert.equal(next, timeline.length);

    // The last session ended: the deployed app is back on the original queue, and the splitter drains to it.
    await deployedApp.stop();
    await splitter.stop();
    deployedApp = await consumeAs(node.url, queue, 'deployed', record);
    await allConsumed(record, total, 60_000);
    await deployedApp.stop();
    await driver.close();

    const status = splitter.status();
    checkRun(t, record, [status]);
    assert.ok(record.consumed.some((entry) => entry.by === 'deployed' && entry.dest === 'a'), 'messages for an absent session went to the deployed app');
    const forwarded = (id: string) => status.destinations.filter((d) => d.id === id).reduce((sum, d) => sum + d.forwarded - d.drainedBack, 0);
    const { duplicates } = summary(record, total);
    if (duplicates === 0) {
      // Everything forwarded to a session and not drained back was consumed there, exactly once.
      for (const id of ['a', 'b']) assert.equal(record.consumed.filter((entry) => entry.by === id).length, forwarded(id), id);
    }
    // Order per destination: the deployed app's own messages, first deliveries, came in the order they were sent.
    const own = record.consumed.filter((entry) => entry.by === 'deployed' && entry.dest === 'deployed' && !entry.redelivered).map((entry) => entry.seq);
    assert.ok(own.every((seq, i) => i === 0 || seq > own[i - 1]!), 'the deployed app got its messages in order');
    await onlyOriginalLeft(node, queue);
  });

  it('loses nothing when the splitter is killed with -9 mid-stream and started again', async (t) => {
    const queue = 'payments';
    const record = recorder();
    const setup = await connectRabbitMq({ url: node.url });
    await setup.ensureQueue(queue);
    await setup.close();

    const first = await SplitterProcess.start(node.url, queue);
    await first.command(`add a ${JSON.stringify(filterOf('a'))}`);
    await first.command(`add b ${JSON.stringify(filterOf('b'))}`);
    await first.command('start');
    const apps = [
      await consumeAs(node.url, tempQueueName(queue, 'deployed'), 'deployed', record),
      await consumeAs(node.url, tempQueueName(queue, 'a'), 'a', record),
      await consumeAs(node.url, tempQueueName(queue, 'b'), 'b', record),
    ];

    let restarted: Promise<SplitterProcess> | undefined;
    await produce({
      url: node.url,
      queue,
      total,
      perSecond,
      onSent: (sent) => {
        if (sent < total * 0.4 || restarted) return;
        // -9: no chance to ack what it forwarded, nor to cancel its consumer.
        first.kill();
        restarted = (async () => {
          await first.exited;
          const second = await SplitterProcess.start(node.url, queue);
          await second.command(`add a ${JSON.stringify(filterOf('a'))}`);
          await second.command(`add b ${JSON.stringify(filterOf('b'))}`);
          await second.command('start');
          return second;
        })();
      },
    });
    assert.ok(restarted, 'the splitter was killed mid-stream');
    const second = await restarted;
    // Let the new splitter take the whole stream before the sessions end.
    const watcher = await connectRabbitMq({ url: node.url });
    for (let i = 0; i < 600 && (await watcher.depth(queue)) > 0; i += 1) await new Promise((resolve) => setTimeout(resolve, 50));
    await watcher.close();

    for (const app of apps) await app.stop();
    const status = await second.stop();
    const backOnOriginal = await consumeAs(node.url, queue, 'deployed', record);
    await allConsumed(record, total, 60_000);
    await backOnOriginal.stop();
    assert.equal(first.signal, 'SIGKILL');
    checkRun(t, record, [status]);
    // Both sessions lived throughout: the deployed app got their messages only from their queues' drain at the end.
    const drained = status.destinations.filter((d) => d.id !== 'deployed').reduce((sum, d) => sum + d.drainedBack, 0);
    const foreign = new Set(record.consumed.filter((entry) => entry.by === 'deployed' && entry.dest !== 'deployed').map((entry) => entry.seq));
    assert.ok(foreign.size <= drained, `the deployed app got ${foreign.size} session messages, ${drained} were drained back`);
    await onlyOriginalLeft(node, queue);
  });
});

/** The splitter in a child process (test/helpers/splitter-process.ts), driven over stdin. */
class SplitterProcess {
  private lines: AsyncIterator<string>;
  readonly exited: Promise<void>;

  private constructor(private readonly child: ChildProcess) {
    this.lines = createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
    this.exited = new Promise((resolve) => child.once('exit', () => resolve()));
  }

  static async start(url: string, queue: string): Promise<SplitterProcess> {
    const script = fileURLToPath(new URL('../../helpers/splitter-process.ts', import.meta.url));
    const child = spawn(process.execPath, ['--import', 'tsx', script, url, queue], { stdio: ['pipe', 'pipe', 'inherit'] });
    process.once('exit', () => child.kill('SIGKILL'));
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
