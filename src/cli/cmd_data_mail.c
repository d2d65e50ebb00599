// lmtune data mail --out DIR [--split 0.8,0.1,0.1] [--seed 42] [--max-chars 1200] [--instruction TEXT]
//                  [--dump FILE.jsonl] LABEL=PATH [LABEL=PATH ...]
// Turns e-mail files (RFC 822, MIME) into an Alpaca instruction set: DIR/{train,val,test}.json and stats.json,
// then prints a per-stratum summary table.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "core/core.h"
#include "data/mail.h"

#define VERB "data mail"

static void usage(FILE *fp, int long_help) {
  fprintf(fp,
          "usage: lmtune data mail --out DIR [--split 0.8,0.1,0.1] [--seed 42] [--max-chars 1200]\n"
          "       [--instruction TEXT] [--dump FILE.jsonl] LABEL=PATH [LABEL=PATH ...]\n");
  if (!long_help) return;
  fprintf(fp,
          "e-mails -> Alpaca records {\"instruction\", \"input\": \"From: ...\\nSubject: ...\\n\\n<body>\", "
          "\"output\": LABEL}\n"
          "  LABEL=PATH      a mail file or a folder of them (sorted by name; *.json and hidden files skipped),\n"
          "                  e.g. spam=DIR/spam-1 ham=DIR/easy-ham-1; each (LABEL, PATH) is a stratum of the split\n"
          "  --out DIR       writes DIR/train.json, DIR/val.json, DIR/test.json (JSON arrays) and DIR/stats.json\n"
          "  --split R,R,R   train,val,test ratios (>= 0, sum 1); per stratum, val and test get >= 1 message once\n"
          "                  it has 3\n"
          "  --seed N        shuffle seed (default 42)\n"
          "  --max-chars N   inputs cut to N characters at a word boundary when one is near (0: no limit)\n"
          "  --instruction   the instruction text (default \"%s\")\n"
          "  --dump FILE     one JSON line per file: status (kept/duplicate/skipped), split, subject, from, body\n"
          "Identical inputs are kept once (the first in argument, then file-name order).\n",
          LT_MAIL_DEFAULT_INSTRUCTION);
}

int lt_cmd_data_mail(int argc, char **argv) {
  const char *out = NULL, *split = "0.8,0.1,0.1", *seed = "42", *maxc = "1200", *instr = NULL, *dump = NULL,
             *help = NULL;
  lt_opt opts[] = {{"--out", 1, &out},         {"--split", 1, &split},  {"--seed", 1, &seed},
                   {"--max-chars", 1, &maxc},  {"--instruction", 1, &instr}, {"--dump", 1, &dump},
                   {"--help", 0, &help}};
  const int nopts = (int)(sizeof opts / sizeof *opts);
  char **optv = malloc(sizeof *optv * (size_t)(argc + 1));
  lt_mail_source *src = malloc(sizeof *src * (size_t)(argc + 1));
  char **labels = calloc((size_t)argc + 1, sizeof *labels);
  if (!optv || !src || !labels) {
    free(optv);
    free(src);
    free(labels);
    fprintf(stderr, "lmtune %s: out of memory\n", VERB);
    return LT_EXIT_FAIL;
  }
  int nopt = 0, nsrc = 0, rc = LT_EXIT_OK;
  for (int i = 0; i < argc && rc == LT_EXIT_OK; i++) {
    const char *a = argv[i];
    if (!strncmp(a, "--", 2)) {
      optv[nopt++] = argv[i];
      const char *eq = strchr(a, '=');
      size_t n = eq ? (size_t)(eq - a) : strlen(a);
      for (int j = 0; j < nopts; j++)
        if (opts[j].has_value && !eq && strlen(opts[j].name) == n && !strncmp(opts[j].name, a, n) && i + 1 < argc)
          optv[nopt++] = argv[++i];
      continue;
    }
    const char *eq = strchr(a, '=');
    if (!eq || eq == a || !eq[1]) {
      fprintf(stderr, "lmtune %s: \"%s\": expected LABEL=PATH (e.g. spam=DIR/spam-1)\n", VERB, a);
      rc = LT_EXIT_USAGE;
      break;
    }
    labels[nsrc] = malloc((size_t)(eq - a) + 1);
    if (!labels[nsrc]) {
      fprintf(stderr, "lmtune %s: out of memory\n", VERB);
      rc = LT_EXIT_FAIL;
      break;
    }
    memcpy(labels[nsrc], a, (size_t)(eq - a));
    labels[nsrc][eq - a] = 0;
    src[nsrc] = (lt_mail_source){labels[nsrc], eq + 1};
    nsrc++;
  }
  if (rc == LT_EXIT_OK && lt_cli_parse(VERB, nopt, optv, opts, nopts)) rc = LT_EXIT_USAGE;
  if (rc == LT_EXIT_OK && help) {
    usage(stdout, 1);
    rc = -1;
  }
  if (rc == LT_EXIT_OK && (!out || nsrc == 0)) {
    fprintf(stderr, "lmtune %s: %s\n", VERB, !out ? "--out DIR is required" : "give at least one LABEL=PATH");
    usage(stderr, 0);
    rc = LT_EXIT_USAGE;
  }
  lt_mail_opts o = {{0}, 0, 0, instr, dump};
  long sd = 0, mc = 0;
  lt_err err;
  if (rc == LT_EXIT_OK) {
    if (lt_mail_parse_split(split, o.split, &err)) {
      fprintf(stderr, "lmtune %s: %s\n", VERB, err.msg);
      rc = LT_EXIT_USAGE;
    } else if (lt_cli_parse_int(VERB, "--seed", seed, 0, 0x7fffffffffffffffL, &sd) ||
               lt_cli_parse_int(VERB, "--max-chars", maxc, 0, 1L << 30, &mc)) {
      rc = LT_EXIT_USAGE;
    }
  }
  lt_mail_stats st;
  memset(&st, 0, sizeof st);
  if (rc == LT_EXIT_OK) {
    o.seed = (uint64_t)sd;
    o.max_chars = (int)mc;
    if (lt_mail_build_set(src, nsrc, &o, out, &st, &err)) rc = lt_cli_fail(VERB, &err);
  }
  if (rc == LT_EXIT_OK) {
    printf("%-40s %6s %7s %5s %6s %6s %5s %5s %5s\n", "stratum", "files", "skipped", "dups", "kept", "train", "val",
           "test", "html");
    for (int i = 0; i < st.n_strata; i++) {
      const lt_mail_stratum *s = &st.strata[i];
      char name[4200];
      snprintf(name, sizeof name, "%s=%s", s->label, s->path);
      if (strlen(name) > 40) {  // label=...tail of the path
        size_t ll = strlen(s->label), keep = ll + 4 < 40 ? 40 - ll - 4 : 0, pl = strlen(s->path);
        snprintf(name, sizeof name, "%s=...%s", s->label, s->path + (pl > keep ? pl - keep : 0));
      }
      printf("%-40s %6d %7d %5d %6d %6d %5d %5d %5d\n", name, s->files, s->skipped, s->duplicates, s->kept,
             s->split[0], s->split[1], s->split[2], s->body[LT_MAIL_BODY_HTML]);
    }
    printf("%-40s %6d %7d %5d %6d %6d %5d %5d\n", "total", st.files, st.skipped, st.duplicates, st.kept, st.split[0],
           st.split[1], st.split[2]);
    for (int i = 0; i < st.n_skipped_names; i++)
      printf("skipped %s: %s\n", st.skipped_names[i], st.skipped_reasons[i]);
    printf("%d inputs truncated to %d characters, %d messages with recoverable defects -> %s/{train,val,test}.json\n",
           st.truncated, o.max_chars, st.defective, out);
  }
  lt_mail_stats_free(&st);
  for (int i = 0; i < nsrc; i++) free(labels[i]);
  free(labels);
  free(src);
  free(optv);
  return rc < 0 ? LT_EXIT_OK : rc;
}
