// How a client proves it may drive an agent that listens on a TCP port (the Kubernetes platform's agent).
//
// Every container of a pod shares its loopback, so a port that only listens on 127.0.0.1 is still reachable
// by the pod's other containers, and the agent may be privileged. The CLI makes a random secret per session and
// gives it to the agent at start; on each connection the agent sends a fresh nonce and accepts the client only
// if it answers with HMAC-SHA256(secret, nonce). The secret itself never crosses the connection, and an
// answer seen once is worth nothing for the next nonce.
//
//   agent → client   AGENT_AUTH_MAGIC (8 bytes) + nonce (32 bytes)
//   client → agent   proof (32 bytes)
//   agent → client   one byte: AUTH_ACCEPTED, then the protocol link begins; on a wrong proof it closes.

import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

export const AGENT_AUTH_MAGIC = Buffer.from('remocal1', 'latin1');
export const AGENT_NONCE_BYTES = 32;
export const AGENT_PROOF_BYTES = 32;
export const AUTH_ACCEPTED = 0x01;
/** The env var that hands the agent its secret (never argv: that is visible in `ps`). */
export const AGENT_SECRET_ENV = 'REMOCAL_AGENT_SECRET';

export function newAgentSecret(): string {
  return randomBytes(32).toString('base64url');
}

export function newNonce(): Buffer {
  return randomBytes(AGENT_NONCE_BYTES);
}

export function proveSecret(secret: string, nonce: Buffer): Buffer {
  return createHmac('sha256', secret).update(nonce).digest();
}

export function proofMatches(secret: string, nonce: Buffer, proof: Buffer): boolean {
  const expected = proveSecret(secret, nonce);
  return proof.length === expected.length && timingSafeEqual(proof, expected);
}
