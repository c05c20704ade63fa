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
    // An object literal with a getter or setter, made inside a function, gets a hidden class of its own each time, kept
    // where only full collections look: everything its accessor closes over (a call, a message) then survives every
    // young collection (src/runtime/slot-table.ts has the same story for tables). Use a class, or a method.
    files: ["src/**/*.ts"],
    rules: {
      "no-restricted-syntax": ["error", { selector: ":function ObjectExpression > Property[kind=/^(get|set)$/]", message: "an accessor in an object literal made per call keeps what it closes over alive until a full collection: use a class or a method" }],
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
