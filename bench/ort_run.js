#!/usr/bin/env node
// ort_run.js: runs an ONNX model once with onnxruntime's CPU library (the npm
// package onnxruntime-node) on a float32 input, for cross-checks of shoal's
// outputs (scripts/make_ort_fixtures.py).
//
//   node bench/ort_run.js MODEL.onnx INPUT.f32 N,C,H,W OUTPUT.f32
//
// INPUT.f32 and OUTPUT.f32 hold raw little-endian float32 values (the first
// model output is written). Optimizations 'all', one thread.
'use strict';

const fs = require('fs');
const path = require('path');

function loadOrt() {
  for (const dir of [path.join(__dirname, 'node_modules'), process.env.SHOAL_ORT_NODE_MODULES]) {
    if (!dir) continue;
    try {
      return require(path.join(dir, 'onnxruntime-node'));
    } catch (e) { /* next */ }
  }
  process.stderr.write(
      'ort_run: onnxruntime-node not found (npm install in bench/, or set ' +
      'SHOAL_ORT_NODE_MODULES to a node_modules folder holding it)\n');
  process.exit(2);
}

async function main() {
  const [model, input, shapeText, output] = process.argv.slice(2);
  if (!output) {
    process.stderr.write('usage: node ort_run.js MODEL.onnx INPUT.f32 N,C,H,W OUTPUT.f32\n');
    process.exit(2);
  }
  const ort = loadOrt();
  const shape = shapeText.split(',').map(Number);
  const buf = fs.readFileSync(input);
  const data = new Float32Array(buf.buffer, buf.byteOffset, buf.byteLength / 4);
  const session = await ort.InferenceSession.create(model, {
    intraOpNumThreads: 1, interOpNumThreads: 1, graphOptimizationLevel: 'all',
    executionProviders: ['cpu'],
  });
  const feeds = {[session.inputNames[0]]: new ort.Tensor('float32', data, shape)};
  const result = await session.run(feeds);
  const y = result[session.outputNames[0]].data;
  fs.writeFileSync(output, Buffer.from(y.buffer, y.byteOffset, y.byteLength));
}

main().catch((e) => {
  process.stderr.write(`ort_run: ${e.message || e}\n`);
  process.exit(1);
});
