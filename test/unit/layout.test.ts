// The layout that shows the design: the pure core imports no adapter, nothing imports the
// command, and no module imports itself through others (type-only imports left aside).
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'

const ROOT = path.resolve(__dirname, '..', '..')
const PLUGIN = path.join(ROOT, 'plugins', 'smart-greylist')

function sources(dir: string): string[] {
  return fs
    .readdirSync(dir, { withFileTypes: true })
    .flatMap((d) => (d.isDirectory() ? sources(path.join(dir, d.name)) : d.name.endsWith('.ts') && !d.name.endsWith('.d.ts') ? [path.join(dir, d.name)] : []))
}

/** Run-time imports of a file (not `import type`), resolved to files. */
function imports(file: string): string[] {
  const text = fs.readFileSync(file, 'utf8')
  const out: string[] = []
  for (const m of text.matchAll(/^(?:import|export)\s+(?!type\b)[^'"]*?from\s+'(\.[^']+)'/gm)) {
    out.push(path.resolve(path.dirname(file), m[1]) + '.ts')
  }
  return out
}

const FILES = [...sources(PLUGIN), ...sources(path.join(ROOT, 'cli'))]

describe('module layout', () => {
  it('the core imports nothing but the core, and only the packages allowed for pure code', () => {
    // Pure helpers only: no I/O, no global state loaded behind the caller's back (the
    // public-suffix list, for one, comes from setup).
    const allowed = new Set(['node:crypto', 'node:net', 'ipaddr.js'])
    for (const f of sources(path.join(PLUGIN, 'core'))) {
      const text = fs.readFileSync(f, 'utf8')
      for (const m of text.matchAll(/^(?:import|export)[^'\n]*?from\s+'([^']+)'|^import\s+'([^']+)'|\brequire\('([^']+)'\)/gm)) {
        const spec = m[1] ?? m[2] ?? m[3] ?? ''
        const where = path.relative(ROOT, f)
        if (spec.startsWith('.')) assert.ok(path.resolve(path.dirname(f), spec).startsWith(path.join(PLUGIN, 'core')), `${where} imports ${spec}`)
        else assert.ok(allowed.has(spec), `${where} imports the package ${spec}, which is not allowed in core/`)
      }
      assert.doesNotMatch(text, /Date\.now\(\)/, path.relative(ROOT, f))
    }
  })

  it('the plugin never imports the command', () => {
    for (const f of sources(PLUGIN)) for (const i of imports(f)) assert.ok(!i.startsWith(path.join(ROOT, 'cli')), `${path.relative(ROOT, f)} imports ${i}`)
  })

  it('no adapter reaches up: adapters import neither setup.ts nor index.ts, not even a type', () => {
    const up = [path.join(PLUGIN, 'setup.ts'), path.join(PLUGIN, 'index.ts')]
    for (const f of sources(path.join(PLUGIN, 'adapters'))) {
      const text = fs.readFileSync(f, 'utf8')
      for (const m of text.matchAll(/^(?:import|export)\b[^']*?from\s+'(\.[^']+)'/gm)) {
        const target = path.resolve(path.dirname(f), m[1]) + '.ts'
        assert.ok(!up.includes(target), `${path.relative(ROOT, f)} imports ${m[1]}`)
      }
    }
  })

  it('index.ts registers hooks and hands off: each hook function is one call or a few', () => {
    const text = fs.readFileSync(path.join(PLUGIN, 'index.ts'), 'utf8')
    for (const m of text.matchAll(/^export function (\w+)\([^)]*\)[^{]*\{\n([\s\S]*?)^\}/gm)) {
      const body = m[2].split('\n').filter((l) => l.trim() && !l.trim().startsWith('//'))
      const limit = m[1] === 'register' ? 10 : 4
      assert.ok(body.length <= limit, `index.ts ${m[1]} has ${body.length} lines: its work belongs in an adapter`)
    }
  })

  it('has no import cycles', () => {
    const state = new Map<string, 'open' | 'done'>()
    const visit = (f: string, trail: string[]): void => {
      if (state.get(f) === 'done') return
      assert.notEqual(state.get(f), 'open', `cycle: ${[...trail, f].map((x) => path.relative(ROOT, x)).join(' -> ')}`)
      state.set(f, 'open')
      for (const i of imports(f)) if (fs.existsSync(i)) visit(i, [...trail, f])
      state.set(f, 'done')
    }
    for (const f of FILES) visit(f, [])
  })
})
