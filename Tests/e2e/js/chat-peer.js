// A chat participant that is not a browser: the official socket.io client in Node 20, speaking
// the chat app's protocol. It joins a room, leaves a message for the history, waits for the
// expected peers, greets them, and reports what it saw as "RESULT {...}".
//
//   node chat-peer.js SERVER_URL NAME ROOM PEER1,PEER2
'use strict';
const path = require('path');
const { loadSocketIo } = require(path.join(process.env.SHARED_DIR, 'realclients', 'node-client-shim.js'));
const io = loadSocketIo(process.env.RC_BUNDLE);
const [server, name, room, peerList] = process.argv.slice(2);
const peers = peerList.split(',');

const seen = { messages: [], typing: [], presence: [] };
function finish(ok, error) {
  console.log('RESULT ' + JSON.stringify({ ok, error, seen }));
  process.exit(ok ? 0 : 1);
}
setTimeout(() => finish(false, 'timed out'), 60000).unref();

const s = io(server, { auth: { name }, transports: ['websocket'] });
let greeted = false;
function check() {
  const from = new Set(seen.messages.map((m) => m.from));
  if (greeted && peers.every((p) => from.has(p))) finish(true);
}
s.on('connect_error', (e) => finish(false, 'connect_error ' + e.message));
s.on('message', (m) => { seen.messages.push(m); check(); });
s.on('typing', (t) => { if (t.typing) seen.typing.push(t.name); });
s.on('presence', (p) => {
  seen.presence.push(p.members);
  if (!greeted && peers.every((x) => p.members.includes(x))) {
    greeted = true;
    s.emit('message', { room, text: 'hello from ' + name });
  }
});
s.on('connect', () => {
  s.emit('join', room, (answer) => {
    s.emit('message', { room, text: name + ' was here first' }, () => console.log('READY'));
  });
});
