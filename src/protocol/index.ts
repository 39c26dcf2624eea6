// The protocol component: the typed messages of both links, their framing, the link (handshake, messages,
// multiplexed byte streams with per-stream flow control) and request/response on top of it; and the contracts
// between the processes outside the links (settings, the intproxy's reports, the failure codes both sides know).
export * from './messages.js';
export * from './contracts.js';
export * from './frames.js';
export * from './link.js';
export * from './rpc.js';
