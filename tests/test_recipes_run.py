"""Every SFT recipe (recipes/*/sft/*.yaml) runs for 2 steps through scripts/sft.py on the tiny LLaVA on CPU, with its
own options: LoRA settings, activation checkpointing, chat template, learning rate, schedule, evaluation.

Only what a CPU run and the test's inputs require is overridden (:func:`overrides`): the model (the tiny one, built
once), the data (a 20-record FakeInstruct folder), the output folder, precision (float32, no bf16) and attention
(sdpa where a recipe asks for flash-attn); everything else must reach ``sft_config.json`` as the recipe has it."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest
import yaml
from conftest import run_logged as run

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "fakeinstruct" / "data" / "sample"
SCRIPT = REPO / "scripts" / "sft.py"
RECIPES = REPO / "recipes"
SFT_RECIPES = sorted(RECIPES.glob("*/sft/*.yaml"))
STEPS = 2
# Recipe keys that the test replaces (see overrides) and so does not expect in sft_config.json as written.
REPLACED = {
    "model_name_or_path",
    "tiny_model_dir",
    "dataset_name",
    "output_dir",
    "max_steps",
    "use_cpu",
    "bf16",
    "fp16",
    "tf32",
    "dtype",
    "attn_implementation",
}
# Values that the config classes normalise on parsing: recipe value -> what sft_config.json holds.
NORMALISED = {"report_to": {"none": []}}


def overrides(recipe: dict, tiny_model: Path, data: Path, out: Path) -> list[str]:
    """Command-line options that make ``recipe`` run on CPU, on the tiny model and data, into ``out``."""
    args = ["--model_name_or_path", "tiny", "--tiny_model_dir", str(tiny_model)]
    args += ["--dataset_name", str(data), "--output_dir", str(out), "--max_steps", str(STEPS)]
    args += ["--use_cpu", "true", "--bf16", "false"]  # bf16 autocast needs a GPU (SFTConfig refuses it on CPU)
    if recipe.get("fp16"):
        args += ["--fp16", "false"]
    if recipe.get("tf32"):
        args += ["--tf32", "false"]  # a CUDA matmul setting
    if recipe.get("dtype") not in (None, "auto", "float32"):
        args += ["--dtype", "float32"]  # train the tiny model in full precision on CPU
    if str(recipe.get("attn_implementation", "")).startswith("flash"):
        args += ["--attn_implementation", "sdpa"]  # flash-attn kernels are CUDA-only
    return args


def test_every_recipe_is_collected():
    assert {str(p.relative_to(RECIPES)) for p in SFT_RECIPES} >= {
        "tiny-llava/sft/config_demo.yaml",
        "llava-1.5-7b/sft/config_full.yaml",
        "llava-1.5-7b/sft/config_lora.yaml",
    }


@pytest.mark.slow
@pytest.mark.parametrize("path", SFT_RECIPES, ids=lambda p: str(p.relative_to(RECIPES)))
def test_recipe_runs_with_its_own_options(path, tiny_model, fakeinstruct_dir, tmp_path):
    recipe = yaml.safe_load(path.read_text(encoding="utf-8"))
    out = tmp_path / "run"
    output = run(
        [sys.executable, str(SCRIPT), "--config", str(path), *overrides(recipe, tiny_model, fakeinstruct_dir, out)],
        tmp_path / "sft.log",
    )

    # it trained: the requested steps, a finite loss (and a finite eval loss where the recipe evaluates)
    state = json.loads((out / "trainer_state.json").read_text())
    assert state["global_step"] == STEPS
    assert math.isfinite(json.loads((out / "train_results.json").read_text())["train_loss"])
    logged = [entry["loss"] for entry in state["log_history"] if "loss" in entry]
    assert all(math.isfinite(v) for v in logged), logged
    if recipe.get("do_eval"):
        assert math.isfinite(json.loads((out / "eval_results.json").read_text())["eval_loss"])

    # with the recipe's own options: every key not replaced above reached the resolved config unchanged
    saved = json.loads((out / "sft_config.json").read_text())
    resolved = {**saved["script_args"], **saved["model_args"], **saved["training_args"]}
    for key, value in recipe.items():
        if key in REPLACED:
            continue
        expected = NORMALISED.get(key, {}).get(value, value) if isinstance(value, str) else value
        assert resolved[key] == expected, (key, value, resolved[key])
    assert resolved["model_name_or_path"] == "tiny" and resolved["tiny_model_dir"] == str(tiny_model)
    assert resolved["use_cpu"] is True and resolved["bf16"] is False

    # and they took effect: the chat template in the saved processor, LoRA or full weights as the recipe asks
    template = recipe.get("chat_template_path")
    expected_template = (REPO / template) if template else (tiny_model / "chat_template.jinja")
    assert (out / "chat_template.jinja").read_text() == expected_template.read_text()
    names = {p.name for p in out.iterdir()}
    if recipe.get("use_peft"):
        from safetensors.torch import load_file

        assert "adapter_model.safetensors" in names and "model.safetensors" not in names
        assert "LoRA:" in output
        adapter = json.loads((out / "adapter_config.json").read_text())
        assert adapter["r"] == recipe["lora_r"] and adapter["lora_alpha"] == recipe["lora_alpha"]
        assert adapter["target_modules"] == recipe["lora_target_modules"]
        assert adapter["modules_to_save"] == recipe.get("lora_modules_to_save")
        weights = load_file(out / "adapter_model.safetensors")
        assert {v.shape[0] for k, v in weights.items() if "lora_A" in k} == {recipe["lora_r"]}  # r x in_features
    else:
        assert "model.safetensors" in names and "adapter_model.safetensors" not in names
