// Tokenizer engine: small handmade tokenizer.json files exercising each component (byte-level BPE with string and
// pair merges, byte_fallback + Metaspace, WordPiece + BertNormalizer, normalizers, pre-tokenizers, added tokens,
// post-processors, decoders, streaming decode, tokenizer_config.json class rules) and the error paths (malformed
// JSON, bad merges, unknown component types, invalid UTF-8, every truncation and seeded corruptions of a file).
#include <errno.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/core.h"
#include "test.h"
#include "tokenizer/tokenizer.h"

#define CHECK_HAS(msg, sub) CHECK_MSG(strstr((msg), (sub)) != NULL, "message \"%s\" lacks \"%s\"", (msg), (sub))

static char g_dir[1024];

static void write_text(const char *name, const char *text) {
  char path[2048];
  snprintf(path, sizeof path, "%s/%s", g_dir, name);
  unlink(path);
  FILE *fp = fopen(path, "wb");
  if (!fp || fwrite(text, 1, strlen(text), fp) != strlen(text) || fclose(fp) != 0) {
    fprintf(stderr, "cannot write %s\n", path);
    exit(2);
  }
}

// Write tokenizer.json (and optionally tokenizer_config.json; NULL removes it) and load.
static lt_tokenizer *load_json(const char *json, const char *config, unsigned flags, lt_err *err) {
  write_text("tokenizer.json", json);
  char cfg[2048];
  snprintf(cfg, sizeof cfg, "%s/tokenizer_config.json", g_dir);
  if (config) write_text("tokenizer_config.json", config);
  else unlink(cfg);
  lt_tokenizer *t = NULL;
  err->msg[0] = 0;
  if (lt_tokenizer_load_ex(&t, g_dir, flags, err)) return NULL;
  return t;
}

static int enc_eq(lt_tokenizer *t, const char *text, int special, const int32_t *want, int nwant) {
  int32_t *ids;
  int n;
  lt_err err;
  if (lt_tokenizer_encode(t, text, strlen(text), special, &ids, &n, &err)) {
    fprintf(stderr, "encode(%s) failed: %s\n", text, err.msg);
    return 0;
  }
  int ok = n == nwant && (n == 0 || memcmp(ids, want, (size_t)n * sizeof *ids) == 0);
  if (!ok) {
    fprintf(stderr, "encode(\"%s\"): got", text);
    for (int i = 0; i < n; i++) fprintf(stderr, " %d", ids[i]);
    fprintf(stderr, ", want");
    for (int i = 0; i < nwant; i++) fprintf(stderr, " %d", want[i]);
    fprintf(stderr, "\n");
  }
  free(ids);
  return ok;
}
#define ENC(t, text, special, ...)                                              \
  do {                                                                          \
    const int32_t _w[] = {__VA_ARGS__};                                         \
    CHECK(enc_eq((t), (text), (special), _w, (int)(sizeof _w / sizeof _w[0]))); \
  } while (0)

static int dec_eq(lt_tokenizer *t, const int32_t *ids, int n, int skip, const char *want) {
  char *text;
  size_t len;
  lt_err err;
  if (lt_tokenizer_decode(t, ids, n, skip, &text, &len, &err)) {
    fprintf(stderr, "decode failed: %s\n", err.msg);
    return 0;
  }
  int ok = len == strlen(want) && memcmp(text, want, len) == 0;
  if (!ok) fprintf(stderr, "decode: got \"%s\", want \"%s\"\n", text, want);
  free(text);
  return ok;
}
#define DEC(t, skip, want, ...)                                                \
  do {                                                                         \
    const int32_t _i[] = {__VA_ARGS__};                                        \
    CHECK(dec_eq((t), _i, (int)(sizeof _i / sizeof _i[0]), (skip), (want))); \
  } while (0)

// Stream ids one by one: every piece must be valid UTF-8 and the concatenation must equal the full decode.
static void check_stream(lt_tokenizer *t, const int32_t *ids, int n, int skip) {
  lt_err err;
  lt_detok_stream *s;
  CHECK(lt_detok_stream_new(&s, t, skip, &err) == 0);
  char acc[4096] = "";
  size_t an = 0;
  for (int i = 0; i <= n; i++) {
    char *p;
    size_t pl;
    int rc = i < n ? lt_detok_stream_push(s, ids[i], &p, &pl, &err) : lt_detok_stream_flush(s, &p, &pl, &err);
    CHECK_MSG(rc == 0, "%s", err.msg);
    if (rc) break;
    // a piece never ends inside a UTF-8 character
    size_t k = 0;
    while (k < pl) {
      unsigned char c = (unsigned char)p[k];
      size_t cl = c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
      CHECK(k + cl <= pl);
      k += cl;
    }
    if (an + pl < sizeof acc) {
      memcpy(acc + an, p, pl);
      an += pl;
    }
    free(p);
  }
  acc[an] = 0;
  char *full;
  size_t fl;
  CHECK(lt_tokenizer_decode(t, ids, n, skip, &full, &fl, &err) == 0);
  CHECK_MSG(fl == an && memcmp(full, acc, an) == 0, "stream \"%s\" vs full \"%s\"", acc, full);
  free(full);
  lt_detok_stream_free(s);
}

// ---------------------------------------------------------------- byte-level BPE
// ByteLevel alphabet: 'Ġ' (U+0120) is the space byte. Ids: h0 e1 l2 o3 w4 r5 d6 Ġ7 he8 ll9 hell10 hello11 Ġw12
// plus the UTF-8 bytes of "é" (0xC3 -> Ã, 0xA9 -> ©): Ã13 ©14 Ã©15.
static const char *BL_VOCAB =
    "\"vocab\": {\"h\":0,\"e\":1,\"l\":2,\"o\":3,\"w\":4,\"r\":5,\"d\":6,\"\xC4\xA0\":7,\"he\":8,\"ll\":9,"
    "\"hell\":10,\"hello\":11,\"\xC4\xA0w\":12,\"\xC3\x83\":13,\"\xC2\xA9\":14,\"\xC3\x83\xC2\xA9\":15}";

static void test_bytelevel(void) {
  char json[4096];
  lt_err err;
  // merges as "a b" strings
  snprintf(json, sizeof json,
           "{\"version\":\"1.0\",\"added_tokens\":[{\"id\":16,\"content\":\"<|end|>\",\"special\":true,"
           "\"lstrip\":false,\"rstrip\":false,\"single_word\":false,\"normalized\":false}],"
           "\"normalizer\":null,\"pre_tokenizer\":{\"type\":\"ByteLevel\",\"add_prefix_space\":false,"
           "\"trim_offsets\":true,\"use_regex\":true},"
           "\"post_processor\":{\"type\":\"TemplateProcessing\",\"single\":[{\"Sequence\":{\"id\":\"A\",\"type_id\":0}},"
           "{\"SpecialToken\":{\"id\":\"<|end|>\",\"type_id\":0}}],\"pair\":[],\"special_tokens\":{\"<|end|>\":"
           "{\"id\":\"<|end|>\",\"ids\":[16],\"tokens\":[\"<|end|>\"]}}},"
           "\"decoder\":{\"type\":\"ByteLevel\"},\"model\":{\"type\":\"BPE\",\"dropout\":null,%s,"
           "\"merges\":[\"h e\",\"l l\",\"he ll\",\"hell o\",\"\xC4\xA0 w\",\"\xC3\x83 \xC2\xA9\"]}}",
           BL_VOCAB);
  lt_tokenizer *t = load_json(json, NULL, 0, &err);
  CHECK_MSG(t != NULL, "%s", err.msg);
  if (!t) return;
  ENC(t, "hello world", 0, 11, 12, 3, 5, 2, 6);
  ENC(t, "hello world", 1, 11, 12, 3, 5, 2, 6, 16);
  ENC(t, "hello<|end|>", 0, 11, 16);
  ENC(t, "\xC3\xA9", 0, 15);
  ENC(t, "", 0);
  ENC(t, "", 1, 16);
  DEC(t, 0, "hello world<|end|>", 11, 12, 3, 5, 2, 6, 16);
  DEC(t, 1, "hello world", 11, 12, 3, 5, 2, 6, 16);
  DEC(t, 0, "\xC3\xA9", 13, 14);
  DEC(t, 0, "\xEF\xBF\xBD", 13);  // half a character: U+FFFD as from_utf8_lossy
  DEC(t, 0, "hello", 11, 999);    // unknown ids are dropped, as tokenizers does
  CHECK(lt_tokenizer_vocab_size(t) == 17);
  CHECK(lt_tokenizer_token_to_id(t, "<|end|>") == 16);
  CHECK(lt_tokenizer_token_to_id(t, "hello") == 11);
  CHECK(lt_tokenizer_token_to_id(t, "nope") == -1);
  CHECK(lt_tokenizer_id_to_token(t, 12) && strcmp(lt_tokenizer_id_to_token(t, 12), "\xC4\xA0w") == 0);
  CHECK(lt_tokenizer_id_to_token(t, 17) == NULL);
  CHECK(lt_tokenizer_is_special(t, 16) && !lt_tokenizer_is_special(t, 11));
  {
    const int32_t ids[] = {11, 13, 14, 12, 16, 13, 3, 13, 14};
    check_stream(t, ids, 9, 0);
    check_stream(t, ids, 9, 1);
  }
  // invalid UTF-8 input names the byte offset
  int32_t *ids;
  int n;
  CHECK(lt_tokenizer_encode(t, "abc\xC3(", 5, 0, &ids, &n, &err) == -1);
  CHECK_HAS(err.msg, "byte offset 3");
  CHECK(lt_tokenizer_encode(t, "ab\xED\xA0\x80", 5, 0, &ids, &n, &err) == -1);  // a surrogate
  CHECK_HAS(err.msg, "byte offset 2");
  lt_tokenizer_free(t);

  // the same with [a, b] pair merges and ignore_merges (whole word in the vocab wins)
  snprintf(json, sizeof json,
           "{\"added_tokens\":[],\"normalizer\":null,\"pre_tokenizer\":{\"type\":\"ByteLevel\","
           "\"add_prefix_space\":true,\"use_regex\":true},\"post_processor\":null,\"decoder\":{\"type\":\"ByteLevel\"},"
           "\"model\":{\"type\":\"BPE\",\"ignore_merges\":true,%s,"
           "\"merges\":[[\"h\",\"e\"],[\"l\",\"l\"],[\"he\",\"ll\"],[\"hell\",\"o\"],[\"\xC4\xA0\",\"w\"]]}}",
           BL_VOCAB);
  t = load_json(json, NULL, 0, &err);
  CHECK_MSG(t != NULL, "%s", err.msg);
  if (t) {
    ENC(t, "hello", 0, 7, 11);  // add_prefix_space: " hello" -> Ġ + hello
    ENC(t, "hello world", 1, 7, 11, 12, 3, 5, 2, 6);
    DEC(t, 0, " hello world", 7, 11, 12, 3, 5, 2, 6);
    lt_tokenizer_free(t);
  }
}

// ---------------------------------------------------------------- Metaspace / byte_fallback (Llama 2 style)
static void test_sentencepiece_style(void) {
  lt_err err;
  const char *json =
      "{\"added_tokens\":[{\"id\":0,\"content\":\"<unk>\",\"special\":true,\"normalized\":false},"
      "{\"id\":1,\"content\":\"<s>\",\"special\":true,\"normalized\":false}],"
      "\"normalizer\":{\"type\":\"Sequence\",\"normalizers\":[{\"type\":\"Prepend\",\"prepend\":\"\xE2\x96\x81\"},"
      "{\"type\":\"Replace\",\"pattern\":{\"String\":\" \"},\"content\":\"\xE2\x96\x81\"}]},"
      "\"pre_tokenizer\":null,"
      "\"post_processor\":{\"type\":\"TemplateProcessing\",\"single\":[{\"SpecialToken\":{\"id\":\"<s>\",\"type_id\":0}},"
      "{\"Sequence\":{\"id\":\"A\",\"type_id\":0}}],\"special_tokens\":{\"<s>\":{\"id\":\"<s>\",\"ids\":[1],"
      "\"tokens\":[\"<s>\"]}}},"
      "\"decoder\":{\"type\":\"Sequence\",\"decoders\":[{\"type\":\"Replace\",\"pattern\":{\"String\":\"\xE2\x96\x81\"},"
      "\"content\":\" \"},{\"type\":\"ByteFallback\"},{\"type\":\"Fuse\"},{\"type\":\"Strip\",\"content\":\" \","
      "\"start\":1,\"stop\":0}]},"
      "\"model\":{\"type\":\"BPE\",\"unk_token\":\"<unk>\",\"fuse_unk\":true,\"byte_fallback\":true,"
      "\"vocab\":{\"<unk>\":0,\"<s>\":1,\"<0xC3>\":2,\"<0xA9>\":3,\"\xE2\x96\x81\":4,\"a\":5,\"b\":6,"
      "\"\xE2\x96\x81" "a\":7,\"ab\":8,\"\xE2\x96\x81" "ab\":9},"
      "\"merges\":[\"\xE2\x96\x81 a\",\"\xE2\x96\x81" "a b\",\"a b\"]}}";
  lt_tokenizer *t = load_json(json, NULL, 0, &err);
  CHECK_MSG(t != NULL, "%s", err.msg);
  if (!t) return;
  ENC(t, "ab", 0, 9);
  ENC(t, "ab ab", 1, 1, 9, 9);
  ENC(t, "a\xC3\xA9", 0, 7, 2, 3);        // é by byte fallback
  ENC(t, "ax\xE2\x82\xAC", 0, 7, 0);      // x and € have no byte tokens: one fused <unk>
  ENC(t, "<s>ab", 0, 1, 9);               // ab after an added token is normalized on its own: ▁ab
  DEC(t, 0, "<s> ab ab", 1, 9, 9);
  DEC(t, 1, "ab ab", 1, 9, 9);
  DEC(t, 0, "a\xC3\xA9", 7, 2, 3);
  DEC(t, 0, "a\xEF\xBF\xBD", 7, 2);       // an incomplete byte sequence: one U+FFFD per byte
  {
    const int32_t ids[] = {7, 2, 3, 9, 2, 5, 2, 3};
    check_stream(t, ids, 8, 0);
  }
  lt_tokenizer_free(t);

  // The same file with tokenizer_config.json class LlamaTokenizer: transformers rebuilds the pipeline
  // (Metaspace prepend_scheme from legacy, no normalizer) and ignores add_bos_token.
  t = load_json(json, "{\"tokenizer_class\":\"LlamaTokenizerFast\",\"legacy\":false,\"add_bos_token\":false,"
                      "\"bos_token\":\"<s>\",\"eos_token\":\"</s>\"}",
                0, &err);
  CHECK_MSG(t != NULL, "%s", err.msg);
  if (t) {
    CHECK(strcmp(lt_tokenizer_class(t), "LlamaTokenizer") == 0);
    ENC(t, "ab ab", 1, 1, 9, 9);
    ENC(t, " ab", 0, 9);        // Metaspace: " ab" -> "▁ab" (no second ▁)
    ENC(t, "<s>ab", 0, 1, 8);  // prepend_scheme "first": no ▁ after the added token
    CHECK(lt_tokenizer_bos_id(t) == 1);
    CHECK(lt_tokenizer_eos_id(t) == -1);  // "</s>" is not in the vocabulary
    lt_tokenizer_free(t);
  }
  // LT_TOK_RAW ignores the config
  t = load_json(json, "{\"tokenizer_class\":\"LlamaTokenizerFast\",\"legacy\":false}", LT_TOK_RAW, &err);
  CHECK_MSG(t != NULL, "%s", err.msg);
  if (t) {
    ENC(t, "<s>ab", 0, 1, 9);
    CHECK(lt_tokenizer_class(t)[0] == 0);
    lt_tokenizer_free(t);
  }
}

// ---------------------------------------------------------------- WordPiece + Bert
static void test_wordpiece(void) {
  lt_err err;
  const char *json =
      "{\"added_tokens\":[{\"id\":0,\"content\":\"[UNK]\",\"special\":true},{\"id\":1,\"content\":\"[CLS]\","
      "\"special\":true},{\"id\":2,\"content\":\"[SEP]\",\"special\":true}],"
      "\"normalizer\":{\"type\":\"BertNormalizer\",\"clean_text\":true,\"handle_chinese_chars\":true,"
      "\"strip_accents\":null,\"lowercase\":true},"
      "\"pre_tokenizer\":{\"type\":\"BertPreTokenizer\"},"
      "\"post_processor\":{\"type\":\"BertProcessing\",\"sep\":[\"[SEP]\",2],\"cls\":[\"[CLS]\",1]},"
      "\"decoder\":{\"type\":\"WordPiece\",\"prefix\":\"##\",\"cleanup\":true},"
      "\"model\":{\"type\":\"WordPiece\",\"unk_token\":\"[UNK]\",\"continuing_subword_prefix\":\"##\","
      "\"max_input_chars_per_word\":9,\"vocab\":{\"[UNK]\":0,\"[CLS]\":1,\"[SEP]\":2,\"un\":3,\"##aff\":4,"
      "\"##able\":5,\"a\":6,\".\":7,\"\xE4\xB8\xAD\":8,\"cafe\":9}}}";
  lt_tokenizer *t = load_json(json, NULL, 0, &err);
  CHECK_MSG(t != NULL, "%s", err.msg);
  if (!t) return;
  ENC(t, "Unaffable A.", 0, 3, 4, 5, 6, 7);
  ENC(t, "Unaffable A.", 1, 1, 3, 4, 5, 6, 7, 2);
  ENC(t, "a\xE4\xB8\xAD" "a", 0, 6, 8, 6);  // Chinese chars are split out
  ENC(t, "Caf\xC3\xA9", 0, 9);               // accents stripped (follows lowercase)
  ENC(t, "unaffableaaa", 0, 0);              // longer than max_input_chars_per_word
  ENC(t, "unx", 0, 0);                       // unmatchable rest
  ENC(t, "a\x01\tb", 0, 6, 0);               // control char removed, tab is whitespace
  DEC(t, 0, "[CLS] unaffable a. [SEP]", 1, 3, 4, 5, 6, 7, 2);
  DEC(t, 1, "unaffable a.", 1, 3, 4, 5, 6, 7, 2);
  lt_tokenizer_free(t);
}

// ---------------------------------------------------------------- normalizers / pre-tokenizers / added tokens
static void test_components(void) {
  lt_err err;
  // Vocab of single chars a-z, digits, ▁, and some words; model WordPiece-free BPE without merges.
  char vocab[4096];
  size_t vn = (size_t)snprintf(vocab, sizeof vocab, "\"vocab\":{\"<unk>\":0");
  int id = 1;
  for (char c = 'a'; c <= 'z'; c++) vn += (size_t)snprintf(vocab + vn, sizeof vocab - vn, ",\"%c\":%d", c, id++);
  for (char c = '0'; c <= '9'; c++) vn += (size_t)snprintf(vocab + vn, sizeof vocab - vn, ",\"%c\":%d", c, id++);
  vn += (size_t)snprintf(vocab + vn, sizeof vocab - vn, ",\"\xE2\x96\x81\":%d,\"!\":%d,\" \":%d}", id, id + 1, id + 2);
  // ids: a=1 .. z=26, '0'=27 .. '9'=36, ▁=37, !=38, ' '=39
  char json[8192];
  snprintf(json, sizeof json,
           "{\"added_tokens\":[{\"id\":40,\"content\":\"[X]\",\"special\":true,\"lstrip\":true,\"rstrip\":true,"
           "\"normalized\":false},{\"id\":41,\"content\":\"cat\",\"special\":false,\"single_word\":true,"
           "\"normalized\":true}],"
           "\"normalizer\":{\"type\":\"Sequence\",\"normalizers\":[{\"type\":\"NFKC\"},{\"type\":\"Lowercase\"},"
           "{\"type\":\"Strip\",\"strip_left\":true,\"strip_right\":true},"
           "{\"type\":\"Replace\",\"pattern\":{\"Regex\":\"[0-9]{4,}\"},\"content\":\"9\"}]},"
           "\"pre_tokenizer\":{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"WhitespaceSplit\"},"
           "{\"type\":\"Digits\",\"individual_digits\":true},{\"type\":\"Punctuation\",\"behavior\":\"Isolated\"},"
           "{\"type\":\"Split\",\"pattern\":{\"String\":\"o\"},\"behavior\":\"MergedWithNext\",\"invert\":false}]},"
           "\"post_processor\":{\"type\":\"RobertaProcessing\",\"sep\":[\"</s>\",39],\"cls\":[\"<s>\",38]},"
           "\"decoder\":null,\"model\":{\"type\":\"BPE\",\"unk_token\":\"<unk>\",%s,\"merges\":[]}}",
           vocab);
  lt_tokenizer *t = load_json(json, NULL, 0, &err);
  CHECK_MSG(t != NULL, "%s", err.msg);
  if (!t) return;
  ENC(t, "  \xEF\xAC\x81X  ", 0, 6, 9, 24);      // NFKC ﬁ -> fi, lowercase, strip
  ENC(t, "ab12345!", 0, 1, 2, 36, 38);           // regex Replace of 4+ digits, Digits, Punctuation
  ENC(t, "12", 1, 38, 28, 29, 39);               // Roberta <s> A </s>
  ENC(t, "ab [X] cd", 0, 1, 2, 40, 3, 4);        // lstrip/rstrip eat the spaces
  ENC(t, "a cat b", 0, 1, 41, 2);                // single_word match
  ENC(t, "acat b", 0, 1, 3, 1, 20, 2);           // not at a word boundary: plain text
  ENC(t, "foo", 0, 6, 15, 15);                   // Split "o" MergedWithNext: f | o | o ... -> f, o, o pieces
  DEC(t, 0, "a b", 1, 2);                        // no decoder: tokens joined with spaces
  DEC(t, 1, "a cat", 1, 41, 40);                 // [X] is special
  lt_tokenizer_free(t);

  // Metaspace (split, prepend first) + Whitespace + Contiguous digits, Metaspace decoder
  snprintf(json, sizeof json,
           "{\"added_tokens\":[],\"normalizer\":{\"type\":\"NFD\"},"
           "\"pre_tokenizer\":{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"Digits\",\"individual_digits\":false},"
           "{\"type\":\"Metaspace\",\"replacement\":\"\xE2\x96\x81\",\"prepend_scheme\":\"first\",\"split\":true}]},"
           "\"post_processor\":null,\"decoder\":{\"type\":\"Metaspace\",\"replacement\":\"\xE2\x96\x81\","
           "\"prepend_scheme\":\"first\"},\"model\":{\"type\":\"BPE\",\"unk_token\":\"<unk>\",%s,\"merges\":[]}}",
           vocab);
  t = load_json(json, NULL, 0, &err);
  CHECK_MSG(t != NULL, "%s", err.msg);
  if (t) {
    ENC(t, "ab 12", 0, 37, 1, 2, 37, 28, 29);
    DEC(t, 0, "ab 12", 37, 1, 2, 37, 28, 29);
    lt_tokenizer_free(t);
  }
}

// ---------------------------------------------------------------- errors
static void expect_load_error(const char *json, const char *sub1, const char *sub2) {
  lt_err err;
  lt_tokenizer *t = load_json(json, NULL, 0, &err);
  CHECK_MSG(t == NULL, "loaded: %.80s", json);
  if (t) {
    lt_tokenizer_free(t);
    return;
  }
  CHECK_HAS(err.msg, sub1);
  if (sub2) CHECK_HAS(err.msg, sub2);
}

static void test_errors(void) {
  expect_load_error("{\"model\": {\"type\": \"BPE\",\n \"vocab\": {\"a\": 0,,}}}", "invalid JSON", "line 2");
  expect_load_error("[1, 2]", "top level must be an object", NULL);
  expect_load_error("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":1,\"ab\":2},\"merges\":[\"a b\",\"a c\"]}}",
                    "model.merges[1]", "\"c\" is not in the vocabulary");
  expect_load_error("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":1},\"merges\":[\"a b\"]}}",
                    "model.merges[0]", "merged token \"ab\"");
  expect_load_error("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[\"a  a\"]}}", "model.merges[0]",
                    "two tokens");
  expect_load_error("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[17]}}", "model.merges[0]", NULL);
  expect_load_error("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":-3},\"merges\":[]}}", "model.vocab", "\"a\"");
  expect_load_error("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":1.5},\"merges\":[]}}", "model.vocab", NULL);
  expect_load_error("{\"model\":{\"type\":\"Unigram\",\"vocab\":[]}}", "unsupported model type \"Unigram\"",
                    "supported: BPE, WordPiece");
  expect_load_error("{\"model\":{\"type\":\"BPE\",\"vocab\":{},\"merges\":[]},\"normalizer\":{\"type\":\"Precompiled\"}}",
                    "normalizer: unsupported normalizer type \"Precompiled\"", "supported: NFC");
  expect_load_error("{\"model\":{\"type\":\"BPE\",\"vocab\":{},\"merges\":[]},\"pre_tokenizer\":{\"type\":\"Sequence\","
                    "\"pretokenizers\":[{\"type\":\"ByteLevel\"},{\"type\":\"UnicodeScripts\"}]}}",
                    "pre_tokenizer.pretokenizers[1]", "unsupported pre_tokenizer type \"UnicodeScripts\"");
  expect_load_error("{\"model\":{\"type\":\"BPE\",\"vocab\":{},\"merges\":[]},\"decoder\":{\"type\":\"CTC\"}}",
                    "unsupported decoder type \"CTC\"", "ByteLevel");
  expect_load_error("{\"model\":{\"type\":\"BPE\",\"vocab\":{},\"merges\":[]},\"post_processor\":{\"type\":\"Foo\"}}",
                    "unsupported post_processor type \"Foo\"", "TemplateProcessing");
  expect_load_error("{\"model\":{\"type\":\"BPE\",\"vocab\":{},\"merges\":[]},\"pre_tokenizer\":{\"type\":\"Split\","
                    "\"pattern\":{\"Regex\":\"(unclosed\"},\"behavior\":\"Isolated\"}}",
                    "pre_tokenizer.pattern", "does not compile");
  expect_load_error("{\"model\":{\"type\":\"BPE\",\"vocab\":{},\"merges\":[]},\"pre_tokenizer\":{\"type\":\"Split\","
                    "\"pattern\":{\"String\":\"x\"},\"behavior\":\"Sideways\"}}",
                    "unknown split behavior \"Sideways\"", NULL);
  expect_load_error("{\"model\":{\"type\":\"BPE\",\"vocab\":{},\"merges\":[]},\"added_tokens\":[{\"id\":3}]}",
                    "added_tokens[0]", "content");
  expect_load_error("{\"model\":{\"type\":\"BPE\",\"vocab\":{},\"merges\":[],\"dropout\":0.1}}", "dropout", NULL);
  expect_load_error("{\"model\":{\"type\":\"BPE\",\"vocab\":{},\"merges\":[]},\"post_processor\":{\"type\":"
                    "\"TemplateProcessing\",\"single\":[{\"SpecialToken\":{\"id\":\"<s>\"}}],\"special_tokens\":{}}}",
                    "post_processor.single[0]", "<s>");
  lt_err err;
  lt_tokenizer *t;
  CHECK(lt_tokenizer_load(&t, "/nonexistent/dir", &err) == -1);
  CHECK_HAS(err.msg, "/nonexistent/dir");
}

// Every truncation and seeded byte corruptions of a valid file: an error or a tokenizer, never a crash.
static void test_robustness(void) {
  const char *json =
      "{\"added_tokens\":[{\"id\":5,\"content\":\"<s>\",\"special\":true}],\"normalizer\":{\"type\":\"NFC\"},"
      "\"pre_tokenizer\":{\"type\":\"Split\",\"pattern\":{\"Regex\":\"\\\\p{L}+|\\\\s+\"},\"behavior\":\"Isolated\"},"
      "\"post_processor\":{\"type\":\"TemplateProcessing\",\"single\":[{\"SpecialToken\":{\"id\":\"<s>\",\"type_id\":0}},"
      "{\"Sequence\":{\"id\":\"A\",\"type_id\":0}}],\"special_tokens\":{\"<s>\":{\"id\":\"<s>\",\"ids\":[5]}}},"
      "\"decoder\":{\"type\":\"Fuse\"},"
      "\"model\":{\"type\":\"BPE\",\"unk_token\":\"u\",\"vocab\":{\"a\":0,\"b\":1,\"ab\":2,\"u\":3,\" \":4},"
      "\"merges\":[\"a b\"]}}";
  size_t n = strlen(json);
  char *buf = malloc(n + 1);
  int loaded = 0;
  for (size_t cut = 0; cut < n; cut++) {
    memcpy(buf, json, cut);
    buf[cut] = 0;
    lt_err err;
    lt_tokenizer *t = load_json(buf, NULL, 0, &err);
    if (t) loaded++;
    else CHECK(strstr(err.msg, "tokenizer") != NULL);
    lt_tokenizer_free(t);
  }
  CHECK(loaded == 0);
  uint64_t seed = 1234;
  int ok = 0;
  for (int it = 0; it < 400; it++) {
    memcpy(buf, json, n + 1);
    for (int k = 0; k < 3; k++) {
      seed = seed * 6364136223846793005ull + 1442695040888963407ull;
      size_t pos = (size_t)(seed >> 33) % n;
      static const char repl[] = "{}[]\",:0 9a\\-x";
      buf[pos] = repl[(seed >> 20) % (sizeof repl - 1)];
    }
    lt_err err;
    lt_tokenizer *t = load_json(buf, NULL, 0, &err);
    if (t) {
      ok++;
      int32_t *ids;
      int m;
      if (lt_tokenizer_encode(t, "ab ba", 5, 1, &ids, &m, &err) == 0) {
        char *s;
        size_t sl;
        if (lt_tokenizer_decode(t, ids, m, 0, &s, &sl, &err) == 0) free(s);
        free(ids);
      }
      lt_tokenizer_free(t);
    }
  }
  lt_err err;
  lt_tokenizer *t = load_json(json, NULL, 0, &err);
  CHECK_MSG(t != NULL, "%s", err.msg);
  if (t) {
    ENC(t, "ab ba", 1, 5, 2, 4, 1, 0);
    lt_tokenizer_free(t);
  }
  free(buf);
  fprintf(stderr, "robustness: %d of 400 corrupted files still loaded\n", ok);
}

int main(void) {
  snprintf(g_dir, sizeof g_dir, "%s/tokenizer_unit", LT_TMPDIR);
  lt_err err;
  if (lt_mkdirs(g_dir, &err)) {
    fprintf(stderr, "%s\n", err.msg);
    return 2;
  }
  test_bytelevel();
  test_sentencepiece_style();
  test_wordpiece();
  test_components();
  test_errors();
  test_robustness();
  TEST_MAIN_END();
}
