"""`lmtune train` on Alpaca conversations through the model's chat template (real Qwen3 tokenizer, a tiny random
Qwen2 model made here): the examples are built as `lmtune data sft` builds them, training runs, the loss falls and a
PEFT adapter is written."""
import json
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


def test_train_sft_on_alpaca(tmp_path):
    if not LMTUNE_BIN.is_file():
        pytest.skip("lmtune binary not built")
    try:
        tokdir = corpus.tokenizer_dir("qwen3")
    except Exception as e:
        pytest.skip(str(e))
    model = tmp_path / "model"
    tok = transformers.AutoTokenizer.from_pretrained(tokdir)
    cfg = transformers.Qwen2Config(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                   num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=True,
                                   eos_token_id=tok.eos_token_id)
    torch.manual_seed(0)
    transformers.Qwen2ForCausalLM(cfg).save_pretrained(model)
    for f in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(Path(tokdir) / f, model / f)
    data = tmp_path / "train.jsonl"
    recs = [{"instruction": f"Is this spam? {t}", "input": "", "output": lab}
            for t, lab in [("WIN CASH NOW", "spam"), ("meeting at 3pm", "ham"), ("cheap pills!!!", "spam"),
                           ("see you at lunch", "ham")]]
    data.write_text("".join(json.dumps(r) + "\n" for r in recs))
    out = tmp_path / "run"
    p = subprocess.run([str(LMTUNE_BIN), "train", "--model_name_or_path", str(model), "--dataset", str(data),
                        "--output_dir", str(out), "--finetuning_type", "lora", "--lora_rank", "8", "--lora_target",
                        "all", "--learning_rate", "5e-3", "--max_steps", "30", "--per_device_train_batch_size", "2",
                        "--logging_steps", "5", "--save_steps", "0", "--disable_shuffling", "true"],
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr + p.stdout
    assert "4 conversations -> 4 examples" in p.stdout + p.stderr
    state = json.loads((out / "trainer_state.json").read_text())
    losses = [h["loss"] for h in state["log_history"] if "loss" in h]
    assert losses[-1] < losses[0] - 0.3 and losses == sorted(losses, reverse=True), losses
    assert (out / "adapter_model.safetensors").is_file() and (out / "adapter_config.json").is_file()
