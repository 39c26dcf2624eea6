// The local app of the incoming benchmark: a minimal HTTP server on the target's port.
import http from 'node:http';
const server = http.createServer((request, response) => {
  response.writeHead(200, { 'content-type': 'text/plain', 'content-length': 5 });
  response.end('local');
});
server.keepAliveTimeout = 60_000;
server.listen(Number(process.argv[2] ?? 8080));
process.on('SIGTERM', () => server.close(() => process.exit(0)));
