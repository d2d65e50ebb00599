// CLI helpers: option parsing and numbers.
#include "cli/cli.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int lt_cli_parse(const char *verb, int argc, char **argv, lt_opt *opts, int nopts) {
  for (int i = 0; i < argc; i++) {
    const char *a = argv[i];
    const char *eq = strchr(a, '=');
    size_t n = eq ? (size_t)(eq - a) : strlen(a);
    int found = 0;
    for (int j = 0; j < nopts; j++) {
      if (strlen(opts[j].name) != n || strncmp(opts[j].name, a, n) != 0) continue;
      found = 1;
      if (!opts[j].has_value) {
        if (eq) {
          fprintf(stderr, "lmtune %s: %s takes no value\n", verb, opts[j].name);
          return -1;
        }
        *opts[j].value = "1";
      } else if (eq) {
        *opts[j].value = eq + 1;
      } else if (i + 1 < argc) {
        *opts[j].value = argv[++i];
      } else {
        fprintf(stderr, "lmtune %s: %s needs a value\n", verb, opts[j].name);
        return -1;
      }
      break;
    }
    if (!found) {
      fprintf(stderr, "lmtune %s: unknown option \"%s\" (try lmtune %s --help)\n", verb, a, verb);
      return -1;
    }
  }
  return 0;
}

int lt_cli_parse_int(const char *verb, const char *flag, const char *s, long lo, long hi, long *out) {
  char *end;
  errno = 0;
  long v = strtol(s, &end, 10);
  if (errno || end == s || *end || v < lo || v > hi) {
    fprintf(stderr, "lmtune %s: %s \"%s\" must be an integer in [%ld, %ld]\n", verb, flag, s, lo, hi);
    return -1;
  }
  *out = v;
  return 0;
}

int lt_cli_parse_float(const char *verb, const char *flag, const char *s, double lo, double hi, double *out) {
  char *end;
  errno = 0;
  double v = strtod(s, &end);
  if (errno || end == s || *end || !isfinite(v) || v < lo || v > hi) {
    fprintf(stderr, "lmtune %s: %s \"%s\" must be a number in [%g, %g]\n", verb, flag, s, lo, hi);
    return -1;
  }
  *out = v;
  return 0;
}

int lt_cli_parse_ids(const char *verb, const char *s, int32_t **ids) {
  *ids = NULL;
  size_t cap = 1;
  for (const char *p = s; *p; p++)
    if (*p == ',') cap++;
  int32_t *v = malloc(cap * sizeof *v);
  if (!v) {
    fprintf(stderr, "lmtune %s: out of memory\n", verb);
    return -1;
  }
  int n = 0;
  const char *p = s;
  while (*p) {
    char *end;
    errno = 0;
    long x = strtol(p, &end, 10);
    if (errno || end == p || x < 0 || x > INT32_MAX || (*end && *end != ',')) {
      fprintf(stderr, "lmtune %s: --ids \"%s\": expected comma-separated non-negative integers (at \"%.20s\")\n",
              verb, s, p);
      free(v);
      return -1;
    }
    v[n++] = (int32_t)x;
    p = *end ? end + 1 : end;
  }
  if (n == 0) {
    fprintf(stderr, "lmtune %s: --ids is empty\n", verb);
    free(v);
    return -1;
  }
  *ids = v;
  return n;
}

int lt_cli_fail(const char *verb, const lt_err *err) {
  fprintf(stderr, "lmtune %s: %s\n", verb, err->msg);
  return LT_EXIT_FAIL;
}

int lt_cli_parse_compute(const char *verb, const char *s, lt_compute *out) {
  if (strcmp(s, "f32") == 0 || strcmp(s, "float32") == 0) {
    *out = LT_COMPUTE_F32;
  } else if (strcmp(s, "bf16") == 0 || strcmp(s, "bfloat16") == 0) {
    *out = LT_COMPUTE_BF16;
  } else {
    fprintf(stderr, "lmtune %s: --dtype \"%s\": choose f32 or bf16\n", verb, s);
    return -1;
  }
  return 0;
}
