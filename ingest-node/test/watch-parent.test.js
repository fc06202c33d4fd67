// --watch-parent: the ingester exits when the processor that started it dies, even by SIGKILL.
import { test, describe } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { setTimeout as sleep } from 'node:timers/promises'
import { watchParent } from '../src/cli.js'
import { INGEST_DIR, tmpDir, closedPort } from './helpers.js'

/** Whether a process is gone (or a zombie nobody reaped yet). @param {number} pid */
function isGone (pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    return stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z')
  } catch {
    return true
  }
}

/** Polls until `check()` or the deadline; returns the ms it took, or null. @param {() => boolean} check @param {number} ms */
async function within (check, ms) {
  const t0 = Date.now()
  while (Date.now() - t0 < ms) {
    if (check()) return Date.now() - t0
    await sleep(50)
  }
  return null
}

describe('watch parent', () => {
  test('watchParent calls onGone once, with the old parent, when process.ppid changes', async () => {
    let ppid = 4242
    const gone = []
    const stop = watchParent({ onGone: (pid) => gone.push(pid), intervalMs: 5, ppid: () => ppid })
    await sleep(30)
    assert.deepEqual(gone, [])
    ppid = 1
    await sleep(30)
    ppid = 7
    await sleep(30)
    assert.deepEqual(gone, [4242])
    stop()
  })

  test('the processor is SIGKILLed: the ingester exits within seconds, without waiting for ZeroMQ', { timeout: 20000, skip: !existsSync('/proc/self/stat') && 'needs /proc' }, async () => {
    const dir = tmpDir()
    const logFile = join(dir, 'ingest.log')
    // nothing listens: frames queue up in ZeroMQ (linger 5 s) and the pipeline waits on back-pressure
    const endpoint = `tcp://127.0.0.1:${await closedPort()}`
    const cmd = `"${process.execPath}" src/cli.js --source synthetic --rate 500 --symbols-count 2 --endpoint ${endpoint} --watch-parent 2>"${logFile}" & echo $!; wait`
    const parent = spawn('sh', ['-c', cmd], { cwd: INGEST_DIR, stdio: ['ignore', 'pipe', 'inherit'] })
    const first = await createInterface({ input: parent.stdout })[Symbol.asyncIterator]().next()
    const pid = Number(first.value)
    assert.ok(pid > 0, `ingester pid: ${first.value}`)
    try {
      const started = await within(() => existsSync(logFile) && readFileSync(logFile, 'utf8').includes('ingest: session '), 10000)
      assert.notEqual(started, null, `the ingester did not start: ${existsSync(logFile) ? readFileSync(logFile, 'utf8') : ''}`)
      await sleep(300)
      assert.equal(isGone(pid), false, 'the ingester runs while its parent does')
      parent.kill('SIGKILL')
      const took = await within(() => isGone(pid), 4000)
      const log = readFileSync(logFile, 'utf8')
      assert.notEqual(took, null, `the ingester was still running 4 s after its parent died:\n${log}`)
      assert.match(log, new RegExp(`ingest: processor \\(pid ${parent.pid}\\) is gone: exiting`))
      assert.doesNotMatch(log, /ingest: summary /, 'it exits at once, without the end frame or the summary')
    } finally {
      try { process.kill(pid, 'SIGKILL') } catch {}
      parent.kill('SIGKILL')
    }
  })
})
