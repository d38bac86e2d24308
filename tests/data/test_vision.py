"""The vision data path end to end on CPU with the tiny Qwen2-VL: images from paths, bytes and
`datasets.Image` columns, resizing, chat rendering with image parts, the complexity cache, HF
generation with processor inputs, log-probs that match the sampler's, and a gradient step."""

from __future__ import annotations

import io
import json
from pathlib import Path

import datasets
import numpy as np
import pytest
import torch
from PIL import Image
from transformers import AutoModelForImageTextToText

from fastgrpo.config import DataConfig
from fastgrpo.data import complexity
from fastgrpo.data.complexity import compute_image_complexity, vision_complexity
from fastgrpo.data.images import load_image, resize_image, smart_resize, stable_size
from fastgrpo.data.io import DataSourceError
from fastgrpo.data.processor import VisionProcessor, build_messages, expand_image_tokens
from fastgrpo.data.vision import load_vision_prompts
from fastgrpo.models.tiny_vl import build_tiny_qwen2_vl
from fastgrpo.rollout import PromptInput, SamplingParams, make_engine
from fastgrpo.rollout.vision import VisionHFRolloutEngine, mm_token_type_ids
from fastgrpo.train.vision_batch import pack_vision, vision_response_logprobs

MIN_PIXELS, MAX_PIXELS = 28 * 28 * 4, 28 * 28 * 16


def noise_image(h: int, w: int, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray((rng.random((h, w, 3)) * 255).astype("uint8"))


def png_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_qwen2_vl(tmp_path_factory.mktemp("vl") / "model", seed=0)


@pytest.fixture(scope="module")
def proc(model_dir: Path) -> VisionProcessor:
    return VisionProcessor.from_pretrained(model_dir, min_pixels=MIN_PIXELS, max_pixels=MAX_PIXELS)


@pytest.fixture()
def data_file(tmp_path: Path) -> Path:
    """A jsonl with image paths relative to it: one image, two images with markers, none."""
    (tmp_path / "imgs").mkdir()
    for i, (h, w) in enumerate([(40, 70), (90, 60), (56, 56)]):
        noise_image(h, w, seed=i).save(tmp_path / "imgs" / f"{i}.png")
    Image.new("RGB", (64, 48), (200, 200, 200)).save(tmp_path / "imgs" / "flat.png")
    rows = [
        {"problem": "What is 2+3?", "answer": "5", "images": ["imgs/0.png"]},
        {"problem": "Is <image> larger than <image>?", "answer": "no", "images": ["imgs/1.png", "imgs/2.png"]},
        {"problem": "<image> What color?", "answer": "gray", "images": ["imgs/flat.png"]},
        {"problem": "And 1+1?", "answer": "2", "images": []},
    ]
    path = tmp_path / "train.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def cfg_for(path: Path, **kw: object) -> DataConfig:
    return DataConfig(train_files=str(path), min_pixels=MIN_PIXELS, max_pixels=MAX_PIXELS, **kw)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------- images


def test_load_image_accepts_every_cell_form(tmp_path: Path) -> None:
    img = noise_image(20, 30)
    img.save(tmp_path / "a.png")
    raw = png_bytes(img)
    forms = [img, "a.png", str(tmp_path / "a.png"), f"file://{tmp_path / 'a.png'}", raw,
             {"bytes": raw, "path": None}, {"bytes": None, "path": "a.png"}, np.asarray(img), img.convert("L")]
    for value in forms:
        out = load_image(value, base_dir=tmp_path)
        assert out.mode == "RGB" and out.size == (30, 20)
    assert np.array_equal(np.asarray(load_image(raw)), np.asarray(img))
    with pytest.raises(DataSourceError, match=r"image file not found: missing\.png \(relative to"):
        load_image("missing.png", base_dir=tmp_path)
    with pytest.raises(DataSourceError):
        load_image({"path": None, "bytes": None})


@pytest.mark.parametrize("h,w", [(40, 70), (1000, 300), (10, 10), (28, 2000), (500, 500), (3000, 20)])
def test_stable_size_bounds_and_aspect(h: int, w: int) -> None:
    rh, rw = stable_size(h, w, 28, MIN_PIXELS, MAX_PIXELS)
    assert rh % 28 == 0 and rw % 28 == 0
    assert MIN_PIXELS <= rh * rw <= MAX_PIXELS
    if max(h, w) / min(h, w) < 4:
        assert abs(np.log((rh / rw) / (h / w))) < 0.5
    assert smart_resize(rh, rw, 28, MIN_PIXELS, MAX_PIXELS) == (rh, rw)  # idempotent: the processor keeps it
    with pytest.raises(ValueError, match="aspect ratio"):
        smart_resize(10, 3000)


def test_resize_image_gives_multiples_of_the_factor() -> None:
    out = resize_image(noise_image(333, 517), MIN_PIXELS, MAX_PIXELS, 28)
    assert out.width % 28 == 0 and out.height % 28 == 0 and out.width > out.height


# --------------------------------------------------------------------------------- prompts


def test_build_messages_places_images() -> None:
    assert build_messages("Q?", 2)[0]["content"] == [{"type": "image"}, {"type": "image"}, {"type": "text", "text": "Q?"}]
    assert build_messages("A <image> B <image>", 2)[0]["content"] == [
        {"type": "text", "text": "A "}, {"type": "image"}, {"type": "text", "text": " B "}, {"type": "image"}]
    assert build_messages("no images", 0)[0]["content"] == [{"type": "text", "text": "no images"}]
    with pytest.raises(DataSourceError, match="2 <image> marker"):
        build_messages("<image> and <image>", 1)


def test_expand_image_tokens() -> None:
    assert expand_image_tokens([1, 9, 2, 9, 3], 9, [2, 3]) == [1, 9, 9, 2, 9, 9, 9, 3]
    with pytest.raises(ValueError):
        expand_image_tokens([1, 9, 2], 9, [2, 3])
    with pytest.raises(ValueError):
        expand_image_tokens([1, 9, 9], 9, [2])


def test_load_vision_prompts_from_relative_paths(data_file: Path, proc: VisionProcessor, tmp_path: Path) -> None:
    examples = load_vision_prompts(str(data_file), cfg_for(data_file), proc, cache_dir=tmp_path / "cache")
    assert [len(e.images) for e in examples] == [1, 2, 1, 0]
    assert all(Path(p).is_absolute() for e in examples for p in e.images)
    two = examples[1]
    assert two.prompt_text.count("<|vision_start|><|image_pad|><|vision_end|>") == 2
    assert "Is <|vision_start|>" in two.prompt_text and "<image>" not in two.prompt_text
    for e in examples:
        pi = proc.prompt_input(e)
        assert pi.prompt_ids == e.prompt_ids and pi.uid == e.uid
        assert [im.size for im in pi.images] == e.image_sizes
        n_img = e.prompt_ids.count(proc.image_token_id)
        if e.images:
            assert pi.processor_inputs is not None
            assert n_img == int(pi.processor_inputs["image_grid_thw"].prod(-1).sum()) // 4
            assert e.raw_prompt_ids.count(proc.image_token_id) == len(e.images)
        else:
            assert n_img == 0 and pi.processor_inputs is None
        assert all(0.0 <= e.complexity <= 1.0 for e in examples)
    assert proc.prompt_input(two, with_processor_inputs=False).processor_inputs is None


def test_image_tokens_count_toward_the_prompt_limit(data_file: Path, proc: VisionProcessor, tmp_path: Path) -> None:
    lengths = [len(e.prompt_ids) for e in load_vision_prompts(str(data_file), cfg_for(data_file), proc, tmp_path)]
    limit = sorted(lengths)[-2]
    kept = load_vision_prompts(str(data_file), cfg_for(data_file, max_prompt_length=limit), proc, tmp_path)
    assert len(kept) == len(lengths) - 1 and max(len(e.prompt_ids) for e in kept) <= limit


def test_parquet_image_column_with_bytes(tmp_path: Path, proc: VisionProcessor) -> None:
    images = [[{"bytes": png_bytes(noise_image(40 + 10 * i, 60, seed=i)), "path": None}] for i in range(3)]
    features = datasets.Features({"problem": datasets.Value("string"), "answer": datasets.Value("string"),
                                  "images": datasets.List(datasets.Image())})
    ds = datasets.Dataset.from_dict({"problem": ["a", "b", "c"], "answer": ["1", "2", "3"], "images": images},
                                    features=features)
    ds.to_parquet(str(tmp_path / "train.parquet"))
    examples = load_vision_prompts(str(tmp_path / "train.parquet"), cfg_for(tmp_path / "train.parquet"), proc,
                                   cache_dir=tmp_path / "cache")
    assert all(isinstance(e.images[0], bytes) for e in examples)  # kept as bytes, decoded only when sampled
    assert proc.prompt_input(examples[2]).processor_inputs is not None


def test_bad_marker_count_is_a_clear_error(tmp_path: Path, proc: VisionProcessor) -> None:
    noise_image(30, 30).save(tmp_path / "x.png")
    path = tmp_path / "d.jsonl"
    path.write_text(json.dumps({"problem": "<image><image>", "answer": "1", "images": ["x.png"]}) + "\n")
    with pytest.raises(DataSourceError, match="marker"):
        load_vision_prompts(str(path), cfg_for(path), proc, cache_dir=tmp_path)


# ------------------------------------------------------------------------------ complexity


def test_complexity_is_cached_by_dataset_fingerprint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for i in range(3):
        noise_image(30, 40, seed=i).save(tmp_path / f"{i}.png")
    rows = [[str(tmp_path / "0.png")], [str(tmp_path / "1.png"), png_bytes(noise_image(20, 20))], []]
    monkeypatch.setenv("FASTGRPO_CACHE_DIR", str(tmp_path / "home_cache"))
    first = compute_image_complexity(rows)
    assert not first.from_cache and first.path.parent == tmp_path / "home_cache" / "complexity"
    assert first.path.exists() and [len(r) for r in first.values] == [1, 2, 0]

    def boom(*a: object, **k: object) -> tuple[float, float]:
        raise AssertionError("recomputed instead of reading the cache")

    monkeypatch.setattr(complexity, "image_complexity", boom)
    second = compute_image_complexity(rows)
    assert second.from_cache and second.values == first.values and second.fingerprint == first.fingerprint
    # another dataset (an image changed on disk) -> another fingerprint -> computed again
    noise_image(30, 41, seed=9).save(tmp_path / "0.png")
    assert complexity.dataset_fingerprint(rows) != first.fingerprint
    with pytest.raises(AssertionError, match="recomputed"):
        compute_image_complexity(rows)
    # an explicit cache_dir wins over the environment
    monkeypatch.undo()
    other = compute_image_complexity(rows, cache_dir=tmp_path / "explicit")
    assert other.path.parent == tmp_path / "explicit"


def test_load_vision_prompts_reads_the_cache_the_second_time(data_file: Path, proc: VisionProcessor,
                                                               tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = tmp_path / "cache"
    first = load_vision_prompts(str(data_file), cfg_for(data_file), proc, cache_dir=cache)
    assert len(list(cache.glob("*.json"))) == 1
    monkeypatch.setattr(complexity, "image_complexity", lambda *a, **k: (_ for _ in ()).throw(AssertionError))
    second = load_vision_prompts(str(data_file), cfg_for(data_file), proc, cache_dir=cache)
    assert [e.complexity for e in second] == [e.complexity for e in first]


def test_vision_complexity_averages_text_and_image() -> None:
    text = [10.0, 20.0, 30.0, 20.0]
    image = [[(2.0, 0.1)], [(4.0, 0.3)], [(6.0, 0.2), (2.0, 0.4)], []]
    out = vision_complexity(text, image)
    # text: 0, .5, 1, .5; image per row: mean of entropy/edge norms over the dataset's min/max
    ent = [(2 - 2) / 2, (4 - 2) / 2, (4 - 2) / 2]  # row 3 averages its two images' raw values: 4.0, 0.3
    edge = [0.0, 1.0, 1.0]
    img = [(e + d) / 2 for e, d in zip(ent, edge, strict=True)]
    expected = [(0 + img[0]) / 2, (0.5 + img[1]) / 2, (1 + img[2]) / 2, 0.5]
    assert out == pytest.approx(expected)
    assert vision_complexity([1.0, 3.0], [[], []]) == pytest.approx([0.0, 1.0])


# ---------------------------------------------------------------- generation and training


def test_hf_engine_logprobs_and_a_gradient_step(data_file: Path, model_dir: Path, proc: VisionProcessor,
                                                tmp_path: Path) -> None:
    """Sample with the HF engine from image prompts (mixed with a text prompt), score the responses
    with `pack_vision` + `vision_response_logprobs`: same log-probs as the sampler (so the 3-D mrope
    positions agree between left-padded generation and right-padded training), then a step."""
    torch.manual_seed(0)
    model = AutoModelForImageTextToText.from_pretrained(model_dir)
    examples = load_vision_prompts(str(data_file), cfg_for(data_file), proc, cache_dir=tmp_path / "cache")
    inputs = [proc.prompt_input(e) for e in examples]
    inputs = inputs[-1:] + inputs[:-1]  # text-only first: chunks of 5 rows mix it with image prompts
    assert inputs[0].processor_inputs is None and inputs[1].processor_inputs is not None
    engine = make_engine("hf", model, None, micro_batch_size=5, processor=proc)
    assert isinstance(engine, VisionHFRolloutEngine)
    engine.return_logprobs = True
    out = engine.generate(inputs, SamplingParams(n=2, temperature=1.0, max_new_tokens=6, seed=5))
    assert len(out.response_ids) == 2 * len(inputs) and out.logprobs is not None
    assert all(r and not set(r) & set(proc.vision_token_ids) for r in out.response_ids)
    rows = [inputs[out.prompt_index(i)] for i in range(len(out.response_ids))]
    packed = pack_vision([r.prompt_ids for r in rows], out.response_ids, [r.processor_inputs for r in rows],
                         proc.tokenizer.pad_token_id, torch.device("cpu"), proc.image_token_id, proc.video_token_id,
                         proc.vision_token_ids)
    assert packed.stray_vision_tokens == 0
    assert packed.model_inputs["pixel_values"].shape[0] == sum(
        int(r.processor_inputs["image_grid_thw"].prod(-1).sum()) for r in rows if r.processor_inputs)
    model.train()
    logp = vision_response_logprobs(model, packed)
    assert torch.isfinite(logp).all() and (logp[packed.response_mask] < 0).all()
    sampler = torch.zeros_like(logp)
    for i, lps in enumerate(out.logprobs):
        sampler[i, : len(lps)] = torch.tensor(lps)
    torch.testing.assert_close(logp.detach(), sampler, atol=5e-5, rtol=0)  # 1-D positions: ~1e-3 off

    # the same samples again: responses depend only on (seed, uid, sample), not on the batch
    again = engine.generate(inputs[::-1], SamplingParams(n=2, temperature=1.0, max_new_tokens=6, seed=5))
    assert again.response_ids == [r for k in reversed(range(len(inputs))) for r in out.response_ids[2 * k: 2 * k + 2]]

    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    adv = torch.linspace(-1, 1, logp.shape[0])[:, None]
    loss = -(adv * logp).sum() / packed.response_mask.sum()
    loss.backward()
    torch.optim.SGD(model.parameters(), lr=0.1).step()
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert any(n.startswith("model.visual.") for n in changed), "no gradient reached the vision tower"
    assert any(n.startswith("model.language_model.") for n in changed)
    engine.sync_weights(model)
    assert engine.model.module is model


def test_pack_vision_checks_and_masks(proc: VisionProcessor) -> None:
    img = proc.image_token_id
    pi = {"pixel_values": torch.zeros(16, 1176), "image_grid_thw": torch.tensor([[1, 4, 4]])}
    packed = pack_vision([[1, img, img, img, img, 2], [3, 4]], [[5, img, 6], [7]], [pi, None], 0,
                         torch.device("cpu"), img, proc.video_token_id, proc.vision_token_ids)
    assert packed.stray_vision_tokens == 1
    assert packed.input_ids[0].tolist() == [1, img, img, img, img, 2, 5, 0, 6]  # fed as padding...
    assert packed.response_ids[0].tolist() == [5, img, 6]  # ...but still scored
    assert packed.model_inputs["mm_token_type_ids"][0].tolist() == [0, 1, 1, 1, 1, 0, 0, 0, 0]
    assert packed.model_inputs["mm_token_type_ids"][1].sum() == 0
    with pytest.raises(ValueError, match="image tokens"):
        pack_vision([[1, img, img, 2]], [[3]], [pi], 0, torch.device("cpu"), img)
    with pytest.raises(ValueError, match="no pixel_values"):
        pack_vision([[1, img, 2]], [[3]], [None], 0, torch.device("cpu"), img)
    text_only = pack_vision([[1, 2]], [[3, 4]], [None], 0, torch.device("cpu"), img)
    assert text_only.model_inputs == {}


def test_mm_token_type_ids() -> None:
    ids = torch.tensor([[0, 0, 5, 9, 9, 6, 8, 8, 1]])
    assert mm_token_type_ids(ids, 9, 8).tolist() == [[0, 0, 0, 1, 1, 0, 2, 2, 0]]


def test_text_only_batch_through_the_vision_engine(model_dir: Path, proc: VisionProcessor) -> None:
    model = AutoModelForImageTextToText.from_pretrained(model_dir)
    engine = make_engine("hf", model, None, processor=proc)
    ids = proc.tokenizer(proc.render(build_messages("hi", 0)), add_special_tokens=False)["input_ids"]
    out = engine.generate([PromptInput(ids, uid=0)], SamplingParams(n=2, max_new_tokens=4, seed=1))
    assert len(out.response_ids) == 2 and all(out.response_ids)
