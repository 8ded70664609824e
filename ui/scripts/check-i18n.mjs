// i18n completeness: every key exists in en, zh-CN and zh-TW, no value is
// empty, placeholders ({name}) match, and every key the sources use exists.
import { readFileSync, readdirSync, statSync } from 'node:fs'
import { join, dirname } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = join(dirname(fileURLToPath(import.meta.url)), '..', 'src')
const langs = ['en', 'zh-CN', 'zh-TW']
const dicts = Object.fromEntries(langs.map((l) => [l, JSON.parse(readFileSync(join(root, 'locales', `${l}.json`), 'utf8'))]))
const problems = []
const all = new Set(langs.flatMap((l) => Object.keys(dicts[l])))
const ph = (s) => [...s.matchAll(/\{(\w+)\}/g)].map((m) => m[1]).sort().join(',')

for (const key of all) {
  for (const l of langs) {
    const v = dicts[l][key]
    if (v === undefined) problems.push(`${l}: missing "${key}"`)
    else if (typeof v !== 'string' || v.trim() === '') problems.push(`${l}: empty "${key}"`)
    else if (ph(v) !== ph(dicts.en[key] ?? '')) problems.push(`${l}: placeholders of "${key}" differ from en`)
  }
}

// Keys referenced in the sources as t('a.b') or as 'nav.x'-style literals.
function walk(dir, out = []) {
  for (const n of readdirSync(dir)) {
    const p = join(dir, n)
    if (statSync(p).isDirectory()) walk(p, out)
    else if (/\.(svelte|ts)$/.test(n)) out.push(p)
  }
  return out
}
for (const file of walk(root)) {
  const src = readFileSync(file, 'utf8')
  for (const m of src.matchAll(/\bt\(\s*'([\w.]+)'/g)) if (!(m[1] in dicts.en)) problems.push(`${file}: unknown key "${m[1]}"`)
  for (const m of src.matchAll(/'((?:nav|status|channels|overview)\.\w+)'/g)) if (!(m[1] in dicts.en)) problems.push(`${file}: unknown key "${m[1]}"`)
}

if (problems.length) {
  console.error(problems.join('\n'))
  console.error(`\ni18n check failed: ${problems.length} problem(s)`)
  process.exit(1)
}
console.log(`i18n ok: ${all.size} keys in ${langs.join(', ')}`)
