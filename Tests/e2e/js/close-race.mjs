// The official Engine.IO v4 suite's "close — HTTP long-polling — forcefully closes the session",
// repeated: a long-poll and a POST carrying `1` sent at once (two fetches, two connections); the
// poll must be answered `6`, and the session then be unknown. Prints the failures as JSON.
// Usage: node close-race.mjs PORT RUNS
const [port, runs] = [process.argv[2], Number(process.argv[3])];
const base = `http://127.0.0.1:${port}/engine.io/?EIO=4&transport=polling`;
const failures = [];
for (let i = 0; i < runs; i++) {
  const open = await fetch(base);
  const sid = JSON.parse((await open.text()).substring(1)).sid;
  const [poll, post] = await Promise.all([
    fetch(`${base}&sid=${sid}`),
    fetch(`${base}&sid=${sid}`, { method: "post", body: "1" }),
  ]);
  const pollBody = await poll.text();
  await post.text();
  const after = await fetch(`${base}&sid=${sid}`);
  await after.text();
  if (poll.status !== 200 || pollBody !== "6" || after.status !== 400) {
    failures.push({ run: i, poll: poll.status, body: pollBody, after: after.status });
  }
}
console.log(JSON.stringify({ runs, failures }));
