// A throwaway RabbitMQ node for one test file: Debian's rabbitmq-server, started under a temp dir on free
// loopback ports, with its own epmd, cookie and HOME so that it shares nothing with another node on this machine
// (another test file's, or a system one). Stopped, with everything it wrote, by `stop()`.

import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { connect as tcpConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import amqp from 'amqplib';
import { freePort } from './net.js';

const rabbitBin = '/usr/lib/rabbitmq/bin';

export interface RabbitMqNode {
  /** amqp://guest:guest@127.0.0.1:<port> */
  url: string;
  nodeName: string;
  /** Closes every client connection from the broker's side, as a broker restart or a network cut would. */
  closeConnections(): Promise<void>;
  /** Every queue of the node with its ready message count, through rabbitmqctl (no management plugin). */
  listQueues(): Promise<Array<{ name: string; messages: number }>>;
  stop(): Promise<void>;
}

function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}

/** Resolves once `probe` resolves true, polling it; rejects after `timeoutMs` or when `failed` says why. */
async function until(probe: () => Promise<boolean>, what: string, timeoutMs: number, failed: () => string | undefined): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const why = failed();
    if (why !== undefined) throw new Error(`${what}: ${why}`);
    if (await probe()) return;
    if (Date.now() > deadline) throw new Error(`${what}: not ready within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = tcpConnect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

async function amqpReady(url: string): Promise<boolean> {
  try {
    const connection = await amqp.connect(url, { timeout: 2000 });
    await connection.close();
    return true;
  } catch {
    return false;
  }
}

export async function startRabbitMq(): Promise<RabbitMqNode> {
  const dir = await mkdtemp(join(tmpdir(), 'remocal-rabbitmq-'));
  const [amqpPort, distPort, epmdPort, ctlPort] = [await freePort(), await freePort(), await freePort(), await freePort()];
  const nodeName = `remocal-test-${process.pid}-${randomBytes(3).toString('hex')}@localhost`;
  const home = join(dir, 'home');
  await mkdir(home);
  await writeFile(join(home, '.erlang.cookie'), randomBytes(16).toString('hex'), { mode: 0o600 });
  await writeFile(join(dir, 'enabled_plugins'), '');
  await writeFile(join(dir, 'rabbitmq.conf'), `listeners.tcp.1 = 127.0.0.1:${amqpPort}\n`);
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    HOME: home,
    // Its own epmd on its own port: the node's default would start a daemonized epmd on 4369 that outlives us.
    ERL_EPMD_PORT: String(epmdPort),
    ERL_EPMD_ADDRESS: '127.0.0.1',
    RABBITMQ_NODENAME: nodeName,
    RABBITMQ_NODE_IP_ADDRESS: '127.0.0.1',
    RABBITMQ_NODE_PORT: String(amqpPort),
    RABBITMQ_DIST_PORT: String(distPort),
    RABBITMQ_CTL_DIST_PORT_MIN: String(ctlPort),
    RABBITMQ_CTL_DIST_PORT_MAX: String(ctlPort),
    RABBITMQ_MNESIA_BASE: join(dir, 'mnesia'),
    RABBITMQ_LOG_BASE: join(dir, 'log'),
    RABBITMQ_LOGS: join(dir, 'log', 'node.log'),
    RABBITMQ_PID_FILE: join(dir, 'node.pid'),
    RABBITMQ_CONFIG_FILE: join(dir, 'rabbitmq.conf'),
    RABBITMQ_ENABLED_PLUGINS_FILE: join(dir, 'enabled_plugins'),
    // The system's /etc/rabbitmq/rabbitmq-env.conf would override what is set here.
    RABBITMQ_CONF_ENV_FILE: '/dev/null',
    RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS: '-kernel inet_dist_use_interface {127,0,0,1}',
  };

  let output = '';
  const epmd = spawn('epmd', ['-port', String(epmdPort), '-address', '127.0.0.1'], { env, stdio: 'ignore' });
  // Its own process group, so that stop() reaches the wrapper script and the Erlang VM under it.
  const server = spawn(join(rabbitBin, 'rabbitmq-server'), [], { env, cwd: dir, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  server.stdout?.on('data', (chunk: Buffer) => (output = (output + chunk.toString()).slice(-4000)));
  server.stderr?.on('data', (chunk: Buffer) => (output = (output + chunk.toString()).slice(-4000)));
  const killAll = (): void => {
    try {
      if (server.pid !== undefined) process.kill(-server.pid, 'SIGKILL');
    } catch {
      // Already gone.
    }
    epmd.kill('SIGKILL');
  };
  // A test process that dies without stop() must not leave a broker behind.
  process.once('exit', killAll);

  const url = `amqp://guest:guest@127.0.0.1:${amqpPort}`;
  const stop = async (): Promise<void> => {
    if (server.exitCode === null && server.signalCode === null && server.pid !== undefined) {
      // The wrapper turns TERM into an orderly stop of the node.
      process.kill(-server.pid, 'SIGTERM');
      const timer = setTimeout(() => killAll(), 20_000);
      await exited(server);
      clearTimeout(timer);
      // The wrapper may return before the VM: make sure nothing of the group is left.
      try {
        process.kill(-server.pid, 'SIGKILL');
      } catch {
        // The group is empty: the usual case.
      }
    }
    epmd.kill('SIGTERM');
    await exited(epmd);
    process.removeListener('exit', killAll);
    await rm(dir, { recursive: true, force: true });
  };

  try {
    await until(() => portOpen(epmdPort), 'epmd', 10_000, () => (epmd.exitCode !== null ? `exited with ${epmd.exitCode}` : undefined));
    await until(() => amqpReady(url), 'rabbitmq-server', 90_000, () =>
      server.exitCode !== null ? `exited with ${server.exitCode}:\n${output}` : undefined,
    );
  } catch (error) {
    await stop();
    throw error;
  }

  const rabbitmqctl = async (args: string[]): Promise<string> => {
    const ctl = spawn(join(rabbitBin, 'rabbitmqctl'), ['-n', nodeName, ...args], {
      env,
      cwd: dir,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    ctl.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
    ctl.stderr.on('data', (chunk: Buffer) => (err += chunk.toString()));
    const timer = setTimeout(() => ctl.kill('SIGKILL'), 30_000);
    await exited(ctl);
    clearTimeout(timer);
    if (ctl.exitCode !== 0) throw new Error(`rabbitmqctl ${args[0]} failed (${ctl.exitCode ?? ctl.signalCode}): ${err}${out}`);
    return out;
  };
  const listQueues = async (): Promise<Array<{ name: string; messages: number }>> => {
    const out = await rabbitmqctl(['list_queues', '--quiet', '--no-table-headers', 'name', 'messages']);
    return out
      .split('\n')
      .filter((line) => line.trim() !== '')
      .map((line) => {
        const [name = '', messages = '0'] = line.split('\t');
        return { name, messages: Number(messages) };
      });
  };

  const closeConnections = async (): Promise<void> => {
    await rabbitmqctl(['close_all_connections', 'closed by the test']);
  };

  return { url, nodeName, listQueues, closeConnections, stop };
}
