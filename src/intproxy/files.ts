// The intproxy's part in remote files: requests pass to the agent unchanged, and the handles each layer opened
// are remembered, so that a process that exits (or dies) with files open does not leave them open in the
// agent for the rest of the session. A handle belongs to the link that opened it, but any link of the session
// may use or close it: a process's sync calls travel on its worker's link and its async calls on its own.

import type { Logger } from '../core/log.js';
import { FS_OPS, type FsRequest, type FsResults, type Result } from '../protocol/messages.js';
import { uniformHandlers, type RequestHandlers } from '../protocol/rpc.js';
import type { AgentConnection } from './agent-link.js';

export class FileRelay {
  private readonly owners = new Map<number, object>();

  constructor(
    private readonly agent: AgentConnection,
    private readonly log: Logger,
  ) {}

  /** The fs.* handlers for one layer link. */
  handlersFor(owner: object): RequestHandlers<FsRequest, FsResults> {
    const pass = <R extends FsRequest>(request: R) => this.agent.rpc.request(request) as Promise<Result<FsResults[R['op']]>>;
    return {
      ...uniformHandlers<FsRequest, FsResults>(FS_OPS, pass),
      'fs.open': async (request) => {
        const result = await pass(request);
        if (result.ok) this.owners.set(result.value.handle, owner);
        return result;
      },
      'fs.close': (request) => {
        this.owners.delete(request.handle);
        return pass(request);
      },
    };
  }

  /** Closes, in the agent, what the owner's process left open. */
  releaseOwner(owner: object): void {
    for (const [handle, holder] of this.owners) {
      if (holder !== owner) continue;
      this.owners.delete(handle);
      this.agent.rpc.request({ op: 'fs.close', handle }).then(
        () => undefined,
        (error: Error) => this.log.debug({ err: error, handle }, 'could not close a file the layer left open'),
      );
    }
  }
}
