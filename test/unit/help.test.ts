// The help text every command prints, and the command list: brackets balance (a value's name
// never carries the usage's closing bracket), and names and explanations stand in one column.
import assert from 'node:assert/strict'
import { COMMANDS, helpFor, overview } from '../../cli/main'

/** Every ( [ { closed in order on the line; a stray `]` or one left open fails. */
function balanced(line: string): boolean {
  const open: string[] = []
  const pairs: Record<string, string> = { ')': '(', ']': '[', '}': '{' }
  for (const ch of line.replace(/"[^"]*"/g, '')) {
    if (ch === '(' || ch === '[' || ch === '{') open.push(ch)
    else if (ch in pairs && open.pop() !== pairs[ch]) return false
  }
  return open.length === 0
}

/** The column where the text after a two-space-indented name starts (after its padding). */
function textColumn(line: string): number {
  return /^ {2}\S.*?\s{2,}(?=\S)/.exec(line)?.[0].length ?? -1
}

describe('help text layout', () => {
  it('the command list: every summary starts in one column, after at least two spaces', () => {
    const rows = overview()
      .split('\n')
      .filter((l) => COMMANDS.some((c) => l.startsWith(`  ${c.name} `)))
    assert.equal(rows.length, COMMANDS.length)
    const columns = new Set(rows.map(textColumn))
    assert.equal(columns.size, 1, rows.join('\n'))
    for (const c of COMMANDS)
      assert.ok(
        rows.some((r) => r.startsWith(`  ${c.name}  `)),
        `${c.name} runs into its summary`,
      )
  })

  for (const c of COMMANDS) {
    it(`${c.name} --help: brackets balance and the options' explanations stand in one column`, () => {
      const help = helpFor(c)
      const lines = help.split('\n')
      const options = lines.slice(lines.indexOf('options:') + 1)
      // The usage and each option on its own line; the description's sentences wrap, so as a whole.
      for (const line of [lines[0], ...options]) assert.ok(balanced(line), `${c.name}: unbalanced brackets in: ${line}`)
      assert.ok(balanced((c.description ?? []).join(' ')), `${c.name}: unbalanced brackets in its description`)
      assert.equal(options.length, Object.keys(c.options).length)
      for (const [i, name] of Object.keys(c.options).entries()) assert.match(options[i], new RegExp(`^ {2}--${name}\\b`))
      assert.equal(new Set(options.map(textColumn)).size, 1, options.join('\n'))
      // A value's name is the usage's, whole: `--config DIR`, never `--config DIR]`.
      for (const o of options) assert.doesNotMatch(o, /^ {2}--[a-z-]+ [A-Z:]*[^A-Z:\s,]/, o)
    })
  }
})
