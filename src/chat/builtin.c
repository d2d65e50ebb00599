// Built-in chat templates for models without one, named as LLaMA-Factory's `template:` option names them and
// following its turn formats (format_prefix, format_system, format_user, format_assistant):
//   alpaca   : default system "Below is an instruction ...\n\n", "### Instruction:\n{user}\n\n### Response:\n",
//              "{assistant}" eos "\n\n"
//   chatml   : "<|im_start|>{role}\n{content}<|im_end|>\n" turns, no default system
//   qwen     : chatml with the default system "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."
//   llama3   : bos, "<|start_header_id|>{role}<|end_header_id|>\n\n{content}<|eot_id|>" turns
//   deepseek : bos, "{system}\n\n", "User: {user}\n\nAssistant:", "{assistant}" eos
// LLaMA-Factory's user format carries the assistant header (the generation prompt); here the header follows a user
// turn when an assistant turn comes next or when add_generation_prompt is set on a final user turn, so paired
// training conversations render exactly as LLaMA-Factory encodes them. Written from those formats, not copied.
#include <string.h>

#include "chat/chat.h"

static const char alpaca[] =
    "{%- if messages[0]['role'] == 'system' -%}{{ messages[0]['content'] }}{%- set msgs = messages[1:] -%}"
    "{%- else -%}{{ 'Below is an instruction that describes a task. Write a response that appropriately completes "
    "the request.\\n\\n' }}{%- set msgs = messages -%}{%- endif -%}"
    "{%- for m in msgs -%}"
    "{%- if m['role'] == 'user' -%}{{ '### Instruction:\\n' + m['content'] + '\\n\\n' }}"
    "{%- if (loop.last and add_generation_prompt) or (not loop.last and msgs[loop.index0 + 1]['role'] == 'assistant') "
    "-%}{{ '### Response:\\n' }}{%- endif -%}"
    "{%- elif m['role'] == 'assistant' -%}{{ m['content'] + eos_token + '\\n\\n' }}"
    "{%- else -%}{{ raise_exception('alpaca template: unsupported role ' + m['role']) }}{%- endif -%}"
    "{%- endfor -%}";

#define CHATML_BODY                                                                                                \
  "{%- for m in msgs -%}"                                                                                          \
  "{%- if m['role'] == 'user' -%}{{ '<|im_start|>user\\n' + m['content'] + '<|im_end|>\\n' }}"                     \
  "{%- if (loop.last and add_generation_prompt) or (not loop.last and msgs[loop.index0 + 1]['role'] == "           \
  "'assistant') -%}{{ '<|im_start|>assistant\\n' }}{%- endif -%}"                                                  \
  "{%- elif m['role'] == 'assistant' -%}{{ m['content'] + '<|im_end|>\\n' }}"                                       \
  "{%- else -%}{{ '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>\\n' }}{%- endif -%}"             \
  "{%- endfor -%}"

static const char chatml[] =
    "{%- if messages[0]['role'] == 'system' -%}{{ '<|im_start|>system\\n' + messages[0]['content'] + "
    "'<|im_end|>\\n' }}{%- set msgs = messages[1:] -%}{%- else -%}{%- set msgs = messages -%}{%- endif -%}" CHATML_BODY;

static const char qwen[] =
    "{%- if messages[0]['role'] == 'system' -%}{%- set sys = messages[0]['content'] -%}{%- set msgs = messages[1:] "
    "-%}{%- else -%}{%- set sys = 'You are Qwen, created by Alibaba Cloud. You are a helpful assistant.' -%}"
    "{%- set msgs = messages -%}{%- endif -%}{{ '<|im_start|>system\\n' + sys + '<|im_end|>\\n' }}" CHATML_BODY;

static const char llama3[] =
    "{{- bos_token -}}"
    "{%- for m in messages -%}"
    "{%- if m['role'] == 'user' -%}"
    "{{ '<|start_header_id|>user<|end_header_id|>\\n\\n' + m['content'] + '<|eot_id|>' }}"
    "{%- if (loop.last and add_generation_prompt) or (not loop.last and messages[loop.index0 + 1]['role'] == "
    "'assistant') -%}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{%- endif -%}"
    "{%- elif m['role'] == 'assistant' -%}{{ m['content'] + '<|eot_id|>' }}"
    "{%- else -%}{{ '<|start_header_id|>' + m['role'] + '<|end_header_id|>\\n\\n' + m['content'] + '<|eot_id|>' }}"
    "{%- endif -%}"
    "{%- endfor -%}";

static const char deepseek[] =
    "{{- bos_token -}}"
    "{%- for m in messages -%}"
    "{%- if m['role'] == 'system' -%}{{ m['content'] + '\\n\\n' }}"
    "{%- elif m['role'] == 'user' -%}{{ 'User: ' + m['content'] + '\\n\\n' }}"
    "{%- if (loop.last and add_generation_prompt) or (not loop.last and messages[loop.index0 + 1]['role'] == "
    "'assistant') -%}{{ 'Assistant:' }}{%- endif -%}"
    "{%- elif m['role'] == 'assistant' -%}{{ m['content'] + eos_token }}"
    "{%- else -%}{{ raise_exception('deepseek template: unsupported role ' + m['role']) }}{%- endif -%}"
    "{%- endfor -%}";

static const struct {
  const char *name, *src;
} builtins[] = {{"alpaca", alpaca}, {"chatml", chatml}, {"llama3", llama3}, {"deepseek", deepseek}, {"qwen", qwen}};

const char *lt_chat_builtin(const char *name) {
  if (!name) return NULL;
  for (size_t i = 0; i < sizeof builtins / sizeof builtins[0]; i++)
    if (!strcmp(builtins[i].name, name)) return builtins[i].src;
  return NULL;
}

const char *lt_chat_builtin_names(void) { return "alpaca, chatml, llama3, deepseek, qwen"; }
