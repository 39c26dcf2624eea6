// The intproxy's way to a session behind the operator: a small process whose stdio is the session's link, as
// kube-link's is for a direct Kubernetes session. It opens the session's WebSocket on the operator and then only
// copies bytes. A refusal (the operator's Status), a session the operator ended, and a lost operator are said on
// stderr as a SessionEnded, which the intproxy reports in those words.

import { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { finished } from 'node:stream/promises';
import { createWebSocketStream, WebSocket } from 'ws';
import { SESSION_ENDED_CLOSE_CODE, SESSION_ENDED_EXIT_CODE, SESSION_ENDED_PREFIX, type SessionEnded } from '../../protocol/contracts.js';
import { OPERATOR_LINK_ENV, type OperatorLinkSettings } from './link-settings.js';

async function main(): Promise<number> {
  const settings = JSON.parse(process.env[OPERATOR_LINK_ENV] ?? 'null') as OperatorLinkSettings | null;
  delete process.env[OPERATOR_LINK_ENV];
  if (settings === null) {
    process.stderr.write(`operator-link: ${OPERATOR_LINK_ENV} must be set\n`);
    return 2;
  }
  const url = settings.url.replace(/^https:/, 'wss:').replace(/^http:/, 'ws:');
  const ws = new WebSocket(url, {
    headers: { ...settings.headers, ...(settings.token === undefined ? {} : { authorization: `Bearer ${settings.token}` }) },
    ...(settings.ca === undefined ? {} : { ca: settings.ca }),
    ...(settings.cert === undefined ? {} : { cert: settings.cert }),
    ...(settings.key === undefined ? {} : { key: settings.key }),
    ...(settings.rejectUnauthorized === false ? { rejectUnauthorized: false } : {}),
    handshakeTimeout: settings.timeoutMs,
    perMessageDeflate: false,
    maxPayload: 4 * 1024 * 1024,
  });
  // Made in the 'open' listener itself: the frames that came with the upgrade's answer (the agent's hello, when it
  // was waiting at the operator) are emitted on the next tick, before an awaited continuation would run, and a
  // message with no listener yet is lost.
  let stream: Duplex | undefined;
  const opened = await new Promise<{ line: string; exitCode: number } | null>((resolve) => {
    ws.once('open', () => {
      stream = createWebSocketStream(ws);
      resolve(null);
    });
    ws.once('unexpected-response', (_request, response) => {
      let body = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => (body += chunk.slice(0, 4096)));
      response.on('end', () => {
        let message = body.trim();
        let cause: { reason?: string; message?: string } | undefined;
        try {
          const status = JSON.parse(body) as { message?: string; details?: { causes?: { reason?: string; message?: string; field?: string }[] } };
          message = status.message ?? message;
          cause = status.details?.causes?.find((each) => each.field === 'remocal');
        } catch {
          // A plain-text answer is shown as it is.
        }
        // A refusal in remocal's own terms (a policy, a forbidden target) reaches the user as that error, with its hint.
        if (cause?.reason !== undefined && /^REMOCAL_[A-Z_]+$/.test(cause.reason)) {
          const ended: SessionEnded = { code: cause.reason, message, ...(cause.message ? { hint: cause.message } : {}), refused: true };
          resolve({ line: `${SESSION_ENDED_PREFIX}${JSON.stringify(ended)}`, exitCode: SESSION_ENDED_EXIT_CODE });
        }
        else resolve({ line: `operator-link: the operator refused the session (HTTP ${response.statusCode}): ${message}`, exitCode: 1 });
      });
    });
    ws.once('error', (error) => resolve({ line: `operator-link: cannot reach the operator: ${error.message}`, exitCode: 1 }));
  });
  if (opened !== null) {
    process.stderr.write(`${opened.line}\n`);
    return opened.exitCode;
  }
  if (stream === undefined) throw new Error('unreachable: the WebSocket opened without its stream');
  // process.stdout writes to a pipe synchronously; a socket over fd 1 is asynchronous and honours backpressure.
  const stdout = new Socket({ fd: 1, readable: false, writable: true });
  stream.pipe(stdout);
  process.stdin.pipe(stream);
  const closed = new Promise<{ line: string; exitCode: number }>((resolve) => {
    ws.once('close', (code, reason) => {
      if (code === SESSION_ENDED_CLOSE_CODE) {
        const [errorCode = '', ...words] = reason.toString().split(' ');
        const ended: SessionEnded = { code: errorCode, message: words.join(' '), refused: false };
        resolve({ line: `${SESSION_ENDED_PREFIX}${JSON.stringify(ended)}`, exitCode: SESSION_ENDED_EXIT_CODE });
      }
      else if (code === 1000 || code === 1005) resolve({ line: 'operator-link: the operator closed the session', exitCode: 0 });
      else {
        // The agent may well run on: it is the operator that went (killed, restarted, or out of reach), and the
        // session with it. Said as the operator's end of the session, not as an agent that exited.
        const ended: SessionEnded = {
          code: 'REMOCAL_OPERATOR_UNAVAILABLE',
          message: `the connection to the operator dropped (WebSocket ${code}${reason.length > 0 ? `: ${reason.toString()}` : ''}): it stopped, restarted or cannot be reached`,
          hint: 'Sessions do not outlive the operator; a restarted one puts back what the session changed (its copy, a scaled-down workload). Check that it runs (`remocal operator status`), then run the command again.',
          refused: false,
        };
        resolve({ line: `${SESSION_ENDED_PREFIX}${JSON.stringify(ended)}`, exitCode: SESSION_ENDED_EXIT_CODE });
      }
    });
  });
  stream.on('error', () => undefined);
  const { line, exitCode } = await closed;
  await finished(stdout).catch(() => undefined);
  process.stderr.write(`${line}\n`);
  return exitCode;
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(`operator-link: ${(error as Error).message}\n`);
    process.exit(1);
  },
);
