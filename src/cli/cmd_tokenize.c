// lmtune tokenize --tokenizer PATH [--add-special-tokens] [--jsonl] [--raw]
// lmtune detokenize --tokenizer PATH [--jsonl] [--skip-special-tokens] [--stream] [--raw]
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "cli/cli.h"
#include "tokenizer/tokenizer.h"

// ---------------------------------------------------------------- output buffer
typedef struct { char *p; size_t n, cap; int failed; } obuf;

static void ob_flush(obuf *o) {
  if (o->n && fwrite(o->p, 1, o->n, stdout) != o->n) o->failed = 1;
  o->n = 0;
}

static void ob_put(obuf *o, const char *s, size_t n) {
  if (o->n + n > o->cap) {
    ob_flush(o);
    if (n > o->cap) {
      if (fwrite(s, 1, n, stdout) != n) o->failed = 1;
      return;
    }
  }
  memcpy(o->p + o->n, s, n);
  o->n += n;
}

static void ob_int(obuf *o, int32_t v) {
  char b[16];
  int k = 0;
  uint32_t u = v < 0 ? (uint32_t)(-(int64_t)v) : (uint32_t)v;
  do {
    b[k++] = (char)('0' + u % 10);
    u /= 10;
  } while (u);
  if (v < 0) b[k++] = '-';
  char r[16];
  for (int i = 0; i < k; i++) r[i] = b[k - 1 - i];
  ob_put(o, r, (size_t)k);
}

// JSON string (UTF-8 kept as is; quotes, backslashes and control characters escaped).
static void ob_json_str(obuf *o, const char *s, size_t n) {
  ob_put(o, "\"", 1);
  size_t run = 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c >= 0x20 && c != '"' && c != '\\' && c != 0x7F) continue;
    ob_put(o, s + run, i - run);
    char e[8];
    switch (c) {
      case '"': ob_put(o, "\\\"", 2); break;
      case '\\': ob_put(o, "\\\\", 2); break;
      case '\n': ob_put(o, "\\n", 2); break;
      case '\r': ob_put(o, "\\r", 2); break;
      case '\t': ob_put(o, "\\t", 2); break;
      default:
        snprintf(e, sizeof e, "\\u%04x", c);
        ob_put(o, e, 6);
    }
    run = i + 1;
  }
  ob_put(o, s + run, n - run);
  ob_put(o, "\"", 1);
}

// ---------------------------------------------------------------- JSON string decoding (keeps U+0000)
static int hex4(const char *p, unsigned *v) {
  *v = 0;
  for (int i = 0; i < 4; i++) {
    char c = p[i];
    int h = (c >= '0' && c <= '9') ? c - '0' : (c >= 'a' && c <= 'f') ? c - 'a' + 10 : (c >= 'A' && c <= 'F') ? c - 'A' + 10 : -1;
    if (h < 0) return -1;
    *v = *v * 16 + (unsigned)h;
  }
  return 0;
}

// Decode the JSON string starting at s[0] == '"'; *end receives the position after the closing quote.
// Output goes to *out (malloc'd), length *olen. Returns 0 or -1 (message in msg).
static int json_string(const char *s, size_t n, size_t *end, char **out, size_t *olen, const char **msg) {
  char *r = malloc(n + 1);
  if (!r) {
    *msg = "out of memory";
    return -1;
  }
  size_t k = 0, i = 1;
  while (i < n && s[i] != '"') {
    char c = s[i];
    if ((unsigned char)c < 0x20) {
      *msg = "control character in a JSON string";
      free(r);
      return -1;
    }
    if (c != '\\') {
      r[k++] = c;
      i++;
      continue;
    }
    if (i + 1 >= n) break;
    char e = s[i + 1];
    i += 2;
    switch (e) {
      case '"': r[k++] = '"'; break;
      case '\\': r[k++] = '\\'; break;
      case '/': r[k++] = '/'; break;
      case 'b': r[k++] = '\b'; break;
      case 'f': r[k++] = '\f'; break;
      case 'n': r[k++] = '\n'; break;
      case 'r': r[k++] = '\r'; break;
      case 't': r[k++] = '\t'; break;
      case 'u': {
        unsigned v;
        if (i + 4 > n || hex4(s + i, &v)) {
          *msg = "bad \\u escape";
          free(r);
          return -1;
        }
        i += 4;
        if (v >= 0xD800 && v <= 0xDBFF) {
          unsigned lo;
          if (i + 6 <= n && s[i] == '\\' && s[i + 1] == 'u' && !hex4(s + i + 2, &lo) && lo >= 0xDC00 && lo <= 0xDFFF) {
            v = 0x10000 + ((v - 0xD800) << 10) + (lo - 0xDC00);
            i += 6;
          } else {
            *msg = "unpaired surrogate \\u escape (not representable in UTF-8)";
            free(r);
            return -1;
          }
        } else if (v >= 0xDC00 && v <= 0xDFFF) {
          *msg = "unpaired surrogate \\u escape (not representable in UTF-8)";
          free(r);
          return -1;
        }
        if (v < 0x80) r[k++] = (char)v;
        else if (v < 0x800) {
          r[k++] = (char)(0xC0 | (v >> 6));
          r[k++] = (char)(0x80 | (v & 0x3F));
        } else if (v < 0x10000) {
          r[k++] = (char)(0xE0 | (v >> 12));
          r[k++] = (char)(0x80 | ((v >> 6) & 0x3F));
          r[k++] = (char)(0x80 | (v & 0x3F));
        } else {
          r[k++] = (char)(0xF0 | (v >> 18));
          r[k++] = (char)(0x80 | ((v >> 12) & 0x3F));
          r[k++] = (char)(0x80 | ((v >> 6) & 0x3F));
          r[k++] = (char)(0x80 | (v & 0x3F));
        }
        break;
      }
      default:
        *msg = "bad escape in a JSON string";
        free(r);
        return -1;
    }
  }
  if (i >= n) {
    *msg = "unterminated JSON string";
    free(r);
    return -1;
  }
  r[k] = 0;
  *end = i + 1;
  *out = r;
  *olen = k;
  return 0;
}

// A JSONL line: a JSON string, or an object with a "text" string.
static int jsonl_text(const char *line, size_t n, char **text, size_t *tlen, const char **msg) {
  size_t i = 0;
  while (i < n && (line[i] == ' ' || line[i] == '\t' || line[i] == '\r')) i++;
  if (i < n && line[i] == '"') {
    size_t end;
    if (json_string(line + i, n - i, &end, text, tlen, msg)) return -1;
    for (size_t k = i + end; k < n; k++)
      if (line[k] != ' ' && line[k] != '\t' && line[k] != '\r') {
        free(*text);
        *msg = "trailing characters after the JSON string";
        return -1;
      }
    return 0;
  }
  if (i < n && line[i] == '{') {
    cJSON *o = cJSON_ParseWithLength(line, n);
    const cJSON *t = o ? cJSON_GetObjectItemCaseSensitive(o, "text") : NULL;
    if (!o || !cJSON_IsString(t)) {
      cJSON_Delete(o);
      *msg = o ? "object has no \"text\" string" : "invalid JSON";
      return -1;
    }
    // (cJSON strings end at U+0000; objects are for convenience, plain JSON strings keep every character)
    *tlen = strlen(t->valuestring);
    *text = malloc(*tlen + 1);
    if (*text) memcpy(*text, t->valuestring, *tlen + 1);
    cJSON_Delete(o);
    int rc = *text ? 0 : -1;
    if (rc) *msg = "out of memory";
    return rc;
  }
  *msg = "expected a JSON string or an object with a \"text\" field";
  return -1;
}

// ---------------------------------------------------------------- tokenize
int lt_cmd_tokenize(int argc, char **argv) {
  const char *path = NULL, *special = NULL, *jsonl = NULL, *raw = NULL, *help = NULL;
  lt_opt opts[] = {{"--tokenizer", 1, &path}, {"--add-special-tokens", 0, &special}, {"--jsonl", 0, &jsonl},
                   {"--raw", 0, &raw}, {"--help", 0, &help}};
  if (lt_cli_parse("tokenize", argc, argv, opts, 5)) return LT_EXIT_USAGE;
  if (help || !path) {
    fprintf(help ? stdout : stderr,
            "usage: lmtune tokenize --tokenizer PATH [--add-special-tokens] [--jsonl] [--raw]\n"
            "PATH: a folder with tokenizer.json (+ tokenizer_config.json) or a tokenizer.json file.\n"
            "Reads stdin: each line is one text (newline stripped); writes the ids separated by spaces.\n"
            "--jsonl: each line is a JSON string or an object with a \"text\" field; writes a JSON array of ids.\n"
            "--add-special-tokens: add BOS/EOS etc. as transformers' tokenizer(text) does.\n"
            "--raw: tokenizer.json only, as HF tokenizers' Tokenizer.from_file (ignores tokenizer_config.json).\n");
    return help ? LT_EXIT_OK : LT_EXIT_USAGE;
  }
  lt_err err;
  lt_tokenizer *t;
  if (lt_tokenizer_load_ex(&t, path, raw ? LT_TOK_RAW : 0, &err)) return lt_cli_fail("tokenize", &err);
  obuf o = {malloc(1 << 20), 0, 1 << 20, 0};
  if (!o.p) {
    lt_tokenizer_free(t);
    fprintf(stderr, "lmtune tokenize: out of memory\n");
    return LT_EXIT_FAIL;
  }
  char *line = NULL;
  size_t lcap = 0;
  ssize_t got;
  long lineno = 0;
  int rc = LT_EXIT_OK;
  while ((got = getline(&line, &lcap, stdin)) >= 0) {
    lineno++;
    size_t n = (size_t)got;
    if (n && line[n - 1] == '\n') n--;
    char *text = line;
    size_t tlen = n;
    char *dec = NULL;
    if (jsonl) {
      const char *msg = NULL;
      if (jsonl_text(line, n, &dec, &tlen, &msg)) {
        fprintf(stderr, "lmtune tokenize: stdin line %ld: %s\n", lineno, msg);
        rc = LT_EXIT_FAIL;
        break;
      }
      text = dec;
    }
    int32_t *ids;
    int cnt;
    if (lt_tokenizer_encode(t, text, tlen, special != NULL, &ids, &cnt, &err)) {
      free(dec);
      fprintf(stderr, "lmtune tokenize: stdin line %ld: %s\n", lineno, err.msg);
      rc = LT_EXIT_FAIL;
      break;
    }
    free(dec);
    if (jsonl) ob_put(&o, "[", 1);
    for (int i = 0; i < cnt; i++) {
      if (i) ob_put(&o, jsonl ? ", " : " ", jsonl ? 2 : 1);
      ob_int(&o, ids[i]);
    }
    if (jsonl) ob_put(&o, "]", 1);
    ob_put(&o, "\n", 1);
    free(ids);
  }
  ob_flush(&o);
  if (fflush(stdout) || o.failed) {
    fprintf(stderr, "lmtune tokenize: cannot write stdout: %s\n", strerror(errno));
    rc = LT_EXIT_FAIL;
  }
  free(o.p);
  free(line);
  lt_tokenizer_free(t);
  return rc;
}

// ---------------------------------------------------------------- detokenize
// Ids from "1 2 3", "1,2,3" or (jsonl) "[1, 2, 3]".
static int parse_id_line(const char *s, size_t n, int jsonl, int32_t **ids, int *cnt, const char **msg) {
  *ids = NULL;
  *cnt = 0;
  int cap = 0;
  size_t i = 0;
  while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\r')) i++;
  if (jsonl) {
    if (i >= n || s[i] != '[') {
      *msg = "expected a JSON array of ids";
      return -1;
    }
    i++;
  }
  int closed = !jsonl;
  while (i < n) {
    char c = s[i];
    if (c == ' ' || c == ',' || c == '\t' || c == '\r') {
      i++;
      continue;
    }
    if (jsonl && c == ']') {
      closed = 1;
      i++;
      while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\r')) i++;
      if (i < n) {
        *msg = "trailing characters after the array";
        goto bad;
      }
      break;
    }
    if (c < '0' || c > '9') {
      *msg = "ids must be non-negative integers";
      goto bad;
    }
    long v = 0;
    while (i < n && s[i] >= '0' && s[i] <= '9') {
      v = v * 10 + (s[i] - '0');
      if (v > INT32_MAX) {
        *msg = "id out of range";
        goto bad;
      }
      i++;
    }
    if (*cnt == cap) {
      cap = cap ? cap * 2 : 64;
      int32_t *p = realloc(*ids, (size_t)cap * sizeof *p);
      if (!p) {
        *msg = "out of memory";
        goto bad;
      }
      *ids = p;
    }
    (*ids)[(*cnt)++] = (int32_t)v;
  }
  if (!closed) {
    *msg = "unterminated JSON array";
    goto bad;
  }
  return 0;
bad:
  free(*ids);
  *ids = NULL;
  return -1;
}

int lt_cmd_detokenize(int argc, char **argv) {
  const char *path = NULL, *skip = NULL, *jsonl = NULL, *raw = NULL, *stream = NULL, *help = NULL;
  lt_opt opts[] = {{"--tokenizer", 1, &path}, {"--skip-special-tokens", 0, &skip}, {"--jsonl", 0, &jsonl},
                   {"--raw", 0, &raw},        {"--stream", 0, &stream},            {"--help", 0, &help}};
  if (lt_cli_parse("detokenize", argc, argv, opts, 6)) return LT_EXIT_USAGE;
  if (help || !path) {
    fprintf(help ? stdout : stderr,
            "usage: lmtune detokenize --tokenizer PATH [--jsonl] [--skip-special-tokens] [--stream] [--raw]\n"
            "Reads stdin: each line holds ids separated by spaces or commas; writes the text as one line.\n"
            "--jsonl: each line is a JSON array of ids; writes a JSON string.\n"
            "--stream: decode id by id with the streaming decoder (same output; for testing).\n"
            "--raw: tokenizer.json only, as HF tokenizers (ignores tokenizer_config.json).\n");
    return help ? LT_EXIT_OK : LT_EXIT_USAGE;
  }
  lt_err err;
  lt_tokenizer *t;
  if (lt_tokenizer_load_ex(&t, path, raw ? LT_TOK_RAW : 0, &err)) return lt_cli_fail("detokenize", &err);
  obuf o = {malloc(1 << 20), 0, 1 << 20, 0};
  if (!o.p) {
    lt_tokenizer_free(t);
    fprintf(stderr, "lmtune detokenize: out of memory\n");
    return LT_EXIT_FAIL;
  }
  char *line = NULL, *acc = NULL;
  size_t lcap = 0, acap = 0;
  ssize_t got;
  long lineno = 0;
  int rc = LT_EXIT_OK;
  while ((got = getline(&line, &lcap, stdin)) >= 0) {
    lineno++;
    size_t n = (size_t)got;
    if (n && line[n - 1] == '\n') n--;
    int32_t *ids;
    int cnt;
    const char *msg;
    if (parse_id_line(line, n, jsonl != NULL, &ids, &cnt, &msg)) {
      fprintf(stderr, "lmtune detokenize: stdin line %ld: %s\n", lineno, msg);
      rc = LT_EXIT_FAIL;
      break;
    }
    char *text = NULL;
    size_t tlen = 0;
    int fail = 0;
    if (!stream) {
      fail = lt_tokenizer_decode(t, ids, cnt, skip != NULL, &text, &tlen, &err);
    } else {
      lt_detok_stream *ds = NULL;
      size_t an = 0;
      fail = lt_detok_stream_new(&ds, t, skip != NULL, &err);
      for (int i = 0; !fail && i <= cnt; i++) {
        char *piece;
        size_t pl;
        fail = i < cnt ? lt_detok_stream_push(ds, ids[i], &piece, &pl, &err)
                       : lt_detok_stream_flush(ds, &piece, &pl, &err);
        if (fail) break;
        if (an + pl + 1 > acap) {
          size_t nc = (an + pl + 1) * 2;
          char *p = realloc(acc, nc);
          if (!p) {
            free(piece);
            snprintf(err.msg, sizeof err.msg, "out of memory");
            fail = 1;
            break;
          }
          acc = p;
          acap = nc;
        }
        memcpy(acc + an, piece, pl);
        an += pl;
        free(piece);
      }
      if (!fail) {
        text = malloc(an + 1);
        if (text) {
          if (an) memcpy(text, acc, an);
          tlen = an;
        } else {
          snprintf(err.msg, sizeof err.msg, "out of memory");
          fail = 1;
        }
      }
      if (ds) lt_detok_stream_free(ds);
    }
    free(ids);
    if (fail) {
      fprintf(stderr, "lmtune detokenize: stdin line %ld: %s\n", lineno, err.msg);
      rc = LT_EXIT_FAIL;
      break;
    }
    if (jsonl) ob_json_str(&o, text, tlen);
    else ob_put(&o, text, tlen);
    ob_put(&o, "\n", 1);
    free(text);
  }
  ob_flush(&o);
  if (fflush(stdout) || o.failed) {
    fprintf(stderr, "lmtune detokenize: cannot write stdout: %s\n", strerror(errno));
    rc = LT_EXIT_FAIL;
  }
  free(o.p);
  free(line);
  free(acc);
  lt_tokenizer_free(t);
  return rc;
}
