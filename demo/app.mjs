// The demo's "local app": what a developer's service might do at start-up. It reads its config from the
// environment and a file, resolves the names of its dependencies and calls one of them. Run it plain and it finds none
// of them; run it through `remocal exec` and it sees what it would see inside the pod.
import dns from 'node:dns/promises';
import { readFileSync } from 'node:fs';
import http from 'node:http';

const report = (label, value) => process.stdout.write(`${label.padEnd(34)} ${value}\n`);

report('env ORDERS_API_URL', process.env.ORDERS_API_URL ?? '(not set)');
report('env GREETING', process.env.GREETING ? JSON.stringify(process.env.GREETING) : '(not set)');

// A file that only the pod has (as a mounted config map or secret would be).
try {
  report('readFileSync(/var/run/pod-data/…)', JSON.stringify(readFileSync('/var/run/pod-data/greeting.txt', 'utf8').trim()));
} catch (error) {
  report('readFileSync(/var/run/pod-data/…)', `${error.code}`);
}

for (const name of ['orders-api', 'hosts-only.internal']) {
  try {
    const { address } = await dns.lookup(name);
    report(`dns.lookup("${name}")`, address);
  } catch (error) {
    report(`dns.lookup("${name}")`, `${error.code}`);
  }
}

const url = process.env.ORDERS_API_URL ?? 'http://orders-api';
await new Promise((resolve) => {
  const request = http.get(url, { timeout: 3000 }, (response) => {
    const peer = response.socket.remoteAddress;
    let body = '';
    response.setEncoding('utf8');
    response.on('data', (chunk) => (body += chunk));
    response.on('end', () => {
      let service = body;
      try {
        service = JSON.parse(body).from ?? body;
      } catch {}
      report(`GET ${url}`, `${response.statusCode} from ${service} (peer ${peer})`);
      resolve();
    });
  });
  request.on('timeout', () => request.destroy(new Error('timed out')));
  request.on('error', (error) => {
    report(`GET ${url}`, `${error.code ?? error.message}`);
    resolve();
  });
});
