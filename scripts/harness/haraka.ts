// Starts a real Haraka for the end-to-end tests: a fresh `haraka -i` instance with this plugin
// installed the way a user installs it (the `npm pack` tarball unpacked into the instance's
// node_modules), DNS pointed at the test's server, one process on a spare loopback port.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { DNS_PRELOAD } from './dns-server'
import { freePort } from './redis-server'
import { packageRoot } from '../../plugins/smart-greylist/setup'

// The repository, found by its package.json: this file also runs compiled, from dist/ (the bench).
export const ROOT = packageRoot(__dirname)
const HARAKA_BIN = path.join(ROOT, 'node_modules', 'Haraka', 'bin', 'haraka')

let packed: string | undefined

/** The plugin as `npm pack` ships it (built once per test run). */
function packedPlugin(): string {
  if (packed) return packed
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sgl-pack-'))
  if (!fs.existsSync(path.join(ROOT, 'dist', 'plugins', 'smart-greylist', 'index.js'))) {
    execFileSync(process.execPath, [path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', path.join(ROOT, 'tsconfig.build.json')])
  }
  const out = execFileSync('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', dir], {
    cwd: ROOT,
    encoding: 'utf8',
  })
  const [{ filename }] = JSON.parse(out) as { filename: string }[]
  const unpack = path.join(dir, 'unpacked')
  fs.mkdirSync(unpack)
  execFileSync('tar', ['-xzf', path.join(dir, filename), '-C', unpack])
  packed = path.join(unpack, 'package')
  return packed
}

export interface HarakaOptions {
  redisPort: number
  dnsPort: number
  /** smart-greylist.ini text. */
  ini: string
  whitelist?: string
  /** Extra plugins, listed before smart-greylist (e.g. fcrdns). */
  pluginsBefore?: string[]
  /** Further files for the instance's config/ (name -> text). */
  files?: Record<string, string>
  /** The queue plugin (default queue/discard); queue/test keeps each message in the instance dir. */
  queue?: string
  /** Worker processes (smtp.ini nodes); 0, the default, is one process. */
  nodes?: number
  /** Leave smart-greylist out of config/plugins (the benchmark's baseline). */
  withoutPlugin?: boolean
  /** Plugins of the instance's own (name -> source), listed where smart-greylist would be. */
  localPlugins?: Record<string, string>
  /** Offer STARTTLS (the tls plugin, with a self-signed certificate made here by openssl). */
  tls?: boolean
  /** Options for node itself, e.g. ['--cpu-prof'] to profile Haraka under load. */
  nodeArgs?: string[]
}

/** No refresh of the provider data unless a test asks for one ([refresh]): it would leave loopback. */
function withoutRefresh(ini: string): string {
  return /^\[refresh\]/m.test(ini) ? ini : `${ini}\n[refresh]\nevery=0\n`
}

export class HarakaInstance {
  readonly log: string[] = []
  private exited = false

  private constructor(
    readonly dir: string,
    readonly port: number,
    private readonly child: ChildProcess,
  ) {
    const collect = (chunk: Buffer): void => {
      this.log.push(...chunk.toString().split('\n').filter(Boolean))
    }
    child.stdout?.on('data', collect)
    child.stderr?.on('data', collect)
    child.once('exit', () => {
      this.exited = true
    })
  }

  get pid(): number {
    return this.child.pid ?? 0
  }

  get alive(): boolean {
    return !this.exited
  }

  static async start(opts: HarakaOptions): Promise<HarakaInstance> {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sgl-haraka-'))
    execFileSync(process.execPath, [HARAKA_BIN, '-i', dir], { stdio: 'ignore' })
    const modules = path.join(dir, 'node_modules')
    fs.mkdirSync(modules, { recursive: true })
    fs.cpSync(packedPlugin(), path.join(modules, 'haraka-plugin-smart-greylist'), { recursive: true })
    // The unpacked package resolves its dependencies from this checkout's node_modules.
    fs.symlinkSync(path.join(ROOT, 'node_modules'), path.join(modules, 'haraka-plugin-smart-greylist', 'node_modules'))

    const port = await freePort()
    const cfg = (name: string, text: string): void => fs.writeFileSync(path.join(dir, 'config', name), text)
    cfg('smtp.ini', `listen=127.0.0.1:${port}\nnodes=${opts.nodes ?? 0}\n`)
    cfg('log.ini', '[main]\nlevel=info\ntimestamps=true\n')
    const local = Object.entries(opts.localPlugins ?? {})
    fs.mkdirSync(path.join(dir, 'plugins'), { recursive: true })
    for (const [name, source] of local) fs.writeFileSync(path.join(dir, 'plugins', `${name}.js`), source)
    if (opts.tls) {
      execFileSync(
        'openssl',
        [
          'req',
          '-x509',
          '-newkey',
          'rsa:2048',
          '-nodes',
          '-days',
          '2',
          '-subj',
          '/CN=mx.example.com',
          '-keyout',
          path.join(dir, 'config', 'tls_key.pem'),
          '-out',
          path.join(dir, 'config', 'tls_cert.pem'),
        ],
        { stdio: 'ignore' },
      )
    }
    const plugins = [
      ...(opts.tls ? ['tls'] : []),
      ...(opts.pluginsBefore ?? []),
      'rcpt_to.in_host_list',
      ...local.map(([name]) => name),
      ...(opts.withoutPlugin ? [] : ['smart-greylist']),
      opts.queue ?? 'queue/discard',
    ]
    cfg('plugins', [...plugins, ''].join('\n'))
    cfg('host_list', 'example.com\n')
    cfg('redis.ini', `[server]\nhost=127.0.0.1\nport=${opts.redisPort}\n`)
    cfg('smart-greylist.ini', withoutRefresh(opts.ini))
    cfg('smart-greylist.whitelist', opts.whitelist ?? '# none\n')
    for (const [name, text] of Object.entries(opts.files ?? {})) cfg(name, text)
    // Only the hosts[] line of the stock connection.ini changes (a file holding nothing but
    // [haproxy] crashes Haraka 3.3.4 at the first connection).
    const connIni = path.join(dir, 'config', 'connection.ini')
    fs.writeFileSync(connIni, fs.readFileSync(connIni, 'utf8').replace(/^hosts\[\] =.*$/m, 'hosts[] = 127.0.0.1'))

    const child = spawn(process.execPath, [...(opts.nodeArgs ?? []), HARAKA_BIN, '-c', dir], {
      env: {
        ...process.env,
        NODE_OPTIONS: `--require ${DNS_PRELOAD}`,
        SMART_GREYLIST_TEST_DNS: `127.0.0.1:${opts.dnsPort}`,
        HARAKA_LOGS_SUPPRESS: 'true',
        YES_REALLY_DO_DISCARD: '1',
        // queue/test writes mail_<uuid>.eml to the temporary directory: keep it in the instance.
        TMPDIR: dir,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    const h = new HarakaInstance(dir, port, child)
    await h.waitFor(/Listening on|listening on/i, 15_000)
    return h
  }

  get configDir(): string {
    return path.join(this.dir, 'config')
  }

  /** The message queue/test stored for a "250 … (uuid)" reply. */
  queuedMessage(reply: string): string {
    const uuid = /\(([0-9A-F-]+\.\d+)\)/i.exec(reply)?.[1]
    if (!uuid) throw new Error(`no queue id in "${reply}"`)
    return fs.readFileSync(path.join(this.dir, `mail_${uuid}.eml`), 'utf8')
  }

  writeConfig(name: string, given: string): void {
    const text = name === 'smart-greylist.ini' ? withoutRefresh(given) : given
    // Write-and-rename, as editors do, so the watcher sees one complete file.
    const file = path.join(this.dir, 'config', name)
    fs.writeFileSync(`${file}.tmp`, text)
    fs.renameSync(`${file}.tmp`, file)
  }

  /** Resolves with the first log line (from `from` on) that matches. */
  async waitFor(re: RegExp, timeoutMs = 10_000, from = 0): Promise<string> {
    const deadline = Date.now() + timeoutMs
    for (;;) {
      const hit = this.log.slice(from).find((l) => re.test(l))
      if (hit) return hit
      if (!this.alive) throw new Error(`Haraka exited; last log lines:\n${this.log.slice(-20).join('\n')}`)
      if (Date.now() > deadline) throw new Error(`no log line matching ${re} within ${timeoutMs} ms:\n${this.log.slice(-20).join('\n')}`)
      await new Promise((r) => setTimeout(r, 25))
    }
  }

  linesMatching(re: RegExp, from = 0): string[] {
    return this.log.slice(from).filter((l) => re.test(l))
  }

  async stop(): Promise<void> {
    if (this.alive) {
      const exited = new Promise((r) => this.child.once('exit', r))
      this.child.kill('SIGTERM')
      await Promise.race([exited, new Promise((r) => setTimeout(r, 3000))])
      if (this.alive) this.child.kill('SIGKILL')
    }
    fs.rmSync(this.dir, { recursive: true, force: true })
  }
}
