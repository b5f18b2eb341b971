// Builds the dashboard's plotly.js: plotly.js's core (which has `scatter`) and the trace types layerscope's figures
// use, nothing else. The full plotly.min.js is 4.8 MB and takes about 1.5 s to evaluate in a page on a 2-core laptop;
// this one is a third of it and evaluates in about 0.3 s. Same esbuild settings as plotly.js's own build
// (node_modules/plotly.js/esbuild-config.js).
//
//   cd tools/plotly && npm ci && npm run build
//
// A figure with a trace type not listed here would be drawn as a scatter: tests/browser/test_plotly_bundle.py checks
// the list against the figures the dashboard makes, and the major version against plotly.py's.
const esbuild = require('esbuild');
const { environmentPlugin } = require('esbuild-plugin-environment');
const { glsl } = require('esbuild-plugin-glsl');
const InlineCSSPlugin = require('esbuild-plugin-inline-css');
const { version } = require('plotly.js/package.json');

const TRACES = ['scattergl', 'bar', 'heatmap'];

const entry = [
    "var Plotly = require('plotly.js/lib/core');",
    `Plotly.register([${TRACES.map((t) => `require('plotly.js/lib/${t}')`).join(', ')}]);`,
    'module.exports = Plotly;',
].join('\n');

esbuild
    .build({
        stdin: { contents: entry, resolveDir: __dirname, sourcefile: 'layerscope-plotly.js' },
        outfile: process.argv[2] || 'plotly.min.js',
        format: 'iife',
        globalName: 'Plotly',
        bundle: true,
        minify: true,
        legalComments: 'none',
        banner: {
            js: `/**\n* plotly.js v${version} (traces: scatter, ${TRACES.join(', ')}), built by layerscope's tools/plotly\n` +
                '* Copyright 2012-2026, Plotly, Inc.\n* All rights reserved.\n* Licensed under the MIT license\n*/',
        },
        plugins: [InlineCSSPlugin(), glsl({ minify: true }), environmentPlugin({ NODE_DEBUG: false })],
        alias: { regl: '@plotly/regl', stream: 'stream-browserify' },
        define: { global: 'window', 'define.amd': 'false' },
        target: 'es2016',
        logLevel: 'info',
    })
    .catch(() => process.exit(1));
