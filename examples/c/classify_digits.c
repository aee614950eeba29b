/* Compiles the bundled digits CNN with shoal's C API, saves and reloads the
 * program, classifies the held-out samples and checks them against PyTorch.
 *   classify_digits DIGITS_DIR [out.shoal]
 * Reads DIGITS_DIR/digits_cnn.onnx, heldout_x.npy (float32 N x 1 x 8 x 8),
 * heldout_y.npy (int64 N) and torch_logits.npy (float32 N x 10); prints the
 * accuracy; exits 1 unless every prediction equals PyTorch's. */
#include <shoal/shoal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A minimal .npy reader: little-endian, C order, dtype `descr`. Returns the
 * data (malloc'ed) and its element count, or NULL. */
static void* load_npy(const char* dir, const char* name, const char* descr, size_t elem,
                      size_t* count, long long* dim0) {
  char path[4096], header[1024], want[64];
  unsigned char pre[10];
  void* data = NULL;
  const char* s;
  long long n = 1, d;
  size_t len;
  FILE* f;
  snprintf(path, sizeof path, "%s/%s", dir, name);
  if (!(f = fopen(path, "rb"))) goto fail;
  if (fread(pre, 1, 10, f) != 10 || memcmp(pre, "\x93NUMPY", 6) != 0) goto fail;
  len = pre[8] | (size_t)pre[9] << 8;
  if (len >= sizeof header || fread(header, 1, len, f) != len) goto fail;
  header[len] = 0;
  snprintf(want, sizeof want, "'descr': '%s'", descr);
  if (!strstr(header, want) || !strstr(header, "'fortran_order': False")) goto fail;
  if (!(s = strstr(header, "'shape': ("))) goto fail;
  s += 10;
  *dim0 = strtoll(s, NULL, 10);
  while (*s && *s != ')') {
    char* end;
    d = strtoll(s, &end, 10);
    if (end == s) break;
    n *= d;
    s = end;
    while (*s == ',' || *s == ' ') ++s;
  }
  if (!(data = malloc((size_t)n * elem)) || fread(data, elem, (size_t)n, f) != (size_t)n) goto fail;
  fclose(f);
  *count = (size_t)n;
  return data;
fail:
  fprintf(stderr, "cannot read %s as a %s .npy file\n", path, descr);
  if (f) fclose(f);
  free(data);
  return NULL;
}

static size_t argmax(const float* v, size_t n) {
  size_t i, best = 0;
  for (i = 1; i < n; ++i)
    if (v[i] > v[best]) best = i;
  return best;
}

#define CHECK(call)                                                                           \
  do {                                                                                        \
    int status_ = (call);                                                                     \
    if (status_ != SHOAL_OK) {                                                                \
      fprintf(stderr, "%s: %s: %s\n", #call, shoal_status_name(status_), shoal_last_error()); \
      return 1;                                                                               \
    }                                                                                         \
  } while (0)

int main(int argc, char** argv) {
  const int64_t shape[4] = {1, 1, 8, 8};
  char onnx[4096];
  const char* out_path = argc > 2 ? argv[2] : "digits_c.shoal";
  shoal_program* compiled = NULL;
  shoal_program* program = NULL;
  shoal_runtime* runtime = NULL;
  size_t nx, ny, nt, i, classes, correct = 0, same = 0;
  long long n, ny0, nt0;
  int64_t out_size;
  float *x, *t, *logits;
  long long* y;

  if (argc < 2) {
    fprintf(stderr, "usage: %s DIGITS_DIR [out.shoal]\n", argv[0]);
    return 2;
  }
  if (strcmp(shoal_version(), SHOAL_VERSION) != 0) {
    fprintf(stderr, "headers are shoal %s, library is %s\n", SHOAL_VERSION, shoal_version());
    return 1;
  }
  x = load_npy(argv[1], "heldout_x.npy", "<f4", sizeof(float), &nx, &n);
  y = load_npy(argv[1], "heldout_y.npy", "<i8", sizeof(long long), &ny, &ny0);
  t = load_npy(argv[1], "torch_logits.npy", "<f4", sizeof(float), &nt, &nt0);
  if (!x || !y || !t) return 1;

  snprintf(onnx, sizeof onnx, "%s/digits_cnn.onnx", argv[1]);
  CHECK(shoal_compile(onnx, shape, 4, 1, 0, SHOAL_MODE_AUTO, &compiled));
  CHECK(shoal_program_save(compiled, out_path));
  shoal_program_free(compiled);
  CHECK(shoal_program_load(out_path, &program));
  CHECK(shoal_program_output_size(program, 0, &out_size));
  classes = (size_t)out_size;
  if (nt != (size_t)n * classes || ny != (size_t)n) {
    fprintf(stderr, "the .npy files disagree on the sample count\n");
    return 1;
  }
  CHECK(shoal_runtime_create(program, NULL, 0, &runtime));
  logits = malloc(nt * sizeof(float));
  if (!logits) return 1;
  CHECK(shoal_runtime_run(runtime, x, (size_t)n, logits, nt));
  for (i = 0; i < (size_t)n; ++i) {
    size_t p = argmax(logits + i * classes, classes);
    correct += (long long)p == y[i];
    same += p == argmax(t + i * classes, classes);
  }
  printf("shoal %s (C API): accuracy %.2f%% (%zu/%lld), %zu/%lld predictions equal PyTorch's\n",
         shoal_version(), 100.0 * (double)correct / (double)n, correct, n, same, n);
  shoal_runtime_free(runtime);
  shoal_program_free(program);
  free(logits);
  free(x);
  free(y);
  free(t);
  return same == (size_t)n ? 0 : 1;
}
