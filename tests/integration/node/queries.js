// node-postgres through pgcoro: simple and parameterised (extended protocol) queries,
// named prepared statements, a transaction, many clients at once. Prints "ok" or exits
// non-zero with what went wrong.
const { Client } = require('pg');
const assert = require('assert');

async function one(cfg, k) {
  const c = new Client(cfg);
  await c.connect();
  try {
    const r1 = await c.query('SELECT $1::int + 1 AS n', [k]);
    assert.strictEqual(r1.rows[0].n, k + 1);
    for (let i = 0; i < 5; i++) {
      const r2 = await c.query({ name: 'twice', text: 'SELECT $1::int * 2 AS n', values: [i] });
      assert.strictEqual(r2.rows[0].n, i * 2);
    }
    await c.query('BEGIN');
    await c.query('SET LOCAL statement_timeout = 5000');
    const r3 = await c.query("SELECT current_setting('statement_timeout') AS t");
    assert.strictEqual(r3.rows[0].t, '5s');
    await c.query('COMMIT');
    const r4 = await c.query('SELECT repeat($1, 1000) AS s', ['x']);
    assert.strictEqual(r4.rows[0].s.length, 1000);
    const r5 = await c.query("SHOW application_name");
    assert.strictEqual(r5.rows[0].application_name, '');
  } finally {
    await c.end();
  }
}

async function main() {
  const [host, port, user, password, database] = process.argv.slice(2);
  const cfg = { host, port: Number(port), user, password, database };
  await Promise.all(Array.from({ length: 20 }, (_, k) => one(cfg, k)));
  console.log('ok');
}
main().catch((e) => { console.log('failed: ' + (e.stack || e.message)); process.exit(2); });
