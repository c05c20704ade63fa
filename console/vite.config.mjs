// Builds the operations console (npm run build:console): Preact through Vite's own JSX transform, into console/dist
// (or --outDir), hashed asset names that the console server caches for good.
import { defineConfig } from "vite";

export default defineConfig({
  root: import.meta.dirname,
  base: "/",
  logLevel: process.env.CONSOLE_BUILD_QUIET ? "warn" : "info",
  oxc: { jsx: { runtime: "automatic", importSource: "preact" } },
  build: {
    outDir: "dist",
    emptyOutDir: true,
    target: "es2022",
    sourcemap: false,
    // The page is small: one script and one stylesheet load faster than a preload waterfall.
    modulePreload: { polyfill: false },
  },
});
