#!/usr/bin/env node
// ort_bench.js: times an ONNX model with onnxruntime's CPU library (the npm
// package onnxruntime-node), measured the way `shoal bench` measures shoal:
// session creation (file -> session ready), time to the first result, then
// K timed runs of a random batch.
//
//   node bench/ort_bench.js MODEL.onnx [--batch N] [--threads T] [--warmup W]
//       [--iters K] [--max-time S] [--json]
//
// Options: intraOpNumThreads = T, interOpNumThreads = 1, sequential
// execution, graphOptimizationLevel 'all', the CPU execution provider.
// The model's batch dim must be symbolic or equal to N (bench/run_bench.py
// writes a static batch-N copy of each model). JSON output has the same keys
// as `shoal bench --json` where they mean the same thing.
'use strict';

const fs = require('fs');
const os = require('os');
const path = require('path');

// Peak RSS of this process in MiB: VmHWM from /proc/self/status.
// (resourceUsage().maxRSS is getrusage's ru_maxrss, which survives exec: a
// child forked from a big parent reports the parent's peak. Fallback only.)
function peakRssMiB() {
  try {
    const m = /VmHWM:\s*(\d+)\s*kB/.exec(
        fs.readFileSync('/proc/self/status', 'utf8'));
    if (m) return Number(m[1]) / 1024;
  } catch (e) { /* not Linux */ }
  return process.resourceUsage().maxRSS / 1024;
}

// Before onnxruntime is loaded: the RSS of node itself.
const rssStartMiB = peakRssMiB();

function usage(message) {
  if (message) process.stderr.write(`ort_bench: ${message}\n`);
  process.stderr.write(
      'usage: node ort_bench.js MODEL.onnx [--batch N] [--threads T] ' +
      '[--warmup W] [--iters K] [--max-time S] [--json]\n');
  process.exit(2);
}

function parseArgs(argv) {
  const opts = {batch: 1, threads: os.availableParallelism ?
                    os.availableParallelism() : os.cpus().length,
                warmup: 2, iters: 10, maxTime: Infinity, json: false,
                model: null};
  const ints = {'--batch': ['batch', 1], '--threads': ['threads', 1],
                '--warmup': ['warmup', 0], '--iters': ['iters', 1]};
  for (let i = 0; i < argv.length; ++i) {
    let a = argv[i];
    let value = null;
    const eq = a.indexOf('=');
    if (a.startsWith('--') && eq > 0) {
      value = a.slice(eq + 1);
      a = a.slice(0, eq);
    }
    if (a === '--json') {
      opts.json = true;
    } else if (a === '--max-time') {
      if (value === null) {
        if (i + 1 >= argv.length) usage(`${a} expects a value`);
        value = argv[++i];
      }
      opts.maxTime = Number(value);
      if (!(opts.maxTime > 0)) usage(`${a} expects a positive number`);
    } else if (a === '-h' || a === '--help') {
      process.stdout.write(
          'node ort_bench.js MODEL.onnx [--batch N] [--threads T] ' +
          '[--warmup W] [--iters K] [--max-time S] [--json]\n' +
          '--max-time S: stop the warmup and timed runs early once S ' +
          'seconds have passed\nsince the first run began (at least one ' +
          'timed run).\n');
      process.exit(0);
    } else if (ints[a]) {
      if (value === null) {
        if (i + 1 >= argv.length) usage(`${a} expects a value`);
        value = argv[++i];
      }
      const [key, min] = ints[a];
      if (!/^\d+$/.test(value) || Number(value) < min)
        usage(`${a} expects an integer >= ${min}, got '${value}'`);
      opts[key] = Number(value);
    } else if (a.startsWith('-')) {
      usage(`unknown option '${a}'`);
    } else if (opts.model === null) {
      opts.model = a;
    } else {
      usage(`unexpected argument '${a}'`);
    }
  }
  if (opts.model === null) usage('missing MODEL.onnx');
  return opts;
}

const elapsedMs = (t0) => Number(process.hrtime.bigint() - t0) / 1e6;

// A deterministic pseudo-random generator (mulberry32), uniform in [-1, 1).
function random(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6D2B79F5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (((t ^ (t >>> 14)) >>> 0) / 4294967296) * 2 - 1;
  };
}

function median(v) {
  const s = [...v].sort((x, y) => x - y);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : 0.5 * (s[m - 1] + s[m]);
}

// Feeds for a batch of n: each input's dims with the batch dim set to n.
function makeFeeds(ort, session, n) {
  const feeds = {};
  const rand = random(12345);
  const meta = session.inputMetadata || [];
  session.inputNames.forEach((name, i) => {
    const m = meta[i];
    if (!m || !m.isTensor || !Array.isArray(m.shape))
      throw new Error(`input '${name}': no tensor shape in the model`);
    if (m.type !== 'float32')
      throw new Error(`input '${name}' has type ${m.type}; ` +
                      'ort_bench feeds float32 only');
    const dims = m.shape.map((d, k) => {
      if (k === 0) {
        if (typeof d === 'number' && d !== n)
          throw new Error(`input '${name}' has a static batch of ${d}, ` +
                          `not ${n}: give a model with batch ${n} (see ` +
                          'bench/run_bench.py) or a symbolic batch dim');
        return n;
      }
      if (typeof d !== 'number' || d < 1)
        throw new Error(`input '${name}': dim ${k} is symbolic ('${d}')`);
      return d;
    });
    const size = dims.reduce((a, b) => a * b, 1);
    const data = new Float32Array(size);
    for (let j = 0; j < size; ++j) data[j] = rand();
    feeds[name] = new ort.Tensor('float32', data, dims);
  });
  return feeds;
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const ort = require('onnxruntime-node');
  const sessionOptions = {
    executionProviders: ['cpu'],
    intraOpNumThreads: opts.threads,
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: 'all',
  };

  const tLoad = process.hrtime.bigint();
  const session = await ort.InferenceSession.create(opts.model, sessionOptions);
  const loadMs = elapsedMs(tLoad);
  const feeds = makeFeeds(ort, session, opts.batch);

  // --max-time counts from the first run: a first run longer than the
  // budget leaves no warmup and one timed run.
  const tFirst = process.hrtime.bigint();
  await session.run(feeds);
  const firstRunMs = elapsedMs(tFirst);
  // Counted from session creation; the feeds' setup is not ORT's time.
  const firstResultMs = loadMs + firstRunMs;

  const maxMs = opts.maxTime * 1e3;
  for (let i = 0; i < opts.warmup && elapsedMs(tFirst) < maxMs; ++i)
    await session.run(feeds);
  const iters = [];
  for (let i = 0; i < opts.iters; ++i) {
    if (i > 0 && elapsedMs(tFirst) >= maxMs) break;
    const t0 = process.hrtime.bigint();
    await session.run(feeds);
    iters.push(elapsedMs(t0));
  }
  const med = median(iters);
  const result = {
    engine: 'onnxruntime',
    version: ort.env.versions.node || ort.env.versions.common,
    file: opts.model,
    model: path.basename(opts.model, '.onnx'),
    batch: opts.batch,
    threads: opts.threads,
    load_ms: loadMs,
    first_run_ms: firstRunMs,
    first_result_ms: firstResultMs,
    iters_ms: iters,
    median_ms: med,
    mean_ms: iters.reduce((a, b) => a + b, 0) / iters.length,
    min_ms: Math.min(...iters),
    images_per_s: med > 0 ? opts.batch * 1e3 / med : 0,
    rss_start_mib: rssStartMiB,
    peak_rss_mib: peakRssMiB(),
  };
  await session.release();
  if (opts.json) {
    process.stdout.write(JSON.stringify(result) + '\n');
    return;
  }
  const f = (x, d = 1) => x.toFixed(d).padStart(10);
  process.stdout.write(
      `${result.model}: batch ${opts.batch}, ${opts.threads} thread(s), ` +
      `onnxruntime ${result.version}\n` +
      `  session create${f(loadMs)} ms\n` +
      `  first result  ${f(firstResultMs)} ms (first run ` +
      `${firstRunMs.toFixed(1)} ms)\n` +
      `  median        ${f(med, 3)} ms over ${iters.length} runs (mean ` +
      `${result.mean_ms.toFixed(3)}, min ${result.min_ms.toFixed(3)})\n` +
      `  throughput    ${f(result.images_per_s)} images/s\n` +
      `  peak RSS      ${f(result.peak_rss_mib)} MiB (` +
      `${rssStartMiB.toFixed(1)} MiB at start)\n` +
      `  runs (ms): ${iters.map((x) => x.toFixed(2)).join(' ')}\n`);
}

main().catch((e) => {
  process.stderr.write(`ort_bench: error: ${e && e.message ? e.message : e}\n`);
  process.exit(1);
});
