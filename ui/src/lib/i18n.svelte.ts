import en from '../locales/en.json'
import zhCN from '../locales/zh-CN.json'
import zhTW from '../locales/zh-TW.json'

export type Lang = 'en' | 'zh-CN' | 'zh-TW'
export const LANGS: { code: Lang; label: string }[] = [
  { code: 'en', label: 'English' },
  { code: 'zh-CN', label: '简体中文' },
  { code: 'zh-TW', label: '繁體中文' },
]
const dicts: Record<Lang, Record<string, string>> = { en, 'zh-CN': zhCN, 'zh-TW': zhTW }
export type Key = keyof typeof en

const STORAGE = 'sluicegate.lang'

/** Maps a BCP 47 tag to one of ours, or null. */
export function matchLang(tag: string): Lang | null {
  const t = tag.toLowerCase()
  if (t === 'en' || t.startsWith('en-')) return 'en'
  if (t.startsWith('zh')) {
    if (/hant|-tw|-hk|-mo/.test(t)) return 'zh-TW'
    return 'zh-CN'
  }
  return null
}

function initial(): Lang {
  try {
    const saved = localStorage.getItem(STORAGE)
    if (saved && saved in dicts) return saved as Lang
  } catch {}
  for (const tag of navigator.languages ?? [navigator.language]) {
    const m = matchLang(tag)
    if (m) return m
  }
  return 'en'
}

export const locale = $state({ lang: initial() })
document.documentElement.lang = locale.lang

export function setLang(lang: Lang) {
  locale.lang = lang
  document.documentElement.lang = lang
  try {
    localStorage.setItem(STORAGE, lang)
  } catch {}
}

/** Translates `key`, replacing `{name}` with `params.name`. */
export function t(key: Key, params?: Record<string, string | number>): string {
  let s = dicts[locale.lang][key] ?? dicts.en[key] ?? key
  if (params) for (const [k, v] of Object.entries(params)) s = s.replaceAll(`{${k}}`, String(v))
  return s
}
