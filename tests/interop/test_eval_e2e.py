"""`lmtune eval` against transformers + PEFT on a tiny random Llama model with the real Llama 2 tokenizer (BOS added,
a chat template written here) and a PEFT LoRA adapter with non-zero B:
  ppl       total NLL / token count over {"text"} JSONL, .txt and SFT conversations (response tokens only)
  classify  per-example label log-likelihoods (the SFT example of (prompt, label)), predictions, scikit-learn
            metrics; --by generate; --compare (base and adapter runs); --labels errors
  generate  greedy outputs equal transformers' generate; BLEU / ROUGE-L / exact match equal sacreBLEU / rouge-score
  mcq       lm-evaluation-harness MMLU prompts (0- and k-shot), choice log-likelihoods and accuracies; C-Eval / CMMLU
            headers; CSV errors
and the bad-input errors (exit 1, file/line/field named, no eval_results.json written)."""
import csv
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
peft = pytest.importorskip("peft")
sacrebleu = pytest.importorskip("sacrebleu")
rouge_scorer = pytest.importorskip("rouge_score.rouge_scorer")
sk_metrics = pytest.importorskip("sklearn.metrics")
ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "tokenizer"))
import corpus  # noqa: E402

LMTUNE_BIN = Path(os.environ.get("LMTUNE_BIN") or (ROOT / "build" / "lmtune"))
FIX = ROOT / "tests" / "fixtures" / "eval"
transformers.logging.set_verbosity_error()
torch.set_num_threads(1)  # the reference model is tiny: threads only add synchronisation

# Llama-2-chat-like: the assistant turn ends with the EOS token, so SFT labels the answer + "</s>"
TEMPLATE = ("{{ bos_token }}{% for m in messages %}{% if m['role'] == 'system' %}<<SYS>>\n{{ m['content'] }}\n<</SYS>>"
            "\n\n{% elif m['role'] == 'user' %}[INST] {{ m['content'] }} [/INST]{% else %} {{ m['content'] }}"
            "{{ eos_token }}{% endif %}{% endfor %}")
INSTR = "Is this e-mail spam or ham? Answer with one word."
MAILS = [("WIN a FREE cruise now, click here!!!", "spam"), ("Meeting moved to 3pm, see agenda attached.", "ham"),
         ("Cheap meds, no prescription needed", "spam"), ("Can you review my patch before Friday?", "ham"),
         ("You have been selected for a $1000 gift card", "spam"), ("Lunch tomorrow at the usual place?", "ham"),
         ("Lowest mortgage rates, act today", "spam"), ("The build is green again, thanks all.", "ham"),
         ("Hot singles in your area", "spam"), ("Minutes of the board meeting are attached.", "ham")]


def run(*args, ok=True):
    p = subprocess.run([str(LMTUNE_BIN), "eval", *map(str, args)], capture_output=True, text=True, timeout=600,
                       env={**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2")})
    if ok:
        assert p.returncode == 0, p.stderr + p.stdout
    return p


def results(out):
    res = json.loads((out / "eval_results.json").read_text())
    preds = [json.loads(x) for x in (out / "predictions.jsonl").read_text().splitlines()]
    return res, preds


def rel(a, b):
    return abs(a - b) / max(abs(b), 1e-12)


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    if not LMTUNE_BIN.is_file():
        pytest.skip("lmtune binary not built")
    try:
        tokdir = corpus.tokenizer_dir("llama2")
    except Exception as e:
        pytest.skip(str(e))
    d = tmp_path_factory.mktemp("eval")
    model, adapter = d / "model", d / "adapter"
    model.mkdir()
    shutil.copy(Path(tokdir) / "tokenizer.json", model / "tokenizer.json")
    tc = json.loads((Path(tokdir) / "tokenizer_config.json").read_text())
    tc["chat_template"] = TEMPLATE
    (model / "tokenizer_config.json").write_text(json.dumps(tc))
    tok = transformers.AutoTokenizer.from_pretrained(model)
    cfg = transformers.LlamaConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                   num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024,
                                   bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                                   tie_word_embeddings=False)
    torch.manual_seed(0)
    m = transformers.LlamaForCausalLM(cfg)
    with torch.no_grad():  # layers that mix the context in, and a peaked output distribution (greedy choices are not
        for p in m.parameters():  # decided by rounding noise)
            if p.dim() == 2:
                p.normal_(0, 0.2)
        m.model.embed_tokens.weight.normal_(0, 1.0)
        m.lm_head.weight.normal_(0, 0.5)
    m.save_pretrained(model)
    lcfg = peft.LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, task_type="CAUSAL_LM",
                           target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"])
    pm = peft.get_peft_model(m, lcfg)
    with torch.no_grad():
        for n, p in pm.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.5)
    pm.save_pretrained(adapter)

    def load(with_adapter):
        b = transformers.AutoModelForCausalLM.from_pretrained(model, dtype=torch.float32, attn_implementation="eager")
        if with_adapter:
            b = peft.PeftModel.from_pretrained(b, adapter)
        return b.eval()

    data = d / "data"
    data.mkdir()
    recs = [{"instruction": INSTR, "input": t, "output": lab} for t, lab in MAILS]
    (data / "mail.json").write_text(json.dumps(recs, indent=1))
    return {"dir": d, "model": model, "adapter": adapter, "tok": tok, "base": load(False), "lora": load(True),
            "data": data, "recs": recs}


# ------------------------------------------------------------------------------------------------ references

def seq_logprobs(model, ids):
    """log p(ids[t] | ids[:t]) for t = 1 .. len-1."""
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0].double()
    lp = torch.log_softmax(logits, -1)
    return [lp[t - 1, ids[t]].item() for t in range(1, len(ids))]


def user_text(rec):
    return rec["instruction"] + ("\n" + rec["input"] if rec.get("input") else "")


def sft_pair(tok, rec, answer):
    """LLaMA-Factory's segment encoding of one turn: (prompt ids, answer ids)."""
    msgs = [{"role": "user", "content": user_text(rec)}]
    prefix = tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
    full = tok.apply_chat_template(msgs + [{"role": "assistant", "content": answer}], tokenize=False)
    assert full.startswith(prefix)
    return (tok.encode(prefix, add_special_tokens=False), tok.encode(full[len(prefix):], add_special_tokens=False))


def cand_loglik(model, prompt, cont):
    lp = seq_logprobs(model, prompt + cont)
    return sum(lp[len(prompt) - 1:])


def classify_ref(env, model, labels, cutoff=0):
    tok, golds, preds, lls = env["tok"], [], [], []
    for r in env["recs"]:
        pairs = {lab: sft_pair(tok, r, lab) for lab in labels}
        if cutoff:  # a long prompt keeps its first cutoff - (longest label) tokens, as SFT training cuts it
            keep = max(1, cutoff - max(len(c) for _, c in pairs.values()))
            pairs = {lab: (p[:keep], c) for lab, (p, c) in pairs.items()}
        ll = {lab: cand_loglik(model, *pairs[lab]) for lab in labels}
        lls.append(ll)
        preds.append(max(labels, key=lambda lab: (ll[lab], -labels.index(lab))))
        golds.append(r["output"])
    return golds, preds, lls


def check_classify_metrics(met, golds, preds, labels):
    assert met["accuracy"] == pytest.approx(sk_metrics.accuracy_score(golds, preds), abs=1e-12)
    assert met["macro_f1"] == pytest.approx(sk_metrics.f1_score(golds, preds, labels=labels, average="macro",
                                                                 zero_division=0), abs=1e-12)
    assert met["micro_f1"] == pytest.approx(sk_metrics.f1_score(golds, preds, labels=labels, average="micro",
                                                                 zero_division=0), abs=1e-12)
    p, r, f, s = sk_metrics.precision_recall_fscore_support(golds, preds, labels=labels, zero_division=0)
    for i, lab in enumerate(labels):
        pc = met["per_class"][lab]
        assert (pc["precision"], pc["recall"], pc["f1"], pc["support"]) == pytest.approx((p[i], r[i], f[i], s[i]))
    assert met["confusion_matrix"]["labels"] == labels
    assert met["confusion_matrix"]["matrix"] == sk_metrics.confusion_matrix(golds, preds, labels=labels).tolist()


# ------------------------------------------------------------------------------------------------ ppl

def test_ppl_text_jsonl_and_txt(env):
    tok, base = env["tok"], env["base"]
    texts = [t for _, t in corpus.moby_dick_chapters()[:1]][0].split("\n")
    texts = [t for t in texts if t.strip()][:6]
    jl = env["data"] / "text.jsonl"
    jl.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    txt = env["data"] / "text.txt"
    txt.write_text("\n\n".join(texts) + "\n")
    nll, n = 0.0, 0
    for t in texts:  # as lmtune train --stage pt: [bos] + text + eos, every token scored
        ids = [tok.bos_token_id] + tok.encode(t, add_special_tokens=False) + [tok.eos_token_id]
        lp = seq_logprobs(base, ids)
        nll -= sum(lp)
        n += len(lp)
    for path in (jl, txt):
        out = env["dir"] / ("ppl_" + path.suffix[1:])
        run("--model", env["model"], "--task", "ppl", "--dataset", path, "--out", out)
        res, preds = results(out)
        met = res["runs"][0]["metrics"]
        assert res["task"] == "ppl" and res["n_examples"] == len(texts) and res["runs"][0]["name"] == "base"
        assert res["runs"][0]["adapter"] is None
        assert met["n_tokens"] == n
        assert rel(met["loss"], nll / n) < 1e-4
        assert rel(met["perplexity"], math.exp(nll / n)) < 1e-4
        assert len(preds) == len(texts) and sum(p["n_tokens"] for p in preds) == n


def test_ppl_sft_conversations_with_cutoff(env):
    tok, lora = env["tok"], env["lora"]
    nll, n = 0.0, 0
    for r in env["recs"]:
        p, a = sft_pair(tok, r, r["output"])
        ids = (p + a)[:40]
        lp = seq_logprobs(lora, ids)[len(p) - 1:]  # labels on the response tokens only
        nll -= sum(lp)
        n += len(lp)
    out = env["dir"] / "ppl_sft"
    run("--model", env["model"], "--adapter", env["adapter"], "--task", "ppl", "--dataset",
        env["data"] / "mail.json", "--out", out, "--cutoff_len", 40)
    res, _ = results(out)
    met = res["runs"][0]["metrics"]
    assert res["runs"][0]["name"] == "adapter" and res["runs"][0]["adapter"] == str(env["adapter"])
    assert met["n_tokens"] == n and rel(met["loss"], nll / n) < 1e-4


# ------------------------------------------------------------------------------------------------ classify

def test_classify_compare(env):
    out = env["dir"] / "cls"
    p = run("--model", env["model"], "--adapter", env["adapter"], "--compare", "--task", "classify", "--dataset",
            env["data"] / "mail.json", "--out", out)
    assert "base" in p.stdout and "adapter" in p.stdout and "accuracy" in p.stdout
    res, preds = results(out)
    labels = ["ham", "spam"]
    assert [r["name"] for r in res["runs"]] == ["base", "adapter"]
    assert res["runs"][0]["adapter"] is None and res["runs"][1]["adapter"] == str(env["adapter"])
    assert res["n_examples"] == len(MAILS) and res["task"] == "classify"
    for k, (name, model) in enumerate((("base", env["base"]), ("adapter", env["lora"]))):
        golds, want, lls = classify_ref(env, model, labels)
        for i, pr in enumerate(preds):
            assert pr["index"] == i and pr["gold"] == golds[i] and pr["prompt"] == user_text(env["recs"][i])
            got = pr[name]
            for lab in labels:
                assert rel(got["scores"][lab], lls[i][lab]) < 1e-4, (name, i, lab)
            assert got["prediction"] == want[i]
        check_classify_metrics(res["runs"][k]["metrics"], golds, want, labels)
    # the two runs differ (the adapter changes the scores)
    assert preds[0]["base"]["scores"] != preds[0]["adapter"]["scores"]


def greedy(model, tok, prompt, max_new, eos):
    with torch.no_grad():
        g = model.generate(torch.tensor([prompt]), do_sample=False, max_new_tokens=max_new, eos_token_id=eos,
                           pad_token_id=tok.eos_token_id)
    return g[0, len(prompt):].tolist()


def test_classify_by_generate(env, tmp_path):
    """Greedy generation matched exactly to a label. The random model does not say "spam", so the stop set gets a
    token it does generate (config eos_token_id [</s>, X]) and some gold labels become what it says."""
    tok, lora = env["tok"], env["lora"]
    prompts = [sft_pair(tok, r, r["output"])[0] for r in env["recs"]]
    x = greedy(lora, tok, prompts[0], 8, tok.eos_token_id)[2]
    eos = [tok.eos_token_id, x]
    model = tmp_path / "model"
    shutil.copytree(env["model"], model)
    for f in ("config.json", "generation_config.json"):
        c = json.loads((model / f).read_text())
        c["eos_token_id"] = eos
        (model / f).write_text(json.dumps(c))
    recs = [dict(r) for r in env["recs"]]
    for r, p in zip(recs, prompts):
        g = greedy(lora, tok, p, 30, eos)
        if g[-1] in eos:  # stopped: this text is what it generates whatever the budget
            r["output"] = tok.decode(g, skip_special_tokens=True).strip()
    labels = sorted({r["output"] for r in recs})
    path = tmp_path / "mail_gen.json"
    path.write_text(json.dumps(recs))
    out = tmp_path / "out"
    run("--model", model, "--adapter", env["adapter"], "--task", "classify", "--dataset", path, "--out",
        out / "x.json", "--by", "generate")
    res = json.loads((out / "x.json").read_text())
    preds = [json.loads(x) for x in (out / "x_predictions.jsonl").read_text().splitlines()]
    max_new = max(len(sft_pair(tok, recs[0], lab)[1]) for lab in labels) + 4
    golds, want = [], []
    for r, p, pr in zip(recs, prompts, preds):
        text = tok.decode(greedy(lora, tok, p, max_new, eos), skip_special_tokens=True).strip()
        assert pr["generated"] == text
        want.append(text if text in labels else "<other>")
        golds.append(r["output"])
        assert pr["prediction"] == want[-1]
    assert sum(w != "<other>" for w in want) >= 1 and "<other>" in want, want
    met = res["runs"][0]["metrics"]
    assert met["confusion_matrix"]["labels"] == labels
    assert met["accuracy"] == pytest.approx(sum(a == b for a, b in zip(golds, want)) / len(golds))
    assert met["n_other"] == sum(w == "<other>" for w in want)
    cm = sk_metrics.confusion_matrix(golds, want, labels=labels).tolist()  # "<other>" is in no column
    assert met["confusion_matrix"]["matrix"] == cm


def test_classify_labels_order(env):
    labels = ["spam", "ham", "eggs"]
    out = env["dir"] / "cls_labels"
    run("--model", env["model"], "--task", "classify", "--dataset", env["data"] / "mail.json", "--out", out,
        "--labels", ",".join(labels))
    res, preds = results(out)
    golds, want, lls = classify_ref(env, env["base"], labels)
    for pr, ll, w in zip(preds, lls, want):
        assert list(pr["scores"]) == labels and pr["prediction"] == w
        for lab in labels:
            assert rel(pr["scores"][lab], ll[lab]) < 1e-4
    check_classify_metrics(res["runs"][0]["metrics"], golds, want, labels)


# ------------------------------------------------------------------------------------------------ generate

def test_generate_greedy_and_scores(env):
    tok, base = env["tok"], env["base"]
    recs = [{"instruction": "Continue the story.", "input": t, "output": o} for t, o in
            [("Call me Ishmael.", "Some years ago, never mind how long precisely."),
             ("It is a way I have", "of driving off the spleen and regulating the circulation."),
             ("There now is your insular city", "of the Manhattoes, belted round by wharves."),
             ("Circumambulate the city", "of a dreamy Sabbath afternoon.")]]
    path = env["data"] / "gen.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in recs))
    out = env["dir"] / "gen"
    run("--model", env["model"], "--task", "generate", "--dataset", path, "--out", out, "--max_new_tokens", 12)
    res, preds = results(out)
    hyps = []
    for r, pr in zip(recs, preds):
        prompt, _ = sft_pair(tok, r, r["output"])
        with torch.no_grad():
            g = base.generate(torch.tensor([prompt]), do_sample=False, max_new_tokens=12,
                              eos_token_id=tok.eos_token_id, pad_token_id=tok.eos_token_id)
        hyps.append(tok.decode(g[0, len(prompt):], skip_special_tokens=True).strip())
        assert pr["prediction"] == hyps[-1] and pr["gold"] == r["output"]
    refs = [r["output"] for r in recs]
    met = res["runs"][0]["metrics"]
    assert met["n"] == len(recs)
    assert met["bleu"] == pytest.approx(sacrebleu.corpus_bleu(hyps, [refs]).score, abs=1e-9)
    sc = rouge_scorer.RougeScorer(["rougeL"])
    rl = [sc.score(ref, hyp)["rougeL"].fmeasure for ref, hyp in zip(refs, hyps)]
    assert met["rouge_l"] == pytest.approx(sum(rl) / len(rl), abs=1e-12)
    assert met["exact_match"] == pytest.approx(sum(h == r for h, r in zip(hyps, refs)) / len(refs))
    for pr, x in zip(preds, rl):
        assert pr["scores"]["rouge_l"] == pytest.approx(x, abs=1e-12)
    # Chinese references with sacreBLEU's zh tokenizer
    zh = env["data"] / "gen_zh.jsonl"
    zh_refs = [h + z for h, z in zip(hyps, ["我叫以实玛利。", "有一次我口袋里没有钱。", "城市被码头环绕着。", "梦一般的下午。"])]
    zh.write_text("".join(json.dumps({**r, "output": z}, ensure_ascii=False) + "\n" for r, z in zip(recs, zh_refs)))
    run("--model", env["model"], "--task", "generate", "--dataset", zh, "--out", out / "zh", "--max_new_tokens", 12,
        "--bleu_tokenize", "zh")
    met = results(out / "zh")[0]["runs"][0]["metrics"]
    want = sacrebleu.corpus_bleu(hyps, [zh_refs], tokenize="zh").score
    assert want != pytest.approx(sacrebleu.corpus_bleu(hyps, [zh_refs]).score)  # the tokenizer matters here
    assert met["bleu"] == pytest.approx(want, abs=1e-9)
    # a reference equal to the generated text scores 100 / 1 / 1
    exact = env["data"] / "gen_exact.jsonl"
    exact.write_text("".join(json.dumps({**r, "output": h}) + "\n" for r, h in zip(recs, hyps)))
    run("--model", env["model"], "--task", "generate", "--dataset", exact, "--out", out / "exact",
        "--max_new_tokens", 12)
    met = results(out / "exact")[0]["runs"][0]["metrics"]
    assert met["exact_match"] == 1.0 and met["rouge_l"] == pytest.approx(1.0)
    assert met["bleu"] == pytest.approx(sacrebleu.corpus_bleu(hyps, [hyps]).score, abs=1e-9)


# ------------------------------------------------------------------------------------------------ mcq

def read_mcq(path):
    with open(path, newline="", encoding="utf-8-sig") as f:
        rows = list(csv.reader(f))
    if any(c.strip().lower() == "question" for c in rows[0]):
        h = [c.strip().lower() for c in rows[0]]
        idx = [h.index(k) for k in ("question", "a", "b", "c", "d", "answer")]
        return [[r[i] for i in idx] for r in rows[1:]]
    return [r[:6] for r in rows]


def harness_prompt(subject, shots, q):
    """lm-evaluation-harness mmlu default: description + k shots + the question (doc_to_text, target_delimiter " ",
    fewshot_delimiter "\\n\\n")."""
    def text(r):
        return f"{r[0].strip()}\nA. {r[1]}\nB. {r[2]}\nC. {r[3]}\nD. {r[4]}\nAnswer:"
    desc = f"The following are multiple choice questions (with answers) about {subject.replace('_', ' ')}.\n\n"
    return desc + "".join(text(s) + " " + s[5] + "\n\n" for s in shots) + text(q)


def harness_loglik(model, tok, ctx, cont):
    ctx_enc = tok.encode(ctx)  # the tokenizer's special tokens: Llama 2's BOS
    whole = tok.encode(ctx + cont)
    return cand_loglik(model, ctx_enc, whole[len(ctx_enc):])


def mcq_ref(env, model, files, shots=0, dev=None):
    out = []
    for f in files:
        subject = f.name
        for suf in ("_test.csv", "_val.csv", "_dev.csv", ".csv"):
            if subject.endswith(suf):
                subject = subject[:-len(suf)]
                break
        sh = read_mcq(dev / f"{subject}_dev.csv")[:shots] if shots else []
        for q in read_mcq(f):
            ctx = harness_prompt(subject, sh, q)
            ll = {c: harness_loglik(model, env["tok"], ctx, " " + c) for c in "ABCD"}
            out.append((subject, q[5], ll, max("ABCD", key=lambda c: (ll[c], -ord(c)))))
    return out


def check_mcq(res, preds, ref):
    assert len(preds) == len(ref)
    for pr, (subject, gold, ll, want) in zip(preds, ref):
        assert pr["subject"] == subject and pr["gold"] == gold
        for c in "ABCD":
            assert rel(pr["scores"][c], ll[c]) < 1e-4, (subject, c)
        assert pr["prediction"] == want
    met = res["runs"][0]["metrics"]
    subj = {}
    for subject, gold, _, want in ref:
        subj.setdefault(subject, []).append(gold == want)
    assert met["accuracy"] == pytest.approx(sum(sum(v) for v in subj.values()) / len(ref))
    assert met["macro_accuracy"] == pytest.approx(sum(sum(v) / len(v) for v in subj.values()) / len(subj))
    for s, v in subj.items():
        assert met["per_subject"][s] == {"accuracy": pytest.approx(sum(v) / len(v)), "n": len(v)}


def test_mcq_zero_and_few_shot(env):
    files = sorted((FIX / "mmlu" / "test").glob("*.csv"))
    out = env["dir"] / "mcq0"
    run("--model", env["model"], "--task", "mcq", "--dataset", FIX / "mmlu" / "test", "--out", out)
    check_mcq(*results(out), mcq_ref(env, env["base"], files))
    out = env["dir"] / "mcq2"
    run("--model", env["model"], "--adapter", env["adapter"], "--task", "mcq", "--dataset", FIX / "mmlu" / "test",
        "--dev", FIX / "mmlu" / "dev", "--shots", 2, "--out", out)
    check_mcq(*results(out), mcq_ref(env, env["lora"], files, shots=2, dev=FIX / "mmlu" / "dev"))


@pytest.mark.parametrize("name", ["ceval_computer_network_val.csv", "cmmlu_astronomy.csv"])
def test_mcq_headers(env, name):
    out = env["dir"] / ("mcq_" + name)
    run("--model", env["model"], "--task", "mcq", "--dataset", FIX / name, "--out", out)
    check_mcq(*results(out), mcq_ref(env, env["base"], [FIX / name]))


# ------------------------------------------------------------------------------------------------ errors

def expect_error(env, out, *args, want):
    p = run("--model", env["model"], *args, "--out", out, ok=False)
    assert p.returncode == 1, p.stderr
    for w in want:
        assert w in p.stderr, p.stderr
    assert not (out / "eval_results.json").exists()


def test_errors(env, tmp_path):
    d = env["data"]
    expect_error(env, tmp_path / "e1", "--task", "mcq", "--dataset", FIX / "bad_no_answer.csv",
                 want=["bad_no_answer.csv:1", "\"answer\" column"])
    expect_error(env, tmp_path / "e2", "--task", "mcq", "--dataset", FIX / "bad_short_row.csv",
                 want=["bad_short_row.csv:2", "column 6", "answer"])
    expect_error(env, tmp_path / "e3", "--task", "classify", "--dataset", d / "mail.json", "--labels", "spam,eggs",
                 want=["mail.json", "record 1 (line", "\"ham\" is not in --labels"])
    empty = d / "empty.jsonl"
    empty.write_text("")
    expect_error(env, tmp_path / "e4", "--task", "classify", "--dataset", empty, want=["empty.jsonl", "empty"])
    expect_error(env, tmp_path / "e5", "--task", "ppl", "--dataset", empty, want=["empty.jsonl"])
    notok = tmp_path / "no_tokenizer"
    notok.mkdir()
    for f in ("config.json", "model.safetensors", "generation_config.json"):
        shutil.copy(env["model"] / f, notok / f)
    p = run("--model", notok, "--task", "classify", "--dataset", d / "mail.json", "--out", tmp_path / "e6", ok=False)
    assert p.returncode == 1 and "tokenizer" in p.stderr and str(notok) in p.stderr, p.stderr
    assert not (tmp_path / "e6" / "eval_results.json").exists()
    p = run("--model", env["model"], "--task", "classify", "--dataset", d / "mail.json", "--compare", ok=False)
    assert p.returncode == 2 and "--compare needs --adapter" in p.stderr


def test_classify_cutoff_len(env):
    out = env["dir"] / "cls_cut"
    cutoff = 12
    run("--model", env["model"], "--adapter", env["adapter"], "--task", "classify", "--dataset",
        env["data"] / "mail.json", "--out", out, "--cutoff_len", cutoff)
    res, preds = results(out)
    golds, want, lls = classify_ref(env, env["lora"], ["ham", "spam"], cutoff)
    assert res["n_prompts_truncated"] > 0
    for i, pr in enumerate(preds):
        for lab in ("ham", "spam"):
            assert rel(pr["scores"][lab], lls[i][lab]) < 1e-4, (i, lab)
        assert pr["prediction"] == want[i]
