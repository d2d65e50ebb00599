// Tokenizer: loads a Hugging Face tokenizer.json (+ tokenizer_config.json), applies the transformers class rules,
// and runs the encode / decode pipelines exactly as HF tokenizers 0.23 / transformers 5.23.
//
// transformers 5.23 rules (AutoTokenizer.from_pretrained(dir), verified against the installed version):
//  1. add_bos_token / add_eos_token in tokenizer_config.json are IGNORED whenever tokenizer.json exists
//     (PreTrainedTokenizerBase._from_pretrained pops them), so the special tokens added by tok(text) are exactly
//     those of tokenizer.json's post_processor (none when it is null or ByteLevel). E.g. deepseek_v3 declares
//     add_bos_token: true but transformers adds no BOS, because its post_processor is ByteLevel.
//  2. tokenizer_class (a "Fast" suffix is dropped) selects a class whose __init__ rebuilds the pipeline from the
//     vocab and merges of tokenizer.json (post_processor and added tokens are kept from tokenizer.json):
//     - LlamaTokenizer: if tokenizer.json mentions "ByteLevel" anywhere, AutoTokenizer loads TokenizersBackend
//       instead (file as is; Llama 3 / DeepSeek style). Otherwise: no normalizer; Metaspace pre-tokenizer ("▁",
//       split=false, prepend_scheme "always" when legacy (default false) else "first", "never" when
//       add_prefix_space is false; add_prefix_space defaults to true); BPE with byte_fallback, fuse_unk, no unk
//       token; decoder Replace("▁"," "), ByteFallback, Fuse (+ Strip(" ", 1, 0) when add_prefix_space).
//     - GemmaTokenizer: normalizer Replace(" ", "▁"); Split(" ", MergedWithPrevious); BPE byte_fallback, fuse_unk,
//       unk_token (config unk_token or "<unk>"); decoder Replace("▁"," "), ByteFallback, Fuse.
//     - Qwen2Tokenizer: NFC; Split(Qwen2 regex, Isolated) + ByteLevel(add_prefix_space from config, default false,
//       use_regex false); BPE without unk / byte_fallback / fuse_unk / ignore_merges; decoder ByteLevel.
//     - BertTokenizer: BertNormalizer(clean_text, tokenize_chinese_chars, strip_accents, do_lower_case);
//       BertPreTokenizer; WordPiece(unk_token, "##", 100); decoder WordPiece("##", cleanup).
//     - any other class (PreTrainedTokenizerFast, TokenizersBackend, ...): tokenizer.json as is.
//  3. named special tokens (bos/eos/unk/pad/mask/cls/sep from the config, else the class defaults) that exist as
//     added tokens become special (e.g. Gemma's "<mask>"), which matters for skip_special_tokens.
//  4. decode: tokenizers' decode, then clean_up_tokenization (" ." -> "." ...) when clean_up_tokenization_spaces
//     is true and the model is not BPE (transformers skips it for BPE).
// With LT_TOK_RAW none of this applies: tokenizer.json is used as `tokenizers.Tokenizer.from_file` does.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "tokenizer/tok_internal.h"
#include "tokenizer/tokconfig.h"

int tk_cleanup_apply(tk_buf *s, int wordpiece);

static const char QWEN2_RE[] =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
    "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

static int oom(lt_err *err) { return lt_errf(err, "tokenizer: out of memory"); }

// ---------------------------------------------------------------- scratch
static int scratch_init(tk_scratch *sc, lt_err *err) {
  memset(sc, 0, sizeof *sc);
  sc->md = pcre2_match_data_create(1, NULL);
  return sc->md ? 0 : oom(err);
}

static void scratch_free(tk_scratch *sc) {
  if (sc->md) pcre2_match_data_free(sc->md);
  free(sc->r1.r);
  free(sc->r2.r);
  tk_buf_free(&sc->t1);
  tk_buf_free(&sc->t2);
}

// ---------------------------------------------------------------- config extras
typedef struct {
  cJSON *root;  // tokenizer_config.json (NULL when absent)
} cfg_t;

// A token string field: "..." or {"content": "..."}; *present = 1 when the key exists (even as null).
static const char *cfg_token(const cfg_t *c, const char *key, int *present) {
  *present = 0;
  if (!c->root) return NULL;
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(c->root, key);
  if (!v) return NULL;
  *present = 1;
  if (cJSON_IsObject(v)) v = cJSON_GetObjectItemCaseSensitive(v, "content");
  return cJSON_IsString(v) ? v->valuestring : NULL;
}

static int cfg_bool(const cfg_t *c, const char *key, int dflt) {
  if (!c->root) return dflt;
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(c->root, key);
  if (!v || !cJSON_IsBool(v)) return dflt;
  return cJSON_IsTrue(v);
}

static int load_cfg(cfg_t *c, const char *dir, lt_err *err) {
  c->root = NULL;
  char p[4096];
  if (lt_path_join(p, sizeof p, dir, "tokenizer_config.json")) return lt_errf(err, "tokenizer: path too long");
  if (!lt_file_exists(p)) return 0;
  char *data;
  size_t len;
  if (lt_read_file(p, &data, &len, err)) return -1;
  c->root = cJSON_ParseWithLength(data, len);
  free(data);
  if (!c->root || !cJSON_IsObject(c->root)) {
    cJSON_Delete(c->root);
    c->root = NULL;
    return lt_errf(err, "%s: invalid JSON", p);
  }
  return 0;
}

// ---------------------------------------------------------------- class rebuilds
static int set_str(char **dst, size_t *len, const char *s, lt_err *err) {
  free(*dst);
  *dst = NULL;
  if (len) *len = 0;
  if (!s) return 0;
  if (!(*dst = strdup(s))) return oom(err);
  if (len) *len = strlen(s);
  return 0;
}

static int mk_replace_dec(tk_dec *d, const char *from, const char *to, lt_err *err) {
  memset(d, 0, sizeof *d);
  d->type = TK_D_REPLACE;
  if (tk_regex_init(&d->re, from, strlen(from), 1, "decoder", err)) return -1;
  return set_str(&d->content, &d->content_len, to, err);
}

// decoder = Sequence[Replace("▁"," "), ByteFallback, Fuse, (Strip(" ",1,0))]
static int mk_sp_decoder(tk_dec *d, int strip, lt_err *err) {
  tk_dec_free(d);
  d->type = TK_D_SEQ;
  d->sub = calloc(4, sizeof *d->sub);
  if (!d->sub) return oom(err);
  d->nsub = 3 + (strip ? 1 : 0);
  if (mk_replace_dec(&d->sub[0], "\xE2\x96\x81", " ", err)) return -1;
  d->sub[1].type = TK_D_BYTEFALLBACK;
  d->sub[2].type = TK_D_FUSE;
  if (strip) {
    d->sub[3].type = TK_D_STRIP;
    d->sub[3].strip_content = ' ';
    d->sub[3].start = 1;
    d->sub[3].stop = 0;
  }
  return 0;
}

static void reset_bpe_flags(tk_model *m) {
  free(m->prefix);
  free(m->suffix);
  free(m->unk_token);
  m->prefix = m->suffix = m->unk_token = NULL;
  m->prefix_len = m->suffix_len = 0;
  m->fuse_unk = m->byte_fallback = m->ignore_merges = 0;
}

static int rebuild_llama(lt_tokenizer *t, const cfg_t *c, lt_err *err) {
  int aps = cfg_bool(c, "add_prefix_space", 1), legacy = cfg_bool(c, "legacy", 0);
  tk_norm_free(&t->norm);
  tk_pretok_free(&t->pre);
  t->pre.type = TK_P_METASPACE;
  t->pre.replacement = 0x2581;
  t->pre.rep_len = tk_utf8_enc(0x2581, t->pre.rep);
  t->pre.prepend_scheme = aps ? (legacy ? TK_PREPEND_ALWAYS : TK_PREPEND_FIRST) : TK_PREPEND_NEVER;
  t->pre.split = 0;
  reset_bpe_flags(&t->model);
  t->model.fuse_unk = 1;
  t->model.byte_fallback = 1;
  if (tk_bpe_finish(&t->model, err)) return -1;
  t->has_dec = 1;
  return mk_sp_decoder(&t->dec, aps, err);
}

static int rebuild_gemma(lt_tokenizer *t, const cfg_t *c, lt_err *err) {
  int present;
  const char *unk = cfg_token(c, "unk_token", &present);
  if (!present) unk = "<unk>";
  tk_norm_free(&t->norm);
  t->norm.type = TK_N_REPLACE;
  if (tk_regex_init(&t->norm.re, " ", 1, 1, "normalizer", err) ||
      set_str(&t->norm.content, &t->norm.content_len, "\xE2\x96\x81", err))
    return -1;
  tk_pretok_free(&t->pre);
  t->pre.type = TK_P_SPLIT;
  t->pre.behavior = TK_SPLIT_MERGED_PREV;
  if (tk_regex_init(&t->pre.re, " ", 1, 1, "pre_tokenizer", err)) return -1;
  reset_bpe_flags(&t->model);
  t->model.fuse_unk = 1;
  t->model.byte_fallback = 1;
  if (set_str(&t->model.unk_token, NULL, unk, err) || tk_bpe_finish(&t->model, err)) return -1;
  t->has_dec = 1;
  return mk_sp_decoder(&t->dec, 0, err);
}

static int rebuild_qwen2(lt_tokenizer *t, const cfg_t *c, lt_err *err) {
  int aps = cfg_bool(c, "add_prefix_space", 0);
  tk_norm_free(&t->norm);
  t->norm.type = TK_N_NFC;
  tk_pretok_free(&t->pre);
  t->pre.type = TK_P_SEQ;
  t->pre.sub = calloc(2, sizeof *t->pre.sub);
  if (!t->pre.sub) return oom(err);
  t->pre.nsub = 2;
  t->pre.sub[0].type = TK_P_SPLIT;
  t->pre.sub[0].behavior = TK_SPLIT_ISOLATED;
  if (tk_regex_init(&t->pre.sub[0].re, QWEN2_RE, strlen(QWEN2_RE), 0, "pre_tokenizer", err)) return -1;
  t->pre.sub[1].type = TK_P_BYTELEVEL;
  t->pre.sub[1].add_prefix_space = aps;
  tk_bytelevel_tables(t->pre.sub[1].enc, t->pre.sub[1].enc_len);
  reset_bpe_flags(&t->model);
  if (set_str(&t->model.prefix, &t->model.prefix_len, "", err) ||
      set_str(&t->model.suffix, &t->model.suffix_len, "", err) || tk_bpe_finish(&t->model, err))
    return -1;
  tk_dec_free(&t->dec);
  t->dec.type = TK_D_BYTELEVEL;
  t->has_dec = 1;
  return 0;
}

static int rebuild_bert(lt_tokenizer *t, const cfg_t *c, lt_err *err) {
  if (t->model.type != TK_M_WORDPIECE) return 0;  // transformers would fail; keep the file as is
  int present;
  const char *unk = cfg_token(c, "unk_token", &present);
  if (!present || !unk) unk = "[UNK]";
  tk_norm_free(&t->norm);
  t->norm.type = TK_N_BERT;
  t->norm.clean_text = 1;
  t->norm.chinese = cfg_bool(c, "tokenize_chinese_chars", 1);
  t->norm.lowercase = cfg_bool(c, "do_lower_case", 1);
  const cJSON *sa = c->root ? cJSON_GetObjectItemCaseSensitive(c->root, "strip_accents") : NULL;
  t->norm.strip_accents = (sa && cJSON_IsBool(sa)) ? cJSON_IsTrue(sa) : -1;
  tk_pretok_free(&t->pre);
  t->pre.type = TK_P_BERT;
  if (set_str(&t->model.unk_token, NULL, unk, err) || set_str(&t->model.prefix, &t->model.prefix_len, "##", err))
    return -1;
  t->model.max_chars = 100;
  t->model.unk_id = tk_smap_get(&t->model.vocab, unk, strlen(unk), -1);
  tk_dec_free(&t->dec);
  t->dec.type = TK_D_WORDPIECE;
  t->dec.cleanup = 1;
  t->has_dec = 1;
  return set_str(&t->dec.prefix, &t->dec.prefix_len, "##", err);
}

static void mark_special(lt_tokenizer *t, const char *s) {
  if (!s) return;
  int64_t e = tk_smap_find(&t->added.by_content, s, strlen(s));
  if (e >= 0) t->added.t[t->added.by_content.val[e]].special = 1;
}

// The named special token `key`: from the config when the key is present (null = none), else the class default.
static const char *named(const cfg_t *c, const char *key, const char *dflt) {
  int present;
  const char *v = cfg_token(c, key, &present);
  return present ? v : dflt;
}

static int apply_class_rules(lt_tokenizer *t, const cfg_t *c, const char *json_text, lt_err *err) {
  const cJSON *cls = c->root ? cJSON_GetObjectItemCaseSensitive(c->root, "tokenizer_class") : NULL;
  char name[64] = "";
  if (cls && cJSON_IsString(cls)) {
    snprintf(name, sizeof name, "%s", cls->valuestring);
    size_t n = strlen(name);
    if (n > 4 && !strcmp(name + n - 4, "Fast")) name[n - 4] = 0;
  }
  int is_bpe = t->model.type == TK_M_BPE;
  const char *d_unk = NULL, *d_bos = NULL, *d_eos = NULL, *d_pad = NULL, *d_mask = NULL, *d_cls = NULL,
             *d_sep = NULL;
  if (!strcmp(name, "LlamaTokenizer") && is_bpe && !strstr(json_text, "\"ByteLevel\"")) {
    if (rebuild_llama(t, c, err)) return -1;
    d_unk = "<unk>", d_bos = "<s>", d_eos = "</s>";
    strcpy(t->cls_name, "LlamaTokenizer");
  } else if (!strcmp(name, "GemmaTokenizer") && is_bpe) {
    if (rebuild_gemma(t, c, err)) return -1;
    d_unk = "<unk>", d_bos = "<bos>", d_eos = "<eos>", d_pad = "<pad>", d_mask = "<mask>";
    strcpy(t->cls_name, "GemmaTokenizer");
  } else if (!strcmp(name, "Qwen2Tokenizer") && is_bpe) {
    if (rebuild_qwen2(t, c, err)) return -1;
    d_unk = "<|endoftext|>", d_eos = "<|endoftext|>", d_pad = "<|endoftext|>";
    strcpy(t->cls_name, "Qwen2Tokenizer");
  } else if (!strcmp(name, "BertTokenizer") && !is_bpe) {
    if (rebuild_bert(t, c, err)) return -1;
    d_unk = "[UNK]", d_sep = "[SEP]", d_pad = "[PAD]", d_cls = "[CLS]", d_mask = "[MASK]";
    strcpy(t->cls_name, "BertTokenizer");
  }
  mark_special(t, named(c, "unk_token", d_unk));
  mark_special(t, named(c, "bos_token", d_bos));
  mark_special(t, named(c, "eos_token", d_eos));
  mark_special(t, named(c, "pad_token", d_pad));
  mark_special(t, named(c, "mask_token", d_mask));
  mark_special(t, named(c, "cls_token", d_cls));
  mark_special(t, named(c, "sep_token", d_sep));
  const cJSON *extra = c->root ? cJSON_GetObjectItemCaseSensitive(c->root, "additional_special_tokens") : NULL;
  if (extra && cJSON_IsArray(extra))
    for (const cJSON *x = extra->child; x; x = x->next) {
      const cJSON *v = cJSON_IsObject(x) ? cJSON_GetObjectItemCaseSensitive(x, "content") : x;
      if (cJSON_IsString(v)) mark_special(t, v->valuestring);
    }
  t->cleanup_spaces = cfg_bool(c, "clean_up_tokenization_spaces", 0);
  return 0;
}

// ---------------------------------------------------------------- load
static int32_t id_of(const lt_tokenizer *t, const char *s) { return s ? lt_tokenizer_token_to_id(t, s) : -1; }

int lt_tokenizer_load_ex(lt_tokenizer **out, const char *path, unsigned flags, lt_err *err) {
  *out = NULL;
  struct stat st;
  if (stat(path, &st) != 0) return lt_errf(err, "tokenizer: %s: no such file or directory", path);
  char file[4096], dir[4096];
  if (S_ISDIR(st.st_mode)) {
    snprintf(dir, sizeof dir, "%s", path);
    if (lt_path_join(file, sizeof file, path, "tokenizer.json")) return lt_errf(err, "tokenizer: path too long");
    if (!lt_file_exists(file)) return lt_errf(err, "tokenizer: %s has no tokenizer.json", path);
  } else {
    snprintf(file, sizeof file, "%s", path);
    snprintf(dir, sizeof dir, "%s", path);
    char *sl = strrchr(dir, '/');
    if (sl) *sl = 0;
    else strcpy(dir, ".");
  }
  char *data = NULL;
  size_t len = 0;
  if (lt_read_file(file, &data, &len, err)) return -1;
  const char *end = NULL;
  cJSON *root = cJSON_ParseWithLengthOpts(data, len, &end, 0);
  if (!root || !cJSON_IsObject(root)) {
    size_t off = (root || !end) ? 0 : (size_t)(end - data);
    if (off > len) off = len;
    int line = 1, col = 1;
    for (size_t i = 0; i < off; i++) {
      if (data[i] == '\n') line++, col = 1;
      else col++;
    }
    cJSON_Delete(root);
    free(data);
    if (root) return lt_errf(err, "tokenizer.json: %s: the top level must be an object", file);
    return lt_errf(err, "tokenizer.json: %s: invalid JSON near line %d column %d", file, line, col);
  }
  lt_tokenizer *t = calloc(1, sizeof *t);
  cfg_t cfg = {0};
  tk_scratch sc;
  int sc_ok = 0;
  if (!t) {
    cJSON_Delete(root);
    free(data);
    return oom(err);
  }
  t->bos_id = t->eos_id = t->pad_id = -1;
  int rc = -1;
  const cJSON *dec = tk_jget(root, "decoder");
  if (tk_norm_parse(&t->norm, tk_jget(root, "normalizer"), "normalizer", err) ||
      tk_pretok_parse(&t->pre, tk_jget(root, "pre_tokenizer"), "pre_tokenizer", err) ||
      tk_model_parse(&t->model, tk_jget(root, "model"), "model", err) ||
      tk_post_parse(&t->post, tk_jget(root, "post_processor"), "post_processor", err) ||
      tk_dec_parse(&t->dec, dec, "decoder", err) ||
      tk_added_parse(&t->added, tk_jget(root, "added_tokens"), "added_tokens", err))
    goto done;
  t->has_dec = dec != NULL;
  if (!(flags & LT_TOK_RAW)) {
    if (load_cfg(&cfg, dir, err) || apply_class_rules(t, &cfg, data, err)) goto done;
  }
  if (scratch_init(&sc, err)) goto done;
  sc_ok = 1;
  if (tk_added_build(&t->added, &t->norm, &sc, err)) goto done;
  if (!(flags & LT_TOK_RAW)) {
    lt_tokconfig tc;
    memset(&tc, 0, sizeof tc);
    if (lt_tokconfig_load(&tc, file, err)) {
      lt_err_prefix(err, "tokenizer");
      goto done;
    }
    t->bos_id = id_of(t, tc.bos_token);
    t->eos_id = id_of(t, tc.eos_token);
    t->pad_id = id_of(t, tc.pad_token);
    lt_tokconfig_free(&tc);
  }
  rc = 0;
done:
  if (sc_ok) scratch_free(&sc);
  cJSON_Delete(cfg.root);
  cJSON_Delete(root);
  free(data);
  if (rc) {
    lt_tokenizer_free(t);
    return -1;
  }
  *out = t;
  return 0;
}

int lt_tokenizer_load(lt_tokenizer **out, const char *path, lt_err *err) {
  return lt_tokenizer_load_ex(out, path, 0, err);
}

void lt_tokenizer_free(lt_tokenizer *t) {
  if (!t) return;
  tk_norm_free(&t->norm);
  tk_pretok_free(&t->pre);
  tk_model_free(&t->model);
  tk_post_free(&t->post);
  tk_dec_free(&t->dec);
  tk_added_free(&t->added);
  free(t);
}

const char *lt_tokenizer_class(const lt_tokenizer *t) { return t->cls_name; }

// ---------------------------------------------------------------- encode
int lt_tokenizer_encode(const lt_tokenizer *t, const char *text, size_t len, int add_special, int32_t **ids, int *n,
                        lt_err *err) {
  *ids = NULL;
  *n = 0;
  size_t bad;
  if (!text && len) return lt_errf(err, "tokenizer: NULL text");
  if (!text) text = "";
  if (!tk_utf8_valid(text, len, &bad))
    return lt_errf(err, "tokenizer: input is not valid UTF-8 (invalid byte 0x%02X at byte offset %zu)",
                   (unsigned char)text[bad], bad);
  tk_scratch sc;
  if (scratch_init(&sc, err)) return -1;
  tk_pieces pcs = {0}, tmp = {0};
  int32_t *out = NULL;
  int on = 0, oc = 0, rc = -1;
  if (tk_added_extract(&t->added, &t->norm, &sc, text, len, &pcs, err)) goto done;
  if (tk_pretok_apply(&t->pre, &sc, &pcs, &tmp, err)) goto done;
  for (size_t i = 0; i < pcs.n; i++) {
    const tk_piece *p = &pcs.p[i];
    if (p->id >= 0) {
      if (tk_ids_push(&out, &on, &oc, p->id)) {
        oom(err);
        goto done;
      }
      continue;
    }
    if (!p->len) continue;
    const char *s = pcs.a.p + p->off;
    int r = t->model.type == TK_M_BPE ? tk_bpe_tokenize(&t->model, s, p->len, &out, &on, &oc, err)
                                      : tk_wordpiece_tokenize(&t->model, s, p->len, &out, &on, &oc, err);
    if (r) goto done;
  }
  if (add_special && tk_post_apply(&t->post, &out, &on, &oc, err)) goto done;
  if (!out && !(out = malloc(sizeof *out))) {
    oom(err);
    goto done;
  }
  rc = 0;
done:
  tk_pieces_free(&pcs);
  tk_pieces_free(&tmp);
  scratch_free(&sc);
  if (rc) {
    free(out);
    return -1;
  }
  *ids = out;
  *n = on;
  return 0;
}

// ---------------------------------------------------------------- decode
static int is_special_str(const lt_tokenizer *t, const char *s, size_t len) {
  int64_t e = tk_smap_find(&t->added.by_content, s, len);
  return e >= 0 && t->added.t[t->added.by_content.val[e]].special;
}

int tk_decode_impl(const lt_tokenizer *t, const int32_t *ids, int n, int skip_special, tk_buf *out, lt_err *err);
int tk_decode_impl(const lt_tokenizer *t, const int32_t *ids, int n, int skip_special, tk_buf *out, lt_err *err) {
  tk_toks toks = {0};
  tk_scratch sc;
  if (scratch_init(&sc, err)) return -1;
  int rc = -1;
  for (int i = 0; i < n; i++) {
    const tk_added *a = tk_added_by_id(&t->added, ids[i]);
    const char *s;
    size_t sl;
    if (a) {
      s = a->match;
      sl = a->match_len;
    } else if (!(s = tk_model_id_to_token(&t->model, ids[i], &sl))) {
      continue;  // unknown ids are dropped, as tokenizers does
    }
    if (skip_special && is_special_str(t, s, sl)) continue;
    if (tk_toks_push(&toks, s, sl)) {
      oom(err);
      goto done;
    }
  }
  out->len = 0;
  if (tk_buf_reserve(out, 16)) {
    oom(err);
    goto done;
  }
  out->p[0] = 0;
  if (t->has_dec) {
    if (tk_dec_chain(&t->dec, &sc, &toks, err)) goto done;
    if (tk_buf_put(out, toks.a.p ? toks.a.p : "", toks.a.len)) {
      oom(err);
      goto done;
    }
  } else {
    for (size_t i = 0; i < toks.n; i++)
      if ((i && tk_buf_put(out, " ", 1)) || tk_buf_put(out, toks.a.p + toks.off[i], toks.len[i])) {
        oom(err);
        goto done;
      }
  }
  if (t->cleanup_spaces && t->model.type != TK_M_BPE && tk_cleanup_apply(out, 0)) {
    oom(err);
    goto done;
  }
  rc = 0;
done:
  tk_toks_free(&toks);
  scratch_free(&sc);
  return rc;
}

int lt_tokenizer_decode(const lt_tokenizer *t, const int32_t *ids, int n, int skip_special, char **text,
                        size_t *len, lt_err *err) {
  *text = NULL;
  if (len) *len = 0;
  tk_buf b = {0};
  if (tk_decode_impl(t, ids, n, skip_special, &b, err)) {
    tk_buf_free(&b);
    return -1;
  }
  *text = b.p;
  if (len) *len = b.len;
  return 0;
}

// ---------------------------------------------------------------- vocabulary queries
int lt_tokenizer_vocab_size(const lt_tokenizer *t) {
  int n = (int)t->model.vocab.n;
  for (int i = 0; i < t->added.n; i++) {
    size_t l;
    if (!tk_model_id_to_token(&t->model, t->added.t[i].id, &l) &&
        tk_smap_get(&t->added.by_content, t->added.t[i].content, t->added.t[i].len, -1) == i)
      n++;
  }
  return n;
}

int32_t lt_tokenizer_token_to_id(const lt_tokenizer *t, const char *token) {
  if (!token) return -1;
  size_t n = strlen(token);
  int32_t a = tk_smap_get(&t->added.by_content, token, n, -1);
  if (a >= 0) return t->added.t[a].id;
  return tk_smap_get(&t->model.vocab, token, n, -1);
}

const char *lt_tokenizer_id_to_token(const lt_tokenizer *t, int32_t id) {
  const tk_added *a = tk_added_by_id(&t->added, id);
  if (a) return a->content;
  size_t l;
  return tk_model_id_to_token(&t->model, id, &l);
}

int32_t lt_tokenizer_bos_id(const lt_tokenizer *t) { return t->bos_id; }
int32_t lt_tokenizer_eos_id(const lt_tokenizer *t) { return t->eos_id; }
int32_t lt_tokenizer_pad_id(const lt_tokenizer *t) { return t->pad_id; }

int lt_tokenizer_is_special(const lt_tokenizer *t, int32_t id) {
  const tk_added *a = tk_added_by_id(&t->added, id);
  return a && a->special;
}
