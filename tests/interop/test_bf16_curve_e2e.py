"""A LoRA SFT run's loss curve under bf16 compute stays within 1% of the f32 run's, step by step (the performance
issue's accuracy condition), and activation checkpointing does not change it at all. The bundled base model
(models/lmtune-tiny) and a fixed synthetic Alpaca set: no downloads, no Python reference needed."""
import json
import os
import random
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LMTUNE_BIN = Path(os.environ.get("LMTUNE_BIN") or (ROOT / "build" / "lmtune"))
BASE = ROOT / "models" / "lmtune-tiny"
WORDS = ("whale ship captain sea harpoon voyage island storm sailor deck mast ocean wind rope anchor tide harbor "
         "compass lantern barrel").split()


def make_data(path):
    rng = random.Random(7)
    recs = []
    for i in range(96):
        ws = [rng.choice(WORDS) for _ in range(rng.randint(3, 9))]
        task = rng.choice(["Repeat these words", "Reverse these words", "Sort these words"])
        out = ws if task.startswith("Repeat") else ws[::-1] if task.startswith("Reverse") else sorted(ws)
        recs.append({"instruction": task + ".", "input": " ".join(ws), "output": " ".join(out)})
    path.write_text("".join(json.dumps(r) + "\n" for r in recs))


def train(tmp_path, name, data, *extra):
    out = tmp_path / name
    p = subprocess.run([str(LMTUNE_BIN), "train", "--model_name_or_path", str(BASE), "--dataset", str(data),
                        "--output_dir", str(out), "--finetuning_type", "lora", "--lora_rank", "16", "--lora_alpha",
                        "32", "--lora_target", "all", "--learning_rate", "2e-3", "--max_steps", "40",
                        "--per_device_train_batch_size", "4", "--gradient_accumulation_steps", "2",
                        "--logging_steps", "1", "--save_steps", "0", "--disable_shuffling", "true",
                        "--threads", "2", *extra],
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr + p.stdout
    state = json.loads((out / "trainer_state.json").read_text())
    return [h["loss"] for h in state["log_history"] if "loss" in h]


def test_bf16_loss_curve_within_1_percent(tmp_path):
    if not LMTUNE_BIN.is_file():
        pytest.skip("lmtune binary not built")
    data = tmp_path / "train.jsonl"
    make_data(data)
    f32 = train(tmp_path, "f32", data)
    bf16 = train(tmp_path, "bf16", data, "--bf16", "true")
    ckpt = train(tmp_path, "bf16_ckpt", data, "--bf16", "true", "--gradient_checkpointing", "true")
    assert len(f32) == len(bf16) == 40
    assert f32[-1] < 0.6 * f32[0], f32  # it learns: the comparison is over a falling curve
    worst = max(abs(b - f) / f for f, b in zip(f32, bf16))
    print(f"bf16 vs f32 loss curve: worst relative difference {worst:.2e} over {len(f32)} steps "
          f"({f32[0]:.4f} -> {f32[-1]:.4f})")
    assert worst <= 0.01, list(zip(f32, bf16))
    assert ckpt == bf16
