// Lint: typescript-eslint with type information (floating promises) and the import boundaries between layers.
import js from "@eslint/js";
import tseslint from "typescript-eslint";

export default tseslint.config(
  { ignores: ["src/gen/**", "console/src/gen/**", "console/dist/**", "dist/**", "test-artifacts/**", "node_modules/**", "var/**", "coverage/**", "**/*.mjs", "eslint.config.js", "bin/**"] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    rules: {
      "@typescript-eslint/no-floating-promises": "error",
      "@typescript-eslint/no-misused-promises": ["error", { checksVoidReturn: { arguments: false } }],
      "@typescript-eslint/consistent-type-imports": ["error", { fixStyle: "inline-type-imports" }],
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_", varsIgnorePattern: "^_" }],
      "no-console": "off",
    },
  },
  {
    // Handlers and the gRPC layer never touch the database directly.
    files: ["src/rpc/**/*.ts", "src/**/handlers.ts", "src/**/handlers/*.ts"],
    rules: {
      "no-restricted-imports": ["error", { patterns: [{ group: ["**/gen/prisma/**", "@prisma/*"], message: "handlers call services; services call repositories" }] }],
    },
  },
  {
    // Services and repositories never see generated proto types.
    files: ["src/**/service.ts", "src/**/*-service.ts", "src/**/repository.ts", "src/**/*-repository.ts", "src/db/**/*.ts"],
    rules: {
      "no-restricted-imports": ["error", { patterns: [{ group: ["**/gen/proto/**"], message: "map proto ⇄ domain in handlers" }] }],
    },
  },
);
