// Text an attacker cannot shape. Envelope addresses, HELO and rDNS names reach our log lines, the
// X-Greylist header and the command's tables as the client sent them, and Haraka accepts a quoted
// local part holding `<`, `>`, `=`, spaces and U+0085 (`"x> pass reason=retry"@evil.example`):
// printed raw, such a value forges key=value fields of the decision line or starts a new line for
// a reader that splits on Unicode line breaks. Every such value is rendered through safeField.
// Pure.

/**
 * A field shows printable ASCII (0x21-0x7e) as it is, but for the characters that delimit our
 * fields. `<` `>` end an address (`from=<…>`), `=` starts a value, `"` quotes one
 * (`entry="…"`), `,` separates the parts of a list field (`evidence=fcrdns:…,spf:…`), and `\`
 * starts an escape (so every escape is read back one way). Space is outside the range.
 */
const DELIMITERS = new Set(['<', '>', '=', '"', ',', '\\'])
/** The same set as one class: most values (host names, plain addresses) need no escape at all. */
const PLAIN = /^[\x21\x23-\x2b\x2d-\x3b\x3f-\x5b\x5d-\x7e]*$/

/**
 * One value as a field of a log line, header or table: a single run of printable ASCII with no
 * field delimiter in it, whatever the input. The scheme (docs/operator-guide.md):
 * - `\\` for a backslash;
 * - `\xNN` (two lower-case hex digits) for any other character up to U+00FF that is not kept:
 *   controls (NUL, CR, LF, TAB, DEL, U+0085 …), space, `<>=",`, Latin-1 letters;
 * - `\u{X…}` (lower-case hex, no padding) for any code point above U+00FF, an unpaired
 *   surrogate included: U+2028 is `\u{2028}`, `ö` is `\xf6`, `€` is `\u{20ac}`.
 * Reversible (readField): no two values render the same, so a reader can tell values apart.
 */
export function safeField(value: string): string {
  if (PLAIN.test(value)) return value
  let out = ''
  // By code point: a pair of surrogates is one character, a lone one is escaped on its own.
  for (const ch of value) {
    const cp = ch.codePointAt(0) ?? 0
    if (ch === '\\') out += '\\\\'
    else if (cp >= 0x21 && cp <= 0x7e && !DELIMITERS.has(ch)) out += ch
    else out += cp <= 0xff ? `\\x${cp.toString(16).padStart(2, '0')}` : `\\u{${cp.toString(16)}}`
  }
  return out
}

/**
 * A value someone else wrote (a record in shared Redis, an HTTP server's header), as a log line
 * names it: its first `max` characters, then `…`, through safeField. Not reversible when cut.
 */
export function safeExcerpt(value: string, max: number): string {
  return safeField(value.length > max ? `${value.slice(0, max)}…` : value)
}

const ESCAPE = /\\(?:(\\)|x([0-9a-f]{2})|u\{([0-9a-f]{1,6})\})/g

/**
 * The value safeField rendered, read back (for tools that parse our lines); null when `text` is
 * not what safeField renders for any value (a stray backslash, a character it escapes, or a
 * spelling it does not use, such as `\x41` for `A`): one text per value, one value per text.
 */
export function readField(text: string): string | null {
  let bad = false
  const value = text.replace(ESCAPE, (_m, backslash?: string, byte?: string, point?: string) => {
    if (backslash) return '\\'
    const cp = parseInt(byte ?? point ?? '', 16)
    if (!(cp <= 0x10ffff)) {
      bad = true
      return ''
    }
    return String.fromCodePoint(cp)
  })
  return !bad && safeField(value) === text ? value : null
}
