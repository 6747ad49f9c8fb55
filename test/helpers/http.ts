// A plain GET on loopback, as a Prometheus server or a browser would make it; `from` binds the
// client's end to another loopback address (all of 127/8 is local), as a scraper elsewhere.
import http from 'node:http'

export function httpGet(port: number, path: string, from?: string): Promise<{ status: number; type: string; body: string }> {
  return new Promise((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port, path, timeout: 5000, ...(from ? { localAddress: from } : {}) }, (res) => {
        let body = ''
        res.on('data', (d: Buffer) => (body += d.toString()))
        res.on('end', () => resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type']), body }))
      })
      .on('error', reject)
  })
}
