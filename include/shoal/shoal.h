/* shoal: the C API (C99), for C programs and FFI bindings.
 *
 *   shoal_program* prog = NULL;
 *   int64_t shape[4] = {1, 3, 224, 224};
 *   if (shoal_compile("model.onnx", shape, 4, 1, 1, 0, &prog) != SHOAL_OK)
 *     fprintf(stderr, "%s\n", shoal_last_error());
 *   shoal_runtime* rt = NULL;
 *   shoal_runtime_create(prog, NULL, 0, &rt);
 *   shoal_runtime_run(rt, input, batch, output, batch * output_size);
 *   shoal_runtime_free(rt);
 *   shoal_program_free(prog);
 *
 * Conventions:
 *  - Every function that can fail returns an int status: SHOAL_OK (0) or one
 *    of the negative SHOAL_ERR_* codes. On failure, shoal_last_error() gives
 *    a message naming what was wrong, and output parameters are untouched.
 *  - NULL handles or pointers where a value is required give
 *    SHOAL_ERR_INVALID_ARGUMENT (never a crash).
 *  - Handles are opaque. A program is immutable and may be shared by threads;
 *    a runtime may be run from several threads at once.
 *  - No C++ exception ever crosses this boundary.
 *  - Shapes are for ONE input sample: the leading (batch) dimension is 1.
 *  - Buffers are float32, dense, C order.
 */
#ifndef SHOAL_SHOAL_H_
#define SHOAL_SHOAL_H_

#include <stddef.h>
#include <stdint.h>

#include "shoal/version.h" /* SHOAL_VERSION_MAJOR/MINOR/PATCH, SHOAL_VERSION */

#if defined(_WIN32)
#define SHOAL_API __declspec(dllexport)
#else
#define SHOAL_API __attribute__((visibility("default")))
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* ---- status codes (mirror shoal::ErrorKind) ------------------------------ */

#define SHOAL_OK 0
#define SHOAL_ERR_INVALID_ARGUMENT (-1) /* bad input: a file, shape, value */
#define SHOAL_ERR_UNSUPPORTED (-2)      /* well-formed, but not supported */
#define SHOAL_ERR_OUT_OF_MEMORY (-3)    /* an allocation failed */
#define SHOAL_ERR_DEVICE (-4)           /* a device failed or is unavailable */
#define SHOAL_ERR_INTERNAL (-5)         /* a bug in shoal */

/* Opaque handles. */
typedef struct shoal_program shoal_program;
typedef struct shoal_runtime shoal_runtime;

/* ---- library ------------------------------------------------------------- */

/* The library version, e.g. "0.1.0". Never NULL; static storage. */
SHOAL_API const char* shoal_version(void);

/* The message of the last failed call on this thread ("" if none failed).
 * Valid until the next failing call on this thread. Never NULL. */
SHOAL_API const char* shoal_last_error(void);

/* A short name for a status code ("ok", "invalid_argument", ...). Never
 * NULL; "unknown" for codes that are not SHOAL_*. */
SHOAL_API const char* shoal_status_name(int status);

/* Number of devices on this host (shoal::devices(): cpu devices, then ref
 * devices), into *count. */
SHOAL_API int shoal_device_count(int* count);

/* The id of the device `name` names ("cpu:0", "ref:0", or an id as text),
 * into *id: what shoal_runtime_create's device_ids take. */
SHOAL_API int shoal_find_device(const char* name, int* id);

/* The name ("cpu:0", "ref:0") of device `id`, NUL-terminated into
 * buf[size]; SHOAL_ERR_INVALID_ARGUMENT when it does not fit. */
SHOAL_API int shoal_device_name(int id, char* buf, size_t size);

/* ---- compiling ----------------------------------------------------------- */

#define SHOAL_MODE_BATCH 0
#define SHOAL_MODE_SPLIT 1
#define SHOAL_MODE_AUTO 2

/* Compiles the ONNX model file at onnx_path into a program.
 *   input_shape, ndim: the input shape for one sample, NCHW (e.g.
 *     {1,3,224,224}); input_shape may be NULL when ndim is 0, meaning the
 *     model's own (static) input shape.
 *   devices:  devices the program will run on (>= 1).
 *   clusters: clusters per device (>= 0; 0 = one per core of each device).
 *   mode:     how clusters share a batch: SHOAL_MODE_BATCH (one input per
 *             cluster), SHOAL_MODE_SPLIT (the SDK's "nobatch": clusters
 *             share each input) or SHOAL_MODE_AUTO (per run: batch when the
 *             batch has an input for every cluster, else split).
 * On success *out receives a new program (free with shoal_program_free). */
SHOAL_API int shoal_compile(const char* onnx_path, const int64_t* input_shape,
                            size_t ndim, int devices, int clusters, int mode,
                            shoal_program** out);

/* As shoal_compile, from an ONNX model held in memory (size bytes). */
SHOAL_API int shoal_compile_bytes(const void* onnx_bytes, size_t size,
                                  const int64_t* input_shape, size_t ndim,
                                  int devices, int clusters, int mode,
                                  shoal_program** out);

#define SHOAL_PRECISION_F32 0
#define SHOAL_PRECISION_BF16 1

/* As shoal_compile, with the precision of Conv/Gemm/MatMul: SHOAL_PRECISION_F32
 * (what shoal_compile does) or SHOAL_PRECISION_BF16 (bf16 weights and inputs,
 * f32 accumulation; SHOAL_ERR_UNSUPPORTED on a CPU without AVX512-BF16 or
 * AMX-BF16). int8: compile a quantized (QDQ) model, as written by
 * `shoal quantize`; its quantized layers run int8 with either function. */
SHOAL_API int shoal_compile_precision(const char* onnx_path, const int64_t* input_shape,
                                      size_t ndim, int devices, int clusters, int mode,
                                      int precision, shoal_program** out);

/* Calibrates the float32 ONNX model at onnx_path on sample inputs
 * (calibration_path: an N x C x H x W .npy file or a directory of .npy
 * files) and writes a QDQ model (int8 weights and activations) to
 * output_path, which shoal_compile then runs in int8. method: "minmax"
 * (NULL), "percentile" or "entropy". The quantizer is shoal's Python package,
 * run in a child process (`python3 -m shoal.quantization`; Python 3 with numpy
 * and python3-onnx): bad calibration data gives SHOAL_ERR_INVALID_ARGUMENT with
 * the quantizer's message, no usable Python SHOAL_ERR_UNSUPPORTED; nothing is
 * written unless it succeeds. */
SHOAL_API int shoal_quantize(const char* onnx_path, const char* calibration_path,
                             const char* method, const char* output_path);

/* ---- programs ------------------------------------------------------------ */

/* Loads a program file written by shoal_program_save or `shoal compile`.
 * A missing or unreadable file gives SHOAL_ERR_INVALID_ARGUMENT. */
SHOAL_API int shoal_program_load(const char* path, shoal_program** out);

/* Parses a program from memory (the bytes of a program file); the bytes
 * are copied, the caller keeps ownership of data. */
SHOAL_API int shoal_program_from_bytes(const void* data, size_t size,
                                       shoal_program** out);

/* Writes the program to a file. */
SHOAL_API int shoal_program_save(const shoal_program* program,
                                 const char* path);

/* Frees a program. NULL is a no-op. Runtimes created from it stay valid
 * (they hold their own reference). */
SHOAL_API void shoal_program_free(shoal_program* program);

/* Number of model inputs / outputs, into *count. */
SHOAL_API int shoal_program_num_inputs(const shoal_program* program,
                                       size_t* count);
SHOAL_API int shoal_program_num_outputs(const shoal_program* program,
                                        size_t* count);

/* Elements of input / output `index` for one input sample (the SDK's
 * "input size" / "output size"), into *elements_per_input. */
SHOAL_API int shoal_program_input_size(const shoal_program* program,
                                       size_t index,
                                       int64_t* elements_per_input);
SHOAL_API int shoal_program_output_size(const shoal_program* program,
                                        size_t index,
                                        int64_t* elements_per_input);

/* Shape of input / output `index` for one sample (leading dim 1). The rank
 * goes to *ndim and the dims to dims[0 .. rank). dims == NULL with
 * capacity == 0 only queries the rank. A capacity smaller than the rank
 * gives SHOAL_ERR_INVALID_ARGUMENT, with *ndim still set. */
SHOAL_API int shoal_program_input_shape(const shoal_program* program,
                                        size_t index, int64_t* dims,
                                        size_t capacity, size_t* ndim);
SHOAL_API int shoal_program_output_shape(const shoal_program* program,
                                         size_t index, int64_t* dims,
                                         size_t capacity, size_t* ndim);

/* ---- runtimes ------------------------------------------------------------ */

/* Loads a program onto devices. device_ids lists n_devices device ids (see
 * `shoal devices`); n_devices == 0 (device_ids may then be NULL) means the
 * program's device count, starting at the first free device. The runtime
 * keeps its own reference to the program. Other options are the C++ API's
 * defaults (micro_batch 8; weights read in place on a one-NUMA-node host,
 * else copied to each device: SHOAL_WEIGHTS=copy|shared overrides that, see
 * docs/DEVICES.md). */
SHOAL_API int shoal_runtime_create(const shoal_program* program,
                                   const int* device_ids, size_t n_devices,
                                   shoal_runtime** out);

/* Frees a runtime. NULL is a no-op. */
SHOAL_API void shoal_runtime_free(shoal_runtime* runtime);

/* Runs a batch through a model with ONE input and ONE output.
 *   input:  batch samples concatenated, batch * input_size floats.
 *   output: receives batch * output_size floats, sample 0's output first,
 *           then sample 1's, ... (input order).
 *   output_capacity_floats: floats available at output; too small gives
 *           SHOAL_ERR_INVALID_ARGUMENT before anything runs.
 * Models with several inputs or outputs need shoal_runtime_run_multi.
 * Non-float32 model outputs are converted to float. */
SHOAL_API int shoal_runtime_run(shoal_runtime* runtime, const float* input,
                                size_t batch, float* output,
                                size_t output_capacity_floats);

/* Runs a batch through a model with any number of inputs and outputs.
 *   inputs[i]:  batch * input_size(i) floats for model input i; n_inputs
 *               must equal the program's input count.
 *   outputs[j]: receives batch * output_size(j) floats for model output j,
 *               in input order; output_capacities[j] floats available.
 *   n_outputs:  must equal the program's output count. */
SHOAL_API int shoal_runtime_run_multi(shoal_runtime* runtime,
                                      const float* const* inputs,
                                      size_t n_inputs, size_t batch,
                                      float* const* outputs,
                                      const size_t* output_capacities,
                                      size_t n_outputs);

/* Wall time of the last run on this runtime, in milliseconds. */
SHOAL_API int shoal_runtime_last_run_ms(const shoal_runtime* runtime,
                                        double* ms);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* SHOAL_SHOAL_H_ */
