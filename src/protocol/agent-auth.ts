// How a client proves it may drive an agent that listens on a TCP port (the Kubernetes platform's agent).
//
// Every container of a pod shares its loopback, so a port that only listens on 127.0.0.1 is still reachable
// by the pod's other containers, and the agent may be privileged. The CLI makes a key pair per session: the
// agent gets the public key (in its pod spec, which anyone allowed to `get pods` can read: a public key there
// gives nothing away), and only the CLI's link holds the private key. On each connection the agent sends a
// fresh nonce and accepts the client only if it answers with an Ed25519 signature of that nonce, so an answer
// seen once is worth nothing for the next nonce.
//
//   agent → client   AGENT_AUTH_MAGIC (8 bytes) + nonce (32 bytes)
//   client → agent   proof: the signature of the nonce (64 bytes)
//   agent → client   one byte: AUTH_ACCEPTED, then the protocol link begins; on a wrong proof it closes.

import { createPrivateKey, createPublicKey, generateKeyPairSync, randomBytes, sign, verify } from 'node:crypto';

export const AGENT_AUTH_MAGIC = Buffer.from('remocal1', 'latin1');
export const AGENT_NONCE_BYTES = 32;
export const AGENT_PROOF_BYTES = 64;
export const AUTH_ACCEPTED = 0x01;
/** The env var that gives the agent the session's public key. */
export const AGENT_KEY_ENV = 'REMOCAL_AGENT_KEY';
/** The env var that gives the CLI's link the session's private key (never argv: that is visible in `ps`). */
export const LINK_KEY_ENV = 'REMOCAL_LINK_KEY';

export interface SessionKeys {
  /** SPKI DER, base64. */
  publicKey: string;
  /** PKCS#8 DER, base64. */
  privateKey: string;
}

export function newSessionKeys(): SessionKeys {
  const { publicKey, privateKey } = generateKeyPairSync('ed25519');
  return {
    publicKey: publicKey.export({ format: 'der', type: 'spki' }).toString('base64'),
    privateKey: privateKey.export({ format: 'der', type: 'pkcs8' }).toString('base64'),
  };
}

export function newNonce(): Buffer {
  return randomBytes(AGENT_NONCE_BYTES);
}

export function signNonce(privateKey: string, nonce: Buffer): Buffer {
  return sign(null, nonce, createPrivateKey({ key: Buffer.from(privateKey, 'base64'), format: 'der', type: 'pkcs8' }));
}

/** False for a wrong signature, and for a key that is not a key (a misconfigured agent refuses everyone). */
export function proofMatches(publicKey: string, nonce: Buffer, proof: Buffer): boolean {
  try {
    return proof.length === AGENT_PROOF_BYTES && verify(null, nonce, createPublicKey({ key: Buffer.from(publicKey, 'base64'), format: 'der', type: 'spki' }), proof);
  } catch {
    return false;
  }
}

/** Whether a value can serve as the agent's key: checked at start, so a bad key fails loudly, not per client. */
export function isPublicKey(value: string): boolean {
  try {
    return createPublicKey({ key: Buffer.from(value, 'base64'), format: 'der', type: 'spki' }).asymmetricKeyType === 'ed25519';
  } catch {
    return false;
  }
}
