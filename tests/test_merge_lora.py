"""scripts/merge_lora.py: a 2-step LoRA run of scripts/sft.py on the tiny LLaVA, merged into a plain checkpoint that
gives the PEFT model's logits, keeps the trained projector, and holds safetensors and the processor only.

The tiny model, a 20-record FakeInstruct folder (detection pairs only), the LoRA run and the merge are built once
per module (the tiny model and the FakeInstruct folder come from tests/conftest.py)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import run_logged as run

from modeling.training.merge import read_source

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "fakeinstruct" / "data" / "sample"
SFT_SCRIPT = REPO / "scripts" / "sft.py"
MERGE_SCRIPT = REPO / "scripts" / "merge_lora.py"
DEMO_RECIPE = REPO / "recipes" / "tiny-llava" / "sft" / "config_demo.yaml"
LLAVA_TEMPLATE = REPO / "recipes" / "llava-1.5-7b" / "chat_template.jinja"
LANGUAGE_MODEL_LORA = r".*language_model.*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)"
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")
BATCH_ROWS = 4


def load_merge_script():
    """scripts/merge_lora.py as a module (scripts/ is not a package)."""
    spec = importlib.util.spec_from_file_location("merge_lora_script", MERGE_SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def lora_run(tiny_model, fakeinstruct_dir, tmp_path_factory) -> Path:
    """Two LoRA steps of the demo recipe with a high learning rate (so the projector moves) and the LLaVA-1.5 chat
    template (so the merged folder must carry the run's template, not the base model's)."""
    out = tmp_path_factory.mktemp("lora") / "run"
    args = ["--config", str(DEMO_RECIPE), "--model_name_or_path", str(tiny_model)]
    args += ["--dataset_name", str(fakeinstruct_dir), "--output_dir", str(out)]
    args += ["--max_steps", "2", "--per_device_train_batch_size", "8", "--do_eval", "false", "--learning_rate", "1e-2"]
    args += ["--chat_template_path", str(LLAVA_TEMPLATE.relative_to(REPO))]
    args += ["--use_peft", "true", "--lora_r", "8", "--lora_alpha", "16", "--lora_target_modules", LANGUAGE_MODEL_LORA]
    args += ["--lora_modules_to_save", "multi_modal_projector"]
    run([sys.executable, str(SFT_SCRIPT), *args], out.parent / "sft.log")
    assert (out / "adapter_model.safetensors").is_file()
    return out


@pytest.fixture(scope="module")
def merged(lora_run) -> Path:
    """The merge through the script's entry point (in process: no second interpreter start-up)."""
    out = lora_run.with_name("merged")
    load_merge_script().main([str(lora_run), "--output-dir", str(out)])
    return out


def processed_batch(processor, data: Path):
    """The first validation rows as the model sees them: chat template applied, images processed, padded."""
    from modeling.training.data import load_sft_datasets
    from modeling.training.sft import ScriptArguments

    script_args = ScriptArguments(dataset_name=str(data), dataset_test_split="validation", max_eval_samples=BATCH_ROWS)
    _, rows = load_sft_datasets(script_args, seed=0)
    texts = [processor.apply_chat_template(row["messages"]) for row in rows]
    images = [image for row in rows for image in row["images"]]
    return processor(text=texts, images=images, padding=True, return_tensors="pt")


def test_help():
    result = subprocess.run([sys.executable, str(MERGE_SCRIPT), "--help"], capture_output=True, text=True, check=True)
    for option in ("adapter_dir", "--output-dir", "--base-model", "--dtype", "--overwrite"):
        assert option in result.stdout


def test_source_comes_from_the_run(lora_run, tiny_model):
    source = read_source(lora_run)
    assert source.base_model == str(tiny_model) and source.dtype == "float32"
    assert source.modules_to_save == ["multi_modal_projector"]
    assert read_source(lora_run, base_model="org/model", dtype="bfloat16").base_model == "org/model"
    with pytest.raises(FileNotFoundError, match=r"adapter_config\.json"):
        read_source(tiny_model)


def test_merged_logits_equal_the_peft_model(lora_run, merged, tiny_model, fakeinstruct_dir):
    from peft import PeftModel
    from transformers import AutoModelForImageTextToText, AutoProcessor

    processor = AutoProcessor.from_pretrained(merged, trust_remote_code=False)
    batch = processed_batch(processor, fakeinstruct_dir)
    assert (batch["input_ids"] == processor.tokenizer.convert_tokens_to_ids("<image>")).any()
    base = AutoModelForImageTextToText.from_pretrained(tiny_model)
    peft_model = PeftModel.from_pretrained(base, lora_run).eval()
    model = AutoModelForImageTextToText.from_pretrained(merged, trust_remote_code=False).eval()
    assert type(model).__name__ == "LlavaForConditionalGeneration"
    with torch.no_grad():
        expected = peft_model(**batch).logits
        actual = model(**batch).logits
        peft_model.disable_adapter_layers()
        untouched = peft_model(**batch).logits  # the adapter changes the logits, so the comparison means something
    torch.testing.assert_close(actual, expected, atol=1e-5, rtol=0)
    assert (untouched - expected).abs().max() > 1e-3


def test_merged_projector_is_the_trained_one(lora_run, merged, tiny_model):
    from safetensors.torch import load_file
    from transformers import AutoModelForImageTextToText

    adapter = load_file(lora_run / "adapter_model.safetensors")
    trained = {k.split("multi_modal_projector.")[1]: v for k, v in adapter.items() if "multi_modal_projector" in k}
    trained = {k.replace("modules_to_save.default.", ""): v for k, v in trained.items()}
    assert set(trained) == {"linear_1.weight", "linear_1.bias", "linear_2.weight", "linear_2.bias"}
    base = AutoModelForImageTextToText.from_pretrained(tiny_model).model.multi_modal_projector.state_dict()
    projector = AutoModelForImageTextToText.from_pretrained(merged).model.multi_modal_projector.state_dict()
    assert set(projector) == set(trained)
    for name, weights in trained.items():
        torch.testing.assert_close(projector[name], weights, atol=0, rtol=0)
    assert any(not torch.equal(base[name], trained[name]) for name in trained)


def test_merged_folder_is_a_plain_checkpoint(lora_run, merged):
    from safetensors.torch import load_file
    from transformers import AutoProcessor

    names = {p.name for p in merged.iterdir()}
    assert "model.safetensors" in names and "config.json" in names
    assert not [n for n in names if n.startswith("adapter_") or n.endswith(PICKLE_SUFFIXES)], names
    assert not [n for n in names if n.endswith(".safetensors") and n != "model.safetensors"], names
    config = json.loads((merged / "config.json").read_text())
    assert "auto_map" not in config and config["architectures"] == ["LlavaForConditionalGeneration"]
    assert not [k for k in load_file(merged / "model.safetensors") if "lora_" in k or "modules_to_save" in k]
    assert (merged / "chat_template.jinja").read_text() == LLAVA_TEMPLATE.read_text()  # the run's, not the base's
    processor = AutoProcessor.from_pretrained(merged, trust_remote_code=False)
    assert processor.chat_template == LLAVA_TEMPLATE.read_text() and processor.image_token == "<image>"
    record = json.loads((merged / "merge_config.json").read_text())
    assert record["adapter_dir"] == str(lora_run) and record["modules_to_save"] == ["multi_modal_projector"]


def test_existing_output_needs_overwrite(lora_run, merged):
    script = load_merge_script()
    with pytest.raises(FileExistsError, match="not empty"):
        script.main([str(lora_run), "--output-dir", str(merged)])
    with pytest.raises(ValueError, match="differ"):
        script.main([str(lora_run), "--output-dir", str(lora_run)])
