// node-postgres' connect() then end() at once (its regression test for issue #320): the
// Terminate goes out before the startup packet. PostgreSQL closes without a word; an
// ErrorResponse there reaches the application as a server error (an 'error' event when
// nothing waits for connect()). Prints "ended" and exits 0 when every attempt ended
// without a server error.
const { Client } = require('pg');

function attempt(cfg) {
  return new Promise((resolve) => {
    const c = new Client(cfg);
    let serverError = null;
    c.on('error', (e) => { serverError = serverError || e; });
    c.connect((err) => { if (err && err.code) serverError = serverError || err; });
    c.end(() => setImmediate(() => resolve(serverError)));
  });
}

async function main() {
  const [host, port, user, password, database] = process.argv.slice(2);
  const cfg = { host, port: Number(port), user, password, database };
  for (let i = 0; i < 20; i++) {
    const e = await attempt(cfg);
    if (e) {
      console.log(`server error: ${e.code} ${e.message}`);
      process.exit(3);
    }
  }
  console.log('ended');
}
main().catch((e) => { console.log('failed: ' + e.message); process.exit(2); });
