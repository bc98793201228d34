import { build } from 'esbuild';

/**
 * Each entry becomes one self-contained ESM file that runs with `node <file>` and no node_modules:
 * what the container image and the EC2 instance hold. CommonJS dependencies (pino) call `require`
 * for Node built-ins, which plain ESM lacks, hence the createRequire banner.
 */
await build({
  entryPoints: {
    'random-number': 'functions/random-number/server.ts',
    'ec2-agent': 'ec2-agent/main.ts',
  },
  outdir: 'dist',
  outExtension: { '.js': '.mjs' },
  bundle: true,
  platform: 'node',
  // ESM builds first where a package ships both: esbuild can then drop what is never imported (the
  // AWS SDK marks itself side-effect free; its CJS build cannot be shaken, and the agent would be larger).
  mainFields: ['module', 'main'],
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
