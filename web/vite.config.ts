import { defineConfig } from "vitest/config";

// The API serves dist/ at / (index.html for every client-side route, assets/ immutable), so the
// build needs no server of its own and no internet: every script, style and font is in dist/.
export default defineConfig({
  oxc: { jsx: { runtime: "automatic", importSource: "preact" } },
  build: { outDir: "dist", assetsDir: "assets", sourcemap: false, target: "es2022", chunkSizeWarningLimit: 800 },
  test: { include: ["src/**/*.test.ts"], environment: "node" },
});
