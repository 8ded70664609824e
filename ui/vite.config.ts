import { svelte } from '@sveltejs/vite-plugin-svelte'
import { defineConfig } from 'vite'

const target = process.env.SLUICEGATE_URL ?? 'http://127.0.0.1:3999'

export default defineConfig({
  plugins: [svelte()],
  build: {
    outDir: '../assets/ui',
    emptyOutDir: true,
    assetsDir: 'assets',
    // No modulepreload polyfill: it would be an inline script (CSP default-src 'self').
    modulePreload: { polyfill: false },
    cssCodeSplit: false,
    reportCompressedSize: false,
  },
  server: {
    proxy: { '/api': target, '/v1': target },
  },
})
