// Writes a deterministic .gz sibling for every .js/.css/.html/.svg in assets/ui.
// Fixed level, no file name, mtime 0 (node's zlib never writes a timestamp),
// so the committed output is byte-for-byte reproducible.
import { readdirSync, readFileSync, writeFileSync, statSync } from 'node:fs'
import { join, dirname } from 'node:path'
import { fileURLToPath } from 'node:url'
import { gzipSync, constants } from 'node:zlib'

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'assets', 'ui')
const exts = ['.js', '.css', '.html', '.svg']

function walk(dir) {
  for (const name of readdirSync(dir).sort()) {
    const path = join(dir, name)
    if (statSync(path).isDirectory()) walk(path)
    else if (exts.some((e) => name.endsWith(e))) {
      const gz = gzipSync(readFileSync(path), { level: 9, memLevel: 9, strategy: constants.Z_DEFAULT_STRATEGY })
      writeFileSync(path + '.gz', gz)
    }
  }
}
walk(root)
