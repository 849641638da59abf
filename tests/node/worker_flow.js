// Drives a running Ferrum (API + runner + Docker) with IronWorker's official Node client
// (npm iron_worker 0.1.8), unchanged, the way its users do: upload a worker directory, queue a
// task, wait for it, read its log.
//
// The client uploads runtime `sh` with its own `__runner__.sh`, which ends by running
// `node FILE`: the task runs only if the `sh` stack has node. It copies that script from
// `upload_files/` relative to the *working directory*, so (like its users) this runs from the
// client's package directory.
//
// Run by crates/ferrum/tests/official_clients_e2e.rs with IRON_SCHEME/IRON_HOST/IRON_PORT/
// IRON_PROJECT_ID/IRON_TOKEN set. Prints "node worker flow: ok"; exits non-zero on a failure.
'use strict';
const fs = require('fs');
const os = require('os');
const path = require('path');
const iron_worker = require('iron_worker');

const WORKER = `
const fs = require('fs');
console.log('hello from node ' + process.version);
console.log('payload=' + fs.readFileSync(process.env.PAYLOAD_FILE, 'utf8'));
console.log('task_id=' + process.env.TASK_ID);
`;

function check(cond, what) {
  if (!cond) {
    throw new Error(what);
  }
}

// The client's callbacks as promises.
function call(fn, ...args) {
  return new Promise((resolve, reject) => {
    fn(...args, (err, body) => (err ? reject(err) : resolve(body)));
  });
}

async function main() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ferrum-nodeworker-'));
  fs.writeFileSync(path.join(dir, 'hello.js'), WORKER);
  process.chdir(path.dirname(require.resolve('iron_worker/package.json')));

  const w = new iron_worker.Client();
  const code = await call(w.codesUpload.bind(w), 'node-hello', dir, 'hello.js');
  check(code && code.id, 'upload answered ' + JSON.stringify(code));

  const task = await call(w.tasksCreate.bind(w), 'node-hello', { who: 'node' }, {});
  check(task && task.id, 'queue answered ' + JSON.stringify(task));

  const done = await call(w.tasksWaitFor.bind(w), task.id, { timeout: 300 });
  const log = await call(w.tasksLog.bind(w), task.id);
  check(done.status === 'complete', 'task ended ' + done.status + ': ' + log);
  check(log.includes('hello from node v'), 'log: ' + log);
  check(log.includes('payload={"who":"node"}'), 'log: ' + log);
  check(log.includes('task_id=' + task.id), 'log: ' + log);
  fs.rmSync(dir, { recursive: true, force: true });
  console.log('node worker flow: ok');
}

main().catch((e) => {
  console.error(e && e.stack ? e.stack : e);
  process.exit(1);
});
