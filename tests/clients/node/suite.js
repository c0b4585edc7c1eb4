'use strict'
// node-postgres (pg) through rds-iam-proxy: connects with PGHOST/PGPORT/PGUSER/PGDATABASE and
// no password, runs every feature of the client matrix and prints one JSON line per feature:
// {"client", "feature", "ok", "gap"?, "detail"}. Run by tests/tests/clients.rs.

const crypto = require('node:crypto')
const { pipeline } = require('node:stream/promises')
const { Readable, Writable } = require('node:stream')
const pg = require('pg')
const copyStreams = require('pg-copy-streams')

const CLIENT = 'node-postgres (pg)'
const APP = 'clients-node-pg'
const HOST = process.env.PGHOST || '127.0.0.1'
const PORT = Number(process.env.PGPORT || 5432)
const USER = process.env.PGUSER || 'iam_user'
const DATABASE = process.env.PGDATABASE || 'appdb'
const TLS_PORT = process.env.CLIENTS_TLS_PORT
const LARGE_ROWS = Number(process.env.CLIENTS_LARGE_ROWS || 50000)
const LARGE_WIDTH = 1000
const COPY_ROWS = 10000
const WAIT_MS = 20000

let failed = false
function emit(feature, ok, detail, gap) {
  const line = { client: CLIENT, feature, ok, detail }
  if (gap) line.gap = true
  process.stdout.write(JSON.stringify(line) + '\n')
  if (!ok && !gap) failed = true
}

class Gap extends Error {}

async function run(feature, fn) {
  const start = Date.now()
  try {
    emit(feature, true, (await fn()) || '')
  } catch (e) {
    if (e instanceof Gap) emit(feature, false, e.message, true)
    else {
      const code = e && e.code ? ` [${e.code}]` : ''
      emit(feature, false, `${e && e.name}${code}: ${e && e.message} (after ${(Date.now() - start) / 1000}s)`)
    }
  }
}

function assert(cond, what) {
  if (!cond) throw new Error(`assertion failed: ${what}`)
}

function config(extra) {
  return {
    host: HOST,
    port: PORT,
    user: USER,
    database: DATABASE,
    application_name: APP,
    connectionTimeoutMillis: 10000,
    ...extra,
  }
}

async function connect(extra) {
  const c = new pg.Client(config(extra))
  await c.connect()
  return c
}

function copyText() {
  let s = ''
  for (let i = 1; i <= COPY_ROWS; i++) s += `${i}\t${crypto.createHash('md5').update(String(i)).digest('hex')}\n`
  return Buffer.from(s)
}

async function waitUntil(poll, what) {
  const deadline = Date.now() + WAIT_MS
  while (!(await poll())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 10))
  }
}

function runningQuerySql(tag) {
  return "select count(*)::int as n from pg_stat_activity where state = 'active' and pid <> pg_backend_pid() " +
    `and query like '%${tag}%' and query not like '%pg_stat_activity%'`
}

function preparedCountSql(tag) {
  const half = Math.floor(tag.length / 2)
  return 'select count(*)::int as n from pg_prepared_statements ' +
    `where strpos(statement, '${tag.slice(0, half)}' || '${tag.slice(half)}') > 0`
}

async function main() {
  const pgVersion = require('pg/package.json').version
  const copyVersion = require('pg-copy-streams/package.json').version
  process.stdout.write(JSON.stringify({ client: CLIENT, version: `pg ${pgVersion}, pg-copy-streams ${copyVersion}, node ${process.version}` }) + '\n')
  let conn = null

  await run('connect', async () => {
    conn = await connect()
    const r = await conn.query('select current_user::text as u, ssl from pg_stat_ssl where pid = pg_backend_pid()')
    assert(r.rows[0].u === USER && r.rows[0].ssl === true, JSON.stringify(r.rows))
    return `as ${r.rows[0].u}, no password; upstream TLS: ${r.rows[0].ssl}`
  })
  if (!conn) return

  await run('simple_query', async () => {
    // No values: the simple query protocol, which alone accepts two statements.
    const results = await conn.query("select 1 as a; select 'two' as b")
    assert(Array.isArray(results) && results[0].rows[0].a === 1 && results[1].rows[0].b === 'two', JSON.stringify(results))
    return 'two statements in one Query message'
  })

  await run('extended_query', async () => {
    const r = await conn.query('select $1::int + 1 as a, $2::text as b', [41, 'é'])
    assert(r.rows[0].a === 42 && r.rows[0].b === 'é', JSON.stringify(r.rows))
    return 'parameters bound server-side (Parse/Bind/Execute)'
  })

  await run('prepared', async () => {
    const got = []
    for (let i = 0; i < 5; i++) {
      const r = await conn.query({ name: 'node_prepared', text: 'select $1::int * 3 as v /* node-prepared */', values: [i] })
      got.push(r.rows[0].v)
    }
    assert(JSON.stringify(got) === '[0,3,6,9,12]', got)
    const n = (await conn.query(preparedCountSql('node-prepared'))).rows[0].n
    assert(n === 1, `${n} server-side prepared statements`)
    return 'named query config: one statement on the server, executed 5 times'
  })

  await run('pipeline', async () => {
    const c = await connect({ pipeline: true })
    try {
      const results = await Promise.all(Array.from({ length: 10 }, (_, i) => c.query('select $1::int as v', [i])))
      const got = results.map((r) => r.rows[0].v)
      assert(JSON.stringify(got) === JSON.stringify([...Array(10).keys()]), got)
    } finally {
      await c.end()
    }
    return 'Client({pipeline: true}): 10 queries sent before the first result'
  })

  await run('transaction_rollback', async () => {
    await conn.query('create temp table tx_test (i int)')
    await conn.query('begin')
    await conn.query('insert into tx_test values (1)')
    await conn.query('rollback')
    const n = (await conn.query('select count(*)::int as n from tx_test')).rows[0].n
    assert(n === 0, `${n} rows after rollback`)
    return 'begin; insert; rollback'
  })

  await run('large_result', async () => {
    const start = Date.now()
    const r = await conn.query({
      text: `select i, lpad(i::text, ${LARGE_WIDTH}, 'x') as t from generate_series(1, $1::int) i order by i`,
      values: [LARGE_ROWS],
      rowMode: 'array',
    })
    let total = 0
    r.rows.forEach(([i, t], k) => {
      if (i !== k + 1 || t.length !== LARGE_WIDTH || !t.endsWith(String(k + 1))) throw new Error(`row ${k + 1} is wrong`)
      total += t.length
    })
    assert(r.rows.length === LARGE_ROWS, `${r.rows.length} rows`)
    return `${r.rows.length} rows, ${(total / 1e6).toFixed(1)} MB in ${(Date.now() - start) / 1000}s`
  })

  await run('copy_in', async () => {
    await conn.query('create temp table copy_in (i int primary key, t text not null)')
    await pipeline(Readable.from([copyText()]), conn.query(copyStreams.from('copy copy_in (i, t) from stdin')))
    const r = await conn.query('select count(*)::int as n, coalesce(bool_and(t = md5(i::text)), false) as same from copy_in')
    assert(r.rows[0].n === COPY_ROWS && r.rows[0].same, JSON.stringify(r.rows))
    return `${COPY_ROWS} rows via pg-copy-streams (pg has no COPY API of its own), server-side check equal`
  })

  await run('copy_out', async () => {
    const chunks = []
    const sink = new Writable({
      write(chunk, _enc, cb) {
        chunks.push(chunk)
        cb()
      },
    })
    await pipeline(conn.query(copyStreams.to(`copy (select i, md5(i::text) from generate_series(1, ${COPY_ROWS}) i order by i) to stdout`)), sink)
    const got = Buffer.concat(chunks)
    assert(got.equals(copyText()), `${got.length} bytes differ`)
    return `${COPY_ROWS} rows, ${got.length} bytes, byte-exact, via pg-copy-streams`
  })

  await run('notify', async () => {
    const listener = await connect()
    try {
      const got = new Promise((resolve, reject) => {
        listener.on('notification', resolve)
        setTimeout(() => reject(new Error('no notification')), WAIT_MS).unref()
      })
      await listener.query('listen clients_node')
      await conn.query("select pg_notify('clients_node', 'hello from node')")
      const msg = await got
      assert(msg.channel === 'clients_node' && msg.payload === 'hello from node', JSON.stringify(msg))
      return `payload '${msg.payload}' from pid ${msg.processId}`
    } finally {
      await listener.end()
    }
  })

  await run('cancel', async () => {
    const tag = 'cancel-node'
    const victim = await connect()
    try {
      const outcome = victim.query(`select pg_sleep(30) /* ${tag} */`).then(
        () => null,
        (e) => ({ e, at: Date.now() }),
      )
      await waitUntil(async () => (await conn.query(runningQuerySql(tag))).rows[0].n === 1, 'the query to run')
      const sent = Date.now()
      // pg's own helper: a second Client opens a connection and sends the CancelRequest.
      new pg.Client(config()).cancel(victim, victim.activeQuery)
      const r = await Promise.race([outcome, new Promise((resolve) => setTimeout(() => resolve('timeout'), WAIT_MS).unref())])
      assert(r !== 'timeout', 'the query was not cancelled')
      assert(r !== null, 'the query completed')
      assert(r.e.code === '57014', `SQLSTATE ${r.e.code}: ${r.e.message}`)
      return `client.cancel(victim, query): SQLSTATE ${r.e.code}: ${r.e.message}, ${(r.at - sent) / 1000}s after the request`
    } finally {
      await victim.end()
    }
  })

  await run('application_name', async () => {
    const name = (await conn.query('select application_name from pg_stat_activity where pid = pg_backend_pid()')).rows[0].application_name
    assert(name === APP, name)
    return `server sees '${name}'`
  })

  await run('error_sqlstate', async () => {
    try {
      await conn.query('select 1/0')
    } catch (e) {
      assert(e.code === '22012', `SQLSTATE ${e.code}`)
      assert((await conn.query('select 1 as one')).rows[0].one === 1, 'connection usable')
      return `SQLSTATE ${e.code}: ${e.message}; connection still usable`
    }
    throw new Error('no error')
  })

  if (TLS_PORT) {
    await run('sslmode=require (local TLS)', async () => {
      // The proxy's certificate is self-signed: encryption without verification, as
      // libpq's sslmode=require.
      const c = await connect({ port: Number(TLS_PORT), ssl: { rejectUnauthorized: false } })
      try {
        assert(c.connection.stream.encrypted === true, 'the socket is not TLS')
        assert((await c.query('select 1 as one')).rows[0].one === 1, 'query')
      } finally {
        await c.end()
      }
      return 'ssl: {rejectUnauthorized: false} to the proxy\'s self-signed local TLS'
    })
  }

  await conn.end()
}

main().then(
  () => process.exit(failed ? 1 : 0),
  (e) => {
    emit('internal', false, String(e && e.stack))
    process.exit(1)
  },
)
