"""Turn a tiny Qwen2-VL folder into one whose image processor is code shipped in the folder.

Why: hub models with `auto_map` load only with trust_remote_code=True, so this checks
that the flag reaches every place that builds the processor, with real transformers loading.
"""

from __future__ import annotations

import json
from pathlib import Path

CUSTOM_CLASS = "CustomImageProcessor"


def needs_remote_code(model: Path) -> Path:
    """Point preprocessor_config.json's auto_map at a subclass defined in the folder; returns `model`."""
    (model / "custom_image_processing.py").write_text(
        "from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil\n\n\n"
        f"class {CUSTOM_CLASS}(Qwen2VLImageProcessorPil):\n    pass\n"
    )
    config = json.loads((model / "preprocessor_config.json").read_text())
    config["image_processor_type"] = CUSTOM_CLASS
    config["auto_map"] = {"AutoImageProcessor": f"custom_image_processing.{CUSTOM_CLASS}"}
    (model / "preprocessor_config.json").write_text(json.dumps(config))
    return model
