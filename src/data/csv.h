// A small RFC 4180 CSV reader: comma-separated fields, "quoted" fields with doubled quotes ("") for a quote and
// embedded commas / line breaks, records ended by CRLF, LF or CR, an optional UTF-8 byte-order mark. Blank lines
// are skipped (as pandas does). The input is untrusted: every field is bounds-checked, the text must be UTF-8
// without NUL bytes, and errors name the file, the line and the column.
#ifndef LT_CSV_H
#define LT_CSV_H
#include <stddef.h>

#include "lmtune.h"

typedef struct lt_csv_row {
  int n;        // fields
  int line;     // 1-based line where the record starts
  char **f;     // n NUL-terminated fields (unquoted, "" -> ")
  int *col;     // 1-based column (in bytes) where each field starts, on the line where it starts
  int *fline;   // 1-based line where each field starts (a quoted field may span lines)
} lt_csv_row;

typedef struct lt_csv {
  int n_rows;
  lt_csv_row *rows;
  char source[512];  // file name for messages ("<memory>" for a buffer)
  // storage behind rows (one block each)
  char *buf;
  char **fields;
  int *cols, *flines;
} lt_csv;

// Parse text[0..len). source names the input in messages. On error *out is empty and err says
// "<source>:<line>:<column>: what" (an unterminated quote names where the quoted field began).
int lt_csv_parse(const char *text, size_t len, const char *source, lt_csv *out, lt_err *err);
// Read and parse a file.
int lt_csv_read(const char *path, lt_csv *out, lt_err *err);
void lt_csv_free(lt_csv *c);

#endif
