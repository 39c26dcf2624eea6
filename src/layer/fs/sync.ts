// Synchronous requests from the main thread (readFileSync and the other *Sync calls). The main thread cannot
// wait for a socket while it is blocked, and nothing that answers may live on it (NODE-NOTES: the deadlock
// trap), so one worker thread per process holds its own link to the intproxy: the main thread posts the request
// on a MessagePort, blocks in Atomics.wait, and takes the answer with receiveMessageOnPort once the worker has
// posted it and flipped the shared flag.

import { MessageChannel, receiveMessageOnPort, Worker, type MessagePort } from 'node:worker_threads';
import type { FsRequest, Result } from '../../protocol/messages.js';

/** In the workerData of the sync worker, so that the preload (which runs in every worker) leaves it alone. */
export const SYNC_WORKER_MARKER = 'remocalFsWorker';

export interface SyncWorkerData {
  [SYNC_WORKER_MARKER]: true;
  socket: string;
  /** Int32Array over it: [0] is 1 once the answer is posted. */
  state: SharedArrayBuffer;
  port: MessagePort;
}

export interface SyncEnvelope {
  id: number;
  request: FsRequest;
}
export interface SyncAnswer {
  id: number;
  result: Result<unknown>;
}

export interface SyncChannelOptions {
  workerScript: string;
  socket: string;
  /** How long one call may block before it fails with ETIMEDOUT. */
  timeoutMs: number;
}

export class SyncChannel {
  private started: { worker: Worker; port: MessagePort; state: Int32Array } | null = null;
  private nextId = 1;

  constructor(private readonly options: SyncChannelOptions) {}

  request(request: FsRequest): Result<unknown> {
    const { port, state } = this.start();
    const id = this.nextId++;
    Atomics.store(state, 0, 0);
    port.postMessage({ id, request } satisfies SyncEnvelope);
    const deadline = Date.now() + this.options.timeoutMs;
    for (;;) {
      const waited = Atomics.wait(state, 0, 0, Math.max(0, deadline - Date.now()));
      // Answers of calls that timed out earlier may still arrive: only this call's own answer ends the wait.
      for (let received = receiveMessageOnPort(port); received !== undefined; received = receiveMessageOnPort(port)) {
        const answer = received.message as SyncAnswer;
        if (answer.id === id) return answer.result;
      }
      if (waited === 'timed-out' || Date.now() >= deadline) {
        return {
          ok: false,
          error: { code: 'ETIMEDOUT', message: `remocal: the target did not answer ${request.op} within ${this.options.timeoutMs} ms`, syscall: request.op.slice(3) },
        };
      }
      Atomics.store(state, 0, 0);
    }
  }

  private start(): { worker: Worker; port: MessagePort; state: Int32Array } {
    if (this.started !== null) return this.started;
    const shared = new SharedArrayBuffer(4);
    const { port1, port2 } = new MessageChannel();
    const workerData: SyncWorkerData = { [SYNC_WORKER_MARKER]: true, socket: this.options.socket, state: shared, port: port2 };
    const worker = new Worker(this.options.workerScript, { workerData, transferList: [port2], stdout: false, stderr: false });
    // Neither the worker nor its port may keep the app alive: they exist only to answer the app's own calls.
    worker.unref();
    port1.unref();
    this.started = { worker, port: port1, state: new Int32Array(shared) };
    return this.started;
  }
}
