// lmtune: command-line entry point; one file per verb.
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

static const struct {
  const char *name;
  int (*run)(int, char **);
  const char *help;
} verbs[] = {
    {"info", lt_cmd_info, "print architecture, parameter count and dtype of a model folder"},
    {"logits", lt_cmd_logits, "write float32 logits [T, vocab] for token ids to a .npy file"},
    {"generate", lt_cmd_generate, "generate token ids after a prompt (greedy or sampled)"},
    {"export", lt_cmd_export, "merge a LoRA adapter into the base model and write a Hugging Face folder"},
    {"train", lt_cmd_train, "fine-tune (LoRA, full, freeze): lmtune train [config.yaml] [--key value]"},
    {"plan", lt_cmd_plan, "predict a run's tokens/s, time and peak memory: lmtune plan [config.yaml] [--key value]"},
    {"data", lt_cmd_data, "build SFT examples (chat template + tokenizer) as pre-tokenized JSONL: lmtune data sft ..."},
    {"tokenize", lt_cmd_tokenize, "text (stdin lines or JSONL) to token ids with a tokenizer.json"},
    {"detokenize", lt_cmd_detokenize, "token ids (stdin) back to text"},
    {"chat-template", lt_cmd_chat_template, "render conversations with a model's chat template"},
    {"tokenizer", lt_cmd_tokenizer, "tokenizer tools: lmtune tokenizer train --vocab-size N --out DIR corpus..."},
    {"metrics", lt_cmd_metrics, "BLEU / ROUGE-L / classification metrics of predictions vs references (JSON)"},
    {"eval", lt_cmd_eval, "evaluate a model (+ adapter): ppl, classify, generate, mcq -> eval_results.json"},
    {"report", lt_cmd_report, "run report: RUN_DIR/report.html + SVG figures (loss, lr, throughput, confusion)"},
};

static void usage(FILE *fp) {
  fprintf(fp, "lmtune %s: fine-tune and run Llama-family models on CPU\n\nusage: lmtune VERB [options]\n\n",
          LMTUNE_VERSION);
  for (size_t i = 0; i < sizeof verbs / sizeof verbs[0]; i++) fprintf(fp, "  %-10s %s\n", verbs[i].name, verbs[i].help);
  fprintf(fp, "\nlmtune VERB --help shows a verb's options.\n");
}

int main(int argc, char **argv) {
  if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
    usage(argc < 2 ? stderr : stdout);
    return argc < 2 ? LT_EXIT_USAGE : LT_EXIT_OK;
  }
  if (strcmp(argv[1], "--version") == 0) {
    printf("lmtune %s\n", LMTUNE_VERSION);
    return LT_EXIT_OK;
  }
  for (size_t i = 0; i < sizeof verbs / sizeof verbs[0]; i++)
    if (strcmp(argv[1], verbs[i].name) == 0) return verbs[i].run(argc - 2, argv + 2);
  fprintf(stderr, "lmtune: unknown verb \"%s\"\n\n", argv[1]);
  usage(stderr);
  return LT_EXIT_USAGE;
}
