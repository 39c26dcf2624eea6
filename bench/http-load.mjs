// HTTP load from the host, for bench/incoming.ts. One JSON line out.
//   latency <host> <port> <count> [header]          sequential requests on one keep-alive connection
//   rps <host> <port> <connections> <seconds> [header]   as many requests as 50 keep-alive connections manage
//   steady <host> <port> <perSecond> <seconds>      a fixed rate of fresh requests; counts every failure
import http from 'node:http';

const [mode, host, portText, a, b, header] = process.argv.slice(2);
const port = Number(portText);
const headers = {};
if (header) {
  const [name, value] = header.split(':');
  headers[name.trim()] = value.trim();
}

function once(agent) {
  return new Promise((resolve) => {
    const request = http.request({ host, port, path: '/bench', headers, agent }, (response) => {
      response.resume();
      response.on('end', () => resolve(response.statusCode === 200 ? null : `status ${response.statusCode}`));
    });
    request.setTimeout(5000, () => request.destroy(new Error('timeout')));
    request.on('error', (error) => resolve(error.code ?? error.message));
    request.end();
  });
}

const percentile = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];

if (mode === 'latency') {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const times = [];
  for (let i = 0; i < Number(a) + 100; i++) {
    const started = process.hrtime.bigint();
    const error = await once(agent);
    if (error) throw new Error(error);
    if (i >= 100) times.push(Number(process.hrtime.bigint() - started) / 1000);
  }
  times.sort((x, y) => x - y);
  process.stdout.write(`${JSON.stringify({ p50Us: percentile(times, 50), p99Us: percentile(times, 99) })}\n`);
} else if (mode === 'rps') {
  const connections = Number(a);
  const deadline = Date.now() + Number(b) * 1000;
  const agent = new http.Agent({ keepAlive: true, maxSockets: connections });
  let done = 0;
  let errors = 0;
  await Promise.all(
    Array.from({ length: connections }, async () => {
      while (Date.now() < deadline) {
        if (await once(agent)) errors += 1;
        else done += 1;
      }
    }),
  );
  process.stdout.write(`${JSON.stringify({ rps: done / Number(b), errors })}\n`);
} else if (mode === 'steady') {
  const perSecond = Number(a);
  const total = perSecond * Number(b);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
  const failures = {};
  let sent = 0;
  const pending = [];
  const started = Date.now();
  while (sent < total) {
    const due = started + (sent * 1000) / perSecond;
    const wait = due - Date.now();
    if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
    sent += 1;
    pending.push(once(agent).then((error) => error && (failures[error] = (failures[error] ?? 0) + 1)));
  }
  await Promise.all(pending);
  const errors = Object.values(failures).reduce((x, y) => x + y, 0);
  process.stdout.write(`${JSON.stringify({ sent, errors, failures, seconds: (Date.now() - started) / 1000 })}\n`);
}
