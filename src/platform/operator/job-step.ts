// The CLI's side of a job step (protocol/job-step.ts): it opens the step's WebSocket on the operator, shows the
// step's progress, and once the Job finished, keeps the socket open until the session ends, since the operator
// deletes the Job when it closes. A killed CLI closes it too, so nothing it started stays in the cluster.

import { WebSocket } from 'ws';
import { OperatorUnavailableError, type RemocalError } from '../../core/errors.js';
import { jobStepQuery, type JobStepEvent, type JobStepRequest } from '../../protocol/job-step.js';
import { deserializeError } from '../../protocol/wire-error.js';
import { errorFromStatus, OPERATOR_API_PREFIX, requestOptions, unreachable, type OperatorAddress } from './client.js';

export interface FinishedJobStep {
  namespace: string;
  job: string;
  seconds: number;
  logTail: string[];
  /** Closes the step's socket, upon which the operator deletes its Job. */
  release(): void;
}

/** The error of a failed step, with the last lines of its log under it. */
function withLogTail(error: RemocalError, logTail: string[]): RemocalError {
  if (logTail.length === 0) return error;
  const Class = error.constructor as new (message: string, options: { hint?: string }) => RemocalError;
  const lines = logTail.map((line) => `    ${line}`).join('\n');
  return new Class(`${error.message}\n  The last lines of its log:\n${lines}`, error.hint === undefined ? {} : { hint: error.hint });
}

/** Runs `request` as a Job through the operator at `address`; resolves when it succeeded, rejects when it failed. */
export function runJobStep(address: OperatorAddress, namespace: string, request: JobStepRequest, onProgress: (message: string) => void, signal?: AbortSignal): Promise<FinishedJobStep> {
  const path = `${OPERATOR_API_PREFIX}/namespaces/${encodeURIComponent(namespace)}/jobsteps/${encodeURIComponent(request.template)}/run?${jobStepQuery(request).toString()}`;
  const options = requestOptions(address);
  const ws = new WebSocket(`${address.url.replace(/^http/, 'ws')}${path}`, { ...options, headers: { ...options.headers }, perMessageDeflate: false, maxPayload: 1024 * 1024 });
  return new Promise<FinishedJobStep>((resolve, reject) => {
    let job: { namespace: string; job: string } | undefined;
    let settled = false;
    const fail = (error: RemocalError): void => {
      if (settled) return;
      settled = true;
      ws.close();
      reject(error);
    };
    ws.once('unexpected-response', (_request, response) => {
      let body = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => (body += chunk.slice(0, 64 * 1024)));
      response.on('end', () => fail(errorFromStatus(address, response.statusCode ?? 0, body)));
    });
    ws.on('error', (error) => fail(unreachable(address, error)));
    ws.on('message', (data) => {
      let event: JobStepEvent;
      try {
        event = JSON.parse(String(data)) as JobStepEvent;
      } catch {
        fail(new OperatorUnavailableError('The operator sent a job step event that is not JSON.'));
        return;
      }
      switch (event.type) {
        case 'created':
          job = { namespace: event.namespace, job: event.job };
          onProgress(`Job ${event.job} created in namespace ${event.namespace}`);
          break;
        case 'progress':
          onProgress(event.message);
          break;
        case 'succeeded':
          settled = true;
          resolve({ namespace: job?.namespace ?? namespace, job: event.job, seconds: event.seconds, logTail: event.logTail, release: () => ws.close() });
          break;
        case 'failed':
          fail(withLogTail(deserializeError(event.error), event.logTail));
          break;
      }
    });
    // Closing the socket is how a step is given up: the operator then deletes its Job, finished or not.
    const onAbort = (): void => {
      if (settled) return;
      settled = true;
      ws.close();
      reject(signal!.reason);
    };
    if (signal?.aborted === true) onAbort();
    else signal?.addEventListener('abort', onAbort, { once: true });
    ws.once('close', () =>
      fail(new OperatorUnavailableError(`The operator closed the job step ${request.template}'s connection before it finished${job === undefined ? '' : ` (Job ${job.job})`}: is the operator still running?`)),
    );
  });
}
