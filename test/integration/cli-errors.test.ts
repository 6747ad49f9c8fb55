// Every subcommand's error paths end, with a clear message and its exit code: no Redis, a Redis
// that accepts connections and never answers, a bad --dns, an unreadable list, bad entries.
import assert from 'node:assert/strict'
import fs from 'node:fs'
import net from 'node:net'
import path from 'node:path'
import { freePort } from '../../scripts/harness/redis-server'
import { runCli, type CliResult } from '../helpers/cli'
import { configDir } from '../../scripts/harness/fixtures'
import { ROOT } from '../../scripts/harness/haraka'

/** Each run must end well inside this; a hang fails the test instead of the suite. */
const BOUND_MS = 12_000

async function bounded(args: string[]): Promise<CliResult & { ms: number }> {
  const started = Date.now()
  const r = await Promise.race([
    runCli(args),
    new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`smart-greylist ${args.join(' ')} did not end within ${BOUND_MS} ms`)), BOUND_MS)),
  ])
  return { ...r, ms: Date.now() - started }
}

describe('smart-greylist error paths (each run bounded in time)', function () {
  this.timeout(BOUND_MS + 5000)
  let closedPort: number
  let silent: net.Server
  let silentPort: number
  const sockets: net.Socket[] = []
  const dirFor = (port: number, files: Record<string, string> = {}): string =>
    path.join(configDir({ 'redis.ini': `[server]\nhost=127.0.0.1\nport=${port}\n`, ...files }), 'config')
  const CHECK = ['check', '--ip', '85.214.132.10', '--from', 'a@sender.example', '--to', 'b@example.com', '--rdns', 'mx1.mail.contoso.com']

  before(async () => {
    closedPort = await freePort()
    silent = net.createServer((s) => sockets.push(s)) // accepts, never answers
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', () => r()))
    silentPort = (silent.address() as net.AddressInfo).port
  })
  after(() => {
    for (const s of sockets) s.destroy()
    silent.close()
  })

  it('check without Redis: the identity and a state it says is unknown, exit 3', async () => {
    const r = await bounded([...CHECK, '--config', dirFor(closedPort)])
    assert.equal(r.code, 3, r.stdout + r.stderr)
    assert.match(r.stdout, /identity\s+host:mail\.contoso\.com \(fcrdns\)/)
    assert.match(r.stdout, /tuple\s+state unknown: Redis unreachable at redis:\/\/127\.0\.0\.1:\d+\/0/)
    assert.match(r.stdout, /decision\s+unknown: tuple state unknown: Redis unreachable; the plugin would now accept \(fail open\)/)
  })

  it('check without Redis still answers a whitelisted client: exit 0', async () => {
    const dir = dirFor(closedPort, { 'smart-greylist.whitelist': 'ip:85.214.132.0/24\n' })
    const r = await bounded([...CHECK, '--config', dir])
    assert.equal(r.code, 0, r.stdout + r.stderr)
    assert.match(r.stdout, /decision\s+accept: whitelist:ip ip:85\.214\.132\.0\/24/)
  })

  it('check against a Redis that never answers ends within its bound', async () => {
    const r = await bounded([...CHECK, '--config', dirFor(silentPort)])
    assert.equal(r.code, 3, r.stdout + r.stderr)
    assert.ok(r.ms < 9000, `${r.ms} ms`)
  })

  for (const args of [['stats'], ['list', '--pending'], ['flush', '--all', '--yes']]) {
    it(`${args.join(' ')} without Redis: an error naming Redis, exit 2`, async () => {
      for (const port of [closedPort, silentPort]) {
        const r = await bounded([...args, '--config', dirFor(port)])
        assert.equal(r.code, 2, r.stdout + r.stderr)
        assert.match(r.stderr, new RegExp(`Redis at redis://127\\.0\\.0\\.1:${port}/0 is unreachable`))
      }
    })
  }

  it('stats against a cluster or sentinel set that is not there: an error naming it, exit 2', async () => {
    for (const [line, target] of [
      [`cluster = 127.0.0.1:${closedPort} 127.0.0.1:${silentPort}`, `redis-cluster://127\\.0\\.0\\.1:${closedPort},127\\.0\\.0\\.1:${silentPort}`],
      [`sentinels = 127.0.0.1:${closedPort}\nsentinel_name = mx`, `redis-sentinel://127\\.0\\.0\\.1:${closedPort}/mx/0`],
    ]) {
      const r = await bounded(['stats', '--config', dirFor(closedPort, { 'smart-greylist.ini': `[redis]\n${line}\n` })])
      assert.equal(r.code, 2, r.stdout + r.stderr)
      assert.match(r.stderr, new RegExp(`Redis at ${target} is unreachable`))
      assert.ok(r.ms < 9000, `${r.ms} ms`)
    }
  })

  it('check with a bad --dns: an error, exit 2, nothing left open', async () => {
    const r = await bounded([...CHECK.slice(0, -2), '--dns', 'not-a-server', '--config', dirFor(closedPort)])
    assert.equal(r.code, 2, r.stdout + r.stderr)
    assert.match(r.stderr, /not a DNS server address: not-a-server/)
  })

  it('a list that cannot be read: the edits fail with exit 2; check says so and answers as the plugin would', async () => {
    const dir = dirFor(closedPort)
    fs.mkdirSync(path.join(dir, 'smart-greylist.whitelist'))
    for (const args of [
      ['whitelist', 'list'],
      ['whitelist', 'add', 'ip:85.214.132.0/24'],
    ]) {
      const r = await bounded([...args, '--config', dir])
      assert.equal(r.code, 2, `${args.join(' ')}: exit ${r.code}\n${r.stdout}${r.stderr}`)
      assert.match(r.stderr, /EISDIR/)
    }
    // haraka-config reads the list as empty, as the running plugin would: no entry, greylisted.
    const r = await bounded([...CHECK, '--config', dir])
    assert.equal(r.code, 3, r.stdout + r.stderr)
    assert.match(r.stderr, /EISDIR/)
  })

  it('config check reports unknown keys, bad values and bad lines with their file, exit 1', async () => {
    const dir = dirFor(closedPort, {
      'smart-greylist.ini': '[main]\ndelya = 10\n[identity]\nspf = yes please\n[redis]\ndb = 12\n',
      'smart-greylist.whitelist': 'host:*.co.uk\nip:40.107.0.0/16\n',
    })
    const r = await bounded(['config', 'check', '--offline', '--config', dir])
    assert.equal(r.code, 1)
    assert.match(r.stdout, /smart-greylist\.ini \[main\] delya: unknown key, ignored \(did you mean delay\?\)/)
    assert.match(r.stdout, /smart-greylist\.ini \[identity\] spf: "yes please" is not true or false/)
    assert.match(r.stdout, /smart-greylist\.whitelist:1: ignoring "host:\*\.co\.uk": .*public suffix/)
    assert.match(r.stdout, /3 problem\(s\); whitelist 1 entries/)
    const json = JSON.parse((await bounded(['config', 'check', '--offline', '--json', '--config', dir])).stdout) as { redis: { database: number } }
    assert.equal(json.redis.database, 12, 'db in [redis] is the database the plugin uses')
    assert.equal((await bounded(['config', 'check', '--offline', '--config', dirFor(closedPort)])).code, 0, '--offline: the files alone')
  })

  it('config check: a Redis that refuses or never answers is a problem (exit 1) naming the address and what it means for mail', async () => {
    for (const [port, cause] of [
      [closedPort, /ECONNREFUSED/],
      [silentPort, /accepted the connection but did not answer within \d+ ms/],
    ] as const) {
      const r = await bounded(['config', 'check', '--config', dirFor(port)])
      assert.equal(r.code, 1, r.stdout + r.stderr)
      assert.ok(r.ms < 8000, `ended in ${r.ms} ms`)
      assert.match(r.stdout, new RegExp(`^Redis at redis://127\\.0\\.0\\.1:${port}/0 is unreachable \\(`, 'm'))
      assert.match(r.stdout, cause)
      assert.match(r.stdout, /the plugin greylists nothing: mail is accepted \(fail open, \[main\] on_error = accept\)/)
      assert.match(r.stdout, /^1 problem\(s\);/m)
    }
    const offline = await bounded(['config', 'check', '--offline', '--config', dirFor(silentPort)])
    assert.equal(offline.code, 0, offline.stdout)
    assert.match(offline.stdout, /^provider data: not read \(--offline\)$/m)
    assert.doesNotMatch(offline.stdout, /unreachable/)
  })

  it("config check shows a renamed setting's old name as a note (the setting is read), exit 0", async () => {
    const dir = dirFor(closedPort, { 'smart-greylist.ini': '[main]\ndefer_weak_at = data\n' })
    // The files alone: an unreachable Redis would be a problem of its own (exit 1).
    const r = await bounded(['config', 'check', '--offline', '--config', dir])
    assert.equal(r.code, 0, r.stdout)
    assert.match(
      r.stdout,
      /^note: smart-greylist\.ini \[main\] defer_weak_at is now called net_identity_greylist: read as net_identity_greylist = message; rename it/m,
    )
    assert.match(r.stdout, /no problems/)
    const json = JSON.parse((await bounded(['config', 'check', '--json', '--config', dir])).stdout) as { notes: string[] }
    assert.equal(json.notes.filter((n) => n.includes('defer_weak_at')).length, 1)
  })

  it('whitelist add refuses what covers too much, host bits, and a range inside a listed one', async () => {
    const dir = dirFor(closedPort, { 'smart-greylist.whitelist': 'ip:40.107.0.0/16\n' })
    for (const entry of ['ip:0.0.0.0/0', 'ip:::/0', 'host:*.co.uk', 'from:*@*.co.uk', 'ip:40.108.1.0/16']) {
      const r = await bounded(['whitelist', 'add', entry, '--config', dir])
      assert.equal(r.code, 2, `${entry}: ${r.stderr}`)
      assert.match(r.stderr, /refused/)
    }
    const inside = await bounded(['whitelist', 'add', 'ip:40.107.22.0/24', '--config', dir])
    assert.equal(inside.code, 1)
    assert.match(inside.stderr, /already listed \(inside ip:40\.107\.0\.0\/16, smart-greylist\.whitelist:1\)/)
    const rm = await bounded(['whitelist', 'remove', 'IP:40.107.0.0/16', '--config', dir])
    assert.equal(rm.code, 0, rm.stderr)
    assert.equal(fs.readFileSync(path.join(dir, 'smart-greylist.whitelist'), 'utf8'), '\n')
  })

  it('--version prints the package version; usage lines and help name the same options', async () => {
    const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { version: string }
    assert.equal((await bounded(['--version'])).stdout.trim(), `smart-greylist ${pkg.version}`)
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { COMMANDS, helpFor } = require('../../cli/main') as typeof import('../../cli/main')
    for (const c of COMMANDS) {
      const inUsage = new Set([...c.usage.matchAll(/--([a-z-]+)/g)].map((m) => m[1]))
      for (const name of Object.keys(c.options)) if (name !== 'help') assert.ok(inUsage.has(name), `${c.name}: --${name} missing from usage`)
      for (const name of inUsage) assert.ok(name in c.options, `${c.name}: usage names --${name}, which it does not take`)
      for (const m of c.usage.matchAll(/--([a-z-]+) ([A-Z][A-Z:]*)/g)) assert.match(helpFor(c), new RegExp(`--${m[1]} ${m[2]}\\b`))
    }
  })
})
