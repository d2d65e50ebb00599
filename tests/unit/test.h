// Minimal test harness: CHECK records a failure and continues; main returns the failure count.
#ifndef LT_TEST_H
#define LT_TEST_H
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int lt_test_failures = 0;
static int lt_test_checks = 0;

#define CHECK(cond)                                                              \
  do {                                                                           \
    lt_test_checks++;                                                            \
    if (!(cond)) {                                                               \
      lt_test_failures++;                                                        \
      fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);   \
    }                                                                            \
  } while (0)

#define CHECK_MSG(cond, ...)                                                     \
  do {                                                                           \
    lt_test_checks++;                                                            \
    if (!(cond)) {                                                               \
      lt_test_failures++;                                                        \
      fprintf(stderr, "%s:%d: CHECK failed: %s: ", __FILE__, __LINE__, #cond);   \
      fprintf(stderr, __VA_ARGS__);                                              \
      fputc('\n', stderr);                                                       \
    }                                                                            \
  } while (0)

#define CHECK_NEAR(a, b, tol)                                                    \
  do {                                                                           \
    double _a = (a), _b = (b);                                                   \
    CHECK_MSG(fabs(_a - _b) <= (tol), "%g vs %g (tol %g)", _a, _b, (double)(tol)); \
  } while (0)

#define TEST_MAIN_END()                                                          \
  do {                                                                           \
    fprintf(stderr, "%s: %d checks, %d failures\n", __FILE__, lt_test_checks,   \
            lt_test_failures);                                                   \
    return lt_test_failures ? 1 : 0;                                             \
  } while (0)

#endif
