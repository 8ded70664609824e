import { ApiError } from './api.svelte'
import { t, locale, type Key } from './i18n.svelte'

// ---- router (history API; the server falls back to index.html) ----
export type Route = 'overview' | 'channels' | 'keys' | 'logs' | 'cluster' | 'settings' | 'signin'
const paths: Record<string, Route> = {
  '/': 'overview',
  '/channels': 'channels',
  '/keys': 'keys',
  '/logs': 'logs',
  '/cluster': 'cluster',
  '/settings': 'settings',
  '/signin': 'signin',
}
export const routePath: Record<Route, string> = {
  overview: '/',
  channels: '/channels',
  keys: '/keys',
  logs: '/logs',
  cluster: '/cluster',
  settings: '/settings',
  signin: '/signin',
}
function parse(): Route {
  const p = location.pathname.replace(/\/+$/, '') || '/'
  return paths[p] ?? 'overview'
}
export const router = $state({ route: parse() })
addEventListener('popstate', () => (router.route = parse()))
export function navigate(r: Route, replace = false) {
  const path = routePath[r]
  if (location.pathname !== path) history[replace ? 'replaceState' : 'pushState'](null, '', path)
  router.route = r
}

// ---- toasts ----
export interface Toast {
  id: number
  kind: 'error' | 'success'
  text: string
}
export const toasts = $state<Toast[]>([])
let nextToast = 1
export function toast(text: string, kind: Toast['kind'] = 'success') {
  const id = nextToast++
  toasts.push({ id, kind, text })
  setTimeout(() => dismiss(id), kind === 'error' ? 8000 : 3500)
}
export function dismiss(id: number) {
  const i = toasts.findIndex((x) => x.id === id)
  if (i >= 0) toasts.splice(i, 1)
}
/** Shows an API error as a toast. */
export function toastError(e: unknown) {
  toast(errorText(e), 'error')
}
export function errorText(e: unknown): string {
  if (e instanceof ApiError) return e.status === 0 ? t('error.network') : e.message
  return String((e as Error)?.message ?? e)
}

// ---- confirmation dialog ----
export const confirmState = $state<{ open: boolean; title: string; body: string; danger: boolean; resolve: ((ok: boolean) => void) | null }>({
  open: false,
  title: '',
  body: '',
  danger: false,
  resolve: null,
})
export function confirm(title: string, body: string, danger = true): Promise<boolean> {
  return new Promise((resolve) => {
    Object.assign(confirmState, { open: true, title, body, danger, resolve })
  })
}

// ---- formatting ----
export function fmtInt(n: number | null | undefined): string {
  if (n === null || n === undefined) return '—'
  return new Intl.NumberFormat(locale.lang).format(n)
}
export function fmtCompact(n: number): string {
  return new Intl.NumberFormat(locale.lang, { notation: 'compact', maximumFractionDigits: 1 }).format(n)
}
export function fmtTime(iso: string | null | undefined, timeZone?: string): string {
  if (!iso) return '—'
  const d = new Date(iso)
  if (isNaN(+d)) return iso
  try {
    return new Intl.DateTimeFormat(locale.lang, { dateStyle: 'short', timeStyle: 'medium', timeZone }).format(d)
  } catch {
    return d.toLocaleString(locale.lang)
  }
}
/** "5 h 12 m" until `iso`. */
export function fmtDuration(ms: number): string {
  if (ms < 0) ms = 0
  const mins = Math.floor(ms / 60000)
  const h = Math.floor(mins / 60)
  const m = mins % 60
  if (h >= 24) return t('dur.dh', { d: Math.floor(h / 24), h: h % 24 })
  if (h > 0) return t('dur.hm', { h, m })
  return t('dur.m', { m })
}
export function fmtAgo(iso: string | null | undefined): string {
  if (!iso) return t('common.never')
  const ms = Date.now() - +new Date(iso)
  if (ms < 60000) return t('dur.justNow')
  return t('dur.ago', { d: fmtDuration(ms) })
}
export function percent(used: number, limit: number): number {
  if (!limit) return 0
  return Math.min(100, Math.round((used / limit) * 100))
}

export const now = $state({ ms: Date.now() })
setInterval(() => (now.ms = Date.now()), 30000)

export function timeZones(): string[] {
  try {
    const z = (Intl as any).supportedValuesOf('timeZone') as string[]
    return z.includes('UTC') ? z : ['UTC', ...z]
  } catch {
    return ['UTC', 'Asia/Shanghai', 'Asia/Taipei', 'Asia/Tokyo', 'Europe/London', 'America/New_York', 'America/Los_Angeles']
  }
}

export function statusKey(s: string): Key {
  return (`status.${s}` as Key)
}
