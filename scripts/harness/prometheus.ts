// A private Prometheus (Debian's `prometheus` package) for the end-to-end tests: on a spare
// loopback port, with its own config and storage in a temporary directory, scraping the given
// targets and evaluating the given rule files at short intervals; queried through its HTTP API.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import http from 'node:http'
import os from 'node:os'
import path from 'node:path'
import { freePort, redisEnv } from './redis-server'

export interface PrometheusOptions {
  /** The scrape job's name (what `up{job=…}` and every series' `job` label say). */
  readonly job: string
  /** host:port of each /metrics endpoint. */
  readonly targets: readonly string[]
  readonly ruleFiles: readonly string[]
  /** Scrape and rule evaluation interval, e.g. '1s'. */
  readonly interval?: string
}

/** One series of a query's answer: its labels and, for an instant query, its value. */
export interface Series {
  readonly metric: Readonly<Record<string, string>>
  readonly value: readonly [number, string]
}

/** An alert as /api/v1/alerts lists it. */
export interface ActiveAlert {
  readonly labels: Readonly<Record<string, string>>
  readonly state: 'pending' | 'firing'
}

/** The most of an API answer read: a query's answer here is a few KB. */
const MAX_ANSWER_BYTES = 4 * 1024 * 1024

/** Prometheus's own programs (`prometheus`, `promtool`) are on the PATH. */
export function hasPrometheus(): boolean {
  return spawnSync('promtool', ['--version'], { stdio: 'ignore', env: redisEnv() }).status === 0
}

/** Runs promtool with these arguments; its exit status and output, bounded by `timeoutMs`. */
export function promtool(args: readonly string[], timeoutMs = 60_000): { status: number | null; output: string } {
  // Go programs keep real time: a preloaded libfaketime (the suite's run a year ahead) is left out.
  const r = spawnSync('promtool', args, { encoding: 'utf8', env: redisEnv(), timeout: timeoutMs })
  if (r.error) throw new Error(`promtool ${args.join(' ')}: ${r.error.message} (Debian: apt-get install prometheus)`)
  return { status: r.status, output: `${r.stdout}${r.stderr}` }
}

export class PrometheusServer {
  private readonly log: string[] = []
  private exited = false
  private readonly done: Promise<void>

  private constructor(
    readonly port: number,
    private readonly dir: string,
    private readonly child: ChildProcess,
  ) {
    this.done = new Promise((resolve) => {
      const end = (): void => {
        this.exited = true
        resolve()
      }
      child.once('exit', end)
      // A program that cannot be started (not installed) says so here, not by exiting.
      child.once('error', (err) => {
        this.log.push(`${err.message} (Debian: apt-get install prometheus)`)
        end()
      })
    })
    const keep = (d: Buffer): void => {
      this.log.push(d.toString())
      if (this.log.length > 200) this.log.shift()
    }
    child.stdout?.on('data', keep)
    child.stderr?.on('data', keep)
  }

  /** Starts Prometheus; resolves once it says it is ready (its rules are loaded by then). */
  static async start(opts: PrometheusOptions): Promise<PrometheusServer> {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'sgl-prometheus-'))
    const every = opts.interval ?? '1s'
    const config = {
      global: { scrape_interval: every, scrape_timeout: every, evaluation_interval: every },
      rule_files: opts.ruleFiles,
      scrape_configs: [{ job_name: opts.job, static_configs: [{ targets: opts.targets }] }],
    }
    // JSON is YAML: the config needs no YAML writer.
    writeFileSync(path.join(dir, 'prometheus.yml'), JSON.stringify(config, null, 2))
    const port = await freePort()
    const child = spawn(
      'prometheus',
      [
        `--config.file=${path.join(dir, 'prometheus.yml')}`,
        `--storage.tsdb.path=${path.join(dir, 'data')}`,
        `--web.listen-address=127.0.0.1:${port}`,
        '--log.level=warn',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'], env: redisEnv() },
    )
    const server = new PrometheusServer(port, dir, child)
    const deadline = Date.now() + 30_000
    for (;;) {
      if (server.exited) {
        server.cleanup()
        throw new Error(`prometheus exited at start: ${server.log.join('').slice(-2000)}`)
      }
      const ready = await get(port, '/-/ready').then(
        (r) => r.status === 200,
        () => false,
      )
      if (ready) return server
      if (Date.now() > deadline) {
        await server.stop()
        throw new Error(`prometheus on port ${port} was not ready within 30 s`)
      }
      await new Promise((r) => setTimeout(r, 100))
    }
  }

  /** An instant query's series; a query Prometheus refuses (it does not parse) throws its error. */
  async query(expr: string): Promise<Series[]> {
    const r = await get(this.port, `/api/v1/query?query=${encodeURIComponent(expr)}`)
    const body = JSON.parse(r.body) as { status: string; error?: string; data?: { resultType: string; result: Series[] } }
    if (body.status !== 'success') throw new Error(`${expr}: ${body.error ?? r.body.slice(0, 500)}`)
    if (body.data?.resultType !== 'vector') throw new Error(`${expr}: a ${body.data?.resultType} answer, not an instant vector`)
    return body.data.result
  }

  /** The alerts now pending or firing, of the loaded rules. */
  async alerts(): Promise<ActiveAlert[]> {
    const r = await get(this.port, '/api/v1/alerts')
    const body = JSON.parse(r.body) as { status: string; data?: { alerts: ActiveAlert[] } }
    if (body.status !== 'success' || !body.data) throw new Error(`/api/v1/alerts: ${r.body.slice(0, 500)}`)
    return body.data.alerts
  }

  /** The rule groups Prometheus loaded, with each rule's health and last error. */
  async rules(): Promise<{ name: string; rules: { name: string; health: string; lastError?: string }[] }[]> {
    const r = await get(this.port, '/api/v1/rules')
    const body = JSON.parse(r.body) as { status: string; data?: { groups: { name: string; rules: { name: string; health: string; lastError?: string }[] }[] } }
    if (body.status !== 'success' || !body.data) throw new Error(`/api/v1/rules: ${r.body.slice(0, 500)}`)
    return body.data.groups
  }

  async stop(): Promise<void> {
    if (!this.exited) {
      this.child.kill('SIGTERM')
      const kill = setTimeout(() => this.child.kill('SIGKILL'), 10_000)
      await this.done
      clearTimeout(kill)
    }
    this.cleanup()
  }

  private cleanup(): void {
    rmSync(this.dir, { recursive: true, force: true })
  }
}

function get(port: number, pathAndQuery: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path: pathAndQuery, timeout: 10_000 }, (res) => {
      let body = ''
      res.on('data', (d: Buffer) => {
        body += d.toString()
        if (body.length > MAX_ANSWER_BYTES) req.destroy(new Error(`${pathAndQuery}: answer past ${MAX_ANSWER_BYTES} bytes`))
      })
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }))
    })
    req.on('timeout', () => req.destroy(new Error(`${pathAndQuery}: no answer within 10 s`)))
    req.on('error', reject)
  })
}
