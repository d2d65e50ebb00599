// Sampling: greedy, temperature, top-k, top-p, repetition penalty, seeded determinism, and that sampled
// frequencies follow softmax(logits / T).
#include "core/core.h"
#include "test.h"

#define V 6

static int draw(const float *logits, lt_sampling s, uint64_t step) {
  float scratch[V * 4];
  int32_t id = -1;
  CHECK(lt_sample(logits, V, &s, NULL, 0, step, scratch, &id) == 0);
  return id;
}

int main(void) {
  const float logits[V] = {1.0f, 3.0f, 2.5f, -1.0f, 3.0f, 0.0f};
  float scratch[V * 4];
  int32_t id;
  // greedy: the first maximum, as torch.argmax
  lt_sampling greedy = {0.0f, 0, 1.0f, 1.0f, 0};
  CHECK(draw(logits, greedy, 0) == 1);
  // repetition penalty (transformers: positive logits divided, negative multiplied)
  int32_t hist[2] = {1, 4};
  lt_sampling rep = {0.0f, 0, 1.0f, 2.0f, 0};
  CHECK(lt_sample(logits, V, &rep, hist, 2, 0, scratch, &id) == 0 && id == 2);
  const float neg[V] = {-1.0f, -3.0f, -1.5f, -4.0f, -3.0f, -2.0f};
  int32_t h0[1] = {0};
  CHECK(lt_sample(neg, V, &rep, h0, 1, 0, scratch, &id) == 0 && id == 2);  // -1 * 2 = -2 < -1.5
  // top-k 1 and a tiny top-p are greedy whatever the seed (ties at the k-th value survive: ids 1 and 4)
  for (uint64_t s = 0; s < 50; s++) {
    lt_sampling k1 = {1.0f, 1, 1.0f, 1.0f, s};
    int d = draw(logits, k1, s);
    CHECK(d == 1 || d == 4);
    lt_sampling p0 = {1.0f, 0, 0.01f, 1.0f, s};
    d = draw(logits, p0, s);
    CHECK(d == 1 || d == 4);
  }
  // seeded: same (seed, step) -> same token; different steps vary
  lt_sampling t1 = {1.0f, 0, 1.0f, 1.0f, 42};
  int first = draw(logits, t1, 7), varied = 0;
  CHECK(draw(logits, t1, 7) == first);
  for (uint64_t st = 0; st < 20; st++) varied |= draw(logits, t1, st) != first;
  CHECK(varied);
  // frequencies follow softmax(logits / T) within sampling noise; top-k 3 never leaves {1, 4, 2}
  const int n = 20000;
  for (int variant = 0; variant < 2; variant++) {
    float T = variant ? 0.7f : 1.3f;
    int topk = variant ? 3 : 0;
    double p[V], z = 0;
    for (int i = 0; i < V; i++) z += exp(logits[i] / T);
    for (int i = 0; i < V; i++) p[i] = exp(logits[i] / T) / z;
    if (topk) {  // renormalise over the top 3
      double zz = p[1] + p[4] + p[2];
      for (int i = 0; i < V; i++) p[i] = (i == 1 || i == 4 || i == 2) ? p[i] / zz : 0;
    }
    int count[V] = {0};
    lt_sampling s = {T, topk, 1.0f, 1.0f, 9};
    for (int i = 0; i < n; i++) count[draw(logits, s, (uint64_t)i)]++;
    for (int i = 0; i < V; i++) {
      double sd = sqrt(p[i] * (1 - p[i]) / n) + 1e-9;
      CHECK_MSG(fabs(count[i] / (double)n - p[i]) < 5 * sd + 1e-4, "T=%g k=%d token %d: %g vs %g", T, topk, i,
                count[i] / (double)n, p[i]);
    }
  }
  // top-p 0.8 keeps the smallest prefix reaching 0.8: ids 1, 4 (0.33 each at T=1) and 2
  lt_sampling tp = {1.0f, 0, 0.8f, 1.0f, 5};
  int seen[V] = {0};
  for (int i = 0; i < 5000; i++) seen[draw(logits, tp, (uint64_t)i)]++;
  CHECK(seen[0] == 0 && seen[3] == 0 && seen[5] == 0 && seen[1] > 0 && seen[4] > 0 && seen[2] > 0);
  TEST_MAIN_END();
}
