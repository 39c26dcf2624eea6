// The demo's local server: the developer's new version of the pod's service, listening on the same port.
// Through `remocal exec` with a filtered steal, it answers only the requests that carry the filter's header;
// the pod keeps answering everyone else.
import http from 'node:http';

const port = Number(process.argv[2] ?? 8080);
const server = http.createServer((request, response) => {
  const payload = JSON.stringify({ from: 'your local machine', path: request.url });
  response.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) });
  response.end(payload);
});
server.listen(port);
process.on('SIGTERM', () => server.close(() => process.exit(0)));
