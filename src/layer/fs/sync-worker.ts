// The sync worker (dist/layer-fs-worker.cjs): one thread per app process that answers its *Sync fs calls over
// a link of its own to the intproxy, while the main thread waits (see sync.ts). Whatever happens, every
// request gets an answer and the flag is flipped: a request left unanswered would block the app.

import { workerData } from 'node:worker_threads';
import { LINK_LOST_CODE } from '../../protocol/contracts.js';
import type { LayerRequest, LayerResults, Result } from '../../protocol/messages.js';
import { RpcClient } from '../../protocol/rpc.js';
import { openLayerLink } from '../link.js';
import type { SyncAnswer, SyncEnvelope, SyncWorkerData } from './sync.js';

const { socket: socketPath, state: shared, port } = workerData as SyncWorkerData;
const state = new Int32Array(shared);
let client: Promise<RpcClient<LayerRequest, LayerResults>> | null = null;

function connect(): Promise<RpcClient<LayerRequest, LayerResults>> {
  client ??= (async () => {
    const { link } = openLayerLink(socketPath, { thread: 'fs-sync' });
    link.once('close', () => {
      client = null;
    });
    await link.handshake(5000);
    return new RpcClient<LayerRequest, LayerResults>(link);
  })();
  return client;
}

async function answer({ id, request }: SyncEnvelope): Promise<void> {
  let result: Result<unknown>;
  try {
    result = await (await connect()).request(request);
  } catch (error) {
    client = null;
    result = { ok: false, error: { code: LINK_LOST_CODE, message: `remocal: the session's intproxy is unreachable (${(error as Error).message})` } };
  }
  port.postMessage({ id, result } satisfies SyncAnswer);
  Atomics.store(state, 0, 1);
  Atomics.notify(state, 0);
}

port.on('message', (envelope: SyncEnvelope) => void answer(envelope));
