// `npm start`: runs this repository as a Haraka instance on 127.0.0.1:2525 with the plugin,
// against REDIS_URL, else a Redis on 127.0.0.1:6379, else a private redis-server it starts.
import { spawn } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { hasRedisServer, pingRedis, startPrivateRedis, type PrivateRedis } from './harness/redis-server'

const ROOT = path.resolve(__dirname, '..', '..')
const REDIS_INI = path.join(ROOT, 'config', 'redis.ini')
const MARKER = '; written by npm start'

async function chooseRedis(): Promise<{ host: string; port: number; db?: number; owned?: PrivateRedis }> {
  const url = process.env.REDIS_URL
  if (url) {
    const u = new URL(url)
    const db = u.pathname.length > 1 ? Number(u.pathname.slice(1)) : undefined
    const port = Number(u.port || 6379)
    if (!(await pingRedis(u.hostname, port))) throw new Error(`REDIS_URL=${url} does not answer PING`)
    console.log(`Using Redis at ${url} (REDIS_URL)`)
    return { host: u.hostname, port, db }
  }
  if (await pingRedis('127.0.0.1', 6379)) {
    console.log('Using the Redis at 127.0.0.1:6379')
    return { host: '127.0.0.1', port: 6379 }
  }
  if (!hasRedisServer()) {
    throw new Error(
      'No Redis answers at 127.0.0.1:6379 and redis-server is not installed.\n' +
        'Install one (Debian/Ubuntu: sudo apt-get install redis-server; macOS: brew install redis)\n' +
        'or point REDIS_URL at a running Redis, e.g. REDIS_URL=redis://127.0.0.1:6380 npm start',
    )
  }
  const owned = await startPrivateRedis()
  console.log(`No Redis at 127.0.0.1:6379: started a private redis-server on 127.0.0.1:${owned.port} (memory only)`)
  return { host: owned.host, port: owned.port, owned }
}

function writeRedisIni(host: string, port: number, db?: number): void {
  if (fs.existsSync(REDIS_INI) && !fs.readFileSync(REDIS_INI, 'utf8').startsWith(MARKER)) {
    console.log(`Keeping your own ${path.relative(ROOT, REDIS_INI)}`)
    return
  }
  const lines = [MARKER, '[server]', `host=${host}`, `port=${port}`]
  if (db !== undefined) lines.push(`db=${db}`)
  fs.writeFileSync(REDIS_INI, `${lines.join('\n')}\n`)
}

async function main(): Promise<void> {
  const redis = await chooseRedis()
  writeRedisIni(redis.host, redis.port, redis.db)
  const haraka = path.join(ROOT, 'node_modules', 'Haraka', 'bin', 'haraka')
  console.log('Starting Haraka on 127.0.0.1:2525 (config/, plugin smart-greylist). Ctrl-C stops it.')
  console.log('Clients from 127.0.0.1 are private and skipped; see the README to try greylisting locally.')
  // queue/discard accepts and drops mail only when told to: this instance is for trying out.
  const child = spawn(process.execPath, [haraka, '-c', ROOT], {
    stdio: 'inherit',
    env: { ...process.env, YES_REALLY_DO_DISCARD: '1' },
  })
  const stop = (): void => {
    child.kill('SIGTERM')
  }
  process.on('SIGINT', stop)
  process.on('SIGTERM', stop)
  child.on('exit', (code) => {
    const stopped = redis.owned?.stop() ?? Promise.resolve()
    void stopped.finally(() => process.exit(code ?? 0))
  })
}

main().catch((err: Error) => {
  console.error(err.message)
  process.exit(1)
})
