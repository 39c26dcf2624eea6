// Requests and responses over a link. A request carries an id chosen by the asking side; the answer carries
// the same id and op, so any number of requests can be in flight and answered in any order. Remote failures
// are values (`{ ok: false, error }`): only the link itself failing, or no answer in time, rejects.

import { ProtocolError, TimeoutError } from '../core/errors.js';
import type { WireMessage } from './frames.js';
import type { Link } from './link.js';
import type { RemoteFailure, RequestMessage, Result } from './messages.js';

export const DEFAULT_REQUEST_TIMEOUT_MS = 30_000;

/** Each op of Req mapped to the value of its successful result. */
export type ResultsFor<Req extends { op: string }> = { [K in Req['op']]: unknown };

export type RequestHandlers<Req extends { op: string }, Results extends ResultsFor<Req>> = {
  [K in Req['op']]: (request: Extract<Req, { op: K }>) => Promise<Result<Results[K]>> | Result<Results[K]>;
};

/**
 * One handler for every op of `ops`, which must list all of Req's ops (see FS_OPS): for places that treat a
 * family of requests alike, such as a relay passing them on or a service refusing them all.
 */
export function uniformHandlers<Req extends { op: string }, Results extends ResultsFor<Req>>(
  ops: readonly Req['op'][],
  handler: (request: Req) => Promise<Result<unknown>> | Result<unknown>,
): RequestHandlers<Req, Results> {
  return Object.fromEntries(ops.map((op) => [op, handler])) as unknown as RequestHandlers<Req, Results>;
}

// Any link will do: which messages it may carry is the business of its Out/In unions, checked where it is made.
type AnyLink = Link<WireMessage, WireMessage>;

interface PendingRequest {
  op: string;
  resolve(result: Result<unknown>): void;
  reject(error: Error): void;
  timer: NodeJS.Timeout | undefined;
}

function isResult(value: unknown): value is Result<unknown> {
  if (typeof value !== 'object' || value === null) return false;
  const result = value as { ok?: unknown; error?: unknown };
  if (result.ok === true) return true;
  if (result.ok !== false || typeof result.error !== 'object' || result.error === null) return false;
  const error = result.error as Partial<RemoteFailure>;
  return typeof error.code === 'string' && typeof error.message === 'string';
}

export interface RpcClientOptions {
  /** How long request() waits when the call gives no timeout. */
  defaultTimeoutMs?: number;
}

export class RpcClient<Req extends { op: string }, Results extends ResultsFor<Req>> {
  private readonly pending = new Map<number, PendingRequest>();
  private readonly defaultTimeoutMs: number;
  private nextId = 1;

  constructor(
    private readonly link: AnyLink,
    options: RpcClientOptions = {},
  ) {
    this.defaultTimeoutMs = options.defaultTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
    link.on('message', (message) => this.receive(message));
    link.on('close', (error) => this.rejectAll(error));
  }

  /** Number of requests waiting for an answer. */
  get inFlight(): number {
    return this.pending.size;
  }

  request<R extends Req>(request: R, timeoutMs = this.defaultTimeoutMs): Promise<Result<Results[R['op']]>> {
    const id = this.nextId++;
    return this.call(id, request.op, { type: 'request', id, request } satisfies RequestMessage<R>, timeoutMs) as Promise<
      Result<Results[R['op']]>
    >;
  }

  /** Round trip time in milliseconds; only for links whose peer answers 'ping' with 'pong' (the agent). */
  async ping(timeoutMs = this.defaultTimeoutMs): Promise<number> {
    const started = performance.now();
    const id = this.nextId++;
    await this.call(id, 'ping', { type: 'ping', id }, timeoutMs);
    return performance.now() - started;
  }

  private call(id: number, op: string, message: { type: string; [field: string]: unknown }, timeoutMs: number): Promise<Result<unknown>> {
    if (this.link.closed) {
      return Promise.reject(this.link.closeError ?? new ProtocolError(`the link closed before '${op}' was sent`));
    }
    return new Promise<Result<unknown>>((resolve, reject) => {
      const timer =
        Number.isFinite(timeoutMs) && timeoutMs > 0
          ? setTimeout(() => {
              this.pending.delete(id);
              reject(new TimeoutError(`no answer to '${op}' within ${timeoutMs} ms`));
            }, timeoutMs)
          : undefined;
      this.pending.set(id, { op, resolve, reject, timer });
      try {
        this.link.send(message);
      } catch (error) {
        this.settle(id)?.reject(error as Error);
      }
    });
  }

  private settle(id: number): PendingRequest | undefined {
    const pending = this.pending.get(id);
    if (pending === undefined) return undefined;
    this.pending.delete(id);
    clearTimeout(pending.timer);
    return pending;
  }

  private receive(message: WireMessage): void {
    if (message.type === 'pong') {
      const { id } = message as { id?: unknown };
      if (typeof id === 'number') this.settle(id)?.resolve({ ok: true, value: undefined });
      return;
    }
    if (message.type !== 'response') return;
    const { id, op, result } = message as { id?: unknown; op?: unknown; result?: unknown };
    // An answer that arrives after its timeout finds nothing here, and is dropped.
    if (typeof id !== 'number') return;
    const pending = this.settle(id);
    if (pending === undefined) return;
    if (op !== pending.op) {
      pending.reject(new ProtocolError(`the answer to '${pending.op}' (request ${id}) names op ${JSON.stringify(op)}`));
    } else if (!isResult(result)) {
      pending.reject(new ProtocolError(`the answer to '${pending.op}' (request ${id}) holds no valid result`));
    } else {
      pending.resolve(result);
    }
  }

  private rejectAll(error: Error | undefined): void {
    for (const [id, pending] of [...this.pending]) {
      this.settle(id);
      pending.reject(error ?? new ProtocolError(`the link closed before the answer to '${pending.op}'`));
    }
  }
}

function internalFailure(message: string): Result<never> {
  return { ok: false, error: { code: 'REMOCAL_INTERNAL', message } };
}

/**
 * Answers the link's requests with `handlers`, each request on its own (they run concurrently), and its
 * pings. A handler that throws is a bug on this side: the asker gets a REMOCAL_INTERNAL failure and
 * `onError` gets the exception. Returns a function that stops serving.
 */
export function serveRequests<Req extends { op: string }, Results extends ResultsFor<Req>>(
  link: AnyLink,
  handlers: RequestHandlers<Req, Results>,
  onError?: (error: unknown, request: Req) => void,
): () => void {
  const respond = (id: number, op: string, result: Result<unknown>, request?: Req): void => {
    try {
      link.send({ type: 'response', id, op, result } as WireMessage);
      return;
    } catch (error) {
      onError?.(error, request as Req);
      // Typically an answer too big for one frame: the asker still deserves an answer.
      const failure = internalFailure(`the answer to '${op}' could not be sent: ${(error as Error).message}`);
      try {
        link.send({ type: 'response', id, op, result: failure } as WireMessage);
      } catch (secondError) {
        onError?.(secondError, request as Req);
      }
    }
  };

  const run = async (id: number, request: Req): Promise<void> => {
    const op = request.op as Req['op'];
    let result: Result<unknown>;
    if (!Object.hasOwn(handlers, op)) {
      result = {
        ok: false,
        error: { code: 'REMOCAL_FEATURE_UNAVAILABLE', message: `this ${link.role} does not handle '${op}'` },
      };
    } else {
      try {
        const handler = handlers[op] as (request: Req) => Promise<Result<unknown>> | Result<unknown>;
        result = await handler(request);
      } catch (error) {
        onError?.(error, request);
        result = internalFailure(error instanceof Error ? error.message : String(error));
      }
    }
    respond(id, op, result, request);
  };

  const onMessage = (message: WireMessage): void => {
    if (message.type === 'ping') {
      const { id } = message as { id?: unknown };
      if (typeof id === 'number') link.send({ type: 'pong', id } as WireMessage);
      return;
    }
    if (message.type !== 'request') return;
    const { id, request } = message as { id?: unknown; request?: unknown };
    if (typeof id !== 'number' || typeof request !== 'object' || request === null) return;
    const op = (request as { op?: unknown }).op;
    if (typeof op !== 'string') {
      respond(id, String(op), internalFailure('the request has no op'));
      return;
    }
    void run(id, request as Req);
  };

  link.on('message', onMessage);
  return () => link.off('message', onMessage);
}
