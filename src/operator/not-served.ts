// A path the operator has nothing at (a namespace it does not serve, a name that is no target): the API answers
// it with a 404 Status. Thrown by the catalogs, which know nothing of HTTP.

export class NotServedError extends Error {
  constructor(message: string, readonly status: 400 | 404 = 404) {
    super(message);
    this.name = 'NotServedError';
  }
}
