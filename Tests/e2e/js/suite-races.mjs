// Three timing-sensitive cases of the official Engine.IO v4 suite, repeated, from Node (fetch and
// the `ws` package from Debian's node-ws, as the suite uses them). Prints the failures as JSON.
// Usage: NODE_PATH=/usr/share/nodejs node suite-races.mjs PORT RUNS
//  - close: a long-poll and a POST carrying `1` sent at once; the poll must be answered `6`.
//  - upgrade: `2probe` and `5` sent on the WebSocket, then a poll, which must be refused (400).
//  - heartbeat: a poll exactly pingInterval + pingTimeout after the handshake must be refused
//    (half a second each: RUNS / 5 times).
import { createRequire } from "node:module";
const WebSocket = createRequire(import.meta.url)("ws");
const [port, runs] = [process.argv[2], Number(process.argv[3])];
const base = `http://127.0.0.1:${port}/engine.io/?EIO=4&transport=polling`;
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function session() {
  const open = await fetch(base);
  return JSON.parse((await open.text()).substring(1)).sid;
}

const cases = {
  async close() {
    const sid = await session();
    const [poll, post] = await Promise.all([
      fetch(`${base}&sid=${sid}`),
      fetch(`${base}&sid=${sid}`, { method: "post", body: "1" }),
    ]);
    const body = await poll.text();
    await post.text();
    const after = await fetch(`${base}&sid=${sid}`);
    await after.text();
    return poll.status === 200 && body === "6" && after.status === 400 ? null : { poll: poll.status, body };
  },
  async upgrade() {
    const sid = await session();
    const socket = new WebSocket(`ws://127.0.0.1:${port}/engine.io/?EIO=4&transport=websocket&sid=${sid}`);
    await new Promise((resolve) => socket.once("open", resolve));
    socket.send("2probe");
    socket.send("5");
    const poll = await fetch(`${base}&sid=${sid}`);
    await poll.text();
    socket.close();
    return poll.status === 400 ? null : { poll: poll.status };
  },
  async heartbeat() {
    const sid = await session();
    await sleep(300 + 200);
    const poll = await fetch(`${base}&sid=${sid}`);
    await poll.text();
    return poll.status === 400 ? null : { poll: poll.status };
  },
};

const failures = [];
for (const [name, run] of Object.entries(cases)) {
  const count = name === "heartbeat" ? Math.ceil(runs / 5) : runs;
  for (let i = 0; i < count; i++) {
    const failure = await run();
    if (failure) failures.push({ case: name, run: i, ...failure });
  }
}
console.log(JSON.stringify({ runs, failures }));
