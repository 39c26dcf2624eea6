// Who is calling. In local mode every client proves who it is with its token (a bearer token over TLS), looked
// up in the operator's `users`; the tokens are compared as SHA-256 digests in constant time, so neither a
// timing nor the config file gives one away.

import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { OperatorConfig } from './config.js';

export interface Identity {
  user: string;
  groups: string[];
  /** May see and end everyone's sessions. */
  admin: boolean;
  /** The targets this user may open sessions on (patterns with `*`), when the config says so for them. */
  targets?: string[] | undefined;
  /** What Kubernetes calls a user's extra (scopes, and the like), by key; local users have none. */
  extra: Record<string, string[]>;
}

export type Authentication = { ok: true; identity: Identity } | { ok: false; message: string };

export interface Authenticator {
  authenticate(request: IncomingMessage): Authentication;
}

function digest(text: string): Buffer {
  return createHash('sha256').update(text, 'utf8').digest();
}

export class TokenAuthenticator implements Authenticator {
  private readonly users: { digest: Buffer; identity: Identity }[];

  constructor(users: OperatorConfig['users']) {
    this.users = users.map((user) => ({
      digest: user.token_sha256 !== undefined ? Buffer.from(user.token_sha256, 'hex') : digest(user.token!),
      identity: { user: user.name, groups: user.admin ? ['remocal:admins'] : [], admin: user.admin, extra: {}, ...(user.targets === undefined ? {} : { targets: user.targets }) },
    }));
  }

  authenticate(request: IncomingMessage): Authentication {
    const header = request.headers.authorization;
    if (header === undefined) return { ok: false, message: 'no token was sent: this operator lets in only the users of its config, each with a token' };
    const match = /^Bearer ([\x21-\x7e]{1,512})$/.exec(header);
    if (match === null) return { ok: false, message: 'the Authorization header is not a bearer token' };
    const given = digest(match[1]!);
    // Every user is compared, so the time taken does not tell which one (if any) was close.
    let found: Identity | undefined;
    for (const user of this.users) if (timingSafeEqual(user.digest, given)) found = user.identity;
    return found === undefined ? { ok: false, message: 'the token is not one of this operator\'s users' } : { ok: true, identity: found };
  }
}
