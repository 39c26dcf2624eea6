// The client side of the operator's API (operator/api.ts), for the CLI: HTTPS with the user's token, and every
// refusal turned back into the error the operator meant (its Status carries remocal's code and hint).

import { readFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest, type RequestOptions } from 'node:https';
import { OperatorForbiddenError, OperatorUnauthorizedError, OperatorUnavailableError, ConfigError, type RemocalError } from '../../core/errors.js';
import { deserializeError } from '../../protocol/wire-error.js';

export interface OperatorAddress {
  /** https://host:port */
  url: string;
  token: string | undefined;
  /** PEM of the CA to trust instead of the system's. */
  ca: string | undefined;
  /**
   * Through the API server: the kubeconfig's credentials as they are (a client certificate, headers such as
   * Authorization), and whether the server's certificate is checked.
   */
  cert?: string | undefined;
  key?: string | undefined;
  headers?: Record<string, string> | undefined;
  rejectUnauthorized?: boolean | undefined;
  /** "the operator at https://…" or "the operator behind the API server https://…": for messages. */
  label?: string | undefined;
}

export const OPERATOR_API_PREFIX = '/apis/operator.remocal.dev/v1';
export const OPERATOR_LOCAL_NAMESPACE = 'local';

export function operatorAddress(settings: { url?: string | undefined; token?: string | undefined; caFile?: string | undefined }): OperatorAddress {
  if (settings.url === undefined) {
    throw new ConfigError('No operator address: local targets reach the operator at local_operator.url.', { hint: 'Set local_operator.url (or --operator-url https://<host>:<port>), or `operator: false` to reach the target directly.' });
  }
  let ca: string | undefined;
  if (settings.caFile !== undefined) {
    try {
      ca = readFileSync(settings.caFile, 'utf8');
    } catch (error) {
      throw new ConfigError(`Cannot read the operator's CA file ${settings.caFile}: ${(error as Error).message}.`, { hint: 'local_operator.ca_file names the CA the operator printed at start (its state dir, tls/ca.pem).' });
    }
  }
  return { url: settings.url.replace(/\/+$/, ''), token: settings.token, ca };
}

/** TLS and the token, for https.request and for the WebSocket client alike. */
export function requestOptions(address: OperatorAddress): RequestOptions {
  return {
    headers: { ...address.headers, ...(address.token === undefined ? {} : { authorization: `Bearer ${address.token}` }) },
    ...(address.ca === undefined ? {} : { ca: address.ca }),
    ...(address.cert === undefined ? {} : { cert: address.cert }),
    ...(address.key === undefined ? {} : { key: address.key }),
    ...(address.rejectUnauthorized === false ? { rejectUnauthorized: false } : {}),
  };
}

function label(address: OperatorAddress): string {
  return address.label ?? `the operator at ${address.url}`;
}

function capitalized(text: string): string {
  return text.charAt(0).toUpperCase() + text.slice(1);
}

interface StatusBody {
  kind?: string;
  message?: string;
  code?: number;
  details?: { causes?: { reason?: string; message?: string; field?: string }[] };
}

/** The error an operator's failure answer stands for. */
export function errorFromStatus(address: OperatorAddress, status: number, body: string): RemocalError {
  let parsed: StatusBody = {};
  try {
    parsed = JSON.parse(body) as StatusBody;
  } catch {
    // Not a Status: a proxy in the way, say.
  }
  const message = parsed.message ?? (body.trim().slice(0, 300) || `HTTP ${status}`);
  const cause = parsed.details?.causes?.find((entry) => entry.field === 'remocal');
  if (status === 401) return new OperatorUnauthorizedError(`${capitalized(label(address))} refused the request: ${message}.`);
  if (cause?.reason !== undefined) return deserializeError({ code: cause.reason, message, hint: cause.message || undefined });
  // A 403 without remocal's cause is the API server's RBAC, before the operator saw anything.
  if (status === 403) {
    return new OperatorForbiddenError(`The API server refused: ${message}.`, {
      hint: 'Ask an admin to bind you the ClusterRole remocal-user (sessions, targets, targets/portforward of operator.remocal.dev), as `remocal operator setup` prints.',
    });
  }
  return new OperatorUnavailableError(`${capitalized(label(address))} answered ${status}: ${message}`);
}

export function unreachable(address: OperatorAddress, error: Error): RemocalError {
  const code = (error as NodeJS.ErrnoException).code;
  if (code !== undefined && /CERT|SELF_SIGNED|UNABLE_TO_VERIFY|ERR_TLS/.test(code)) {
    return new OperatorUnavailableError(`${capitalized(label(address))} did not prove who it is: ${error.message}.`, {
      hint: 'Set local_operator.ca_file to the CA the operator printed when it started (tls/ca.pem in its state dir).',
    });
  }
  return new OperatorUnavailableError(`Nothing answers for ${label(address)}: ${error.message}.`);
}

/** One JSON request to the operator; a failure answer throws the error it stands for. */
export function operatorRequest<T>(address: OperatorAddress, method: string, path: string, timeoutMs = 10_000): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const options = requestOptions(address);
    // http: only for an API server the kubeconfig names that way (a local test cluster); never in local mode.
    const send = address.url.startsWith('http:') ? httpRequest : httpsRequest;
    const request = send(`${address.url}${path}`, { ...options, method, headers: { ...options.headers, accept: 'application/json' }, timeout: timeoutMs }, (response) => {
      let body = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => {
        body += chunk;
        if (body.length > 16 * 1024 * 1024) request.destroy(new Error('the answer is larger than 16 MiB'));
      });
      response.on('end', () => {
        const status = response.statusCode ?? 0;
        if (status >= 200 && status < 300) {
          try {
            resolve(JSON.parse(body) as T);
          } catch {
            reject(new OperatorUnavailableError(`${capitalized(label(address))} answered ${path} with something that is not JSON.`));
          }
        } else {
          reject(errorFromStatus(address, status, body));
        }
      });
    });
    request.on('timeout', () => request.destroy(Object.assign(new Error(`no answer within ${timeoutMs / 1000} s`), { code: 'ETIMEDOUT' })));
    request.on('error', (error) => reject(unreachable(address, error)));
    request.end();
  });
}
