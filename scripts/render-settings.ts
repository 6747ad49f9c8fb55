// Writes config/smart-greylist.ini and docs/settings.md's table from the settings schema
// (plugins/smart-greylist/core/settings.ts). test/unit/settings.test.ts fails until this has run.
import fs from 'node:fs'
import path from 'node:path'
import { renderIni, renderSettingsTable } from '../plugins/smart-greylist/core/settings'

const ROOT = path.resolve(__dirname, '..')
const BEGIN = '<!-- settings:begin (npm run settings:render) -->'
const END = '<!-- settings:end -->'

fs.writeFileSync(path.join(ROOT, 'config', 'smart-greylist.ini'), renderIni())
const readme = path.join(ROOT, 'docs', 'settings.md')
const text = fs.readFileSync(readme, 'utf8')
const start = text.indexOf(BEGIN)
const end = text.indexOf(END)
if (start < 0 || end < start) throw new Error(`docs/settings.md has no ${BEGIN} ... ${END} block`)
fs.writeFileSync(readme, `${text.slice(0, start + BEGIN.length)}\n${renderSettingsTable()}\n${text.slice(end)}`)
console.log('wrote config/smart-greylist.ini and the settings table in docs/settings.md')
