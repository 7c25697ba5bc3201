"""``sslkit export``: a finished run's classifier as one ONNX graph, uint8 images in, class probabilities out.

The graph takes ``images``, uint8 ``(N, C, H, W)`` at the run's size (the batch is dynamic), and applies the run's
normalization, its encoder and its classifier head; ``probabilities`` is ``(N, classes)``. The class names, the
image size, the channels and the colour mode are in the model's metadata, so a deployment needs nothing else
(``onnxruntime.InferenceSession(path).get_modelmeta().custom_metadata_map``). onnx and onnxruntime are an
optional extra: ``pip install "sslkit[export]"``."""

from __future__ import annotations

import importlib.util
import json
import warnings
from pathlib import Path

import torch
from torch import Tensor, nn

from sslkit.classifier import Classifier
from sslkit.errors import UsageError

FORMATS = ("onnx",)
OPSET = 18


class Probabilities(nn.Module):
    """What the exported graph computes: uint8 images -> softmax of the classifier's logits."""

    def __init__(self, classifier: Classifier) -> None:
        super().__init__()
        self.classifier = classifier

    def forward(self, images: Tensor) -> Tensor:
        return self.classifier(images).float().softmax(1)


def require_onnx() -> None:
    missing = [name for name in ("onnx", "onnxscript") if importlib.util.find_spec(name) is None]
    if missing:
        raise UsageError(
            f"exporting to ONNX needs {' and '.join(missing)}, which are not installed: "
            'pip install "sslkit[export]" (onnx, onnxscript and onnxruntime)'
        )


def export_onnx(classifier: Classifier, out: Path) -> Path:
    """Write ``classifier`` as an ONNX model to ``out`` (atomically) and return the path."""
    require_onnx()
    import onnx

    info = classifier.info
    model = Probabilities(classifier.cpu().eval())
    example = torch.zeros(2, info.in_chans, info.image_size, info.image_size, dtype=torch.uint8)
    tmp = out.with_name(f".{out.name}.tmp")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            model,
            (example,),
            input_names=["images"],
            output_names=["probabilities"],
            dynamic_shapes={"images": {0: torch.export.Dim("batch")}},
            opset_version=OPSET,
            dynamo=True,
            external_data=False,
            verbose=False,
        )
    proto = program.model_proto
    metadata = {
        "classes": json.dumps(info.classes),
        "image_size": str(info.image_size),
        "in_chans": str(info.in_chans),
        "mode": info.mode,
        "input": f"uint8 (N, {info.in_chans}, {info.image_size}, {info.image_size})",
        "producer": "sslkit",
    }
    for key, value in metadata.items():
        proto.metadata_props.append(onnx.StringStringEntryProto(key=key, value=value))
    out.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(proto, str(tmp))
    tmp.replace(out)
    return out
