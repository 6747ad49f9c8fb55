// A loopback stand-in for Microsoft 365's endpoints web service, serving the fixture: up with a
// version, down (503), broken (a new version, then not JSON), or silent (no answer at all).
import fs from 'node:fs'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import path from 'node:path'

export type EndpointsMode = { kind: 'up'; version: string } | { kind: 'down' } | { kind: 'broken'; version: string } | { kind: 'silent' }

const FIXTURE = fs.readFileSync(path.join(__dirname, '..', 'fixtures', 'endpoints-worldwide.json'), 'utf8')

export class EndpointsServer {
  mode: EndpointsMode = { kind: 'down' }
  readonly requests: string[] = []
  private readonly held: http.ServerResponse[] = []

  private constructor(private readonly server: http.Server) {}

  static async start(): Promise<EndpointsServer> {
    const holder: { self?: EndpointsServer } = {}
    const server = http.createServer((req, res) => holder.self?.answer(req, res))
    const self = new EndpointsServer(server)
    holder.self = self
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    return self
  }

  get url(): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`
  }

  private answer(req: http.IncomingMessage, res: http.ServerResponse): void {
    const url = req.url ?? ''
    this.requests.push(url)
    const m = this.mode
    if (m.kind === 'silent') return void this.held.push(res)
    if (m.kind === 'down') return void res.writeHead(503).end('Service Unavailable')
    res.setHeader('content-type', 'application/json')
    if (url.startsWith('/version/Worldwide')) return void res.end(JSON.stringify({ instance: 'Worldwide', latest: m.version }))
    if (url.startsWith('/endpoints/Worldwide')) return void res.end(m.kind === 'up' ? FIXTURE : '<html>maintenance</html>')
    res.writeHead(404).end()
  }

  async close(): Promise<void> {
    for (const r of this.held.splice(0)) r.destroy()
    this.server.closeAllConnections()
    await new Promise<void>((resolve) => this.server.close(() => resolve()))
  }
}
