// The protocol component: the typed messages of both links, their framing, the link (handshake, messages,
// multiplexed byte streams with per-stream flow control) and request/response on top of it.
export * from './messages.js';
export * from './frames.js';
export * from './link.js';
export * from './rpc.js';
