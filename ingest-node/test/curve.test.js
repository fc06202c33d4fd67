// Endpoints and CURVE: a non-loopback tcp endpoint needs the processor's public key; with it (also on
// loopback when set) frames travel encrypted to a CURVE server; a wrong key delivers nothing; keys are
// never logged.
import { test, describe } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { join } from 'node:path'
import { Pull, curveKeyPair } from 'zeromq'
import { decodeFrame } from '../src/wire/index.js'
import { curveFromEnv, endpointHost, isLoopbackHost } from '../src/cli.js'
import { redact } from '../src/log.js'
import { INGEST_DIR } from './helpers.js'

const SYNTHETIC = ['--source', 'synthetic', '--rate', 'max', '--total', '300', '--symbols-count', '2']

/**
 * Runs the CLI with `env` added; returns its exit code and stderr.
 * @param {string[]} args @param {Record<string, string>} env
 */
async function runCli (args, env) {
  const child = spawn(process.execPath, [join(INGEST_DIR, 'src/cli.js'), ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'pipe'] })
  let stderr = ''
  child.stderr.on('data', (d) => { stderr += d })
  const code = await new Promise((resolve) => child.on('exit', resolve))
  return { code, stderr }
}

/** A CURVE server PULL on 127.0.0.2 (loopback, not the usual address). @param {{secretKey: string}} server */
async function curvePull (server) {
  const pull = new Pull({ curveServer: true, curveSecretKey: server.secretKey, curvePublicKey: curveKeyPair().publicKey, receiveTimeout: 2500 })
  await pull.bind('tcp://127.0.0.2:*')
  return pull
}

/** Frames until `end`, or until nothing came for the pull's receiveTimeout. @param {Pull} pull */
async function receiveAll (pull) {
  const frames = []
  try {
    for (;;) {
      const [msg] = await pull.receive()
      const f = decodeFrame(msg)
      frames.push(f)
      if (f.header.type === 'end') break
    }
  } catch (e) {
    if (e.code !== 'EAGAIN') throw e
  }
  pull.close()
  return frames
}

describe('endpoints and CURVE', () => {
  test('endpointHost / isLoopbackHost', () => {
    assert.equal(endpointHost('tcp://127.0.0.1:5555'), '127.0.0.1')
    assert.equal(endpointHost('tcp://[::1]:5555'), '::1')
    assert.equal(endpointHost('tcp://eth0;10.1.2.3:5555'), '10.1.2.3')
    assert.equal(endpointHost('ipc:///tmp/x.sock'), null)
    for (const h of ['127.0.0.1', '127.3.2.1', 'localhost', '::1', '0:0:0:0:0:0:0:1']) assert.equal(isLoopbackHost(h), true, h)
    for (const h of ['10.0.0.1', '0.0.0.0', '128.0.0.1', 'example.com', 'fe80::1', 'localhost.example.com']) assert.equal(isLoopbackHost(h), false, h)
  })

  test('curveFromEnv: which endpoints use CURVE, with which keys', () => {
    const server = curveKeyPair()
    const client = curveKeyPair()
    assert.equal(curveFromEnv('tcp://127.0.0.1:5555', {}), null)
    assert.equal(curveFromEnv('ipc:///tmp/x.sock', { MDTH_CURVE_SERVER_KEY: server.publicKey }), null, 'ipc never uses CURVE, as in the processor')
    assert.throws(() => curveFromEnv('tcp://10.0.0.7:5555', {}), /endpoint tcp:\/\/10\.0\.0\.7:5555 .*MDTH_CURVE_SERVER_KEY/)
    const generated = curveFromEnv('tcp://127.0.0.1:5555', { MDTH_CURVE_SERVER_KEY: server.publicKey })
    assert.equal(generated?.serverKey, server.publicKey)
    assert.equal(generated?.generated, true)
    assert.equal(generated?.publicKey.length, 40)
    const given = curveFromEnv('tcp://10.0.0.7:5555', { MDTH_CURVE_SERVER_KEY: server.publicKey, MDTH_CURVE_CLIENT_PUBLIC_KEY: client.publicKey, MDTH_CURVE_CLIENT_SECRET_KEY: client.secretKey })
    assert.deepEqual(given, { serverKey: server.publicKey, publicKey: client.publicKey, secretKey: client.secretKey, generated: false })
    assert.throws(() => curveFromEnv('tcp://127.0.0.1:1', { MDTH_CURVE_SERVER_KEY: server.publicKey, MDTH_CURVE_CLIENT_SECRET_KEY: client.secretKey }), /both MDTH_CURVE_CLIENT_PUBLIC_KEY and MDTH_CURVE_CLIENT_SECRET_KEY, or neither/)
    const bad = 'x'.repeat(39) + '~'
    assert.throws(() => curveFromEnv('tcp://127.0.0.1:1', { MDTH_CURVE_SERVER_KEY: bad }), (e) => /MDTH_CURVE_SERVER_KEY must be/.test(e.message) && !e.message.includes(bad))
  })

  test('keys are redacted from logged objects and name=value pairs', () => {
    const k = curveKeyPair()
    assert.deepEqual(redact({ curveServerKey: k.publicKey, secretKey: k.secretKey, serverKey: k.publicKey, exchange: 'binance' }), { curveServerKey: '***', secretKey: '***', serverKey: '***', exchange: 'binance' })
    assert.equal(redact(`MDTH_CURVE_CLIENT_SECRET_KEY=${k.secretKey} ok`), 'MDTH_CURVE_CLIENT_SECRET_KEY=*** ok')
  })

  test('a non-loopback tcp endpoint without MDTH_CURVE_SERVER_KEY: exit 2 naming the endpoint and the variable', { timeout: 10000 }, async () => {
    const { code, stderr } = await runCli([...SYNTHETIC, '--endpoint', 'tcp://192.0.2.1:5555'], { MDTH_CURVE_SERVER_KEY: '' })
    assert.equal(code, 2)
    assert.match(stderr, /tcp:\/\/192\.0\.2\.1:5555.*MDTH_CURVE_SERVER_KEY/)
  })

  test('with the server\'s public key, frames reach a CURVE server; no key appears in the log', { timeout: 15000 }, async () => {
    const server = curveKeyPair()
    const client = curveKeyPair()
    const pull = await curvePull(server)
    const env = { MDTH_CURVE_SERVER_KEY: server.publicKey, MDTH_CURVE_CLIENT_PUBLIC_KEY: client.publicKey, MDTH_CURVE_CLIENT_SECRET_KEY: client.secretKey }
    const [frames, { code, stderr }] = await Promise.all([receiveAll(pull), runCli([...SYNTHETIC, '--endpoint', pull.lastEndpoint], env)])
    assert.equal(code, 0, stderr)
    assert.equal(frames[0]?.header.type, 'start')
    assert.equal(frames.at(-1).header.type, 'end')
    assert.equal(frames.at(-1).header.counts.rows.trade, 300)
    assert.match(stderr, /CURVE with the environment's client keypair/)
    for (const key of [server.publicKey, server.secretKey, client.publicKey, client.secretKey]) assert.ok(!stderr.includes(key), 'a key in the log')
  })

  test('with a wrong server key nothing is received, and the failed handshake is logged', { timeout: 15000 }, async () => {
    const server = curveKeyPair()
    const pull = await curvePull(server)
    const wrong = curveKeyPair().publicKey
    const [frames, { stderr }] = await Promise.all([receiveAll(pull), runCli([...SYNTHETIC, '--endpoint', pull.lastEndpoint, '--linger-ms', '1000'], { MDTH_CURVE_SERVER_KEY: wrong })])
    assert.deepEqual(frames, [])
    assert.match(stderr, /CURVE handshake with tcp:\/\/127\.0\.0\.2:\d+ failed .*MDTH_CURVE_SERVER_KEY/)
    assert.match(stderr, /did not confirm the end frame/)
    assert.ok(!stderr.includes(wrong))
  })
})
