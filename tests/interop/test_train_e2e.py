"""`lmtune train` against HF Trainer + PEFT: the same losses and final adapter from the same initial adapter and
batches; PEFT loads lmtune's adapter; kill -9 + resume gives identical bytes; TensorBoard reads our scalars; bad
data gives the documented errors and no finished-looking output directory.

Run:  .venv/bin/python -m pytest tests/interop/test_train_e2e.py  (CLI from $LMTUNE_BIN, default build/lmtune)
"""
import json
import os
import random
import signal
import subprocess
import time
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
peft = pytest.importorskip("peft")
from safetensors.torch import load_file  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "models"
LMTUNE_BIN = Path(os.environ.get("LMTUNE_BIN") or (ROOT / "build" / "lmtune"))
transformers.logging.set_verbosity_error()

pytestmark = pytest.mark.skipif(not LMTUNE_BIN.is_file(), reason="lmtune binary not built")


def make_examples(n, vocab, seed, min_len=4, max_len=12, prompt=2):
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        ln = rng.randint(min_len, max_len)
        ids = [rng.randint(3, vocab - 1) for _ in range(ln)]
        labels = [-100] * min(prompt, ln) + ids[prompt:]
        out.append({"input_ids": ids, "labels": labels})
    return out


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def run_train(args, timeout=300, check=True):
    p = subprocess.run([str(LMTUNE_BIN), "train", *[str(a) for a in args]], capture_output=True, text=True,
                       timeout=timeout)
    if check:
        assert p.returncode == 0, p.stderr
    return p


def pad_id_of(model_dir):
    cfg = json.loads((model_dir / "config.json").read_text())
    pad = cfg.get("pad_token_id")
    return pad if isinstance(pad, int) and 0 <= pad < cfg["vocab_size"] else 0


PARITY = [("llama_mha_tied_f32", "lora"), ("qwen3_qknorm", "lora"), ("qwen2_gqa7_tied", "full")]


@pytest.mark.parametrize("name,mode", PARITY, ids=[f"{n}-{m}" for n, m in PARITY])
def test_parity_with_hf_trainer(name, mode, tmp_path):
    src = FIXTURES / name
    vocab = json.loads((src / "config.json").read_text())["vocab_size"]
    rows = make_examples(13, vocab, seed=11)  # 7 micro-batches of 2: the last accumulation window is shorter
    data = tmp_path / "train.jsonl"
    write_jsonl(data, rows)
    hp = dict(per_device_train_batch_size=2, gradient_accumulation_steps=2, learning_rate=5e-3, num_train_epochs=2,
              lr_scheduler_type="cosine", warmup_steps=2, weight_decay=0.1, max_grad_norm=0.5, adam_beta2=0.99,
              adam_epsilon=1e-7, seed=3)
    # lmtune
    out = tmp_path / "lmtune"
    method = ["--adapter_name_or_path", src / "adapter"] if mode == "lora" else ["--finetuning_type", "full"]
    run_train(["--model_name_or_path", src, *method, "--dataset", data,
               "--output_dir", out, "--disable_shuffling", "true", "--logging_steps", 1, "--save_steps", 0,
               *sum([[f"--{k}", v] for k, v in hp.items()], [])])
    ours = json.loads((out / "trainer_state.json").read_text())["log_history"]
    ours_loss = [e for e in ours if "loss" in e]

    # HF Trainer + PEFT from the same adapter, the same batches in the same order
    pad = pad_id_of(src)

    def collate(batch):
        T = max(len(b["input_ids"]) for b in batch)
        ids = torch.full((len(batch), T), pad, dtype=torch.long)
        lab = torch.full((len(batch), T), -100, dtype=torch.long)
        att = torch.zeros((len(batch), T), dtype=torch.long)
        for i, b in enumerate(batch):
            n = len(b["input_ids"])
            ids[i, :n] = torch.tensor(b["input_ids"])
            lab[i, :n] = torch.tensor(b["labels"])
            att[i, :n] = 1
        return {"input_ids": ids, "labels": lab, "attention_mask": att}

    class SeqTrainer(transformers.Trainer):
        def _get_train_sampler(self, train_dataset=None):
            return torch.utils.data.SequentialSampler(train_dataset or self.train_dataset)

    torch.manual_seed(0)
    base = transformers.AutoModelForCausalLM.from_pretrained(src, dtype=torch.float32, attn_implementation="eager")
    model = peft.PeftModel.from_pretrained(base, src / "adapter", is_trainable=True) if mode == "lora" else base
    targs = transformers.TrainingArguments(output_dir=str(tmp_path / "hf"), logging_steps=1, save_strategy="no",
                                           report_to=[], use_cpu=True, remove_unused_columns=False,
                                           dataloader_drop_last=False, optim="adamw_torch", **hp)
    trainer = SeqTrainer(model=model, args=targs, train_dataset=rows, data_collator=collate)
    trainer.train()
    hf_loss = [e for e in trainer.state.log_history if "loss" in e]

    assert len(hf_loss) == len(ours_loss) == 8
    worst = 0.0
    for h, o in zip(hf_loss, ours_loss):
        assert h["step"] == o["step"]
        assert abs(h["epoch"] - o["epoch"]) < 1e-9, (h, o)
        assert abs(h["learning_rate"] - o["learning_rate"]) <= 1e-12 * max(1.0, h["learning_rate"]), (h, o)
        rel = abs(h["loss"] - o["loss"]) / abs(h["loss"])
        worst = max(worst, rel)
        assert rel <= 1e-4, f"step {h['step']}: loss {o['loss']} vs HF {h['loss']}"
        assert abs(h["grad_norm"] - o["grad_norm"]) <= 1e-3 * abs(h["grad_norm"]), (h, o)
    # final adapter / weights
    if mode == "lora":
        want = peft.get_peft_model_state_dict(model)
        got = load_file(str(out / "adapter_model.safetensors"))
    else:
        got = load_file(str(out / "model.safetensors"))
        want = {k: v.detach() for k, v in model.state_dict().items() if k in got}
        # k_proj.bias shifts every score of a query equally, so softmax makes its gradient exactly zero in theory;
        # what is left is rounding noise, which Adam normalises into full-size steps: not comparable.
        got = {k: v for k, v in got.items() if not k.endswith("k_proj.bias")}
        want = {k: v for k, v in want.items() if not k.endswith("k_proj.bias")}
    assert set(got) == set(want), (sorted(got)[:3], sorted(want)[:3])
    num = sum(float(((got[k] - want[k].float()) ** 2).sum()) for k in got)
    den = sum(float((want[k].float() ** 2).sum()) for k in got)
    per = {k: float((got[k] - want[k]).norm() / want[k].norm()) for k in got}
    worst_t = max(per.values())
    print(f"{name} {mode}: max rel loss diff {worst:.2e}; weights rel L2 diff {(num / den) ** 0.5:.2e}, "
          f"max per-tensor rel L2 {worst_t:.2e}")
    assert (num / den) ** 0.5 <= 1e-4
    assert worst_t <= 1e-4
    for k in got:  # and element by element, relative to each tensor's scale
        assert float((got[k] - want[k]).abs().max()) <= 1e-4 * float(want[k].abs().max()), k
    ts = json.loads((out / "trainer_state.json").read_text())
    assert ts["global_step"] == trainer.state.global_step == 8 and ts["max_steps"] == trainer.state.max_steps
    tr = json.loads((out / "train_results.json").read_text())
    assert abs(tr["train_loss"] - trainer.state.log_history[-1]["train_loss"]) <= 1e-4 * tr["train_loss"]

    if mode != "lora":
        return
    # (b) PEFT loads lmtune's adapter and computes what `lmtune logits --adapter` computes
    ids = [1, 7, 3, 11, 5, 9, 4, 2]
    npy = tmp_path / "logits.npy"
    p = subprocess.run([str(LMTUNE_BIN), "logits", "--model", str(src), "--adapter", str(out), "--ids",
                        ",".join(map(str, ids)), "--out", str(npy)], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    import numpy as np
    mine = np.load(npy)
    base2 = transformers.AutoModelForCausalLM.from_pretrained(src, dtype=torch.float32, attn_implementation="eager")
    pm = peft.PeftModel.from_pretrained(base2, out).eval()
    with torch.no_grad():
        ref = pm(torch.tensor([ids])).logits[0].numpy()
    assert np.abs(mine - ref).max() <= 1e-4


def latest_step(out):
    steps = [int(p.name.split("-")[1]) for p in out.glob("checkpoint-*") if (p / "lmtune_state.json").exists()]
    return max(steps) if steps else 0


def test_kill9_resume_is_bitwise_identical(tmp_path):
    src = FIXTURES / "llama_mha_tied_f32"
    data = tmp_path / "train.jsonl"
    write_jsonl(data, make_examples(24, 96, seed=5))
    common = ["--model_name_or_path", src, "--dataset", data, "--lora_rank", 4, "--lora_dropout", 0.1,
              "--lora_target", "all", "--per_device_train_batch_size", 2, "--gradient_accumulation_steps", 2,
              "--learning_rate", 3e-3, "--num_train_epochs", 5, "--lr_scheduler_type", "cosine", "--warmup_ratio",
              0.1, "--weight_decay", 0.01, "--logging_steps", 2, "--save_steps", 1, "--save_total_limit", 3,
              "--val_size", 4, "--eval_steps", 5]
    ref = tmp_path / "ref"
    run_train([*common, "--output_dir", ref])
    total = json.loads((ref / "trainer_state.json").read_text())["global_step"]
    assert total == 25
    out = tmp_path / "killed"
    kill_at = random.Random().randint(3, total - 5)
    proc = subprocess.Popen([str(LMTUNE_BIN), "train", *map(str, common), "--output_dir", str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while proc.poll() is None and latest_step(out) < kill_at and time.time() < deadline:
        time.sleep(0.0005)
    killed = proc.poll() is None
    if killed:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert killed, "the run finished before it could be killed"
    assert not (out / "all_results.json").exists()
    p = run_train([*common, "--output_dir", out, "--resume_from_checkpoint", "true"])
    assert "resuming from" in p.stderr
    assert (out / "adapter_model.safetensors").read_bytes() == (ref / "adapter_model.safetensors").read_bytes(), \
        f"killed near step {kill_at}"
    a = [e.get("loss") for e in json.loads((ref / "trainer_state.json").read_text())["log_history"]]
    b = [e.get("loss") for e in json.loads((out / "trainer_state.json").read_text())["log_history"]]
    assert a == b
    assert not list(out.glob(".checkpoint-*")) and not list(out.rglob("*.tmp.*"))


def test_ctrl_c_saves_and_resumes(tmp_path):
    src = FIXTURES / "llama_mha_tied_f32"
    data = tmp_path / "train.jsonl"
    write_jsonl(data, make_examples(20, 96, seed=8))
    common = ["--model_name_or_path", src, "--dataset", data, "--lora_rank", 4, "--per_device_train_batch_size", 1,
              "--learning_rate", 1e-3, "--num_train_epochs", 20, "--logging_steps", 10, "--save_steps", 0]
    out = tmp_path / "out"
    proc = subprocess.Popen([str(LMTUNE_BIN), "train", *map(str, common), "--output_dir", str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while proc.poll() is None and not (out / "metrics.jsonl").exists() and time.time() < deadline:
        time.sleep(0.005)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    if proc.returncode == 0:
        pytest.skip("the run finished before SIGINT arrived")
    assert proc.returncode == 130, err
    assert "interrupted at step" in err and "resume" in err
    assert latest_step(out) > 0 and not (out / "all_results.json").exists()
    run_train([*common, "--output_dir", out, "--resume_from_checkpoint", "true"])
    assert (out / "all_results.json").exists()


def test_tensorboard_reads_our_scalars(tmp_path):
    ea_mod = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    src = FIXTURES / "llama_mha_tied_f32"
    data = tmp_path / "train.jsonl"
    write_jsonl(data, make_examples(10, 96, seed=2))
    out = tmp_path / "out"
    run_train(["--model_name_or_path", src, "--dataset", data, "--output_dir", out, "--lora_rank", 2,
               "--per_device_train_batch_size", 2, "--max_steps", 6, "--logging_steps", 2, "--val_size", 2,
               "--eval_steps", 3, "--save_steps", 0])
    files = list((out / "runs").glob("events.out.tfevents.*"))
    assert len(files) == 1
    acc = ea_mod.EventAccumulator(str(out / "runs"))
    acc.Reload()
    tags = acc.Tags()["scalars"]
    for t in ("train/loss", "train/learning_rate", "train/grad_norm", "train/epoch", "eval/loss"):
        assert t in tags, tags
    hist = json.loads((out / "trainer_state.json").read_text())["log_history"]
    want = [(e["step"], e["loss"]) for e in hist if "loss" in e]
    got = [(s.step, s.value) for s in acc.Scalars("train/loss")]
    assert [s for s, _ in got] == [s for s, _ in want] == [2, 4, 6]
    for (_, g), (_, w) in zip(got, want):
        assert abs(g - w) <= 1e-6 * abs(w)
    assert (out / "training_loss.svg").read_text().startswith("<?xml")
    # transformers reads our trainer_state.json
    st = transformers.TrainerState.load_from_json(str(out / "trainer_state.json"))
    assert st.global_step == 6 and st.max_steps == 6 and st.log_history == hist
    results = json.loads((out / "all_results.json").read_text())
    for k in ("train_loss", "train_runtime", "train_samples_per_second", "train_steps_per_second", "epoch",
              "eval_loss", "eval_perplexity"):
        assert k in results, results


BAD_CASES = [
    ("malformed", b'{"input_ids": [1, 2, 3]}\n{"input_ids": [1, 2\n', "train.jsonl:2: not valid JSON"),
    ("missing_field", b'{"input_ids": [1, 2, 3]}\n{"labels": [1, 2, 3]}\n', 'train.jsonl:2: missing field "input_ids"'),
    ("empty", b"", "no records (the file is empty)"),
    ("non_utf8", b'{"input_ids": [1, 2, 3]}\n{"input_ids": [1, 2], "note": "\xff"}\n', "train.jsonl:2: invalid UTF-8"),
]


@pytest.mark.parametrize("case,content,message", BAD_CASES, ids=[c[0] for c in BAD_CASES])
def test_bad_inputs(case, content, message, tmp_path):
    src = FIXTURES / "llama_mha_tied_f32"
    data = tmp_path / "train.jsonl"
    data.write_bytes(content)
    out = tmp_path / "out"
    p = run_train(["--model_name_or_path", src, "--dataset", data, "--output_dir", out, "--max_steps", 2], check=False)
    assert p.returncode == 1, p.stderr
    assert message in p.stderr, p.stderr
    assert not out.exists(), "an output directory was left behind"
    if case in ("malformed", "missing_field", "non_utf8"):  # --skip_bad_records: a counted warning instead
        p = run_train(["--model_name_or_path", src, "--dataset", data, "--output_dir", out, "--max_steps", 2,
                       "--skip_bad_records", "--save_steps", 0])
        assert "skipped 1 bad record of 2" in p.stderr, p.stderr
        assert (out / "all_results.json").exists()


def test_overlong_sample_is_truncated_with_a_warning(tmp_path):
    src = FIXTURES / "llama_mha_tied_f32"
    data = tmp_path / "train.jsonl"
    write_jsonl(data, [{"input_ids": list(range(3, 40))}, {"input_ids": [5, 6, 7]}])
    out = tmp_path / "out"
    p = run_train(["--model_name_or_path", src, "--dataset", data, "--output_dir", out, "--max_steps", 1,
                   "--cutoff_len", 16, "--save_steps", 0])
    assert "1 example longer than cutoff_len 16 were truncated" in p.stderr, p.stderr


def test_cli_errors(tmp_path):
    src = FIXTURES / "llama_mha_tied_f32"
    p = run_train(["--model_name_or_path", src, "--lora_rnak", 4], check=False)
    assert p.returncode == 2 and 'did you mean "lora_rank"' in p.stderr, p.stderr
    p = run_train(["--model_name_or_path", src, "--learning_rate=fast"], check=False)
    assert p.returncode == 2 and "learning_rate" in p.stderr and "fast" in p.stderr, p.stderr
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(f"model_name_or_path: {src}\noutput_dir: {tmp_path / 'o'}\nwarmup_ratoi: 0.1\n")
    p = run_train([cfg], check=False)
    assert p.returncode == 2 and "cfg.yaml:3" in p.stderr and "warmup_ratio" in p.stderr, p.stderr
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "x").write_text("x")
    data = tmp_path / "d.jsonl"
    write_jsonl(data, make_examples(4, 96, seed=1))
    p = run_train(["--model_name_or_path", src, "--dataset", data, "--output_dir", busy], check=False)
    assert p.returncode == 1 and "not empty" in p.stderr, p.stderr


def test_pretraining_text_with_packing_matches_hf(tmp_path):
    """{"text": ...} records: tokenized with the model's tokenizer and packed into cutoff_len blocks as
    LLaMA-Factory's pre-training preprocessing does (text + eos, no other special tokens, remainder dropped);
    the losses equal HF Trainer's on those blocks."""
    tokenizers = pytest.importorskip("tokenizers")
    import shutil
    src = FIXTURES / "llama_mha_tied_f32"
    model = tmp_path / "model"
    shutil.copytree(src, model)
    rng = random.Random(4)
    words = ["".join(rng.choice("abcdef") for _ in range(rng.randint(1, 4))) for _ in range(40)]
    texts = [" ".join(rng.choice(words) for _ in range(rng.randint(3, 15))) for _ in range(30)]
    tok = tokenizers.Tokenizer(tokenizers.models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()
    trainer = tokenizers.trainers.BpeTrainer(vocab_size=80, special_tokens=["<unk>", "<s>", "</s>"])
    tok.train_from_iterator(texts, trainer)
    assert tok.get_vocab_size() <= 96
    fast = transformers.PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>",
                                                unk_token="<unk>")
    fast.save_pretrained(model)
    data = tmp_path / "pt.jsonl"
    write_jsonl(data, [{"text": t} for t in texts])
    out = tmp_path / "out"
    hp = dict(per_device_train_batch_size=2, gradient_accumulation_steps=1, learning_rate=5e-3, max_steps=6,
              lr_scheduler_type="linear", max_grad_norm=1.0, seed=1)
    p = run_train(["--model_name_or_path", model, "--stage", "pt", "--dataset", data, "--cutoff_len", 16,
                   "--output_dir", out, "--disable_shuffling", "true", "--logging_steps", 1, "--save_steps", 0,
                   "--lora_rank", 4, "--lora_target", "q_proj,v_proj", *sum([[f"--{k}", v] for k, v in hp.items()], [])])
    # LLaMA-Factory's packing, with the HF tokenizer
    hf_tok = transformers.AutoTokenizer.from_pretrained(model)
    enc = hf_tok([t + hf_tok.eos_token for t in texts], add_special_tokens=False)["input_ids"]
    stream = [i for e in enc for i in e]
    blocks = [stream[i:i + 16] for i in range(0, len(stream) // 16 * 16, 16)]
    assert f"packed 30 examples into {len(blocks)} blocks of 16 tokens" in p.stderr, p.stderr
    rows = [{"input_ids": b, "labels": b} for b in blocks]
    ours = [e for e in json.loads((out / "trainer_state.json").read_text())["log_history"] if "loss" in e]
    # a fresh LoRA starts with B = 0, so step 1's loss is the base model's on the first two blocks
    base = transformers.AutoModelForCausalLM.from_pretrained(model, dtype=torch.float32, attn_implementation="eager")
    with torch.no_grad():
        ids = torch.tensor([rows[0]["input_ids"], rows[1]["input_ids"]])
        ref = base(input_ids=ids, labels=ids).loss.item()
    assert abs(ours[0]["loss"] - ref) <= 1e-5 * abs(ref), (ours[0]["loss"], ref)
