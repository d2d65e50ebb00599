// Byte-level BPE training on tiny handmade corpora: merge order (count, then HF's pair-id tie-break), ids of
// specials and byte tokens, min_frequency and vocab_size stops, the written files, and error paths. The expected
// merges were derived by hand and agree with HF tokenizers' BpeTrainer (tests/interop/test_bpe_train_e2e.py checks
// byte-identical output on real corpora).
#include <cjson/cJSON.h>
#include <sys/stat.h>

#include "core/core.h"
#include "test.h"
#include "tokenizer/bpe_train.h"

static char tmp[512];

static void write_text(const char *name, const char *text, char *path, size_t cap) {
  snprintf(path, cap, "%s/%s", tmp, name);
  lt_err err;
  CHECK_MSG(lt_write_file_atomic(path, text, strlen(text), &err) == 0, "%s", err.msg);
}

static cJSON *load_json(const char *dir, const char *name) {
  char path[1024];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  char *data;
  size_t len;
  lt_err err;
  if (lt_read_file(path, &data, &len, &err)) {
    CHECK_MSG(0, "%s", err.msg);
    return NULL;
  }
  cJSON *j = cJSON_Parse(data);
  free(data);
  CHECK_MSG(j != NULL, "%s does not parse", path);
  return j;
}

static int vocab_id(const cJSON *tok, const char *s) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItem(tok, "model"), "vocab");
  const cJSON *e = cJSON_GetObjectItemCaseSensitive(v, s);
  return cJSON_IsNumber(e) ? e->valueint : -1;
}

static int vocab_count(const cJSON *tok) {
  return cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItem(tok, "model"), "vocab"));
}

// merges as "a b" strings joined by '|'
static void merges_str(const cJSON *tok, char *out, size_t cap) {
  out[0] = 0;
  const cJSON *m = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItem(tok, "model"), "merges");
  const cJSON *p;
  size_t n = 0;
  cJSON_ArrayForEach(p, m) {
    const cJSON *a = cJSON_GetArrayItem(p, 0), *b = cJSON_GetArrayItem(p, 1);
    if (!cJSON_IsString(a) || !cJSON_IsString(b)) continue;
    n += (size_t)snprintf(out + n, n < cap ? cap - n : 0, "%s%s %s", n ? "|" : "", a->valuestring, b->valuestring);
  }
}

static int train1(const char *file, int vocab, int minf, const char **special, int n_special, const char *out,
                  lt_err *err) {
  const char *files[1] = {file};
  lt_bpe_train_opts o = {.vocab_size = vocab, .min_frequency = minf, .special = special, .n_special = n_special};
  return lt_bpe_train(files, 1, &o, out, err);
}

int main(void) {
  lt_err err;
  snprintf(tmp, sizeof tmp, "%s/bpe_train", LT_TMPDIR);
  CHECK_MSG(lt_mkdirs(tmp, &err) == 0, "%s", err.msg);
  char corpus[600], out[600], out2[600], ms[4096];
  // Words (ByteLevel, each line on its own): "ab" 1, "Ġab" 2, "Ġabc" 2, "Ċ" 4, "xyz" 1, "qr" 1, "de" 1.
  // Pair counts: (a,b) 5, (Ġ,a) 4, (b,c) 2, then singles.
  write_text("c1.txt", "ab ab ab abc abc\nxyz\nqr\nde\n", corpus, sizeof corpus);
  const char *sp[2] = {"<|endoftext|>", "<pad>"};

  // min_frequency 2: a+b (5), Ġ+ab (4), Ġab+c (2), then every pair is seen once: stop.
  snprintf(out, sizeof out, "%s/o1", tmp);
  CHECK_MSG(train1(corpus, 1000, 2, sp, 2, out, &err) == 0, "%s", err.msg);
  cJSON *t = load_json(out, "tokenizer.json");
  if (t) {
    merges_str(t, ms, sizeof ms);
    CHECK_MSG(strcmp(ms, "a b|Ġ ab|Ġab c") == 0, "merges %s", ms);
    CHECK(vocab_count(t) == 2 + 256 + 3);
    CHECK(vocab_id(t, "<|endoftext|>") == 0 && vocab_id(t, "<pad>") == 1);
    // byte chars in code point order after the specials: '!' first, U+0100 (byte 0) after the 188 printable bytes,
    // 'Ġ' (byte 32 -> U+0120) 32 later
    CHECK(vocab_id(t, "!") == 2 && vocab_id(t, "Ā") == 190 && vocab_id(t, "Ġ") == 222 && vocab_id(t, "ÿ") == 189);
    CHECK(vocab_id(t, "ab") == 258 && vocab_id(t, "Ġab") == 259 && vocab_id(t, "Ġabc") == 260);
    const cJSON *added = cJSON_GetObjectItem(t, "added_tokens");
    CHECK(cJSON_GetArraySize(added) == 2);
    const cJSON *a1 = cJSON_GetArrayItem(added, 1);
    CHECK(a1 && cJSON_GetObjectItem(a1, "id")->valueint == 1 &&
          strcmp(cJSON_GetObjectItem(a1, "content")->valuestring, "<pad>") == 0 &&
          cJSON_IsTrue(cJSON_GetObjectItem(a1, "special")));
    const cJSON *pre = cJSON_GetObjectItem(t, "pre_tokenizer");
    CHECK(pre && strcmp(cJSON_GetObjectItem(pre, "type")->valuestring, "ByteLevel") == 0 &&
          cJSON_IsFalse(cJSON_GetObjectItem(pre, "add_prefix_space")));
    CHECK(strcmp(cJSON_GetObjectItem(cJSON_GetObjectItem(t, "decoder"), "type")->valuestring, "ByteLevel") == 0);
    CHECK(strcmp(cJSON_GetObjectItem(cJSON_GetObjectItem(t, "model"), "type")->valuestring, "BPE") == 0);
    cJSON_Delete(t);
  }
  cJSON *c = load_json(out, "tokenizer_config.json");
  if (c) {
    const cJSON *eos = cJSON_GetObjectItem(c, "eos_token"), *pad = cJSON_GetObjectItem(c, "pad_token");
    CHECK(cJSON_IsString(eos) && strcmp(eos->valuestring, "<|endoftext|>") == 0);
    CHECK(cJSON_IsString(pad) && strcmp(pad->valuestring, "<pad>") == 0);
    CHECK(cJSON_GetObjectItem(c, "bos_token") == NULL);
    cJSON_Delete(c);
  }

  // min_frequency 1: the four count-1 pairs go in pair-id order (d<q<x), not text order; then xy+z.
  snprintf(out2, sizeof out2, "%s/o2", tmp);
  CHECK_MSG(train1(corpus, 1000, 1, sp, 2, out2, &err) == 0, "%s", err.msg);
  t = load_json(out2, "tokenizer.json");
  if (t) {
    merges_str(t, ms, sizeof ms);
    CHECK_MSG(strcmp(ms, "a b|Ġ ab|Ġab c|d e|q r|x y|xy z") == 0, "merges %s", ms);
    CHECK(vocab_count(t) == 258 + 7);
    cJSON_Delete(t);
  }

  // vocab_size stops training: 2 specials + 256 + 1 merge
  CHECK_MSG(train1(corpus, 259, 0, sp, 2, out2, &err) == 0, "%s", err.msg);
  t = load_json(out2, "tokenizer.json");
  if (t) {
    merges_str(t, ms, sizeof ms);
    CHECK_MSG(strcmp(ms, "a b") == 0, "merges %s", ms);
    CHECK(vocab_count(t) == 259);
    cJSON_Delete(t);
  }

  // Deterministic: the same input gives the same bytes.
  {
    char p1[700], p2[700], *d1, *d2;
    size_t l1, l2;
    snprintf(out2, sizeof out2, "%s/o3", tmp);
    CHECK_MSG(train1(corpus, 1000, 2, sp, 2, out2, &err) == 0, "%s", err.msg);
    snprintf(p1, sizeof p1, "%s/tokenizer.json", out);
    snprintf(p2, sizeof p2, "%s/tokenizer.json", out2);
    CHECK(lt_read_file(p1, &d1, &l1, &err) == 0 && lt_read_file(p2, &d2, &l2, &err) == 0);
    CHECK(l1 == l2 && memcmp(d1, d2, l1) == 0);
    free(d1);
    free(d2);
  }

  // Lines are pre-tokenized separately and keep "\r\n"; no specials: byte ids start at 0; "\r\n" is one word.
  write_text("c2.txt", "aa\r\naa\r\n", corpus, sizeof corpus);
  CHECK_MSG(train1(corpus, 300, 2, NULL, 0, out2, &err) == 0, "%s", err.msg);
  t = load_json(out2, "tokenizer.json");
  if (t) {
    merges_str(t, ms, sizeof ms);
    CHECK_MSG(strcmp(ms, "a a|č Ċ") == 0, "merges %s", ms);  // both count 2: (a,a) has the smaller ids
    CHECK(vocab_id(t, "!") == 0 && vocab_id(t, "aa") == 256 && vocab_id(t, "čĊ") == 257);
    CHECK(cJSON_GetArraySize(cJSON_GetObjectItem(t, "added_tokens")) == 0);
    cJSON_Delete(t);
  }
  c = load_json(out2, "tokenizer_config.json");
  if (c) {
    CHECK(cJSON_GetObjectItem(c, "eos_token") == NULL && cJSON_GetObjectItem(c, "pad_token") == NULL);
    cJSON_Delete(c);
  }

  // An empty corpus gives the byte alphabet and no merges.
  write_text("empty.txt", "", corpus, sizeof corpus);
  CHECK_MSG(train1(corpus, 1000, 2, sp, 1, out2, &err) == 0, "%s", err.msg);
  t = load_json(out2, "tokenizer.json");
  if (t) {
    CHECK(vocab_count(t) == 257);
    CHECK(cJSON_GetArraySize(cJSON_GetObjectItem(cJSON_GetObjectItem(t, "model"), "merges")) == 0);
    cJSON_Delete(t);
  }

  // ---- errors
  char missing[700];
  snprintf(missing, sizeof missing, "%s/no_such_corpus.txt", tmp);
  CHECK(train1(missing, 1000, 2, sp, 2, out2, &err) == -1 && strstr(err.msg, "no_such_corpus.txt"));
  write_text("c1.txt", "ab ab ab abc abc\nxyz\nqr\nde\n", corpus, sizeof corpus);
  CHECK(train1(corpus, 257, 2, sp, 2, out2, &err) == -1 && strstr(err.msg, "vocab_size 257"));
  CHECK(train1(corpus, 255, 2, NULL, 0, out2, &err) == -1 && strstr(err.msg, "smaller than the 256"));
  // an output folder that cannot be created (its parent is a regular file; fails even as root)
  char bad_out[700];
  snprintf(bad_out, sizeof bad_out, "%s/c1.txt/sub", tmp);
  CHECK(train1(corpus, 1000, 2, sp, 2, bad_out, &err) == -1 && strstr(err.msg, "c1.txt"));
  // invalid UTF-8 names the file and line
  write_text("bad.txt", "fine\nbro\xC3\x28ken\n", corpus, sizeof corpus);
  CHECK(train1(corpus, 1000, 2, sp, 2, out2, &err) == -1 && strstr(err.msg, "bad.txt") && strstr(err.msg, "line 2"));
  const char *empty_sp[1] = {""};
  CHECK(train1(corpus, 1000, 2, empty_sp, 1, out2, &err) == -1 && strstr(err.msg, "empty"));
  CHECK(lt_bpe_train(NULL, 0, NULL, out2, &err) == -1);
  TEST_MAIN_END();
}
