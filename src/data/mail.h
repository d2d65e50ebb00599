// E-mail corpus -> Alpaca instruction set (`lmtune data mail`). One RFC 822 message is parsed from a buffer into
// subject, sender and body text: headers unfolded and RFC 2047 encoded words decoded (as Python's email package
// with policy.default does), the MIME tree walked (nested multipart, message/rfc822, missing boundaries
// tolerated), transfer encodings undone (quoted-printable, base64), charsets converted to UTF-8 with iconv, and the
// text/plain part preferred over text/html (converted to text). A set is built from labelled files or folders:
// deduplicated, split stratified by (label, path) and written as train/val/test JSON arrays plus stats.json.
#ifndef LT_MAIL_H
#define LT_MAIL_H
#include <stddef.h>
#include <stdint.h>

#include "lmtune.h"

enum { LT_MAIL_BODY_NONE = 0, LT_MAIL_BODY_PLAIN = 1, LT_MAIL_BODY_HTML = 2 };

typedef struct lt_mail {
  // Subject as str(msg['subject']) gives it: folded lines joined (CR/LF removed, continuation whitespace kept),
  // encoded words decoded, whitespace between adjacent encoded words dropped; "" when absent. Raw 8-bit bytes are
  // kept when they are valid UTF-8, else read in the message's charset (windows-1252 when it has none).
  char *subject;
  char *from;  // "Display Name <addr>" or "addr" (first mailbox), decoded, whitespace collapsed; "" when absent
  char *body;  // the chosen part's text in UTF-8 before whitespace normalisation (HTML already turned into text)
  int body_kind;  // LT_MAIL_BODY_*: which kind of part the body came from
  int defects;    // recoverable problems met (bad boundary, bad base64, undecodable bytes, unknown charset, ...)
} lt_mail;

// Parse one message (any bytes: a malformed message yields whatever text is recoverable). Fails only when out of
// memory. *m is filled even on failure (free it with lt_mail_free).
int lt_mail_parse(const char *buf, size_t len, lt_mail *m, lt_err *err);
void lt_mail_free(lt_mail *m);

// Building blocks, exposed for the tests. Each returns a malloc'd NUL-terminated UTF-8 string or NULL (err set).
// Bytes in `charset` (NULL or "": undeclared) -> UTF-8. utf-8: invalid sequences become U+FFFD (one per maximal
// invalid subpart, as Python's "replace"); undeclared/us-ascii or an unknown charset: kept when valid UTF-8, else
// windows-1252; a byte the charset cannot convert is read as windows-1252; with an ISO-8859 label, bytes
// 0x80-0x9F (C1 controls) are read as windows-1252 as browsers do; a few mailer names are mapped to iconv's
// (ks_c_5601-1987 -> CP949, chinesebig5 -> BIG5, ...). NUL bytes are dropped. *defect
// (may be NULL) is set to 1 when a fallback was needed.
char *lt_mail_to_utf8(const char *s, size_t n, const char *charset, int *defect, lt_err *err);
// An unstructured header value (already unfolded) with RFC 2047 encoded words decoded as Python's
// email._header_value_parser.get_unstructured does. Raw bytes are read as lt_mail_to_utf8(.., raw_charset, ..).
char *lt_mail_decode_header(const char *s, size_t n, const char *raw_charset, lt_err *err);
// Transfer decodings, as binascii.a2b_qp and Python's email base64 decoding (non-alphabet bytes skipped, decoding
// stops at the first complete padding, a missing padding is tolerated). *out_len gets the byte count.
char *lt_mail_qp_decode(const char *s, size_t n, size_t *out_len, lt_err *err);
char *lt_mail_b64_decode(const char *s, size_t n, size_t *out_len, int *defect, lt_err *err);
// HTML (UTF-8) -> text: comments, script, style, head and title dropped, tags removed, block tags -> line breaks,
// table cells -> spaces, entities decoded (named, decimal and hex; &#128;-&#159; as windows-1252), source
// whitespace collapsed outside <pre>.
char *lt_mail_html_to_text(const char *s, size_t n, lt_err *err);
// Whitespace normalisation: CR LF / CR -> LF, control characters other than \t \n \v \f dropped, runs of
// space/\t/\v/\f/U+00A0 -> one space, lines stripped, runs of blank lines -> one, leading/trailing blank lines
// dropped. one_line: line breaks count as spaces too (the result is one line).
char *lt_mail_normalize(const char *s, int one_line, lt_err *err);
// The instruction-set input: "From: <from>\nSubject: <subject>\n\n<body>" (each part normalised; the body
// part and its blank line left out when the body is empty).
char *lt_mail_record_input(const lt_mail *m, lt_err *err);
// Cut s to at most max_chars code points (never inside a UTF-8 sequence), at the last whitespace when one lies
// within the last 10% before the limit, trailing whitespace removed. Returns the new byte length (s unchanged).
size_t lt_mail_truncate_len(const char *s, size_t n, int max_chars);

// "0.8,0.1,0.1" -> train/val/test ratios: three numbers >= 0 summing to 1 (within 1e-6).
int lt_mail_parse_split(const char *s, double ratios[3], lt_err *err);
// Stratum of n messages -> counts per split: round to nearest (halves up); val and test get at least 1 each
// (when their ratio is > 0) once n >= 3; train takes the rest.
void lt_mail_split_counts(int n, const double ratios[3], int counts[3]);

typedef struct lt_mail_source {
  const char *label;  // the "output" the records get
  const char *path;   // a folder (every regular file sorted by name, except *.json and hidden files) or one file
} lt_mail_source;

typedef struct lt_mail_opts {
  double split[3];          // train, val, test ratios
  uint64_t seed;
  int max_chars;            // > 0: inputs cut to this many code points; 0: no limit
  const char *instruction;  // NULL: LT_MAIL_DEFAULT_INSTRUCTION
  const char *dump_path;    // non-NULL: one JSON line per file (label, stratum, status, split, extracted fields)
} lt_mail_opts;

#define LT_MAIL_DEFAULT_INSTRUCTION "Is this e-mail spam or ham? Answer with one word."

typedef struct lt_mail_stratum {
  const char *label, *path;  // borrowed from the sources
  int files, skipped, duplicates, kept, defective, truncated;
  int split[3];
  int body[3];  // messages per LT_MAIL_BODY_* kind
} lt_mail_stratum;

typedef struct lt_mail_stats {
  int n_strata;  // = number of sources, in argument order
  lt_mail_stratum *strata;
  int files, skipped, duplicates, kept, defective, truncated;
  int split[3];
  int n_skipped_names;  // names of skipped files (all of them; skipping must be rare)
  char **skipped_names;
  char **skipped_reasons;
} lt_mail_stats;

// Read every source, parse, deduplicate (the first of identical inputs is kept, in source then file-name order),
// split each stratum with a seeded shuffle, and write out_dir/{train,val,test,stats}.json atomically. Errors: a
// missing path, a folder without mail files, no readable message at all, bad ratios. Free *st with
// lt_mail_stats_free whatever the result.
int lt_mail_build_set(const lt_mail_source *src, int n_src, const lt_mail_opts *o, const char *out_dir,
                      lt_mail_stats *st, lt_err *err);
void lt_mail_stats_free(lt_mail_stats *st);

#endif
