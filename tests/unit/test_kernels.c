// Kernel tests. For every op: (1) forward against a naive double-precision reference written here; (2) backward
// against central finite differences of that DOUBLE reference (L = sum(out * R), R fixed and random), at every
// coordinate for small shapes and a random sample for larger ones; (3) the accumulate (+=) convention: backward
// twice onto a non-zero buffer gives buf + 2 * grad. Inputs come from a fixed-seed generator, and are generated in
// f32 then widened, so kernel and reference see identical values.
// Tolerances: forward 1e-5 and gradients 3e-5, both relative to |ref| + max|ref| of the compared array.
// LT_TEST_VERBOSE=1 prints the largest error of every comparison.
#include <omp.h>
#include <stdint.h>
#include "core/core.h"
#include "kernels/kernels.h"
#include "test.h"

#define FWD_TOL 1e-5
#define GRAD_TOL 3e-5
#define FD_H 1e-5

static int verbose = 0;

// ---------------------------------------------------------------- helpers
static uint64_t rng_state = 0x2545F4914F6CDD1Dull;
static double urand(void) {  // xorshift64*, [0, 1)
  rng_state ^= rng_state >> 12;
  rng_state ^= rng_state << 25;
  rng_state ^= rng_state >> 27;
  return (double)((rng_state * 0x2545F4914F6CDD1Dull) >> 11) * (1.0 / 9007199254740992.0);
}
static float frand(void) { return (float)(2.0 * urand() - 1.0); }  // [-1, 1)
static void fill(float *a, int64_t n, float s) {
  for (int64_t i = 0; i < n; i++) a[i] = s * frand();
}
static void fill_nan(float *a, int64_t n) {
  for (int64_t i = 0; i < n; i++) a[i] = NAN;
}
static float *falloc(int64_t n) {
  float *p = calloc((size_t)(n > 0 ? n : 1), sizeof(float));
  if (!p) abort();
  return p;
}
static double *dalloc(int64_t n) {
  double *p = calloc((size_t)(n > 0 ? n : 1), sizeof(double));
  if (!p) abort();
  return p;
}
static double *widen(const float *f, int64_t n) {
  double *d = dalloc(n);
  for (int64_t i = 0; i < n; i++) d[i] = f[i];
  return d;
}
static float *fcopy(const float *f, int64_t n) {
  float *p = falloc(n);
  memcpy(p, f, (size_t)n * sizeof(float));
  return p;
}
static double dot(const double *a, const double *b, int64_t n) {
  double s = 0.0;
  for (int64_t i = 0; i < n; i++) s += a[i] * b[i];
  return s;
}

// got (f32) vs ref (double): |got - ref| <= rtol * (|ref| + max|ref|); -inf must match exactly.
static void check_close(const char *what, const float *got, const double *ref, int64_t n, double rtol) {
  double scale = 0.0, maxerr = 0.0;
  for (int64_t i = 0; i < n; i++)
    if (isfinite(ref[i]) && fabs(ref[i]) > scale) scale = fabs(ref[i]);
  int64_t bad = 0, first = -1;
  for (int64_t i = 0; i < n; i++) {
    int ok;
    if (isinf(ref[i]) || isinf(got[i]) || isnan(got[i]) || isnan(ref[i])) {
      ok = (double)got[i] == ref[i];
    } else {
      double err = fabs((double)got[i] - ref[i]);
      if (err > maxerr) maxerr = err;
      ok = err <= rtol * (fabs(ref[i]) + scale);
    }
    if (!ok) {
      if (first < 0) first = i;
      bad++;
    }
  }
  if (verbose) fprintf(stderr, "  %-40s n=%-7lld max err %.3g (rel to max %.3g)\n", what, (long long)n, maxerr,
                       scale > 0 ? maxerr / scale : maxerr);
  CHECK_MSG(bad == 0, "%s: %lld/%lld mismatches, first [%lld] got %.9g ref %.9g (max err %.3g, scale %.3g)", what,
            (long long)bad, (long long)n, (long long)first, first >= 0 ? got[first] : 0.0, first >= 0 ? ref[first] : 0.0,
            maxerr, scale);
}

// Exact-equality of two f32 arrays (e.g. a gradient computed with some pointers NULL).
static void check_equal(const char *what, const float *a, const float *b, int64_t n) {
  int64_t bad = 0;
  for (int64_t i = 0; i < n; i++) bad += !(a[i] == b[i]);
  CHECK_MSG(bad == 0, "%s: %lld/%lld differ", what, (long long)bad, (long long)n);
}

// Accumulate convention: after = before + 2 * g.
static void check_accum(const char *what, const float *before, const float *after, const float *g, int64_t n) {
  double *ref = dalloc(n);
  for (int64_t i = 0; i < n; i++) ref[i] = (double)before[i] + 2.0 * g[i];
  check_close(what, after, ref, n, FWD_TOL);
  free(ref);
}

typedef double (*loss_fn)(void *ctx);

// analytic (f32 gradient of the loss) vs central differences of the double loss wrt param[i] (param is read by L).
// All coordinates if n <= nsample, else nsample random ones.
static void check_grad(const char *what, const float *analytic, double *param, int64_t n, int nsample, loss_fn L,
                       void *ctx) {
  int64_t m = n <= nsample ? n : nsample;
  int64_t *idx = malloc((size_t)m * sizeof(int64_t));
  double *fd = dalloc(m);
  float *an = falloc(m);
  for (int64_t s = 0; s < m; s++) {
    int64_t i = n <= nsample ? s : (int64_t)(urand() * (double)n);
    idx[s] = i;
    double o = param[i];
    param[i] = o + FD_H;
    double lp = L(ctx);
    param[i] = o - FD_H;
    double lm = L(ctx);
    param[i] = o;
    fd[s] = (lp - lm) / (2.0 * FD_H);
    an[s] = analytic[i];
  }
  check_close(what, an, fd, m, GRAD_TOL);
  free(idx);
  free(fd);
  free(an);
}

// ---------------------------------------------------------------- linear
typedef struct {
  int N, C, OC;
  double *x, *w, *b, *R;
} lin_ctx;

static void ref_linear(double *y, const double *x, const double *w, const double *b, int N, int C, int OC) {
  for (int n = 0; n < N; n++)
    for (int o = 0; o < OC; o++) {
      double s = b ? b[o] : 0.0;
      for (int c = 0; c < C; c++) s += x[(int64_t)n * C + c] * w[(int64_t)o * C + c];
      y[(int64_t)n * OC + o] = s;
    }
}
static double lin_loss(void *p) {
  lin_ctx *c = p;
  double *y = dalloc((int64_t)c->N * c->OC);
  ref_linear(y, c->x, c->w, c->b, c->N, c->C, c->OC);
  double l = dot(y, c->R, (int64_t)c->N * c->OC);
  free(y);
  return l;
}

static void test_linear(int N, int C, int OC, int with_bias, int nsample) {
  fprintf(stderr, "linear N=%d C=%d OC=%d bias=%d\n", N, C, OC, with_bias);
  int64_t nx = (int64_t)N * C, nw = (int64_t)OC * C, ny = (int64_t)N * OC;
  float *x = falloc(nx), *w = falloc(nw), *b = falloc(OC), *y = falloc(ny), *R = falloc(ny);
  fill(x, nx, 1.0f), fill(w, nw, 0.5f), fill(b, OC, 1.0f), fill(R, ny, 1.0f);
  lin_ctx c = {N, C, OC, widen(x, nx), widen(w, nw), with_bias ? widen(b, OC) : NULL, widen(R, ny)};
  double *yr = dalloc(ny);
  ref_linear(yr, c.x, c.w, c.b, N, C, OC);

  fill_nan(y, ny);
  lt_linear_forward(y, x, w, with_bias ? b : NULL, N, C, OC, 0);
  check_close("linear fwd", y, yr, ny, FWD_TOL);
  float *y0 = falloc(ny), *y2;
  fill(y0, ny, 1.0f);
  y2 = fcopy(y0, ny);
  lt_linear_forward(y2, x, w, with_bias ? b : NULL, N, C, OC, 1);
  double *yacc = dalloc(ny);
  for (int64_t i = 0; i < ny; i++) yacc[i] = y0[i] + yr[i];
  check_close("linear fwd accumulate", y2, yacc, ny, FWD_TOL);

  float *dx = falloc(nx), *dw = falloc(nw), *db = falloc(OC);
  lt_linear_backward(dx, dw, with_bias ? db : NULL, R, x, w, N, C, OC);
  check_grad("linear dx", dx, c.x, nx, nsample, lin_loss, &c);
  check_grad("linear dw", dw, c.w, nw, nsample, lin_loss, &c);
  if (with_bias) check_grad("linear db", db, c.b, OC, nsample, lin_loss, &c);

  float *ax = falloc(nx), *aw = falloc(nw), *ab = falloc(OC);
  fill(ax, nx, 1.0f), fill(aw, nw, 1.0f), fill(ab, OC, 1.0f);
  float *bx = fcopy(ax, nx), *bw = fcopy(aw, nw), *bb = fcopy(ab, OC);
  for (int rep = 0; rep < 2; rep++) lt_linear_backward(bx, bw, with_bias ? bb : NULL, R, x, w, N, C, OC);
  check_accum("linear dx accumulate", ax, bx, dx, nx);
  check_accum("linear dw accumulate", aw, bw, dw, nw);
  if (with_bias) check_accum("linear db accumulate", ab, bb, db, OC);
  else check_equal("linear db untouched when NULL", ab, bb, OC);

  float *dx2 = falloc(nx);
  lt_linear_backward(dx2, NULL, NULL, R, x, w, N, C, OC);
  check_equal("linear dx alone", dx2, dx, nx);

  free(x), free(w), free(b), free(y), free(R), free(c.x), free(c.w), free(c.b), free(c.R), free(yr), free(y0), free(y2);
  free(yacc), free(dx), free(dw), free(db), free(ax), free(aw), free(ab), free(bx), free(bw), free(bb), free(dx2);
}

// ---------------------------------------------------------------- embedding
typedef struct {
  int N, C;
  const int32_t *ids;
  double *wte, *R;
} emb_ctx;

static double emb_loss(void *p) {
  emb_ctx *c = p;
  double l = 0.0;
  for (int n = 0; n < c->N; n++)
    for (int i = 0; i < c->C; i++) l += c->wte[(int64_t)c->ids[n] * c->C + i] * c->R[(int64_t)n * c->C + i];
  return l;
}

static void test_embedding(int N, int C, int V, int nsample) {
  fprintf(stderr, "embedding N=%d C=%d V=%d\n", N, C, V);
  int32_t *ids = malloc((size_t)N * sizeof(int32_t));
  for (int n = 0; n < N; n++) ids[n] = (n % 3 == 1) ? 3 % V : (int32_t)(urand() * V);  // id 3 repeats
  int64_t nw = (int64_t)V * C, no = (int64_t)N * C;
  float *wte = falloc(nw), *out = falloc(no), *R = falloc(no);
  fill(wte, nw, 1.0f), fill(R, no, 1.0f);
  fill_nan(out, no);
  lt_embedding_forward(out, ids, wte, N, C);
  double *ref = dalloc(no);
  for (int n = 0; n < N; n++)
    for (int i = 0; i < C; i++) ref[(int64_t)n * C + i] = wte[(int64_t)ids[n] * C + i];
  check_close("embedding fwd", out, ref, no, 0.0);

  emb_ctx c = {N, C, ids, widen(wte, nw), widen(R, no)};
  float *dw = falloc(nw);
  lt_embedding_backward(dw, R, ids, N, C);
  check_grad("embedding dwte", dw, c.wte, nw, nsample, emb_loss, &c);
  float *a = falloc(nw);
  fill(a, nw, 1.0f);
  float *b = fcopy(a, nw);
  for (int rep = 0; rep < 2; rep++) lt_embedding_backward(b, R, ids, N, C);
  check_accum("embedding dwte accumulate", a, b, dw, nw);
  free(ids), free(wte), free(out), free(R), free(ref), free(c.wte), free(c.R), free(dw), free(a), free(b);
}

// ---------------------------------------------------------------- rmsnorm
typedef struct {
  int N, C;
  double eps;
  double *x, *w, *R;
} rms_ctx;

static void ref_rmsnorm(double *y, double *rstd, const double *x, const double *w, int N, int C, double eps) {
  for (int n = 0; n < N; n++) {
    const double *xr = x + (int64_t)n * C;
    double ss = 0.0;
    for (int i = 0; i < C; i++) ss += xr[i] * xr[i];
    double r = 1.0 / sqrt(ss / C + eps);
    if (rstd) rstd[n] = r;
    for (int i = 0; i < C; i++) y[(int64_t)n * C + i] = w[i] * xr[i] * r;
  }
}
static double rms_loss(void *p) {
  rms_ctx *c = p;
  double *y = dalloc((int64_t)c->N * c->C);
  ref_rmsnorm(y, NULL, c->x, c->w, c->N, c->C, c->eps);
  double l = dot(y, c->R, (int64_t)c->N * c->C);
  free(y);
  return l;
}

static void test_rmsnorm(int N, int C, float eps, int nsample) {
  fprintf(stderr, "rmsnorm N=%d C=%d eps=%g\n", N, C, eps);
  int64_t nx = (int64_t)N * C;
  float *x = falloc(nx), *w = falloc(C), *y = falloc(nx), *rstd = falloc(N), *R = falloc(nx);
  for (int n = 0; n < N; n++)  // rows of very different scales
    for (int i = 0; i < C; i++) x[(int64_t)n * C + i] = frand() * powf(10.0f, (float)(n % 4) - 1.0f);
  for (int i = 0; i < C; i++) w[i] = 1.0f + 0.5f * frand();
  fill(R, nx, 1.0f);
  rms_ctx c = {N, C, eps, widen(x, nx), widen(w, C), widen(R, nx)};
  double *yr = dalloc(nx), *rr = dalloc(N);
  ref_rmsnorm(yr, rr, c.x, c.w, N, C, (double)eps);
  fill_nan(y, nx);
  lt_rmsnorm_forward(y, rstd, x, w, N, C, eps);
  check_close("rmsnorm fwd y", y, yr, nx, FWD_TOL);
  check_close("rmsnorm fwd rstd", rstd, rr, N, FWD_TOL);

  float *dx = falloc(nx), *dw = falloc(C);
  lt_rmsnorm_backward(dx, dw, R, x, w, rstd, N, C);
  check_grad("rmsnorm dx", dx, c.x, nx, nsample, rms_loss, &c);
  check_grad("rmsnorm dw", dw, c.w, C, nsample, rms_loss, &c);
  float *ax = falloc(nx), *aw = falloc(C);
  fill(ax, nx, 1.0f), fill(aw, C, 1.0f);
  float *bx = fcopy(ax, nx), *bw = fcopy(aw, C);
  for (int rep = 0; rep < 2; rep++) lt_rmsnorm_backward(bx, bw, R, x, w, rstd, N, C);
  check_accum("rmsnorm dx accumulate", ax, bx, dx, nx);
  check_accum("rmsnorm dw accumulate", aw, bw, dw, C);
  float *dx2 = falloc(nx), *dw2 = falloc(C);
  lt_rmsnorm_backward(dx2, NULL, R, x, w, rstd, N, C);
  lt_rmsnorm_backward(NULL, dw2, R, x, w, rstd, N, C);
  check_equal("rmsnorm dx alone", dx2, dx, nx);
  check_equal("rmsnorm dw alone", dw2, dw, C);
  // the AVX-512 and the portable row sums add in the same order: the same bits either way
  if (!getenv("LMTUNE_NO_AVX512")) {
    float *y3 = falloc(nx), *r3 = falloc(N), *dx3 = falloc(nx);
    setenv("LMTUNE_NO_AVX512", "1", 1);
    lt_rmsnorm_forward(y3, r3, x, w, N, C, eps);
    lt_rmsnorm_backward(dx3, NULL, R, x, w, rstd, N, C);
    unsetenv("LMTUNE_NO_AVX512");
    check_equal("rmsnorm fwd y portable", y3, y, nx);
    check_equal("rmsnorm fwd rstd portable", r3, rstd, N);
    check_equal("rmsnorm dx portable", dx3, dx, nx);
    free(y3), free(r3), free(dx3);
  }
  // the bf16 rows for the products (rows of C rounded up to even, the odd C's last 0): y rounded as
  // lt_f32_to_bf16_st rounds it, whether y is written too or not
  if (lt_cpu_has_avx512bf16()) {
    int64_t ld = 2 * (int64_t)((C + 1) / 2), nb = (int64_t)N * ld;
    uint16_t *want = calloc((size_t)nb, 2), *yb = malloc(2 * (size_t)nb), *yb2 = malloc(2 * (size_t)nb);
    float *y4 = falloc(nx), *r4 = falloc(N);
    for (int n = 0; n < N; n++) lt_f32_to_bf16_st(want + n * ld, y + (int64_t)n * C, C);
    memset(yb, 0xff, 2 * (size_t)nb), memset(yb2, 0xff, 2 * (size_t)nb);
    lt_rmsnorm_forward_b16(y4, yb, r4, x, w, N, C, eps);
    lt_rmsnorm_forward_b16(NULL, yb2, NULL, x, w, N, C, eps);
    CHECK_MSG(!memcmp(yb, want, 2 * (size_t)nb), "rmsnorm bf16 rows (with y) N=%d C=%d: not y's rounding", N, C);
    CHECK_MSG(!memcmp(yb2, want, 2 * (size_t)nb), "rmsnorm bf16 rows alone N=%d C=%d: not y's rounding", N, C);
    check_equal("rmsnorm bf16 y", y4, y, nx);
    check_equal("rmsnorm bf16 rstd", r4, rstd, N);
    free(want), free(yb), free(yb2), free(y4), free(r4);
  }
  free(x), free(w), free(y), free(rstd), free(R), free(c.x), free(c.w), free(c.R), free(yr), free(rr), free(dx), free(dw);
  free(ax), free(aw), free(bx), free(bw), free(dx2), free(dw2);
}

// ---------------------------------------------------------------- rope
typedef struct {
  int N, nh, D;
  const int32_t *pos;
  const float *inv_freq;
  double *x, *R;
} rope_ctx;

// Angles exactly as transformers: f32 product (float)pos * inv_freq, then cos/sin of that float.
static void ref_rope(double *y, const double *x, const int32_t *pos, const float *inv_freq, int N, int nh, int D) {
  int half = D / 2;
  for (int n = 0; n < N; n++)
    for (int h = 0; h < nh; h++)
      for (int i = 0; i < half; i++) {
        float a = (float)pos[n] * inv_freq[i];
        double cs = cos((double)a), sn = sin((double)a);
        int64_t o = ((int64_t)n * nh + h) * D;
        double x1 = x[o + i], x2 = x[o + i + half];
        y[o + i] = x1 * cs - x2 * sn;
        y[o + i + half] = x2 * cs + x1 * sn;
      }
}
static double rope_loss(void *p) {
  rope_ctx *c = p;
  int64_t n = (int64_t)c->N * c->nh * c->D;
  double *y = dalloc(n);
  ref_rope(y, c->x, c->pos, c->inv_freq, c->N, c->nh, c->D);
  double l = dot(y, c->R, n);
  free(y);
  return l;
}

static void test_rope(int N, int nh, int D, int nsample) {
  fprintf(stderr, "rope N=%d nh=%d D=%d\n", N, nh, D);
  int64_t n = (int64_t)N * nh * D;
  int32_t *pos = malloc((size_t)N * sizeof(int32_t));
  const int32_t some[] = {0, 3, 17, 100, 2047, 1, 511, 4095};
  for (int i = 0; i < N; i++) pos[i] = i < 8 ? some[i] : (int32_t)(urand() * 8192);
  float *inv_freq = falloc(D / 2);
  for (int i = 0; i < D / 2; i++) inv_freq[i] = 1.0f / powf(10000.0f, (float)(2 * i) / (float)D);
  float *x = falloc(n), *R = falloc(n);
  fill(x, n, 1.0f), fill(R, n, 1.0f);
  rope_ctx c = {N, nh, D, pos, inv_freq, widen(x, n), widen(R, n)};
  double *yr = dalloc(n);
  ref_rope(yr, c.x, pos, inv_freq, N, nh, D);
  float *y = fcopy(x, n);
  lt_rope_forward(y, pos, inv_freq, N, nh, D);
  check_close("rope fwd", y, yr, n, FWD_TOL);
  // The reference must be sensitive to the f32 angle convention at large positions (guards the test itself).
  if (N > 4) {
    float a = (float)pos[4] * inv_freq[1];
    CHECK((double)a != (double)pos[4] * (double)inv_freq[1]);
  }
  // backward: in place, dy -> dx (not an accumulation)
  float *d = fcopy(R, n);
  lt_rope_backward(d, pos, inv_freq, N, nh, D);
  check_grad("rope dx", d, c.x, n, nsample, rope_loss, &c);
  // the table forms: the same bits both ways
  {
    float *tab = falloc(2 * (int64_t)N * (D / 2)), *yt = fcopy(x, n), *dt = fcopy(R, n);
    lt_rope_table(tab, pos, inv_freq, N, D);
    lt_rope_forward_tab(yt, tab, N, nh, D);
    lt_rope_backward_tab(dt, tab, N, nh, D);
    CHECK_MSG(!memcmp(yt, y, sizeof(float) * (size_t)n) && !memcmp(dt, d, sizeof(float) * (size_t)n),
              "rope N=%d nh=%d D=%d: the table forms differ", N, nh, D);
    free(tab), free(yt), free(dt);
  }
  // backward(forward(x)) == x
  lt_rope_backward(y, pos, inv_freq, N, nh, D);
  check_close("rope roundtrip", y, c.x, n, FWD_TOL);
  free(pos), free(inv_freq), free(x), free(R), free(c.x), free(c.R), free(yr), free(y), free(d);
}

// ---------------------------------------------------------------- swiglu
typedef struct {
  int n;
  double *g, *u, *R;
} swi_ctx;

static double ref_silu(double g) { return g / (1.0 + exp(-g)); }
static double swi_loss(void *p) {
  swi_ctx *c = p;
  double l = 0.0;
  for (int i = 0; i < c->n; i++) l += ref_silu(c->g[i]) * c->u[i] * c->R[i];
  return l;
}

static void test_swiglu(int n, int nsample) {
  fprintf(stderr, "swiglu n=%d\n", n);
  float *g = falloc(n), *u = falloc(n), *h = falloc(n), *R = falloc(n);
  fill(g, n, 4.0f), fill(u, n, 1.0f), fill(R, n, 1.0f);
  const float extremes[] = {-20.0f, 20.0f, 0.0f, -90.0f, 90.0f, 1e-4f};
  for (int i = 0; i < 6 && i < n; i++) g[i] = extremes[i];
  swi_ctx c = {n, widen(g, n), widen(u, n), widen(R, n)};
  double *hr = dalloc(n);
  for (int i = 0; i < n; i++) hr[i] = ref_silu(c.g[i]) * c.u[i];
  fill_nan(h, n);
  lt_swiglu_forward(h, g, u, n);
  check_close("swiglu fwd", h, hr, n, FWD_TOL);
  float *dg = falloc(n), *du = falloc(n);
  lt_swiglu_backward(dg, du, R, g, u, n);
  check_grad("swiglu dg", dg, c.g, n, nsample, swi_loss, &c);
  check_grad("swiglu du", du, c.u, n, nsample, swi_loss, &c);
  float *ag = falloc(n), *au = falloc(n);
  fill(ag, n, 1.0f), fill(au, n, 1.0f);
  float *bg = fcopy(ag, n), *bu = fcopy(au, n);
  for (int rep = 0; rep < 2; rep++) lt_swiglu_backward(bg, bu, R, g, u, n);
  check_accum("swiglu dg accumulate", ag, bg, dg, n);
  check_accum("swiglu du accumulate", au, bu, du, n);
  float *dg2 = falloc(n);
  lt_swiglu_backward(dg2, NULL, R, g, u, n);
  check_equal("swiglu dg alone", dg2, dg, n);
  float *og = falloc(n), *ou = falloc(n);  // overwriting: whatever was there (NaN here) does not matter
  fill_nan(og, n), fill_nan(ou, n);
  lt_swiglu_backward_ex(og, ou, R, g, u, n, 0);
  check_equal("swiglu dg overwrite", og, dg, n);
  check_equal("swiglu du overwrite", ou, du, n);
  free(og), free(ou);
  // gate and up kept in bf16: the values are lt_f32_to_bf16's, and h, dg, du are the f32 functions' bits on the
  // widened values, in the AVX-512 code and in the portable code
  for (int pass = 0; pass < 2; pass++) {
    int had = getenv("LMTUNE_NO_AVX512") != NULL;
    if (pass == 1 && !had) setenv("LMTUNE_NO_AVX512", "1", 1);
    uint16_t *g16 = malloc(2 * (size_t)n), *u16 = malloc(2 * (size_t)n);
    float *kh = falloc(n), *gw = falloc(n), *uw = falloc(n), *hw = falloc(n), *kg = falloc(n), *ku = falloc(n);
    float *wg = falloc(n), *wu = falloc(n);
    if (n > 7) g[7] = NAN, u[3] = -NAN;  // NaN stays NaN (quiet) on the way to bf16
    lt_swiglu_forward_keep(kh, NULL, g16, u16, g, u, n);
    int badr = 0;
    for (int i = 0; i < n; i++) {
      badr += g16[i] != lt_f32_to_bf16(g[i]) || u16[i] != lt_f32_to_bf16(u[i]);
      gw[i] = lt_bf16_to_f32(g16[i]), uw[i] = lt_bf16_to_f32(u16[i]);
    }
    CHECK_MSG(badr == 0, "swiglu keep (pass %d): %d values not rounded as lt_f32_to_bf16", pass, badr);
    lt_swiglu_forward(hw, gw, uw, n);
    CHECK_MSG(!memcmp(kh, hw, 4 * (size_t)n), "swiglu keep (pass %d): h differs from the widened values'", pass);
    fill_nan(kh, n);
    lt_swiglu_forward_b(kh, g16, u16, n);
    CHECK_MSG(!memcmp(kh, hw, 4 * (size_t)n), "swiglu forward_b (pass %d): h differs", pass);
    fill_nan(kg, n), fill_nan(ku, n);
    lt_swiglu_backward_b(kg, NULL, ku, R, g16, u16, n);
    lt_swiglu_backward_ex(wg, wu, R, gw, uw, n, 0);
    CHECK_MSG(!memcmp(kg, wg, 4 * (size_t)n) && !memcmp(ku, wu, 4 * (size_t)n),
              "swiglu backward_b (pass %d): dg/du differ from the widened values'", pass);
    // the bf16 copies for the next product: the same h, dg, du, and hb, dgb rounded as the GEMM rounds its input
    uint16_t *hb = malloc(2 * (size_t)n), *dgb = malloc(2 * (size_t)n), *want = malloc(2 * (size_t)n);
    lt_swiglu_forward_keep(kh, hb, g16, u16, g, u, n);
    CHECK_MSG(!memcmp(kh, hw, 4 * (size_t)n), "swiglu keep with hb (pass %d): h differs", pass);
    lt_f32_to_bf16_n(want, hw, n);
    CHECK_MSG(!memcmp(hb, want, 2 * (size_t)n), "swiglu keep (pass %d): hb is not h's GEMM rounding", pass);
    fill_nan(kg, n), fill_nan(ku, n);
    lt_swiglu_backward_b(kg, dgb, ku, R, g16, u16, n);
    CHECK_MSG(!memcmp(kg, wg, 4 * (size_t)n) && !memcmp(ku, wu, 4 * (size_t)n),
              "swiglu backward_b with dgb (pass %d): dg/du differ", pass);
    lt_f32_to_bf16_n(want, wg, n);
    CHECK_MSG(!memcmp(dgb, want, 2 * (size_t)n), "swiglu backward_b (pass %d): dgb is not dg's GEMM rounding", pass);
    free(hb), free(dgb), free(want);
    if (n > 7) g[7] = 0.5f, u[3] = 0.5f;
    if (pass == 1 && !had) unsetenv("LMTUNE_NO_AVX512");
    free(g16), free(u16), free(kh), free(gw), free(uw), free(hw), free(kg), free(ku), free(wg), free(wu);
  }
  free(g), free(u), free(h), free(R), free(c.g), free(c.u), free(c.R), free(hr), free(dg), free(du), free(ag), free(au);
  free(bg), free(bu), free(dg2);
}

// ---------------------------------------------------------------- attention
typedef struct {
  int T, p0, H, KV, D, window;
  const uint8_t *kmask;
  double *q, *k, *v, *R;
} att_ctx;

static void ref_attention(double *out, double *lse, const double *q, const double *k, const double *v,
                          const uint8_t *kmask, int T, int p0, int H, int KV, int D, int window) {
  int L = p0 + T, G = H / KV;
  double scale = 1.0 / sqrt((double)D);
  double *s = dalloc(L);
  for (int h = 0; h < H; h++)
    for (int t = 0; t < T; t++) {
      int qp = p0 + t, kh = h / G;
      double m = -INFINITY;
      for (int j = 0; j < L; j++) {
        int vis = j <= qp && (!kmask || kmask[j]) && (window <= 0 || qp - j < window);
        s[j] = -INFINITY;
        if (!vis) continue;
        double d = 0.0;
        for (int i = 0; i < D; i++) d += q[(int64_t)t * H * D + h * D + i] * k[(int64_t)j * KV * D + kh * D + i];
        s[j] = d * scale;
        if (s[j] > m) m = s[j];
      }
      double *o = out + (int64_t)t * H * D + h * D;
      for (int i = 0; i < D; i++) o[i] = 0.0;
      if (m == -INFINITY) {
        if (lse) lse[(int64_t)h * T + t] = -INFINITY;
        continue;
      }
      double sum = 0.0;
      for (int j = 0; j < L; j++) sum += s[j] == -INFINITY ? 0.0 : exp(s[j] - m);
      for (int j = 0; j < L; j++) {
        if (s[j] == -INFINITY) continue;
        double p = exp(s[j] - m) / sum;
        for (int i = 0; i < D; i++) o[i] += p * v[(int64_t)j * KV * D + kh * D + i];
      }
      if (lse) lse[(int64_t)h * T + t] = m + log(sum);
    }
  free(s);
}
// Double-precision reference backward (plain softmax Jacobian), used to check every coordinate of the gradients;
// finite differences check it (and the kernel) on the sampled coordinates.
static void ref_attention_backward(double *dq, double *dk, double *dv, const double *dout, const double *q,
                                   const double *k, const double *v, const uint8_t *kmask, int T, int p0, int H,
                                   int KV, int D, int window) {
  int L = p0 + T, G = H / KV;
  double scale = 1.0 / sqrt((double)D);
  double *p = dalloc(L), *dp = dalloc(L);
  for (int h = 0; h < H; h++)
    for (int t = 0; t < T; t++) {
      int qp = p0 + t, kh = h / G;
      const double *qr = q + (int64_t)t * H * D + h * D, *dor = dout + (int64_t)t * H * D + h * D;
      double m = -INFINITY;
      for (int j = 0; j < L; j++) {
        int vis = j <= qp && (!kmask || kmask[j]) && (window <= 0 || qp - j < window);
        p[j] = -INFINITY;
        if (!vis) continue;
        p[j] = scale * dot(qr, k + (int64_t)j * KV * D + kh * D, D);
        if (p[j] > m) m = p[j];
      }
      if (m == -INFINITY) continue;
      double sum = 0.0, pdp = 0.0;
      for (int j = 0; j < L; j++) sum += p[j] == -INFINITY ? 0.0 : exp(p[j] - m);
      for (int j = 0; j < L; j++) {
        p[j] = p[j] == -INFINITY ? 0.0 : exp(p[j] - m) / sum;
        dp[j] = dot(dor, v + (int64_t)j * KV * D + kh * D, D);
        pdp += p[j] * dp[j];
      }
      for (int j = 0; j < L; j++) {
        double ds = p[j] * (dp[j] - pdp) * scale;
        for (int i = 0; i < D; i++) {
          dv[(int64_t)j * KV * D + kh * D + i] += p[j] * dor[i];
          dq[(int64_t)t * H * D + h * D + i] += ds * k[(int64_t)j * KV * D + kh * D + i];
          dk[(int64_t)j * KV * D + kh * D + i] += ds * qr[i];
        }
      }
    }
  free(p), free(dp);
}

static double att_loss(void *p) {
  att_ctx *c = p;
  int64_t no = (int64_t)c->T * c->H * c->D;
  double *o = dalloc(no);
  ref_attention(o, NULL, c->q, c->k, c->v, c->kmask, c->T, c->p0, c->H, c->KV, c->D, c->window);
  double l = dot(o, c->R, no);
  free(o);
  return l;
}

static void test_attention(const char *name, int H, int KV, int D, int T, int p0, int window, const uint8_t *kmask,
                           int nsample, int expect_masked_row) {
  int L = p0 + T;
  fprintf(stderr, "attention %s: H=%d KV=%d D=%d T=%d p0=%d window=%d kmask=%s\n", name, H, KV, D, T, p0, window,
          kmask ? "yes" : "no");
  int64_t nq = (int64_t)T * H * D, nk = (int64_t)L * KV * D, nl = (int64_t)H * T;
  float *q = falloc(nq), *k = falloc(nk), *v = falloc(nk), *R = falloc(nq);
  fill(q, nq, 1.5f), fill(k, nk, 1.5f), fill(v, nk, 1.0f), fill(R, nq, 1.0f);
  att_ctx c = {T, p0, H, KV, D, window, kmask, widen(q, nq), widen(k, nk), widen(v, nk), widen(R, nq)};
  double *orf = dalloc(nq), *lrf = dalloc(nl);
  ref_attention(orf, lrf, c.q, c.k, c.v, kmask, T, p0, H, KV, D, window);
  double *dqr = dalloc(nq), *dkr = dalloc(nk), *dvr = dalloc(nk);
  ref_attention_backward(dqr, dkr, dvr, c.R, c.q, c.k, c.v, kmask, T, p0, H, KV, D, window);
  int masked_rows = 0;
  for (int64_t i = 0; i < nl; i++) masked_rows += lrf[i] == -INFINITY;
  CHECK_MSG(!!masked_rows == !!expect_masked_row, "%s: %d fully masked rows", name, masked_rows);

  int saved = omp_get_max_threads();
  // 1 thread: the kv-head-parallel backward; KV+1 threads: the two-pass backward; 4: more threads than tiles.
  const int thread_settings[] = {1, KV + 1, 4};
  float *out0 = NULL, *dq0 = NULL, *dk0 = NULL, *dv0 = NULL;
  for (int ts = 0; ts < 3; ts++) {
    int nth = thread_settings[ts];
    char what[160];
    omp_set_num_threads(nth);
    int64_t ns = lt_attention_scratch(T, L);
    float *scratch = falloc(ns), *out = falloc(nq), *lse = falloc(nl);
    fill_nan(scratch, ns), fill_nan(out, nq), fill_nan(lse, nl);
    lt_attention_forward(out, lse, q, k, v, kmask, T, p0, H, KV, D, window, scratch);
    snprintf(what, sizeof what, "attn %s t%d fwd out", name, nth);
    check_close(what, out, orf, nq, FWD_TOL);
    snprintf(what, sizeof what, "attn %s t%d fwd lse", name, nth);
    check_close(what, lse, lrf, nl, FWD_TOL);

    float *dq = falloc(nq), *dk = falloc(nk), *dv = falloc(nk);
    fill_nan(scratch, ns);
    lt_attention_backward(dq, dk, dv, R, out, lse, q, k, v, kmask, T, p0, H, KV, D, window, scratch);
    snprintf(what, sizeof what, "attn %s t%d dq vs ref", name, nth);
    check_close(what, dq, dqr, nq, FWD_TOL);
    snprintf(what, sizeof what, "attn %s t%d dk vs ref", name, nth);
    check_close(what, dk, dkr, nk, FWD_TOL);
    snprintf(what, sizeof what, "attn %s t%d dv vs ref", name, nth);
    check_close(what, dv, dvr, nk, FWD_TOL);
    if (ts == 0 || nq + nk <= nsample) {  // larger shapes: finite differences once (the ref checks every mode)
      snprintf(what, sizeof what, "attn %s t%d dq", name, nth);
      check_grad(what, dq, c.q, nq, nsample, att_loss, &c);
      snprintf(what, sizeof what, "attn %s t%d dk", name, nth);
      check_grad(what, dk, c.k, nk, nsample, att_loss, &c);
      snprintf(what, sizeof what, "attn %s t%d dv", name, nth);
      check_grad(what, dv, c.v, nk, nsample, att_loss, &c);
    }

    float *aq = falloc(nq), *ak = falloc(nk), *av = falloc(nk);
    fill(aq, nq, 1.0f), fill(ak, nk, 1.0f), fill(av, nk, 1.0f);
    float *bq = fcopy(aq, nq), *bk = fcopy(ak, nk), *bv = fcopy(av, nk);
    for (int rep = 0; rep < 2; rep++)
      lt_attention_backward(bq, bk, bv, R, out, lse, q, k, v, kmask, T, p0, H, KV, D, window, scratch);
    snprintf(what, sizeof what, "attn %s t%d dq accumulate", name, nth);
    check_accum(what, aq, bq, dq, nq);
    snprintf(what, sizeof what, "attn %s t%d dk accumulate", name, nth);
    check_accum(what, ak, bk, dk, nk);
    snprintf(what, sizeof what, "attn %s t%d dv accumulate", name, nth);
    check_accum(what, av, bv, dv, nk);

    // Subsets of gradients give the same values.
    float *sq = falloc(nq), *sk = falloc(nk), *sv = falloc(nk);
    lt_attention_backward(sq, NULL, NULL, R, out, lse, q, k, v, kmask, T, p0, H, KV, D, window, scratch);
    lt_attention_backward(NULL, sk, NULL, R, out, lse, q, k, v, kmask, T, p0, H, KV, D, window, scratch);
    lt_attention_backward(NULL, NULL, sv, R, out, lse, q, k, v, kmask, T, p0, H, KV, D, window, scratch);
    snprintf(what, sizeof what, "attn %s t%d dq alone", name, nth);
    check_equal(what, sq, dq, nq);
    snprintf(what, sizeof what, "attn %s t%d dk alone", name, nth);
    check_equal(what, sk, dk, nk);
    snprintf(what, sizeof what, "attn %s t%d dv alone", name, nth);
    check_equal(what, sv, dv, nk);

    if (!out0) {
      out0 = out, dq0 = dq, dk0 = dk, dv0 = dv;
    } else {  // every thread count gives the same forward (tiles do not depend on threads)
      snprintf(what, sizeof what, "attn %s t%d out same as t1", name, nth);
      check_equal(what, out, out0, nq);
      free(out), free(dq), free(dk), free(dv);
    }
    free(scratch), free(lse), free(aq), free(ak), free(av), free(bq), free(bk), free(bv), free(sq), free(sk), free(sv);
  }
  omp_set_num_threads(saved);
  free(out0), free(dq0), free(dk0), free(dv0);
  free(q), free(k), free(v), free(R), free(c.q), free(c.k), free(c.v), free(c.R), free(orf), free(lrf);
  free(dqr), free(dkr), free(dvr);
}

// ---------------------------------------------------------------- cross-entropy
typedef struct {
  int N, V;
  const int32_t *targets;
  double scale;
  double *logits;
} ce_ctx;

static int ce_valid(int32_t t, int V) { return t >= 0 && t < V; }
static double ref_ce_row(const double *x, int V, int32_t t) {
  double m = -INFINITY, s = 0.0;
  for (int i = 0; i < V; i++) m = x[i] > m ? x[i] : m;
  for (int i = 0; i < V; i++) s += exp(x[i] - m);
  return m + log(s) - x[t];
}
static double ce_loss(void *p) {  // scale * sum of valid losses: what lt_crossentropy_backward differentiates
  ce_ctx *c = p;
  double l = 0.0;
  for (int n = 0; n < c->N; n++)
    if (ce_valid(c->targets[n], c->V)) l += ref_ce_row(c->logits + (int64_t)n * c->V, c->V, c->targets[n]);
  return c->scale * l;
}

static void make_targets(int32_t *t, int N, int V) {
  for (int n = 0; n < N; n++) t[n] = (int32_t)(urand() * V);
  if (N > 1) t[1] = -100;
  if (N > 4) t[4] = V;    // out of range: ignored
  if (N > 6) t[6] = -7;   // negative, not -100: ignored
  if (N > 3) t[3] = V - 1;
}

static void test_crossentropy(int N, int V, int nsample) {
  fprintf(stderr, "crossentropy N=%d V=%d\n", N, V);
  int64_t nl = (int64_t)N * V;
  int32_t *tg = malloc((size_t)N * sizeof(int32_t));
  make_targets(tg, N, V);
  float *x = falloc(nl), *losses = falloc(N);
  fill(x, nl, 4.0f);
  if (N > 5)
    for (int i = 0; i < V; i++) x[5 * (int64_t)V + i] += 1000.0f;  // needs the max subtraction
  float scale = 0.37f;
  ce_ctx c = {N, V, tg, scale, widen(x, nl)};
  double *lr = dalloc(N);
  int valid = 0;
  for (int n = 0; n < N; n++) {
    lr[n] = ce_valid(tg[n], V) ? ref_ce_row(c.logits + (int64_t)n * V, V, tg[n]) : 0.0;
    valid += ce_valid(tg[n], V);
  }
  fill_nan(losses, N);
  int got = lt_crossentropy_forward(losses, x, tg, N, V);
  CHECK_MSG(got == valid, "crossentropy valid rows %d vs %d", got, valid);
  check_close("crossentropy fwd", losses, lr, N, FWD_TOL);
  float *d = falloc(nl);
  lt_crossentropy_backward(d, x, tg, N, V, scale);
  check_grad("crossentropy dlogits", d, c.logits, nl, nsample, ce_loss, &c);
  int zero_ignored = 1;
  for (int n = 0; n < N; n++)
    if (!ce_valid(tg[n], V))
      for (int i = 0; i < V; i++) zero_ignored &= d[(int64_t)n * V + i] == 0.0f;
  CHECK_MSG(zero_ignored, "crossentropy: ignored rows must get no gradient");
  float *a = falloc(nl);
  fill(a, nl, 1.0f);
  float *b = fcopy(a, nl);
  for (int rep = 0; rep < 2; rep++) lt_crossentropy_backward(b, x, tg, N, V, scale);
  check_accum("crossentropy dlogits accumulate", a, b, d, nl);
  free(tg), free(x), free(losses), free(c.logits), free(lr), free(d), free(a), free(b);
}

// ---------------------------------------------------------------- fused LM head + cross-entropy
typedef struct {
  int N, C, V;
  const int32_t *targets;
  double scale;
  double *x, *w;
} lmh_ctx;

static double lmh_loss(void *p) {
  lmh_ctx *c = p;
  double *z = dalloc(c->V), l = 0.0;
  for (int n = 0; n < c->N; n++) {
    if (!ce_valid(c->targets[n], c->V)) continue;
    for (int v = 0; v < c->V; v++) z[v] = dot(c->x + (int64_t)n * c->C, c->w + (int64_t)v * c->C, c->C);
    l += ref_ce_row(z, c->V, c->targets[n]);
  }
  free(z);
  return c->scale * l;
}

static void test_lmhead_ce(int N, int C, int V, const int *chunks, int nchunks, int nsample) {
  fprintf(stderr, "lmhead_ce N=%d C=%d V=%d\n", N, C, V);
  int64_t nx = (int64_t)N * C, nw = (int64_t)V * C, nl = (int64_t)N * V;
  int32_t *tg = malloc((size_t)N * sizeof(int32_t));
  make_targets(tg, N, V);
  float *x = falloc(nx), *w = falloc(nw);
  fill(x, nx, 1.0f), fill(w, nw, 1.0f);
  // reference path: linear_forward + crossentropy (+ their backwards)
  float *logits = falloc(nl), *losses = falloc(N), *dlog = falloc(nl), *rdx = falloc(nx), *rdw = falloc(nw);
  lt_linear_forward(logits, x, w, NULL, N, C, V, 0);
  int valid = lt_crossentropy_forward(losses, logits, tg, N, V);
  float scale = valid ? 1.0f / (float)valid : 0.0f;
  double rloss = 0.0;
  for (int n = 0; n < N; n++) rloss += losses[n];
  lt_crossentropy_backward(dlog, logits, tg, N, V, scale);
  lt_linear_backward(rdx, rdw, NULL, dlog, x, w, N, C, V);
  double *rdx_d = widen(rdx, nx), *rdw_d = widen(rdw, nw);

  float *a_x = falloc(nx), *a_w = falloc(nw);
  fill(a_x, nx, 1.0f), fill(a_w, nw, 1.0f);
  for (int ci = 0; ci < nchunks; ci++) {
    int chunk = chunks[ci];
    char what[128];
    float *scratch = falloc((int64_t)chunk * V);
    float *dx = fcopy(a_x, nx), *dw = fcopy(a_w, nw);
    fill_nan(scratch, (int64_t)chunk * V);
    double loss = lt_lmhead_ce(dx, dw, x, w, tg, N, C, V, scale, scratch, chunk);
    snprintf(what, sizeof what, "lmhead_ce chunk %d loss", chunk);
    float lf = (float)loss;
    check_close(what, &lf, &rloss, 1, FWD_TOL);
    float *gx = falloc(nx), *gw = falloc(nw);  // the increments
    for (int64_t i = 0; i < nx; i++) gx[i] = dx[i] - a_x[i];
    for (int64_t i = 0; i < nw; i++) gw[i] = dw[i] - a_w[i];
    snprintf(what, sizeof what, "lmhead_ce chunk %d dx (+= onto buf)", chunk);
    check_close(what, gx, rdx_d, nx, 1e-4);  // the difference of two O(1) buffers loses some digits
    snprintf(what, sizeof what, "lmhead_ce chunk %d dw (+= onto buf)", chunk);
    check_close(what, gw, rdw_d, nw, 1e-4);
    float *zx = falloc(nx), *zw = falloc(nw);
    fill_nan(scratch, (int64_t)chunk * V);
    double loss2 = lt_lmhead_ce(zx, zw, x, w, tg, N, C, V, scale, scratch, chunk);
    snprintf(what, sizeof what, "lmhead_ce chunk %d dx", chunk);
    check_close(what, zx, rdx_d, nx, FWD_TOL);
    snprintf(what, sizeof what, "lmhead_ce chunk %d dw", chunk);
    check_close(what, zw, rdw_d, nw, FWD_TOL);
    CHECK(loss2 == loss);
    fill_nan(scratch, (int64_t)chunk * V);
    double loss3 = lt_lmhead_ce(NULL, NULL, x, w, tg, N, C, V, scale, scratch, chunk);
    CHECK_MSG(fabs(loss3 - loss) <= 1e-6 * fabs(loss), "lmhead_ce loss without grads %.9g vs %.9g", loss3, loss);
    if (ci == 0) {  // finite differences of the double reference
      lmh_ctx c = {N, C, V, tg, scale, widen(x, nx), widen(w, nw)};
      double ref = lmh_loss(&c) / scale;
      float lf2 = (float)loss;
      check_close("lmhead_ce loss vs double ref", &lf2, &ref, 1, FWD_TOL);
      snprintf(what, sizeof what, "lmhead_ce chunk %d dx fd", chunk);
      check_grad(what, zx, c.x, nx, nsample, lmh_loss, &c);
      snprintf(what, sizeof what, "lmhead_ce chunk %d dw fd", chunk);
      check_grad(what, zw, c.w, nw, nsample, lmh_loss, &c);
      free(c.x), free(c.w);
    }
    free(scratch), free(dx), free(dw), free(gx), free(gw), free(zx), free(zw);
  }
  free(tg), free(x), free(w), free(logits), free(losses), free(dlog), free(rdx), free(rdw), free(rdx_d), free(rdw_d);
  free(a_x), free(a_w);
}

// ---------------------------------------------------------------- adamw
// Hand-computed reference: torch.optim.AdamW's update written out in double.
static void ref_adamw(double *w, const double *g, double *m, double *v, double *vmax, int n, double lr, double b1,
                      double b2, double eps, double wd, int t) {
  double bc1 = 1.0 - pow(b1, t), bc2 = 1.0 - pow(b2, t);
  for (int i = 0; i < n; i++) {
    w[i] *= 1.0 - lr * wd;
    m[i] = b1 * m[i] + (1.0 - b1) * g[i];
    v[i] = b2 * v[i] + (1.0 - b2) * g[i] * g[i];
    double vv = v[i];
    if (vmax) {
      vmax[i] = vmax[i] > v[i] ? vmax[i] : v[i];
      vv = vmax[i];
    }
    w[i] -= lr / bc1 * m[i] / (sqrt(vv) / sqrt(bc2) + eps);
  }
}

// The AVX-512 body against the element-by-element loop (LMTUNE_NO_AVX512): the same bits for w, m, v and vmax on
// every path of the split (parallel 1024-element blocks, 16-element vectors, the last elements one by one), with
// decay and amsgrad, a zero, a NaN and an infinite gradient among the values.
static void test_adamw_paths(void) {
  fprintf(stderr, "adamw paths\n");
  enum { n = 40000 + 101 };
  float *st[2][4];
  float *g = malloc(sizeof(float) * n);
  CHECK(g != NULL);
  for (int p = 0; p < 2; p++)
    for (int a = 0; a < 4; a++) {
      st[p][a] = calloc(n, sizeof(float));
      CHECK(st[p][a] != NULL);
    }
  for (int i = 0; i < n; i++) st[0][0][i] = st[1][0][i] = frand();
  int had = getenv("LMTUNE_NO_AVX512") != NULL;
  for (int t = 1; t <= 3; t++) {
    for (int i = 0; i < n; i++) g[i] = 0.5f * frand() * (i % 3 == 0 ? 1e-3f : 1.0f);
    g[5] = 0.0f, g[n - 2] = NAN, g[20000] = INFINITY;
    for (int p = 0; p < 2; p++) {
      if (p == 1 && !had) setenv("LMTUNE_NO_AVX512", "1", 1);
      lt_adamw_step(st[p][0], g, st[p][1], st[p][2], st[p][3], n, 0.01f, 0.9f, 0.999f, 1e-8f, 0.1f, t);
      if (p == 1 && !had) unsetenv("LMTUNE_NO_AVX512");
    }
  }
  for (int a = 0; a < 4; a++) {
    int same = 1;
    for (int i = 0; i < n; i++) same = same && (memcmp(&st[0][a][i], &st[1][a][i], sizeof(float)) == 0 ||
                                                (isnan(st[0][a][i]) && isnan(st[1][a][i])));
    CHECK_MSG(same, "adamw paths: array %d differs between the AVX-512 and the scalar loop", a);
  }
  CHECK(isnan(st[0][0][n - 2]) && st[0][0][5] != st[0][0][6]);  // the NaN reached w; the update moved the values
  for (int p = 0; p < 2; p++)
    for (int a = 0; a < 4; a++) free(st[p][a]);
  free(g);
}

static void test_adamw(void) {
  fprintf(stderr, "adamw\n");
  enum { n = 6 };
  const float w0[n] = {0.5f, -1.25f, 2.0f, 0.03125f, -0.75f, 1.5f};
  const float gs[3][n] = {{0.1f, -0.2f, 0.3f, -0.4f, 0.5f, -0.6f},
                          {0.01f, 0.5f, -0.003f, 0.2f, -0.0005f, -0.6f},
                          {-0.02f, 0.25f, 0.001f, -0.3f, 0.0001f, 0.7f}};
  // torch 2.13 AdamW(lr=0.01, betas=(0.9, 0.999), eps=1e-8) after these 3 steps, for the 3 configurations below.
  const float torch_w[3][n] = {
      {0.478223801f, -1.2502135f, 1.97823119f, 0.0491835773f, -0.771868229f, 1.52189398f},
      {0.476752698f, -1.24648285f, 1.97226393f, 0.0490672737f, -0.769593835f, 1.51736856f},
      {0.476752698f, -1.24648285f, 1.9722718f, 0.0490672737f, -0.769585311f, 1.51736856f}};
  const float wds[3] = {0.0f, 0.1f, 0.1f};
  const int amsgrad[3] = {0, 0, 1};
  float final_w[3][n];
  for (int cfg = 0; cfg < 3; cfg++) {
    float w[n], m[n] = {0}, v[n] = {0}, vmax[n] = {0};
    double rw[n], rm[n] = {0}, rv[n] = {0}, rvmax[n] = {0}, rg[n];
    for (int i = 0; i < n; i++) w[i] = w0[i], rw[i] = w0[i];
    for (int t = 1; t <= 3; t++) {
      char what[96];
      for (int i = 0; i < n; i++) rg[i] = gs[t - 1][i];
      lt_adamw_step(w, gs[t - 1], m, v, amsgrad[cfg] ? vmax : NULL, n, 0.01f, 0.9f, 0.999f, 1e-8f, wds[cfg], t);
      ref_adamw(rw, rg, rm, rv, amsgrad[cfg] ? rvmax : NULL, n, 0.01f, 0.9f, 0.999f, 1e-8f, wds[cfg], t);
      snprintf(what, sizeof what, "adamw cfg %d step %d w", cfg, t);
      check_close(what, w, rw, n, 1e-6);
      snprintf(what, sizeof what, "adamw cfg %d step %d m", cfg, t);
      check_close(what, m, rm, n, 1e-6);
      snprintf(what, sizeof what, "adamw cfg %d step %d v", cfg, t);
      check_close(what, v, rv, n, 1e-6);
      if (amsgrad[cfg]) {
        snprintf(what, sizeof what, "adamw cfg %d step %d vmax", cfg, t);
        check_close(what, vmax, rvmax, n, 1e-6);
      }
    }
    double tw[n];
    for (int i = 0; i < n; i++) tw[i] = torch_w[cfg][i];
    char what[96];
    snprintf(what, sizeof what, "adamw cfg %d vs torch", cfg);
    check_close(what, w, tw, n, 1e-6);
    if (amsgrad[cfg]) {
      int differs = 0;
      for (int i = 0; i < n; i++) differs += vmax[i] > v[i];
      CHECK_MSG(differs >= 2, "amsgrad test inputs must make vmax differ from v (%d)", differs);
    }
    memcpy(final_w[cfg], w, sizeof w);
  }
  CHECK(memcmp(final_w[0], final_w[1], sizeof final_w[0]) != 0);  // decay has an effect
  CHECK(memcmp(final_w[1], final_w[2], sizeof final_w[0]) != 0);  // amsgrad has an effect
}

// ---------------------------------------------------------------- elementwise
static void test_elementwise(int64_t n, int N, int C) {
  fprintf(stderr, "elementwise n=%lld N=%d C=%d\n", (long long)n, N, C);
  float *y = falloc(n), *x = falloc(n);
  fill(y, n, 1.0f), fill(x, n, 1.0f);
  double *r = dalloc(n);
  float *y1 = fcopy(y, n);
  for (int64_t i = 0; i < n; i++) r[i] = (double)y[i] + x[i];
  lt_add_inplace(y1, x, n);
  check_close("add_inplace", y1, r, n, FWD_TOL);
  float *y2 = fcopy(y, n);
  for (int64_t i = 0; i < n; i++) r[i] = (double)y[i] + 0.3 * (double)x[i];
  lt_scale_add(y2, x, 0.3f, n);
  check_close("scale_add", y2, r, n, FWD_TOL);
  int64_t nb = (int64_t)N * C;
  float *yb = falloc(nb), *b = falloc(C);
  fill(yb, nb, 1.0f), fill(b, C, 1.0f);
  double *rb = dalloc(nb);
  for (int64_t i = 0; i < nb; i++) rb[i] = (double)yb[i] + b[i % C];
  lt_add_bias(yb, b, N, C);
  check_close("add_bias", yb, rb, nb, FWD_TOL);
  free(y), free(x), free(r), free(y1), free(y2), free(yb), free(b), free(rb);
}

int main(void) {
  const char *ve = getenv("LT_TEST_VERBOSE");
  verbose = ve && *ve && *ve != '0';

  test_linear(5, 7, 6, 1, 1000);
  test_linear(5, 7, 6, 0, 1000);
  test_linear(260, 9, 257, 1, 40);  // parallel db path, real sgemm kernels

  test_embedding(9, 6, 10, 1000);
  test_embedding(120, 700, 50, 60);

  test_rmsnorm(4, 16, 1e-5f, 1000);
  test_rmsnorm(3, 13, 1e-6f, 1000);
  test_rmsnorm(64, 600, 1e-5f, 60);
  test_rmsnorm(2, 25, 1e-6f, 1000);  // three whole 8-lane steps and a one-element tail
  test_rmsnorm(3, 1000, 1e-6f, 100);  // bf16 rows: a 512-value chunk, then 15 blocks of 32 and an 8-value tail

  test_rope(5, 3, 8, 1000);
  test_rope(5, 2, 16, 1000);
  test_rope(300, 4, 32, 60);

  test_swiglu(41, 1000);
  test_swiglu(20000, 100);

  {
    uint8_t pad[7] = {0, 1, 1, 0, 1, 1, 1};  // keys 0 and 3 padded
    uint8_t hole[6] = {1, 0, 0, 1, 1, 1};     // with window 2, query 2 sees only keys 1, 2: fully masked
    uint8_t big[160];  // long enough for every config below
    for (int i = 0; i < 160; i++) big[i] = !(i < 3 || i == 40 || i == 100);
    test_attention("mha", 2, 2, 8, 5, 0, 0, NULL, 1000, 0);
    test_attention("gqa2 p0 kmask", 4, 2, 8, 4, 3, 0, pad, 1000, 0);
    test_attention("gqa3 p0 window", 6, 2, 16, 6, 2, 3, NULL, 1000, 0);
    test_attention("gqa3 masked row", 3, 1, 8, 6, 0, 2, hole, 1000, 1);
    test_attention("decode T=1", 4, 2, 8, 1, 9, 0, NULL, 1000, 0);
    test_attention("tiles", 4, 2, 8, 70, 5, 20, big, 40, 0);
    test_attention("tiles nowin", 6, 3, 8, 130, 0, 0, NULL, 40, 0);
    test_attention("tiles window cut", 4, 2, 8, 150, 0, 10, NULL, 40, 0);
    test_attention("tiles long p0", 2, 1, 16, 80, 60, 0, big, 40, 0);
  }

  test_crossentropy(8, 11, 1000);
  test_crossentropy(40, 1000, 80);

  {
    const int chunks[] = {4, 1, 5, 13, 20};
    test_lmhead_ce(13, 9, 17, chunks, 5, 1000);
    const int big[] = {270, 64};
    test_lmhead_ce(300, 8, 20, big, 2, 60);
  }

  test_adamw();
  test_adamw_paths();

  test_elementwise(1000, 3, 5);
  test_elementwise((1 << 17) + 3, 300, 257);

  TEST_MAIN_END();
}
