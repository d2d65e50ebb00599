"""`lmtune generate --prompt` (plain and --chat) on a tiny random Qwen2 model with the real Qwen3 tokenizer: the
prompt ids are transformers' (tokenizer(text) / apply_chat_template(..., add_generation_prompt=True)) and the greedy
continuation equals model.generate's, decoded with skip_special_tokens."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "tokenizer"))
import corpus  # noqa: E402

LMTUNE_BIN = Path(os.environ.get("LMTUNE_BIN") or (ROOT / "build" / "lmtune"))
transformers.logging.set_verbosity_error()


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    if not LMTUNE_BIN.is_file():
        pytest.skip("lmtune binary not built")
    try:
        tokdir = corpus.tokenizer_dir("qwen3")
    except Exception as e:
        pytest.skip(str(e))
    model = tmp_path_factory.mktemp("gen") / "model"
    tok = transformers.AutoTokenizer.from_pretrained(tokdir)
    cfg = transformers.Qwen2Config(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                   num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=True,
                                   eos_token_id=tok.eos_token_id)
    torch.manual_seed(1)
    m = transformers.Qwen2ForCausalLM(cfg)
    with torch.no_grad():  # a peaked output distribution, so greedy decoding is not decided by rounding noise
        m.model.embed_tokens.weight.normal_(0, 1.0)
    m.save_pretrained(model)
    for f in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(Path(tokdir) / f, model / f)
    m = transformers.AutoModelForCausalLM.from_pretrained(model, dtype=torch.float32, attn_implementation="eager")
    return model, tok, m.eval()


@pytest.mark.parametrize("chat", [False, True])
def test_generate_prompt_text(tiny, chat):
    model, tok, m = tiny
    prompt = "Call me Ishmael. 你好"
    if chat:
        ids = tok.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True,
                                      tokenize=True, return_dict=False)
    else:
        ids = tok(prompt)["input_ids"]
    with torch.no_grad():
        out = m.generate(torch.tensor([ids]), do_sample=False, max_new_tokens=12, eos_token_id=tok.eos_token_id)
    new = out[0, len(ids):].tolist()
    want = tok.decode(new, skip_special_tokens=True)
    cmd = [str(LMTUNE_BIN), "generate", "--model", str(model), "--prompt", prompt, "--max-new-tokens", "12",
           "--print-ids"] + (["--chat"] if chat else [])
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    text, id_line = p.stdout.rsplit("\n", 2)[0], p.stdout.rsplit("\n", 2)[1]
    assert [int(x) for x in id_line.split()] == new
    assert text == want
