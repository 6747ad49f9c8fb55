// A minimal SMTP client for the end-to-end tests: real TCP to Haraka on loopback, optionally
// preceded by a PROXY v1 header that presents a public client address (nothing is sent there).
import net from 'node:net'
import tls from 'node:tls'

export interface Reply {
  code: number
  text: string
}

export class SmtpSession {
  private buffer = ''
  private waiters: ((r: Reply) => void)[] = []
  private replies: Reply[] = []
  private closed = false

  private constructor(private sock: net.Socket) {
    this.listen(sock)
  }

  private listen(sock: net.Socket): void {
    sock.setEncoding('utf8')
    sock.on('data', (chunk: string) => {
      this.buffer += chunk
      this.drain()
    })
    sock.on('close', () => {
      this.closed = true
      for (const w of this.waiters.splice(0)) w({ code: 0, text: 'connection closed' })
    })
    sock.on('error', () => undefined)
  }

  /** STARTTLS, then the TLS handshake (any certificate: the server is the test's own). */
  async startTls(): Promise<void> {
    const r = await this.command('STARTTLS')
    if (r.code !== 220) throw new Error(`STARTTLS refused: ${r.text}`)
    const plain = this.sock
    plain.removeAllListeners('data')
    plain.removeAllListeners('close')
    const secure = tls.connect({ socket: plain, rejectUnauthorized: false })
    await new Promise<void>((resolve, reject) => {
      secure.once('secureConnect', resolve)
      secure.once('error', reject)
    })
    this.sock = secure
    this.listen(secure)
  }

  static async open(port: number, clientIp?: string): Promise<SmtpSession> {
    const sock = net.connect({ host: '127.0.0.1', port })
    await new Promise<void>((resolve, reject) => {
      sock.once('connect', resolve)
      sock.once('error', reject)
    })
    if (clientIp) {
      const fam = clientIp.includes(':') ? 'TCP6' : 'TCP4'
      const dst = clientIp.includes(':') ? '::1' : '127.0.0.1'
      sock.write(`PROXY ${fam} ${clientIp} ${dst} ${40000 + Math.floor(Math.random() * 20000)} ${port}\r\n`)
    }
    const s = new SmtpSession(sock)
    const greeting = await s.read()
    if (greeting.code !== 220) throw new Error(`unexpected greeting: ${greeting.code} ${greeting.text}`)
    return s
  }

  private drain(): void {
    for (;;) {
      // A complete reply ends with a line "NNN text" (no dash after the code).
      const m = /^((?:\d{3}-[^\n]*\n)*)(\d{3})(?: [^\n]*)?\r?\n/.exec(this.buffer)
      if (!m) return
      const reply = { code: Number(m[2]), text: m[0].trim() }
      this.buffer = this.buffer.slice(m[0].length)
      const w = this.waiters.shift()
      if (w) w(reply)
      else this.replies.push(reply)
    }
  }

  read(timeoutMs = 10_000): Promise<Reply> {
    const queued = this.replies.shift()
    if (queued) return Promise.resolve(queued)
    if (this.closed) return Promise.resolve({ code: 0, text: 'connection closed' })
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('SMTP reply timed out')), timeoutMs)
      this.waiters.push((r) => {
        clearTimeout(timer)
        resolve(r)
      })
    })
  }

  async command(line: string, timeoutMs?: number): Promise<Reply> {
    this.sock.write(`${line}\r\n`)
    return this.read(timeoutMs)
  }

  async quit(): Promise<void> {
    if (!this.closed) await this.command('QUIT').catch(() => undefined)
    this.sock.destroy()
  }
}

export interface Envelope {
  clientIp?: string
  helo?: string
  from: string
  to: string[]
  /** Send a small message when a recipient was accepted. */
  data?: boolean
  /** That message's Message-ID and body (else a new Message-ID and "Hello."), e.g. a retry of one message. */
  message?: { id: string; body: string }
}

export interface Transcript {
  mail: Reply
  rcpt: Reply[]
  data?: Reply
  /** Reply to the message body (after the final dot), when DATA was accepted. */
  message?: Reply
  elapsedMs: number
}

/** One delivery attempt, the way an MTA makes it. */
export async function deliver(port: number, env: Envelope): Promise<Transcript> {
  const started = Date.now()
  const s = await SmtpSession.open(port, env.clientIp)
  try {
    const ehlo = await s.command(`EHLO ${env.helo ?? 'client.example.net'}`)
    if (ehlo.code !== 250) throw new Error(`EHLO refused: ${ehlo.text}`)
    const mail = await s.command(`MAIL FROM:<${env.from}>`)
    const rcpt: Reply[] = []
    for (const to of env.to) rcpt.push(await s.command(`RCPT TO:<${to}>`))
    const t: Transcript = { mail, rcpt, elapsedMs: 0 }
    if ((env.data || env.message) && rcpt.some((r) => r.code === 250)) {
      t.data = await s.command('DATA')
      if (t.data.code === 354) {
        const id = env.message?.id ?? `${Date.now()}.${Math.random()}@test`
        const body = (env.message?.body ?? 'Hello.').replace(/\r?\n/g, '\r\n').replace(/^\./gm, '..')
        t.message = await s.command(`From: <${env.from}>\r\nTo: <${env.to[0]}>\r\nSubject: test\r\nMessage-ID: <${id}>\r\n\r\n${body}\r\n.`)
      }
    }
    t.elapsedMs = Date.now() - started
    return t
  } finally {
    await s.quit()
  }
}
