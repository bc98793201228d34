import { build } from 'esbuild';

/**
 * Each entry becomes one self-contained ESM file that runs with `node <file>` and no node_modules:
 * what the container image and the EC2 instance hold. CommonJS dependencies (pino) call `require`
 * for Node built-ins, which plain ESM lacks, hence the createRequire banner.
 */
export const BUNDLES: Record<string, string> = {
  'random-number': 'functions/random-number/server.ts',
};

await build({
  entryPoints: BUNDLES,
  outdir: 'dist',
  outExtension: { '.js': '.mjs' },
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'esm',
  minify: true,
  legalComments: 'none',
  // Loaded at run time only at a terminal in a checkout (lib/logger.ts); never bundled.
  external: ['pino-pretty'],
  banner: {
    js: "import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);",
  },
  logLevel: 'warning',
});
