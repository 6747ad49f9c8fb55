// Finding or starting a Redis for `npm start`, the test suite and the benchmark: a PING over a
// raw socket (no client library needed) and a private, memory-only redis-server on a spare port.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import net from 'node:net'

export async function pingRedis(host: string, port: number, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = net.connect({ host, port })
    const done = (ok: boolean): void => {
      sock.destroy()
      resolve(ok)
    }
    sock.setTimeout(timeoutMs, () => done(false))
    sock.once('error', () => done(false))
    sock.once('connect', () => sock.write('PING\r\n'))
    sock.once('data', (buf) => done(buf.toString().startsWith('+PONG')))
  })
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer()
    srv.once('error', reject)
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo
      srv.close(() => resolve(port))
    })
  })
}

/**
 * The environment Redis's own programs run in: without a preloaded clock (a suite run under
 * `faketime` moves the date for this package's processes; redis-server, built with jemalloc,
 * hangs under libfaketime). Redis keeps real time then, as another host's Redis would: the
 * plugin measures Redis's clock and never assumes it equals its own.
 */
export function redisEnv(): NodeJS.ProcessEnv {
  const { LD_PRELOAD: _preload, FAKETIME: _faketime, ...env } = process.env
  return env
}

export function hasRedisServer(): boolean {
  return spawnSync('redis-server', ['--version'], { stdio: 'ignore', env: redisEnv() }).status === 0
}

export interface PrivateRedis {
  readonly host: string
  readonly port: number
  readonly process: ChildProcess
  stop(): Promise<void>
}

/**
 * Starts `redis-server` on loopback, keeping nothing on disk; resolves once it answers PING.
 * `args` come first (a config file for a sentinel) and may add to the defaults.
 */
export async function startPrivateRedis(port?: number, args: readonly string[] = []): Promise<PrivateRedis> {
  const p = port ?? (await freePort())
  const child = spawn(
    'redis-server',
    [...args, '--port', String(p), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--daemonize', 'no', '--loglevel', 'warning'],
    { stdio: ['ignore', 'ignore', 'inherit'], env: redisEnv() },
  )
  let exited = false
  child.once('exit', () => {
    exited = true
  })
  const deadline = Date.now() + 10_000
  while (!(await pingRedis('127.0.0.1', p, 200))) {
    if (exited) throw new Error(`redis-server on port ${p} exited at start`)
    if (Date.now() > deadline) {
      child.kill('SIGKILL')
      throw new Error(`redis-server on port ${p} did not answer within 10 s`)
    }
    await new Promise((r) => setTimeout(r, 50))
  }
  return {
    host: '127.0.0.1',
    port: p,
    process: child,
    stop: () =>
      new Promise<void>((resolve) => {
        if (exited) return resolve()
        child.once('exit', () => resolve())
        child.kill('SIGTERM')
      }),
  }
}
