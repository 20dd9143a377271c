// Open-loop load at a fixed request rate, for the peer harness's fixed-rate runs: the same
// command line, events file and PEERBENCH_JSON line as its openloop.py, in Node.
//
// Why: the harness's client is Python (asyncio, a task and a sleep per request) and could not
// hold ~3,000 requests a second even against the bare endpoint (its p99 there 64-97 ms), so
// "p99 at half the peak" measured the client. Here one event loop spins on the schedule
// (setImmediate, so sockets are served between turns) and writes prebuilt requests on raw
// keep-alive sockets.
//
// Request i is due at start + i/rate whatever happened before. A due request takes a free
// connection, opens one if fewer than --connections are open, or waits (first come, first
// served) for one. Latency is measured from the due time, so a stall is charged to every
// request queued behind it (no coordinated omission).
//
// Usage: node openloop.mjs --url http://127.0.0.1:8804/webhooks/stripe --events FILE
//                          --rate 3000 --duration 20 --connections 50 [--grace S]

import { readFileSync } from "node:fs";
import net from "node:net";
import { parseArgs } from "node:util";
import { performance } from "node:perf_hooks";

const { values: args } = parseArgs({
  options: {
    url: { type: "string" },
    events: { type: "string" },
    rate: { type: "string" },
    duration: { type: "string", default: "20" },
    connections: { type: "string", default: "50" },
    grace: { type: "string" },
  },
});
const url = new URL(args.url);
const rate = Number(args.rate);
const duration = Number(args.duration);
const maxConnections = Number(args.connections);
const grace = args.grace === undefined ? duration : Number(args.grace);
const MAX_IDLE_MS = 1000; // below common keep-alive timeouts (uvicorn: 5 s)

function loadRequests(path) {
  const raw = readFileSync(path);
  const target = url.pathname + url.search;
  const requests = [];
  let at = 0;
  while (at < raw.length) {
    const end = raw.indexOf(10, at); // "<signature> <length>\n<body>\n"
    if (end < 0) break;
    const [signature, length] = raw.subarray(at, end).toString().trim().split(/\s+/);
    const body = raw.subarray(end + 1, end + 1 + Number(length));
    at = end + 2 + Number(length);
    const head =
      `POST ${target} HTTP/1.1\r\nHost: ${url.host}\r\n` +
      "Content-Type: application/json; charset=utf-8\r\n" +
      "User-Agent: Stripe/1.0 (+https://stripe.com/docs/webhooks)\r\n" +
      `Stripe-Signature: ${signature}\r\nContent-Length: ${body.length}\r\n\r\n`;
    requests.push(Buffer.concat([Buffer.from(head), body]));
  }
  if (requests.length === 0) throw new Error(`no events in ${path}`);
  return requests;
}

// One HTTP/1.1 response at a time on a socket: status, then the body by Content-Length or
// chunked (until its last chunk).
class Connection {
  constructor(onAnswer, onBroken) {
    this.socket = net.connect({ host: url.hostname, port: Number(url.port) });
    this.socket.setNoDelay(true);
    this.buffer = Buffer.alloc(0);
    this.lastUsed = performance.now();
    this.onAnswer = onAnswer;
    this.socket.on("data", (data) => this.received(data));
    const broken = () => {
      if (!this.closed) {
        this.closed = true;
        onBroken(this);
      }
    };
    this.socket.on("error", broken);
    this.socket.on("close", broken);
  }

  send(request, due) {
    this.due = due;
    this.sent = performance.now();
    this.busy = true;
    this.socket.write(request);
  }

  received(data) {
    this.buffer = this.buffer.length ? Buffer.concat([this.buffer, data]) : data;
    const headEnd = this.buffer.indexOf("\r\n\r\n");
    if (headEnd < 0) return;
    const head = this.buffer.subarray(0, headEnd).toString("latin1");
    const status = Number(head.slice(9, 12));
    const length = /\r\ncontent-length:\s*(\d+)/i.exec(head);
    let complete = false;
    if (length) {
      complete = this.buffer.length >= headEnd + 4 + Number(length[1]);
    } else if (/\r\ntransfer-encoding:\s*chunked/i.test(head)) {
      complete = this.buffer.subarray(headEnd + 4).includes("0\r\n\r\n");
    } else {
      complete = true; // no body (204, 304)
    }
    if (!complete) return;
    this.keepAlive = !/\r\nconnection:\s*close/i.test(head);
    this.buffer = Buffer.alloc(0);
    this.busy = false;
    this.lastUsed = performance.now();
    this.onAnswer(this, status);
  }
}

function percentile(sorted, fraction) {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(fraction * sorted.length))];
}

function run() {
  const requests = loadRequests(args.events);
  const total = Math.floor(rate * duration);
  const latencies = [];
  const serviceTimes = [];
  const statuses = {};
  let errors = 0;
  let non2xx = 0;
  let next = 0; // the next request to fall due
  let open = 0;
  const idle = []; // free connections, most recently used last
  const waiting = []; // due requests with no connection yet: [index, due]
  const start = performance.now() + 100;
  let scheduledUntil = null;

  const dispatch = (index, due) => {
    while (idle.length) {
      const connection = idle.pop();
      if (!connection.closed && performance.now() - connection.lastUsed < MAX_IDLE_MS) {
        connection.send(requests[index % requests.length], due);
        return;
      }
      connection.socket.destroy();
    }
    if (open < maxConnections) {
      open += 1;
      new Connection(answered, broken).send(requests[index % requests.length], due);
      return;
    }
    waiting.push([index, due]);
  };

  function answered(connection, status) {
    const done = performance.now();
    latencies.push(done - connection.due);
    serviceTimes.push(done - connection.sent);
    statuses[status] = (statuses[status] || 0) + 1;
    if (status < 200 || status >= 300) non2xx += 1;
    if (!connection.keepAlive) {
      connection.closed = true;
      connection.socket.destroy();
      open -= 1;
    } else {
      idle.push(connection);
    }
    if (waiting.length) dispatch(...waiting.shift());
  }

  function broken(connection) {
    open -= 1;
    if (connection.busy) errors += 1;
    if (waiting.length) dispatch(...waiting.shift());
  }

  const finish = () => {
    const elapsed = (performance.now() - start) / 1000;
    const sorted = Float64Array.from(latencies).sort();
    const service = Float64Array.from(serviceTimes).sort();
    const round = (ms) => Math.round(ms * 100) / 100;
    const result = {
      rate,
      scheduled: total,
      completed: latencies.length,
      abandoned: total - latencies.length - errors,
      errors,
      non2xx,
      statuses,
      achieved_rate: Math.round((latencies.length / elapsed) * 10) / 10,
      schedule_lag_ms: round(scheduledUntil - (start + ((total - 1) / rate) * 1000)),
      p50_ms: round(percentile(sorted, 0.5)),
      p90_ms: round(percentile(sorted, 0.9)),
      p99_ms: round(percentile(sorted, 0.99)),
      max_ms: round(sorted.length ? sorted[sorted.length - 1] : NaN),
      service_p50_ms: round(percentile(service, 0.5)),
      service_p99_ms: round(percentile(service, 0.99)),
      client: "bench/openloop.mjs (node)",
    };
    // As openloop.py prints it: a figure with no answers behind it is NaN (Python's json reads
    // it), not null.
    console.log("PEERBENCH_JSON " + JSON.stringify(result).replaceAll(":null", ":NaN"));
    process.exit(0);
  };

  const tick = () => {
    const now = performance.now();
    while (next < total && start + (next / rate) * 1000 <= now) {
      dispatch(next, start + (next / rate) * 1000);
      next += 1;
    }
    if (next < total) {
      setImmediate(tick);
      return;
    }
    scheduledUntil = performance.now();
    const deadline = scheduledUntil + grace * 1000;
    const drain = () => {
      if (latencies.length + errors >= total || performance.now() > deadline) finish();
      else setTimeout(drain, 5);
    };
    drain();
  };
  setImmediate(tick);
}

run();
