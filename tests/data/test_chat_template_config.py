"""data.override_chat_template and data.chat_template_kwargs: one setting, the same prompts in training,
validation and `fastgrpo eval --config` (text and vision), and bad templates stopped early naming the key.

The three paths are observed where prompts leave fastgrpo: every prompt the HF rollout engine is asked to
continue is recorded (the engine itself still runs unchanged), then decoded with the byte-level tokenizer.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fastgrpo.cli.main import app
from fastgrpo.config import DataConfig, load_config
from fastgrpo.data.chat_template import (
    ChatTemplateError,
    configure_chat_template,
    load_chat_template,
    render_chat,
    think_span_in_prompt,
)
from fastgrpo.data.prompts import load_prompts
from fastgrpo.rollout.hf import HFRolloutEngine
from fastgrpo.train.recipe import TrainingError, train
from tests.real_models import QWEN3, write_model_folder
from tests.train.conftest import toy_overrides

OVERRIDE = ("[[OVR {{ tag | default('none') }}]]{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}"
            "<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from fastgrpo.models.tiny import build_tiny_qwen2

    return build_tiny_qwen2(tmp_path_factory.mktemp("tiny") / "model", seed=0, hidden_size=32, num_layers=2,
                            num_heads=2, num_kv_heads=1, intermediate_size=64)


@pytest.fixture(scope="module")
def qwen3_tokenizer(tmp_path_factory: pytest.TempPathFactory):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(write_model_folder(QWEN3, tmp_path_factory.mktemp("q3") / QWEN3))


def test_load_chat_template_inline_file_and_errors(tmp_path: Path) -> None:
    assert load_chat_template(None) is None
    assert load_chat_template(OVERRIDE) == OVERRIDE
    (tmp_path / "t.jinja").write_text(OVERRIDE)
    assert load_chat_template(str(tmp_path / "t.jinja")) == OVERRIDE
    with pytest.raises(ChatTemplateError, match=r"data\.override_chat_template: .*neither a Jinja template"):
        load_chat_template(str(tmp_path / "missing.jinja"))
    (tmp_path / "bad.jinja").write_text("{% for m in messages %}{{ m.content }}\n{% if %}")
    with pytest.raises(ChatTemplateError, match=r"data\.override_chat_template \(.*bad\.jinja\): not a valid Jinja "
                                                r"template: .* at line 2"):
        load_chat_template(str(tmp_path / "bad.jinja"))


def test_a_template_that_fails_to_render_is_named(qwen3_tokenizer) -> None:
    bad = DataConfig(override_chat_template="{{ messages[0]['no_such_key'] + 1 }}")
    with pytest.raises(ChatTemplateError, match=r"data\.override_chat_template: rendering .* failed"):
        configure_chat_template(bad, qwen3_tokenizer.__class__.from_pretrained(qwen3_tokenizer.name_or_path))


def test_qwen3_enable_thinking_false_in_the_training_prompts(qwen3_tokenizer, tmp_path: Path) -> None:
    """The real Qwen3 template: chat_template_kwargs {enable_thinking: false} closes the thinking span."""
    data = tmp_path / "d.jsonl"
    data.write_text(json.dumps({"problem": "1+1?", "answer": "2"}) + "\n")
    tok = qwen3_tokenizer.__class__.from_pretrained(qwen3_tokenizer.name_or_path)
    (plain,) = load_prompts(str(data), DataConfig(), tok)
    cfg = DataConfig(chat_template_kwargs={"enable_thinking": False})
    configure_chat_template(cfg, tok)
    (off,) = load_prompts(str(data), cfg, tok)
    assert plain.prompt_text.endswith("<|im_start|>assistant\n")
    assert off.prompt_text == plain.prompt_text + "<think>\n\n</think>\n\n"
    assert think_span_in_prompt(tok) == "closed"  # the start-up detection sees the configured kwargs too


def test_config_accepts_a_mapping_and_rejects_other_values() -> None:
    cfg = load_config(None, ["data.chat_template_kwargs={enable_thinking: false}"])
    assert cfg.data.chat_template_kwargs == {"enable_thinking": False}
    assert load_config(None, []).data.chat_template_kwargs == {}
    with pytest.raises(ValueError, match=r"data\.chat_template_kwargs: expected a mapping"):
        load_config(None, ["data.chat_template_kwargs=[1, 2]"])


@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch) -> list[list[int]]:
    """Prompt ids of every HF engine call (the engine runs as usual)."""
    seen: list[list[int]] = []
    original = HFRolloutEngine.generate

    def spy(self, prompts, params):  # type: ignore[no-untyped-def]
        seen.extend(list(p.prompt_ids) for p in prompts)
        return original(self, prompts, params)

    monkeypatch.setattr(HFRolloutEngine, "generate", spy)
    return seen


def test_training_validation_and_eval_render_the_configured_template(tiny_model: Path, tmp_path: Path,
                                                                     recorded: list[list[int]]) -> None:
    from transformers import AutoTokenizer

    model = tmp_path / "model"
    shutil.copytree(tiny_model, model)
    tok = AutoTokenizer.from_pretrained(model)
    (tmp_path / "train.jsonl").write_text("".join(json.dumps({"problem": f"TRAINQ {i}", "answer": "1"}) + "\n"
                                                  for i in range(4)))
    (tmp_path / "val.jsonl").write_text(json.dumps({"problem": "VALQ", "answer": "1"}) + "\n")
    (tmp_path / "t.jinja").write_text(OVERRIDE)
    overrides = toy_overrides(model, tmp_path / "train.jsonl", tmp_path / "runs", **{
        "data.override_chat_template": str(tmp_path / "t.jinja"), "data.chat_template_kwargs": "{tag: KWTAG}",
        "data.val_files": str(tmp_path / "val.jsonl"), "data.max_prompt_length": 128, "trainer.max_steps": 1,
        "trainer.val_before_train": True, "trainer.log_samples": 1, "eval.n": 1, "eval.max_new_tokens": 4})
    run = train(load_config(None, overrides))
    texts = [tok.decode(ids) for ids in recorded]
    assert any("VALQ" in t for t in texts) and any("TRAINQ" in t for t in texts)  # validation and training
    assert all(t.startswith("[[OVR KWTAG]]<|im_start|>") for t in texts), texts
    sample = json.loads((run / "samples.jsonl").read_text().splitlines()[0])
    assert sample["prompt"].startswith("[[OVR KWTAG]]")
    # the run's hf_base (what `fastgrpo export` ships) carries the template training used
    assert AutoTokenizer.from_pretrained(run / "hf_base").chat_template == OVERRIDE

    # fastgrpo eval --config: the same YAML, the same prompts
    recorded.clear()
    yaml_path = tmp_path / "cfg.yaml"
    yaml_path.write_text(f"model:\n  path: {model}\ndata:\n  override_chat_template: {tmp_path / 't.jinja'}\n"
                         "  chat_template_kwargs: {tag: KWTAG}\neval:\n  n: 1\n  max_new_tokens: 4\n")
    res = CliRunner().invoke(app, ["eval", "--config", str(yaml_path), "--bench", "custom", "--data",
                                   str(tmp_path / "val.jsonl"), "--out", str(tmp_path / "ev"), "--workers", "0",
                                   "--no-progress"])
    assert res.exit_code == 0, res.output
    (text,) = [tok.decode(ids) for ids in recorded]
    assert text.startswith("[[OVR KWTAG]]<|im_start|>") and "VALQ" in text
    # ... and without the keys, the model's own template
    recorded.clear()
    yaml_path.write_text(f"model:\n  path: {model}\neval:\n  n: 1\n  max_new_tokens: 4\n")
    res = CliRunner().invoke(app, ["eval", "--config", str(yaml_path), "--bench", "custom", "--data",
                                   str(tmp_path / "val.jsonl"), "--out", str(tmp_path / "ev2"), "--workers", "0",
                                   "--no-progress"])
    assert res.exit_code == 0, res.output
    assert not tok.decode(recorded[0]).startswith("[[OVR")


def test_bad_template_fails_before_training_and_eval(tiny_model: Path, tmp_path: Path) -> None:
    data = tmp_path / "train.jsonl"
    data.write_text(json.dumps({"problem": "1", "answer": "1"}) + "\n")
    bad = "{% for m in messages %}{{ m.content }"
    with pytest.raises(TrainingError, match=r"data\.override_chat_template: not a valid Jinja template"):
        train(load_config(None, toy_overrides(tiny_model, data, tmp_path / "runs",
                                              **{"data.override_chat_template": bad})))
    assert not (tmp_path / "runs").exists()  # nothing written
    yaml_path = tmp_path / "cfg.yaml"
    yaml_path.write_text(f"model:\n  path: {tiny_model}\ndata:\n  override_chat_template: '{bad}'\n")
    res = CliRunner().invoke(app, ["eval", "--config", str(yaml_path), "--bench", "custom", "--data", str(data),
                                   "--out", str(tmp_path / "ev")])
    assert res.exit_code == 2 and "data.override_chat_template: not a valid Jinja template" in res.output


def test_vision_processor_prompts_use_the_configured_template(tmp_path: Path) -> None:
    """A Qwen2-VL processor: training's vision prompts and eval's vision prompt builder both render it."""
    from PIL import Image

    from fastgrpo.data.vision import VisionProcessor, load_vision_prompts
    from fastgrpo.eval.prompts import VisionProcessorBuilder
    from fastgrpo.models.tiny_vl import VL_CHAT_TEMPLATE, build_tiny_qwen2_vl

    folder = build_tiny_qwen2_vl(tmp_path / "vl", seed=0)
    proc = VisionProcessor.from_pretrained(folder, min_pixels=28 * 28, max_pixels=56 * 56)
    Image.new("RGB", (56, 56), (9, 9, 9)).save(tmp_path / "a.png")
    data = tmp_path / "d.jsonl"
    data.write_text(json.dumps({"problem": "What?", "answer": "x", "images": ["a.png"]}) + "\n")
    cfg = DataConfig(train_files=str(data), min_pixels=28 * 28, max_pixels=56 * 56,
                     override_chat_template="[[VL {{ tag }}]]" + VL_CHAT_TEMPLATE, chat_template_kwargs={"tag": "K"})
    configure_chat_template(cfg, proc)
    (ex,) = load_vision_prompts(str(data), cfg, proc, cache_dir=tmp_path / "cache")
    assert ex.prompt_text.startswith("[[VL K]]") and "<|image_pad|>" in ex.prompt_text
    built = VisionProcessorBuilder(proc)([{"role": "user", "content": "What?"}], [Image.open(tmp_path / "a.png")])
    assert proc.tokenizer.decode(built.prompt_ids).startswith("[[VL K]]")
    assert render_chat(proc, [{"role": "user", "content": "hi"}]).startswith("[[VL K]]")
