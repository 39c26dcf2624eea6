// Native-looking errors for operations the target carried out. An app (or its HTTP client, its retry logic, its
// logs) tells failures apart by `code`, `errno`, `syscall`, `address`, `port`, `hostname` and the message, so
// each builder here produces exactly the fields, in the same order and with the same message, as the Node
// helper it stands for (ExceptionWithHostPort and DNSException in lib/internal/errors.js, unchanged from v20 to
// v24). errno values are libuv's numbers as this Node reports them, looked up by name at run time rather than
// written down, so they are right on every version and platform.

import { constants } from 'node:os';
import { getSystemErrorMap } from 'node:util';

let errnoByName: Map<string, number> | undefined;

/** The negative libuv errno for a code name (ECONNREFUSED → -111 on Linux), or undefined for unknown codes. */
export function uvErrno(code: string): number | undefined {
  if (errnoByName === undefined) {
    errnoByName = new Map();
    for (const [errno, [name]] of getSystemErrorMap()) errnoByName.set(name, errno);
  }
  // Node reports a name that does not resolve as ENOTFOUND, a name it made up, over getaddrinfo's EAI_NONAME.
  if (code === 'ENOTFOUND') return errnoByName.get('EAI_NONAME');
  const known = errnoByName.get(code);
  if (known !== undefined) return known;
  const posix = (constants.errno as Record<string, number | undefined>)[code];
  return posix === undefined ? undefined : -posix;
}

export interface NodeSystemError extends Error {
  errno?: number | undefined;
  code: string;
  syscall: string;
  address?: string;
  port?: number;
  hostname?: string;
}

/** What net's afterConnect emits when connect(2) fails: `connect ECONNREFUSED 10.0.0.1:80`. */
export function connectError(code: string, address: string, port: number): NodeSystemError {
  let details = '';
  if (port > 0) details = ` ${address}:${port}`;
  else if (address) details = ` ${address}`;
  const error = new Error(`connect ${code}${details}`) as NodeSystemError;
  error.errno = uvErrno(code);
  error.code = code;
  error.syscall = 'connect';
  error.address = address;
  if (port) error.port = port;
  Error.captureStackTrace(error, connectError);
  return error;
}

/** What dns.lookup (and net's lookup before a connect) reports: `getaddrinfo ENOTFOUND name`, numeric errno. */
export function getaddrinfoError(code: string, hostname: string): NodeSystemError {
  const errno = uvErrno(code);
  // Node names the error after the errno it got, so an EAI_NODATA from the far side also reads ENOTFOUND.
  const nativeCode = code === 'EAI_NODATA' || code === 'EAI_NONAME' ? 'ENOTFOUND' : code;
  return dnsError(nativeCode, errno, 'getaddrinfo', hostname, getaddrinfoError);
}

/**
 * What a resolver query reports: `queryA ENOTFOUND name`. c-ares failures carry a string code and no errno
 * (the property exists, undefined), which is how an app tells them from getaddrinfo failures.
 */
export function queryError(code: string, syscall: string, hostname: string): NodeSystemError {
  return dnsError(code, undefined, syscall, hostname, queryError);
}

function dnsError(
  code: string,
  errno: number | undefined,
  syscall: string,
  hostname: string,
  builder: (...args: never[]) => unknown,
): NodeSystemError {
  const error = new Error(`${syscall} ${code}${hostname ? ` ${hostname}` : ''}`) as NodeSystemError;
  error.errno = errno;
  error.code = code;
  error.syscall = syscall;
  if (hostname) error.hostname = hostname;
  Error.captureStackTrace(error, builder);
  return error;
}

/** Node 22+'s ERR_IP_BLOCKED, for a socket whose net.BlockList forbids the address the target connected to. */
export function ipBlockedError(address: string): Error & { code: string } {
  return nodeError('ERR_IP_BLOCKED', `IP(${address}) is blocked by net.BlockList`, ipBlockedError);
}

function nodeError(code: string, message: string, builder: (...args: never[]) => unknown): Error & { code: string } {
  const error = new Error(message) as Error & { code: string };
  // Node's own internal errors print as "Error [CODE]: message" in their stack and toString.
  Object.defineProperty(error, 'name', { value: `Error [${code}]`, configurable: true, writable: true });
  Error.captureStackTrace(error, builder);
  void error.stack;
  delete (error as { name?: string }).name;
  error.code = code;
  Object.defineProperty(error, 'toString', {
    value: function toString(this: Error & { code: string }) {
      return `${this.name} [${this.code}]: ${this.message}`;
    },
    configurable: true,
    writable: true,
  });
  return error;
}

const LOOKUP_CODES = new Set(['ENOTFOUND', 'EAI_AGAIN', 'EAI_FAIL', 'EAI_NODATA', 'EAI_NONAME', 'EAI_MEMORY', 'EAI_SERVICE']);

/** True when a remote failure of a connect by name is the name's resolution failing, not the connection. */
export function isLookupFailure(failure: { code: string; syscall?: string | undefined }): boolean {
  return failure.syscall === 'getaddrinfo' || LOOKUP_CODES.has(failure.code);
}
