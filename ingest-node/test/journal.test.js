// The journal (src/journal.js, format in proto/README.md "Journal"): bytes against a record built here by
// hand, rotation, retention by size and by age, jseq across restarts, a torn tail, one writer per
// directory, and the frames the pipeline journals before ZeroMQ, with no processor at all too.
import { test, describe } from 'node:test'
import assert from 'node:assert/strict'
import { closeSync, readFileSync, readdirSync, writeFileSync, appendFileSync, truncateSync, statSync, utimesSync, existsSync } from 'node:fs'
import { spawn } from 'node:child_process'
import { join } from 'node:path'
import { Pull } from 'zeromq'
import { Journal, journalFiles } from '../src/journal.js'
import { Sender } from '../src/sender.js'
import { Batcher } from '../src/batcher.js'
import { runPipeline } from '../src/pipeline.js'
import { openSynthetic } from '../src/sources/synthetic.js'
import { decodeFrame } from '../src/wire/index.js'
import { parseCli } from '../src/cli.js'
import { memoryLog } from '../src/log.js'
import { INGEST_DIR, tmpDir } from './helpers.js'

const MB = 1024 * 1024
const START = { source: 'synthetic', exchanges: ['synthetic'], data_types: ['trade'], speed: 'max' }

/**
 * Every record of a journal file, parsed here from the format's description (not with src/journal.js).
 * @param {string} path
 */
function readRecords (path) {
  const b = readFileSync(path)
  assert.equal(b.subarray(0, 8).toString('latin1'), 'MDTHJNL1', `${path}: magic`)
  const out = []
  let pos = 8
  while (pos + 24 <= b.length) {
    const length = b.readUInt32LE(pos)
    if (pos + 24 + length > b.length) break
    out.push({
      length,
      crc: b.readUInt32LE(pos + 4),
      jseq: Number(b.readBigUInt64LE(pos + 8)),
      appendUs: Number(b.readBigInt64LE(pos + 16)),
      payload: b.subarray(pos + 24, pos + 24 + length),
      offset: pos
    })
    pos += 24 + length
  }
  return { records: out, tail: b.length - pos }
}

const names = (dir) => readdirSync(dir).filter((n) => n.endsWith('.jnl')).sort()
const fill = (size, byte) => Buffer.alloc(size, byte)

describe('journal', () => {
  test('a file is the magic and records byte for byte as proto/README.md says', () => {
    const dir = tmpDir()
    const j = new Journal({ dir, nowUs: () => 1_700_000_000_123_456 }).open()
    j.append(1, Buffer.from('hello'))
    j.append(2, Buffer.from(''))
    j.close()
    assert.deepEqual(names(dir), ['journal-00000000000000000001.jnl'])
    const expected = Buffer.concat([
      Buffer.from('MDTHJNL1', 'latin1'),
      // length 5, crc32("hello") = 0x3610a686, jseq 1, append µs 1_700_000_000_123_456 = 0x00060a24_18202240
      Buffer.from([5, 0, 0, 0, 0x86, 0xa6, 0x10, 0x36, 1, 0, 0, 0, 0, 0, 0, 0, 0x40, 0x22, 0x20, 0x18, 0x24, 0x0a, 0x06, 0x00]),
      Buffer.from('hello'),
      // an empty payload: length 0, crc32("") = 0, jseq 2
      Buffer.from([0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0x40, 0x22, 0x20, 0x18, 0x24, 0x0a, 0x06, 0x00])
    ])
    assert.deepEqual(readFileSync(join(dir, 'journal-00000000000000000001.jnl')), expected)
    assert.equal(existsSync(join(dir, 'journal.lock')), false, 'close() releases the directory')
  })

  test('jseq goes on across restarts, each run in a new file; append checks the jseq', () => {
    const dir = tmpDir()
    const a = new Journal({ dir }).open()
    for (let k = 1; k <= 3; k++) a.append(k, fill(10, k))
    assert.throws(() => a.append(3, fill(1, 0)), /append of jseq 3, expected 4/)
    a.close()
    const b = new Journal({ dir }).open()
    assert.equal(b.nextJseq, 4)
    b.append(4, fill(10, 4))
    b.close()
    const c = new Journal({ dir }).open() // opened and closed with no record: an empty file
    c.close()
    const d = new Journal({ dir, log: memoryLog() }).open() // the empty file is removed, its name taken again
    assert.equal(d.nextJseq, 5)
    assert.match(d.log.lines.join('\n'), /journal-00000000000000000005\.jnl holds no whole record \(8 bytes\): removed, jseq continues at 5/)
    d.append(5, fill(10, 5))
    d.close()
    assert.deepEqual(names(dir), ['journal-00000000000000000001.jnl', 'journal-00000000000000000004.jnl', 'journal-00000000000000000005.jnl'])
    const all = names(dir).flatMap((n) => readRecords(join(dir, n)).records)
    assert.deepEqual(all.map((r) => r.jseq), [1, 2, 3, 4, 5])
    assert.deepEqual(all.map((r) => r.payload[0]), [1, 2, 3, 4, 5])
  })

  test('rotation: a file is closed before a record would take it past file_mb', () => {
    const dir = tmpDir()
    const log = memoryLog()
    const j = new Journal({ dir, fileMb: 1, log }).open()
    // 8 + 3 * (24 + 300,000) = 900,080 bytes: a fourth record (1,200,104) would pass 1 MB
    for (let k = 1; k <= 10; k++) j.append(k, fill(300_000, k))
    const counts = j.counts()
    j.close()
    assert.deepEqual(names(dir), [1, 4, 7, 10].map((k) => `journal-${String(k).padStart(20, '0')}.jnl`))
    for (const n of names(dir).slice(0, 3)) assert.equal(statSync(join(dir, n)).size, 900_080)
    assert.deepEqual(counts, { records: 10, bytes: 10 * 300_024, files: 4, rotated: 3, deleted: 0, deleted_records: 0, deleted_bytes: 0, torn_tails: 0, frames_journal_only: 0 })
    assert.equal(log.lines.filter((l) => l.includes('reached 1 MB')).length, 3)
    // a record bigger than file_mb gets a file of its own
    const big = tmpDir()
    const g = new Journal({ dir: big, fileMb: 1 }).open()
    g.append(1, fill(10, 1))
    g.append(2, fill(2 * MB, 2))
    g.append(3, fill(10, 3))
    g.close()
    assert.deepEqual(names(big).map((n) => readRecords(join(big, n)).records.map((r) => r.jseq)), [[1], [2], [3]])
  })

  test('retention by size: the oldest files go while all of them take more than max_mb, never the current one', () => {
    const dir = tmpDir()
    const log = memoryLog()
    const j = new Journal({ dir, fileMb: 1, maxMb: 2, log }).open()
    for (let k = 1; k <= 13; k++) j.append(k, fill(300_000, k))
    // files of 3 records (900,080 bytes) start at 1, 4, 7, 10, 13. At the rotation to 7 the files hold
    // 2 * 900,080 + 8 bytes, under 2 MB (2,097,152); at the rotation to 10, 3 * 900,080 + 8 = 2,700,248
    // (2.6 MB): file 1 goes, which leaves 1,800,168; at the rotation to 13, file 4 goes
    j.close()
    assert.deepEqual(names(dir), [7, 10, 13].map((k) => `journal-${String(k).padStart(20, '0')}.jnl`))
    const deletions = log.lines.filter((l) => l.includes('deleted'))
    assert.equal(deletions.length, 2)
    assert.match(deletions[0], /deleted journal-00000000000000000001\.jnl \(jseq 1\.\.3, 900080 bytes\): the journal takes 2\.6 MB, over max_mb 2$/)
    assert.match(deletions[1], /deleted journal-00000000000000000004\.jnl \(jseq 4\.\.6, 900080 bytes\)/)
    const c = j.counts()
    assert.deepEqual([c.deleted, c.deleted_records, c.deleted_bytes], [2, 6, 2 * 900_080])
    // the current file is kept even when it alone passes max_mb
    const one = tmpDir()
    const k = new Journal({ dir: one, fileMb: 4, maxMb: 1 }).open()
    for (let i = 1; i <= 5; i++) k.append(i, fill(300_000, i))
    k.retain()
    k.close()
    assert.deepEqual(names(one), ['journal-00000000000000000001.jnl'])
  })

  test('retention by age: files last written more than max_age_h ago go, at start too', () => {
    const dir = tmpDir()
    const a = new Journal({ dir }).open()
    a.append(1, fill(100, 1))
    a.append(2, fill(100, 2))
    a.close()
    const b = new Journal({ dir }).open()
    b.append(3, fill(100, 3))
    b.close()
    const c = new Journal({ dir }).open()
    c.append(4, fill(100, 4))
    c.close()
    const hoursAgo = (h) => new Date(Date.now() - h * 3600e3)
    utimesSync(join(dir, 'journal-00000000000000000001.jnl'), hoursAgo(80), hoursAgo(80))
    utimesSync(join(dir, 'journal-00000000000000000003.jnl'), hoursAgo(73), hoursAgo(73))
    utimesSync(join(dir, 'journal-00000000000000000004.jnl'), hoursAgo(71), hoursAgo(71))
    const log = memoryLog()
    const d = new Journal({ dir, maxAgeH: 72, log }).open()
    assert.equal(d.nextJseq, 5)
    assert.deepEqual(names(dir), ['journal-00000000000000000004.jnl', 'journal-00000000000000000005.jnl'])
    const deletions = log.lines.filter((l) => l.includes('deleted'))
    assert.match(deletions[0], /deleted journal-00000000000000000001\.jnl \(jseq 1\.\.2, 256 bytes\): last written 80\.0 h ago, over max_age_h 72/)
    assert.match(deletions[1], /deleted journal-00000000000000000003\.jnl \(jseq 3\.\.3, 132 bytes\): last written 73\.0 h ago/)
    assert.deepEqual([d.counts().deleted, d.counts().deleted_records], [2, 3])
    // later, on append (at most once a minute): the clock moves past 72 h of the file of jseq 4
    d.nowUs = () => Date.now() * 1000 + 2 * 3600e6
    d.append(5, fill(100, 5))
    d.close()
    assert.deepEqual(names(dir), ['journal-00000000000000000005.jnl'])
  })

  test('a torn tail (a writer killed in the middle of a record) is left; jseq goes on after the last whole record', () => {
    const dir = tmpDir()
    const a = new Journal({ dir }).open()
    for (let k = 1; k <= 3; k++) a.append(k, fill(1000, k))
    a.close()
    const file = join(dir, 'journal-00000000000000000001.jnl')
    truncateSync(file, 8 + 2 * 1024 + 500) // the third record cut in its payload
    const log = memoryLog()
    const b = new Journal({ dir, log }).open()
    assert.equal(b.nextJseq, 3, 'the torn record was never sent: its jseq is given again')
    assert.match(log.lines.join('\n'), /journal-00000000000000000001\.jnl has a torn tail of 500 bytes at offset 2056, after jseq 2/)
    assert.equal(b.counts().torn_tails, 1)
    b.append(3, fill(10, 33))
    b.close()
    assert.equal(statSync(file).size, 2556, 'the torn file is left as it is')
    assert.deepEqual(readRecords(file), { records: readRecords(file).records, tail: 500 })
    assert.deepEqual(readRecords(join(dir, 'journal-00000000000000000003.jnl')).records.map((r) => [r.jseq, r.payload[0]]), [[3, 33]])
    // bytes that are no record (zeros after a machine crash) are a torn tail too
    appendFileSync(join(dir, 'journal-00000000000000000003.jnl'), Buffer.alloc(64))
    const c = new Journal({ dir, log }).open()
    assert.equal(c.nextJseq, 4)
    c.close()
  })

  test('a real writer killed by SIGKILL mid-run: jseq goes on from its last whole record', async () => {
    const dir = tmpDir()
    const script = `
      import { Journal } from ${JSON.stringify(join(INGEST_DIR, 'src/journal.js'))}
      const j = new Journal({ dir: ${JSON.stringify(dir)}, fileMb: 1 }).open()
      const payload = Buffer.alloc(7000, 7)
      for (let k = 1; ; k++) { j.append(k, payload); if (k === 200) process.stdout.write('go\\n') }`
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] })
    await new Promise((resolve) => child.stdout.once('data', resolve))
    child.kill('SIGKILL')
    await new Promise((resolve) => child.on('exit', resolve))
    // killed between making a new file and writing its header, the newest file has no header (open() below
    // removes it): every other file starts with the header
    const files = journalFiles(dir).filter((f, i, all) => i < all.length - 1 || statSync(f.path).size >= 8)
    const jseqs = files.flatMap((f) => readRecords(f.path).records.map((r) => r.jseq))
    assert.ok(jseqs.length >= 200)
    assert.deepEqual(jseqs, jseqs.map((_, i) => i + 1), 'every whole record, in order, no hole')
    const next = new Journal({ dir, log: memoryLog() }).open() // the dead writer's lock is taken over
    assert.equal(next.nextJseq, jseqs.length + 1)
    for (const f of journalFiles(dir)) assert.ok(statSync(f.path).size >= 8, `${f.name}: a file without the header is left`)
    assert.match(next.log.lines.join('\n'), /taking over .*journal\.lock of a process that is gone/)
    next.close()
  })

  test('a failed write: nothing may follow it', () => {
    const dir = tmpDir()
    const log = memoryLog()
    const j = new Journal({ dir, log }).open()
    j.append(1, fill(10, 1))
    closeSync(j.fd) // the file gone from under it: the next write fails (EBADF), as a full disk would
    assert.throws(() => j.append(2, fill(10, 2)), /EBADF/)
    assert.throws(() => j.append(2, fill(10, 2)), /an earlier write to journal-00000000000000000001\.jnl failed/)
    assert.match(log.lines.join('\n'), /writing jseq 2 to journal-00000000000000000001\.jnl failed: EBADF/)
    j.fd = null
  })

  test('one writer per directory', async () => {
    const dir = tmpDir()
    const a = new Journal({ dir }).open()
    assert.throws(() => new Journal({ dir }).open(), /is written by another journal of this process/)
    a.close()
    const script = `
      import { Journal } from ${JSON.stringify(join(INGEST_DIR, 'src/journal.js'))}
      new Journal({ dir: ${JSON.stringify(dir)} }).open()
      process.stdout.write('go\\n')
      setInterval(() => {}, 1000)`
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] })
    await new Promise((resolve) => child.stdout.once('data', resolve))
    try {
      assert.throws(() => new Journal({ dir }).open(), new RegExp(`is written by another ingester \\(pid ${child.pid},`))
    } finally {
      child.kill('SIGKILL')
      await new Promise((resolve) => child.on('exit', resolve))
    }
    // a lock left with our own pid is an earlier process's (pids repeat): taken over
    writeFileSync(join(dir, 'journal.lock'), `${process.pid}\n`)
    new Journal({ dir }).open().close()
  })

  test('the pipeline journals every frame before ZeroMQ, with its jseq in the header; ledger counts say so', { timeout: 20000 }, async () => {
    const dir = tmpDir()
    const pull = new Pull()
    await pull.bind('tcp://127.0.0.1:*')
    const journal = new Journal({ dir }).open()
    const source = openSynthetic({ symbolsCount: 5, total: 3500, startUs: 1_700_000_000_000_000 })
    const sender = new Sender({ endpoint: pull.lastEndpoint, busy: 'wait', journal })
    const batcher = new Batcher({ send: (f) => sender.send(f), maxBatch: 1000, subscribed: { synthetic: source.symbols }, journal })
    const received = (async () => {
      const out = []
      for await (const [msg] of pull) {
        out.push(Buffer.from(msg))
        if (decodeFrame(msg).header.type === 'end') break
      }
      pull.close()
      return out
    })()
    const result = await runPipeline({ source, batcher, sender, startInfo: START })
    const frames = await received
    journal.close()
    const { records, tail } = readRecords(join(dir, 'journal-00000000000000000001.jnl'))
    assert.equal(tail, 0)
    assert.equal(records.length, frames.length)
    records.forEach((r, i) => {
      assert.deepEqual(r.payload, frames[i], `record ${i + 1} holds the bytes sent`)
      assert.equal(r.jseq, i + 1)
      assert.equal(decodeFrame(r.payload).header.jseq, r.jseq)
    })
    const types = frames.map((f) => decodeFrame(f).header.type)
    assert.deepEqual(types, ['start', 'trade', 'trade', 'trade', 'trade', 'end'])
    const end = decodeFrame(frames.at(-1)).header
    const bytes = records.slice(0, -1).reduce((a, r) => a + 24 + r.length, 0)
    assert.deepEqual(end.counts.journal, { records: 5, bytes, files: 1, rotated: 0, deleted: 0, deleted_records: 0, deleted_bytes: 0, torn_tails: 0, frames_journal_only: 0 })
    assert.equal(result.reason, 'replay_finished')
  })

  test('busy journal: with no processor at all the pipeline never waits, and every frame is in the journal', { timeout: 20000 }, async () => {
    const dir = tmpDir()
    const journal = new Journal({ dir }).open()
    const log = memoryLog()
    const source = openSynthetic({ symbolsCount: 5, total: 50_000, startUs: 1_700_000_000_000_000 })
    // nobody binds this endpoint: ZeroMQ queues sndhwm frames for a processor that may come, then is full
    const sender = new Sender({ endpoint: `ipc://${dir}/nobody.sock`, sndhwm: 4, busy: 'journal', journal, log })
    const batcher = new Batcher({ send: (f) => sender.send(f), maxBatch: 1000, subscribed: { synthetic: source.symbols }, journal })
    const t0 = performance.now()
    const result = await runPipeline({ source, batcher, sender, startInfo: START, closeTimeoutMs: 10_000 })
    const ms = performance.now() - t0
    journal.close()
    assert.ok(ms < 5000, `took ${ms} ms`)
    const { records } = readRecords(join(dir, 'journal-00000000000000000001.jnl'))
    const headers = records.map((r) => decodeFrame(r.payload).header)
    assert.equal(records.length, 52) // start, 50 trade frames of 1000, end
    assert.deepEqual(headers.map((h) => [h.jseq, h.seq]), headers.map((_, i) => [i + 1, i]))
    assert.equal(headers.filter((h) => h.type === 'trade').reduce((a, h) => a + h.n, 0), 50_000)
    assert.equal(sender.stats.frames, 4, 'what ZeroMQ took: its high-water mark')
    assert.equal(sender.stats.journalOnly, 48)
    assert.equal(result.counts.journal.frames_journal_only, 47, 'the end frame counts those before it')
    assert.equal(journal.counts().frames_journal_only, 48)
    assert.match(log.lines.join('\n'), /they wait in the journal only \(0 so far/)
    assert.match(log.lines.join('\n'), /the end frame is in the journal only/)
  })

  test('cli flags', () => {
    const base = ['--source', 'synthetic']
    assert.equal(parseCli(base).journal, null)
    assert.equal(parseCli(base).whenBusy, 'wait')
    const on = parseCli([...base, '--journal-dir', '/j', '--journal-file-mb', '8', '--journal-max-mb', '100', '--journal-max-age-h', '0.5'])
    assert.deepEqual(on.journal, { dir: '/j', fileMb: 8, maxMb: 100, maxAgeH: 0.5 })
    assert.equal(on.whenBusy, 'journal', 'an ingester with a journal never waits unless told to')
    assert.deepEqual(parseCli([...base, '--journal-dir', '/j']).journal, { dir: '/j', fileMb: 64, maxMb: 4096, maxAgeH: 72 })
    assert.equal(parseCli([...base, '--journal-dir', '/j', '--when-busy', 'wait']).whenBusy, 'wait')
    assert.throws(() => parseCli([...base, '--when-busy', 'journal']), /needs --journal-dir/)
    assert.throws(() => parseCli([...base, '--journal-dir', '/j', '--when-busy', 'drop']), /--when-busy must be wait or journal/)
    assert.throws(() => parseCli([...base, '--journal-dir', '/j', '--journal-file-mb', '0']), /--journal-file-mb must be an integer >= 1/)
  })
})
