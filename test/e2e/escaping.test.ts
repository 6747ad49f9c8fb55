// Text an attacker cannot shape, end to end: a real Haraka takes MAIL FROM and RCPT TO with quoted
// local parts that hold field-looking text, `<`, `>`, `"`, spaces and U+0085 (it refuses U+2028
// and U+2029 itself), and the decision lines, the X-Greylist header and the command's table show
// them as one escaped value each (core/text.ts safeField).
import assert from 'node:assert/strict'
import { readField, safeField } from '../../plugins/smart-greylist/core/text'
import { runCli } from '../helpers/cli'
import { deliver, SmtpSession } from '../../scripts/harness/smtp'
import { useStack } from '../helpers/stack'
import { sleep } from '../helpers/wait'

const DELAY_S = 1
const INI = `[main]\ndelay=${DELAY_S}\nretry_window=30\nheader=true\n[whitelist]\nproviders=false\n`

/** What a reader may take for a line break: ASCII's and Unicode's. */
const LINE_BREAK = /[\n\v\f\r\u0085\u2028\u2029]/

/** The key=value fields of our part of a log line, as a reader splitting on spaces sees them. */
function keysOf(text: string): string[] {
  return text
    .split(' ')
    .filter((t) => t.includes('='))
    .map((t) => t.slice(0, t.indexOf('=')))
}

/** Our part of a Haraka log line: what follows `[smart-greylist] `. */
function ours(line: string): string {
  const at = line.indexOf('[smart-greylist] ')
  assert.ok(at >= 0, line)
  return line.slice(at + '[smart-greylist] '.length)
}

describe('outside text in a running Haraka', function () {
  this.timeout(60_000)
  const stack = useStack({ ini: INI, queue: 'queue/test' })
  const ip = '85.214.132.7'
  const domain = `evil${Date.now()}.example`
  // The last word may not look like an ESMTP parameter (key=value), or Haraka peels it off the address.
  const from = `"x> pass reason=retry identity=spf:bank.example\u0085accept <z"@${domain}`
  const to = '"b> pass reason=known\u0085to= <c"@example.com'

  // Its command line pattern (`.`) does not match them: "500 Unrecognized command". A HELO (not
  // EHLO) session refuses every 8-bit line. So of the Unicode line breaks only U+0085 reaches us.
  it('Haraka itself refuses U+2028 and U+2029 in an address', async () => {
    const s = await SmtpSession.open(stack.haraka.port, ip)
    try {
      assert.equal((await s.command('EHLO client.example.net')).code, 250)
      for (const sep of ['\u2028', '\u2029']) {
        const r = await s.command(`MAIL FROM:<"a${sep}b"@${domain}>`)
        assert.ok(r.code >= 500 && r.code < 600, r.text)
      }
    } finally {
      await s.quit()
    }
  })

  it('logs the deferral of a forged sender and recipient as one line with our fields only', async () => {
    const mark = stack.haraka.log.length
    const t = await deliver(stack.haraka.port, { clientIp: ip, from, to: [to] })
    assert.equal(t.mail.code, 250, `Haraka accepts the forged sender: ${t.mail.text}`)
    assert.equal(t.rcpt[0].code, 451, t.rcpt[0].text)

    const lines = stack.haraka.linesMatching(/\[smart-greylist\]/, mark)
    assert.equal(lines.length, 1, lines.join('\n'))
    const line = ours(lines[0])
    assert.doesNotMatch(line, LINE_BREAK)
    assert.match(line, /^[\x20-\x7e]+$/)
    assert.match(line, /^defer reason=new identity=net:85\.214\.132\.0\/24 /)
    assert.deepEqual(keysOf(line), ['reason', 'identity', 'identity_reason', 'from', 'to', 'waited', 'retry_in'], line)
    // Each address is one value, read back to what the client sent.
    assert.equal(readField(/ from=<([^>]*)>/.exec(line)?.[1] ?? ''), from)
    assert.equal(readField(/ to=<([^>]*)>/.exec(line)?.[1] ?? ''), to)
  })

  it('passes the retry with an X-Greylist header of printable ASCII and an intact line', async () => {
    await sleep(DELAY_S * 1000 + 300)
    const mark = stack.haraka.log.length
    const t = await deliver(stack.haraka.port, { clientIp: ip, from, to: [to], data: true })
    assert.equal(t.rcpt[0].code, 250, t.rcpt[0].text)
    assert.equal(t.message?.code, 250, t.message?.text)

    const line = ours(stack.haraka.linesMatching(/\[smart-greylist\] pass /, mark)[0] ?? '[smart-greylist] none')
    assert.doesNotMatch(line, LINE_BREAK)
    assert.match(line, /^pass reason=retry /)
    assert.deepEqual(keysOf(line), ['reason', 'identity', 'identity_reason', 'from', 'to', 'waited'], line)

    const header = /^X-Greylist: (.*)$/m.exec(stack.haraka.queuedMessage(t.message?.text ?? ''))?.[1] ?? ''
    assert.match(header, /^delayed [1-9]\d* seconds by smart-greylist; identity=net:85\.214\.132\.0\/24\r?$/)
  })

  it('list prints the stored sender escaped in its table, and as itself in ASCII JSON', async () => {
    const cli = (...args: string[]): ReturnType<typeof runCli> => runCli([...args, '--config', stack.haraka.configDir])
    const text = await cli('list', '--passed')
    assert.equal(text.code, 0, text.stderr)
    // The record keeps [limits] stored_chars of the sender, so the row is found by its network.
    const rows = text.stdout.split('\n').filter((l) => l.includes('net:85.214.132.0/24'))
    assert.equal(rows.length, 1, text.stdout)
    assert.doesNotMatch(rows[0], LINE_BREAK)
    assert.match(rows[0], /^[\x20-\x7e]+$/)
    const raw = await cli('list', '--passed', '--json')
    assert.doesNotMatch(raw.stdout, /[^\n -~]/, 'the JSON text is printable ASCII: U+0085 written as \\u0085')
    const json = JSON.parse(raw.stdout) as { tuples: { sender: string; recipient: string }[] }
    const stored = json.tuples.find((r) => r.sender.startsWith('"x> pass'))
    assert.ok(stored, 'the JSON has the tuple')
    assert.match(stored.sender, /\u0085/, 'the JSON value is the stored one, raw')
    assert.ok(rows[0].includes(`<${safeField(stored.sender)}> -> <${safeField(stored.recipient)}>`), rows[0])
  })
})
