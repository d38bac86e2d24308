"""The raw image complexity measure (grayscale entropy, Sobel edge density), hand-computed."""

import numpy as np
import pytest

from fastgrpo.data.images import image_complexity


def test_image_complexity_flat_vs_checkerboard():
    flat = np.full((32, 32), 128, dtype=np.uint8)
    ent, edge = image_complexity(flat)
    assert ent == 0.0 and edge == 0.0
    # 4x4-pixel checkerboard: half black, half white; edges along every block border
    checker = ((np.indices((32, 32)) // 4).sum(0) % 2 * 255).astype(np.uint8)
    ent2, edge2 = image_complexity(checker)
    assert ent2 == pytest.approx(1.0)  # two equally frequent levels = 1 bit
    assert edge2 > 0.5


def test_image_complexity_half_image_edge_density():
    img = np.zeros((10, 10), dtype=np.uint8)
    img[:, 5:] = 255
    ent, edge = image_complexity(img)
    assert ent == pytest.approx(1.0)
    # interior is 8x8; the step sits between columns 4 and 5 -> interior columns 4 and 5 see it
    assert edge == pytest.approx(16 / 64)


def test_image_complexity_accepts_pil_rgb_and_float_arrays():
    from PIL import Image

    rgb = Image.new("RGB", (20, 10), (255, 0, 0))
    ent, edge = image_complexity(rgb)
    assert ent == 0.0 and edge == 0.0
    ent_f, _ = image_complexity(np.linspace(0, 1, 256).reshape(16, 16))
    assert ent_f == pytest.approx(8.0)  # 256 distinct gray levels, each once
