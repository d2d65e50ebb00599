"""Chat templates: `lmtune chat-template --jsonl` must render exactly what transformers'
tokenizer.apply_chat_template(messages, tokenize=False, ...) renders, byte for byte, for real model templates.

Tokenizer folders come from ${LMTUNE_CACHE:-~/.cache/lmtune}/data/tokenizers/<name>/ (scripts/fetch-data.sh); the
tests skip cleanly when they are absent. Templates that no fetched package ships (Llama 2 chat, Mistral 7B Instruct
v0.1, Llama 3.2) are written into temporary folders next to a fetched tokenizer.json, with the template text those
models publish in their tokenizer_config.json.
"""

import json
import os
import pathlib
import re
import shutil
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
BIN = os.environ.get("LMTUNE_BIN", str(ROOT / "build" / "lmtune"))
CACHE = pathlib.Path(os.environ.get("LMTUNE_CACHE", os.path.expanduser("~/.cache/lmtune")))
TOK = CACHE / "data" / "tokenizers"

transformers = pytest.importorskip("transformers")

if not os.path.exists(BIN):
    pytest.skip(f"lmtune binary not built at {BIN}", allow_module_level=True)

# ---------------------------------------------------------------------------------------------------------------
# Templates not shipped by the fetched packages (text as the models publish it).
LLAMA2_CHAT = (
    "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}{% set system_message = "
    "messages[0]['content'] %}{% else %}{% set loop_messages = messages %}{% set system_message = false %}{% endif %}"
    "{% for message in loop_messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
    "{% if loop.index0 == 0 and system_message != false %}{% set content = '<<SYS>>\\n' + system_message + "
    "'\\n<</SYS>>\\n\\n' + message['content'] %}{% else %}{% set content = message['content'] %}{% endif %}"
    "{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}"
    "{% elif message['role'] == 'assistant' %}{{ ' '  + content.strip() + ' ' + eos_token }}{% endif %}{% endfor %}"
)

MISTRAL_V01 = (
    "{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
    "{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}"
    "{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token + ' ' }}"
    "{% else %}{{ raise_exception('Only user and assistant roles are supported!') }}{% endif %}{% endfor %}"
)

LLAMA32 = """{{- bos_token }}
{%- if custom_tools is defined %}
    {%- set tools = custom_tools %}
{%- endif %}
{%- if not tools_in_user_message is defined %}
    {%- set tools_in_user_message = true %}
{%- endif %}
{%- if not date_string is defined %}
    {%- if strftime_now is defined %}
        {%- set date_string = strftime_now("%d %b %Y") %}
    {%- else %}
        {%- set date_string = "26 Jul 2024" %}
    {%- endif %}
{%- endif %}
{%- if not tools is defined %}
    {%- set tools = none %}
{%- endif %}

{#- This block extracts the system message, so we can slot it into the right place. #}
{%- if messages[0]['role'] == 'system' %}
    {%- set system_message = messages[0]['content']|trim %}
    {%- set messages = messages[1:] %}
{%- else %}
    {%- set system_message = "" %}
{%- endif %}

{#- System message #}
{{- "<|start_header_id|>system<|end_header_id|>\\n\\n" }}
{%- if tools is not none %}
    {{- "Environment: ipython\\n" }}
{%- endif %}
{{- "Cutting Knowledge Date: December 2023\\n" }}
{{- "Today Date: " + date_string + "\\n\\n" }}
{%- if tools is not none and not tools_in_user_message %}
    {{- "You have access to the following functions. To call a function, please respond with JSON for a function call." }}
    {{- 'Respond in the format {"name": function name, "parameters": dictionary of argument name and its value}.' }}
    {{- "Do not use variables.\\n\\n" }}
    {%- for t in tools %}
        {{- t | tojson(indent=4) }}
        {{- "\\n\\n" }}
    {%- endfor %}
{%- endif %}
{{- system_message }}
{{- "<|eot_id|>" }}

{#- Custom tools are passed in a user message with some extra guidance #}
{%- if tools_in_user_message and not tools is none %}
    {#- Extract the first user message so we can plug it in here #}
    {%- if messages | length != 0 %}
        {%- set first_user_message = messages[0]['content']|trim %}
        {%- set messages = messages[1:] %}
    {%- else %}
        {{- raise_exception("Cannot put tools in the first user message when there's no first user message!") }}
{%- endif %}
    {{- '<|start_header_id|>user<|end_header_id|>\\n\\n' -}}
    {{- "Given the following functions, please respond with a JSON for a function call " }}
    {{- "with its proper arguments that best answers the given prompt.\\n\\n" }}
    {{- 'Respond in the format {"name": function name, "parameters": dictionary of argument name and its value}.' }}
    {{- "Do not use variables.\\n\\n" }}
    {%- for t in tools %}
        {{- t | tojson(indent=4) }}
        {{- "\\n\\n" }}
    {%- endfor %}
    {{- first_user_message + "<|eot_id|>"}}
{%- endif %}

{%- for message in messages %}
    {%- if not (message.role == 'ipython' or message.role == 'tool' or 'tool_calls' in message) %}
        {{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'+ message['content'] | trim + '<|eot_id|>' }}
    {%- elif 'tool_calls' in message %}
        {%- if not message.tool_calls|length == 1 %}
            {{- raise_exception("This model only supports single tool-calls at once!") }}
        {%- endif %}
        {%- set tool_call = message.tool_calls[0].function %}
        {{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' -}}
        {{- '{"name": "' + tool_call.name + '", ' }}
        {{- '"parameters": ' }}
        {{- tool_call.arguments | tojson }}
        {{- "}" }}
        {{- "<|eot_id|>" }}
    {%- elif message.role == "tool" or message.role == "ipython" %}
        {{- "<|start_header_id|>ipython<|end_header_id|>\\n\\n" }}
        {%- if message.content is mapping or message.content is iterable %}
            {{- message.content | tojson }}
        {%- else %}
            {{- message.content }}
        {%- endif %}
        {{- "<|eot_id|>" }}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}
{%- endif %}
"""

# ---------------------------------------------------------------------------------------------------------------
SYS = {"role": "system", "content": "You are a helpful assistant. Answer briefly."}
U1 = {"role": "user", "content": "What is the capital of France?"}
A1 = {"role": "assistant", "content": "Paris."}
U2 = {"role": "user", "content": "And of Japan?"}
CJK = [
    {"role": "user", "content": "你好，世界！请用中文回答。"},
    {"role": "assistant", "content": "こんにちは 🌍 — 안녕하세요"},
    {"role": "user", "content": "谢谢 «ok» \"quoted\" \\ back\tslash"},
]
SPACED = [{"role": "user", "content": "  padded question \n\n"}, {"role": "assistant", "content": "\n  padded answer  "}]

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the weather in a city — 天气",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "description": "City name"},
                "days": {"type": "integer", "minimum": 1, "maximum": 7.5},
            },
            "required": ["city"],
        },
    },
}


def generic_cases():
    return [
        {"messages": [U1], "add_generation_prompt": True},
        {"messages": [SYS, U1, A1, U2], "add_generation_prompt": True},
        {"messages": [SYS, U1, A1, U2], "add_generation_prompt": False},
        {"messages": [U1, A1], "add_generation_prompt": False},
        {"messages": CJK, "add_generation_prompt": True},
        {"messages": SPACED, "add_generation_prompt": False},
    ]


def qwen3_cases():
    think = {"role": "assistant", "content": "<think>\nLet me recall.\n</think>\n\nParis."}
    reasoning = {"role": "assistant", "content": "Tokyo.", "reasoning_content": "Japan's capital is Tokyo."}
    tool_call = {
        "role": "assistant",
        "content": "",
        "tool_calls": [
            {"type": "function", "function": {"name": "get_weather", "arguments": {"city": "東京", "days": 2}}},
            {"type": "function", "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}},
        ],
    }
    tool_msgs = [
        {"role": "tool", "content": "{\"temp\": 21.5}"},
        {"role": "tool", "content": "sunny"},
    ]
    weather_q = {"role": "user", "content": "Weather in Tokyo and Paris?"}
    return generic_cases() + [
        {"messages": [SYS, U1, A1, U2], "add_generation_prompt": True, "template_kwargs": {"enable_thinking": False}},
        {"messages": [SYS, U1, A1, U2], "add_generation_prompt": True, "template_kwargs": {"enable_thinking": True}},
        {"messages": [U1, think, U2, reasoning], "add_generation_prompt": False},
        {"messages": [U1, think, U2], "add_generation_prompt": True, "template_kwargs": {"enable_thinking": False}},
        {"messages": [SYS, weather_q], "tools": [WEATHER_TOOL], "add_generation_prompt": True},
        {
            "messages": [weather_q, tool_call] + tool_msgs + [{"role": "assistant", "content": "Warm in both."}],
            "tools": [WEATHER_TOOL],
            "add_generation_prompt": False,
        },
        {"messages": [weather_q, tool_call] + tool_msgs, "tools": [WEATHER_TOOL], "add_generation_prompt": True},
    ]


def deepseek_cases():
    return generic_cases() + [
        {"messages": [SYS, {"role": "system", "content": "Second system."}, U1], "add_generation_prompt": True},
        {
            "messages": [U1, {"role": "tool", "content": "lookup: Paris"}, {"role": "tool", "content": "ok"}, A1],
            "add_generation_prompt": False,
        },
        {"messages": [U1, {"role": "tool", "content": "lookup: Paris"}], "add_generation_prompt": True},
    ]


def gemma3_cases():
    parts_user = {"role": "user", "content": [{"type": "text", "text": " Describe this. "}, {"type": "text", "text": "Now."}]}
    parts_sys = {"role": "system", "content": [{"type": "text", "text": "Be terse."}]}
    parts_asst = {"role": "assistant", "content": [{"type": "text", "text": "Done."}]}
    return generic_cases() + [
        {"messages": [parts_sys, parts_user, parts_asst, U2], "add_generation_prompt": True},
        {"messages": [parts_user], "add_generation_prompt": False},
    ]


def llama32_cases():
    tool_call = {
        "role": "assistant",
        "tool_calls": [{"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris", "days": 3}}}],
    }
    tool_resp = {"role": "tool", "content": "{\"temp\": 18}"}
    dated = {"date_string": "01 Jan 2025"}
    return [
        {"messages": [U1], "add_generation_prompt": True, "template_kwargs": dated},
        {"messages": [SYS, U1, A1, U2], "add_generation_prompt": True, "template_kwargs": dated},
        {"messages": CJK, "add_generation_prompt": False, "template_kwargs": dated},
        {"messages": SPACED, "add_generation_prompt": True, "template_kwargs": dated},
        {"messages": [SYS, U1], "tools": [WEATHER_TOOL], "add_generation_prompt": True, "template_kwargs": dated},
        {
            "messages": [SYS, U1],
            "tools": [WEATHER_TOOL],
            "add_generation_prompt": True,
            "template_kwargs": {"date_string": "02 Feb 2025", "tools_in_user_message": False},
        },
        {"messages": [U1, tool_call, tool_resp], "tools": [WEATHER_TOOL], "add_generation_prompt": True,
         "template_kwargs": dated},
        {"messages": [U1], "add_generation_prompt": True},  # strftime_now("%d %b %Y")
    ]


# name -> (folder builder, cases, error cases: (case, message substring))
def _real(name):
    d = TOK / name
    if not (d / "tokenizer.json").exists() or not (d / "tokenizer_config.json").exists():
        pytest.skip(f"tokenizer files for {name} absent ({d}); run scripts/fetch-data.sh")
    return d


def _synthetic(tmp_path, base, name, template, overrides):
    src = _real(base)
    d = tmp_path / name
    d.mkdir()
    shutil.copy(src / "tokenizer.json", d / "tokenizer.json")
    cfg = json.loads((src / "tokenizer_config.json").read_text(encoding="utf-8"))
    cfg.update(overrides)
    cfg["chat_template"] = template
    (d / "tokenizer_config.json").write_text(json.dumps(cfg, ensure_ascii=False), encoding="utf-8")
    return d


ALTERNATE = "Conversation roles must alternate user/assistant/user/assistant/..."

SUITES = {
    "qwen3": (lambda tmp: _real("qwen3"), qwen3_cases, []),
    "deepseek_v3": (lambda tmp: _real("deepseek_v3"), deepseek_cases, []),
    "llama3": (lambda tmp: _real("llama3"), generic_cases, []),
    "gemma3": (lambda tmp: _real("gemma3"), gemma3_cases, [({"messages": [U1, U2]}, ALTERNATE)]),
    "llama2": (
        lambda tmp: _synthetic(tmp, "llama2", "llama2_chat", LLAMA2_CHAT, {}),
        generic_cases,
        [({"messages": [U1, U2], "add_generation_prompt": True}, ALTERNATE), ({"messages": [A1]}, ALTERNATE)],
    ),
    "mistral": (
        lambda tmp: _synthetic(tmp, "llama2", "mistral_v01", MISTRAL_V01, {"tokenizer_class": "LlamaTokenizerFast"}),
        lambda: [c for c in generic_cases() if c["messages"][0]["role"] != "system"],
        [({"messages": [SYS, U1]}, ALTERNATE), ({"messages": [U1, {"role": "tool", "content": "x"}]}, "Only user and assistant roles are supported!")],
    ),
    "llama3_2": (lambda tmp: _synthetic(tmp, "llama3", "llama3_2", LLAMA32, {"eos_token": "<|eot_id|>"}),
                 llama32_cases, []),
}


def hf_render(tok, case):
    return tok.apply_chat_template(
        case["messages"],
        tokenize=False,
        add_generation_prompt=case.get("add_generation_prompt", False),
        tools=case.get("tools"),
        **case.get("template_kwargs", {}),
    )


def run_cli(folder, cases):
    lines = "".join(json.dumps(c, ensure_ascii=False) + "\n" for c in cases)
    return subprocess.run([BIN, "chat-template", "--tokenizer", str(folder), "--jsonl"], input=lines.encode(),
                          capture_output=True)


@pytest.mark.parametrize("name", sorted(SUITES))
def test_matches_transformers(name, tmp_path):
    build, cases_fn, _ = SUITES[name]
    folder = build(tmp_path)
    cases = cases_fn()
    tok = transformers.AutoTokenizer.from_pretrained(str(folder))
    want = [hf_render(tok, c) for c in cases]
    r = run_cli(folder, cases)
    assert r.returncode == 0, r.stderr.decode()
    got = [json.loads(line) for line in r.stdout.decode().splitlines()]
    assert len(got) == len(want)
    for i, (g, w) in enumerate(zip(got, want)):
        assert g == w, f"{name} case {i}: {json.dumps(cases[i], ensure_ascii=False)}\n got: {g!r}\nwant: {w!r}"


@pytest.mark.parametrize("name", sorted(n for n in SUITES if SUITES[n][2]))
def test_raise_exception(name, tmp_path):
    build, _, errors = SUITES[name]
    folder = build(tmp_path)
    tok = transformers.AutoTokenizer.from_pretrained(str(folder))
    for case, msg in errors:
        with pytest.raises(Exception, match=re.escape(msg)):
            hf_render(tok, case)
        r = run_cli(folder, [case])
        assert r.returncode != 0
        assert msg in r.stderr.decode(), r.stderr.decode()


def test_messages_file_form(tmp_path):
    folder = _real("qwen3")
    f = tmp_path / "m.json"
    f.write_text(json.dumps([SYS, U1], ensure_ascii=False), encoding="utf-8")
    tok = transformers.AutoTokenizer.from_pretrained(str(folder))
    want = tok.apply_chat_template([SYS, U1], tokenize=False, add_generation_prompt=True)
    r = subprocess.run([BIN, "chat-template", "--tokenizer", str(folder / "tokenizer.json"), "--messages", str(f),
                        "--add-generation-prompt"], capture_output=True)
    assert r.returncode == 0, r.stderr.decode()
    assert r.stdout.decode() == want


def test_no_template_is_an_error(tmp_path):
    folder = _real("llama2")  # this package's config has "chat_template": null
    r = run_cli(folder, [{"messages": [U1]}])
    assert r.returncode != 0
    assert "no chat template" in r.stderr.decode()
    r = subprocess.run([BIN, "chat-template", "--tokenizer", str(folder), "--jsonl", "--template", "llama3"],
                       input=(json.dumps({"messages": [U1], "add_generation_prompt": True}) + "\n").encode(),
                       capture_output=True)
    assert r.returncode == 0, r.stderr.decode()
    assert json.loads(r.stdout) == ("<s><|start_header_id|>user<|end_header_id|>\n\n"
                                    "What is the capital of France?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n")
