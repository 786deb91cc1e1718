// Scenarios beyond the harness's suite.js, run with the official socket.io client in Node 20
// (loaded through shared/realclients/node-client-shim.js). Prints one JSON line per event and a
// final "RESULT {...}" line; exits 0 when the scenario passed.
//
//   node scenarios.js SCENARIO SERVER_URL
'use strict';
const path = require('path');
const shared = process.env.SHARED_DIR;
const { loadSocketIo } = require(path.join(shared, 'realclients', 'node-client-shim.js'));
const io = loadSocketIo(process.env.RC_BUNDLE);
const [scenario, server] = process.argv.slice(2);

function log(event, detail) { console.log(JSON.stringify({ event, detail, t: Date.now() })); }
function finish(ok, detail) {
  console.log('RESULT ' + JSON.stringify({ ok, detail }));
  process.exit(ok ? 0 : 1);
}
setTimeout(() => finish(false, 'scenario timed out'), 40000).unref();

function once(socket, event) { return new Promise((resolve) => socket.once(event, (...a) => resolve(a))); }
function ack(socket, ...args) { return new Promise((resolve) => socket.emit(...args, (...a) => resolve(a))); }

const scenarios = {
  // The client reconnects by itself after the server restarts (the test restarts it).
  async reconnect() {
    const s = io(server, { reconnectionDelay: 100, reconnectionDelayMax: 500 });
    let connects = 0;
    s.on('connect', () => { connects++; log('connect', connects); if (connects === 2) finish(true, { connects }); });
    s.on('disconnect', (reason) => log('disconnect', reason));
    s.on('connect_error', (err) => log('connect_error', err.message));
  },
  // A middleware refusal carries message and data to connect_error.
  async refusal() {
    const s = io(server + '/private', { auth: { token: 'wrong' }, reconnection: false });
    const [err] = await once(s, 'connect_error');
    finish(err.message === 'unauthorized' && err.data && err.data.hint === 'auth.token', { message: err.message, data: err.data });
  },
  // 900 KB round-trips; 1.1 MB (over maxPayload) drops the connection, and the server stays up.
  async large() {
    const transports = process.env.TRANSPORTS ? process.env.TRANSPORTS.split(',') : undefined;
    const s = io(server, { reconnection: false, transports });
    await once(s, 'welcome');
    const big = 'x'.repeat(900 * 1024);
    const [back] = await ack(s, 'ack', big);
    log('900KB', back.length);
    if (back !== big) finish(false, '900 KB came back changed');
    const closed = once(s, 'disconnect');
    s.emit('echo', 'y'.repeat(1100 * 1024));
    const [reason] = await closed;
    log('1.1MB', reason);
    const again = io(server, { reconnection: false, forceNew: true, transports });
    await once(again, 'welcome');
    finish(reason === 'transport close' || reason === 'transport error', { reason });
  },
  // 200 emits in one tick go out batched in a single polling POST; all come back in order.
  async batch() {
    const s = io(server, { transports: ['polling'], reconnection: false });
    await once(s, 'welcome');
    const got = [];
    s.on('echo', (n) => {
      got.push(n);
      if (got.length === 200) finish(got.every((v, i) => v === i), { received: got.length });
    });
    for (let i = 0; i < 200; i++) s.emit('echo', i);
  },
  // Twenty namespaces multiplexed on one connection.
  async multiplex() {
    const manager = new io.Manager(server, { reconnection: false });
    const sockets = [];
    for (let i = 0; i < 20; i++) sockets.push(manager.socket('/ns-' + i));
    for (const s of sockets) s.connect();
    const answers = await Promise.all(sockets.map((s, i) => ack(s, 'echo', i)));
    const ok = answers.every((a, i) => a[0] === '/ns-' + i && a[1] === i);
    const engines = new Set(sockets.map((s) => s.io.engine.id));
    finish(ok && engines.size === 1, { namespaces: answers.length, connections: engines.size });
  },
};

if (!scenarios[scenario]) finish(false, 'unknown scenario ' + scenario);
scenarios[scenario]().catch((e) => finish(false, String(e && e.stack || e)));
