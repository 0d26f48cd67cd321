"""Model inputs for many images: the per-image work in ``DataLoader`` workers, the rest in one step per batch.

``TokenProbabilityEstimator.encode`` (the processor call) turns a batch of PIL images and prompts into model inputs in
the main process. :class:`BatchEncoder` gives the same inputs with the work split in two:

- **split** (image processors of transformers' PIL backend that resize and crop every image to one shape, then
  rescale and normalise: CLIP's, SigLIP's, LLaVA-1.5's): a worker decodes, resizes and crops to ``uint8``; the main
  process turns the whole batch into floats in one indexing step through a 256-entry table per channel, made by the
  processor's own ``rescale`` and ``normalize`` (elementwise operations, so every value is bit for bit the
  processor's), on the model's device (4x fewer bytes to move than floats). The prompt of a question is tokenised
  once: its image tokens do not depend on the image when every image comes out the same shape.
- **general** (any other processor: image splitting, a token count that depends on the image, the torchvision
  backend): a worker decodes the image; the processor encodes each batch in the main process, as the estimator does.

The split way is taken only after it reproduced the processor's output exactly (pixel values and token ids) on probe
images of three shapes; otherwise the general way is used and the log says why.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

logger = logging.getLogger(__name__)
SPLIT, GENERAL = "split", "general"
PROBE_SIZES = ((61, 97), (128, 128), (300, 200))  # (width, height): tall, square, wide
SPLIT_KEYS = {"input_ids", "attention_mask", "pixel_values"}


@dataclass
class SplitPreparer:
    """A worker's part of the split way: RGB PIL image -> resized, cropped ``uint8`` array (channels first), exactly as
    the PIL backend's ``_preprocess`` does before it rescales."""

    image_processor: Any
    kwargs: dict

    def __call__(self, image) -> np.ndarray:
        ip, kw = self.image_processor, self.kwargs
        if kw.get("do_resize") and getattr(image, "mode", None) == "RGB":
            # PIL resizes the RGB image itself, to the size the backend's resize computes: the same pixels without
            # the backend's two conversions of the full-size image between PIL and numpy
            from transformers.image_transforms import resize

            array = resize(
                image,
                self.output_size(image.height, image.width),
                resample=kw["resample"],
                data_format="channels_first",
                input_data_format="channels_last",
            )
        else:
            array = ip.process_image(
                image, do_convert_rgb=kw.get("do_convert_rgb"), input_data_format=kw.get("input_data_format")
            )
            if kw.get("do_resize"):
                array = ip.resize(image=array, size=kw["size"], resample=kw["resample"])
        if kw.get("do_center_crop"):
            array = ip.center_crop(array, kw["crop_size"])
        return np.ascontiguousarray(array)

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        """(height, width) after the backend's resize, by the rules of ``PilBackend.resize``."""
        from transformers import image_utils as iu
        from transformers.image_transforms import get_resize_output_image_size, get_size_with_aspect_ratio

        size = self.kwargs["size"]
        if size.shortest_edge and size.longest_edge:
            return get_size_with_aspect_ratio((height, width), size.shortest_edge, size.longest_edge)
        if size.shortest_edge:
            shape_only = np.broadcast_to(np.uint8(0), (3, height, width))
            return get_resize_output_image_size(
                shape_only, size=size.shortest_edge, default_to_square=False, input_data_format="channels_first"
            )
        if size.max_height and size.max_width:
            return iu.get_image_size_for_max_height_width((height, width), size.max_height, size.max_width)
        return size.height, size.width


def decoded(image):
    """A worker's part of the general way: the decoded image itself."""
    return image


@dataclass
class Collate:
    """A batch from ``(position, prepared, error)`` items, made in the worker: positions and prepared data of the
    readable images (arrays stacked into one numpy array, normalised through ``table`` when given), and the errors
    of the others by position. Numpy arrays travel through the loader's pipe: for batches this small that is
    cheaper than torch's shared-memory tensors (a file descriptor, a mapping and an unmapping per batch)."""

    table: np.ndarray | None = None  # (channels, 256) float32: normalise here (CPU models), else on the device

    def __call__(self, items: list[tuple[int, Any, str | None]]) -> dict:
        ok = [(position, data) for position, data, error in items if error is None]
        data = [d for _, d in ok]
        if data and isinstance(data[0], np.ndarray):
            data = np.stack(data)
            if self.table is not None:
                data = _normalise(self.table, data)
        return {
            "order": [position for position, _, _ in items],
            "positions": [position for position, _ in ok],
            "data": data,
            "errors": {position: error for position, _, error in items if error is not None},
        }


collate = Collate()


def _normalise(table, data):
    """``table[c, value]`` for every uint8 value of ``data`` (batch, channels, height, width), numpy or torch."""
    if isinstance(data, np.ndarray):
        offsets = (np.arange(data.shape[1]) * 256).reshape(1, -1, 1, 1)
        return table.take(data.astype(np.intp) + offsets)
    offsets = (torch.arange(data.shape[1], device=data.device) * 256).view(1, -1, 1, 1)
    return table.take(data.long() + offsets)


class BatchEncoder:
    """Worker-side preparation (:attr:`prepare`) and main-side model inputs (:meth:`inputs`) equal to the estimator's
    ``encode`` for the same images and prompt."""

    def __init__(self, estimator, split: bool = True):
        self.estimator, self.processor = estimator, estimator.processor
        self._prompt_ids: dict[str, torch.Tensor] = {}
        self._table: torch.Tensor | None = None
        self.mode, self.prepare = GENERAL, decoded
        if split:
            preparer, why = self._split_preparer()
            if preparer is None:
                logger.info("preprocessing in the general way: %s", why)
            else:
                self.mode, self.prepare = SPLIT, preparer
        logger.info(
            "preprocessing: %s",
            "loader workers resize and normalise the images (checked equal to the processor's own)"
            if self.mode == SPLIT
            else "loader workers decode the images; the processor prepares them in the main process",
        )

    @classmethod
    def cached(cls, estimator, split: bool = True) -> BatchEncoder:
        """One encoder per estimator and way (its check runs once)."""
        encoders = estimator.__dict__.setdefault("_batch_encoders", {})
        if split not in encoders:
            encoders[split] = cls(estimator, split)
        return encoders[split]

    @property
    def collate(self) -> Collate:
        """The loader's collate function: on a CPU model the workers normalise too (the main process only runs the
        model); on an accelerator the ``uint8`` batch goes to the device and is normalised there."""
        if self.mode == SPLIT and self.estimator.model.device.type == "cpu":
            return Collate(self._lookup_table().numpy())
        return Collate()

    def pixels(self, data):
        """The batch's image part, once for all its questions: normalised pixel values on the model's device (split),
        or the decoded images (general)."""
        if self.mode == GENERAL:
            return data
        device = self.estimator.model.device
        data = torch.from_numpy(data) if isinstance(data, np.ndarray) else data
        if data.dtype != torch.uint8:  # normalised by the workers
            return data.to(device)
        if self._table is None or self._table.device != device:
            self._table = self._lookup_table().to(device)
        return _normalise(self._table, data.to(device, non_blocking=True))

    def inputs(self, pixels, prompt: str) -> dict:
        """Model inputs for the batch whose :meth:`pixels` these are, all asked ``prompt``."""
        if self.mode == GENERAL:
            return self.estimator.encode(list(pixels), [prompt] * len(pixels))
        ids = self.prompt_ids(prompt)
        n = pixels.shape[0]
        return {
            "input_ids": ids.repeat(n, 1),
            "attention_mask": torch.ones(n, ids.numel(), dtype=torch.long),
            "pixel_values": pixels,
        }

    def prompt_ids(self, prompt: str, probe=None) -> torch.Tensor:
        """``prompt`` tokenised with its image tokens expanded, once (split way only)."""
        if prompt not in self._prompt_ids:
            probe = probe if probe is not None else _probe_image(*PROBE_SIZES[1], seed=0)
            self._prompt_ids[prompt] = self.estimator.encode([probe], [prompt])["input_ids"][0]
        return self._prompt_ids[prompt]

    def _lookup_table(self) -> torch.Tensor:
        """(channels, 256) float32: what the processor's rescale and normalize make of each uint8 value."""
        ip, kw = self.processor.image_processor, self._kwargs
        values = np.tile(np.arange(256, dtype=np.uint8), (3, 1, 1))  # RGB, one row of 256 values per channel
        if kw.get("do_rescale"):
            values = ip.rescale(values, kw["rescale_factor"])
        if kw.get("do_normalize"):
            values = ip.normalize(values, kw["image_mean"], kw["image_std"])
        return torch.from_numpy(np.ascontiguousarray(values[:, 0, :]))

    def _split_preparer(self) -> tuple[SplitPreparer | None, str]:
        try:
            from transformers.image_processing_backends import PilBackend
        except ImportError:
            return None, "this transformers has no PIL image backend"
        ip = getattr(self.processor, "image_processor", None)
        if not isinstance(ip, PilBackend):
            return None, f"{type(ip).__name__} is not a PIL-backend image processor"
        if type(ip)._preprocess is not PilBackend._preprocess:
            return None, f"{type(ip).__name__} preprocesses in its own way"
        kwargs = ip._merge_and_standardize_kwargs()
        if kwargs.get("do_pad"):
            return None, "the image processor pads"
        self._kwargs = kwargs
        preparer = SplitPreparer(ip, kwargs)
        why = self._verify(preparer)
        return (preparer, "") if why is None else (None, why)

    def _verify(self, preparer: SplitPreparer) -> str | None:
        """None when the split way gives exactly the processor's inputs on the probe images, else what differs."""
        from modeling.scoring.probability import prompt_text

        prompt = prompt_text(self.processor, "Is this image real or fake?")
        probes = [_probe_image(w, h, seed) for seed, (w, h) in enumerate(PROBE_SIZES)]
        try:
            expected = self.estimator.encode(probes, [prompt] * len(probes))
            arrays = [preparer(p) for p in probes]
        except Exception as err:  # a processor this module does not understand
            return f"probe encoding failed ({type(err).__name__}: {err})"
        if set(expected) - SPLIT_KEYS:
            return f"the processor also returns {sorted(set(expected) - SPLIT_KEYS)}"
        if len({a.shape for a in arrays}) != 1 or arrays[0].dtype != np.uint8:
            return "resized images differ in shape or are not uint8"
        stacked = np.stack(arrays)
        for pixels in (
            _normalise(self._lookup_table(), torch.from_numpy(stacked)),
            _normalise(self._lookup_table().numpy(), stacked),
        ):
            pixels = torch.as_tensor(pixels)
            if pixels.shape != expected["pixel_values"].shape or not torch.equal(pixels, expected["pixel_values"]):
                return "pixel values differ from the processor's"
        ids = [self.estimator.encode([p], [prompt])["input_ids"][0] for p in probes]
        if any(not torch.equal(i, ids[0]) for i in ids) or not torch.equal(expected["input_ids"][0], ids[0]):
            return "the prompt's tokens depend on the image"
        if not bool(expected["attention_mask"].all()):
            return "the processor pads prompts of one question"
        return None


def _probe_image(width: int, height: int, seed: int):
    from PIL import Image

    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))
