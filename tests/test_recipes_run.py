"""The recipes: every SFT recipe parses with the script's parser and follows its brief, the accelerate configs and
the SLURM launcher are valid, and (slow) every SFT recipe (recipes/*/sft/*.yaml) runs for 2 steps through
scripts/sft.py on CPU, on a tiny model of its base's architecture (LLaVA, or Idefics3: :func:`tiny_arch`), with its
own options: LoRA settings, activation checkpointing, chat template, learning rate, schedule, evaluation.

Only what a CPU run and the test's inputs require is overridden (:func:`overrides`): the model (the tiny one, built
once per architecture), the data (a 20-record FakeInstruct folder), the output folder, precision (float32, no bf16)
and attention (sdpa where a recipe asks for flash-attn); everything else must reach ``sft_config.json`` as the recipe
has it."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import masked_runs
from conftest import run_logged as run
from tiny_chat import conversation
from trl import ModelConfig, SFTConfig

from modeling.training.sft import ScriptArguments

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "fakeinstruct" / "data" / "sample"
SCRIPT = REPO / "scripts" / "sft.py"
RECIPES = REPO / "recipes"
SFT_RECIPES = sorted(RECIPES.glob("*/sft/*.yaml"))
ACCELERATE_CONFIGS = sorted((RECIPES / "accelerate_configs").glob("*.yaml"))
LANGUAGE_MODEL_LORA = r".*language_model.*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)"
IDEFICS3_TEXT_MODEL_LORA = r".*text_model.*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)"
# Base-model name fragment -> the tiny architecture (scripts/build_tiny_model.py --arch) that stands in for it; else LLaVA.
TINY_ARCHS = {"idefics3": "idefics3"}
STEPS = 2
# Recipe keys that the test replaces (see overrides) and so does not expect in sft_config.json as written.
REPLACED = {
    "model_name_or_path",
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


def load_script():
    """scripts/sft.py as a module (scripts/ is not a package)."""
    spec = importlib.util.spec_from_file_location("sft_script", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def tiny_arch(recipe: dict) -> str:
    """The tiny architecture with the model class of the recipe's base model."""
    base = str(recipe.get("model_name_or_path", "")).lower()
    return next((arch for fragment, arch in TINY_ARCHS.items() if fragment in base), "llava")


@pytest.fixture(scope="session")
def tiny_idefics3_model(tmp_path_factory) -> Path:
    from modeling.tiny.idefics3 import build_tiny_idefics3

    return build_tiny_idefics3(tmp_path_factory.mktemp("tiny") / "idefics3")


def overrides(recipe: dict, tiny_model: Path, data: Path, out: Path) -> list[str]:
    """Command-line options that make ``recipe`` run on CPU, on the tiny model and data, into ``out``."""
    args = ["--model_name_or_path", str(tiny_model)]
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
        "idefics3-8b/sft/config_lora.yaml",
    }


# ---- recipes, parsed ------------------------------------------------------------------------------------------------


def test_recipes_exist():
    names = {str(p.relative_to(RECIPES)) for p in SFT_RECIPES}
    assert {
        "tiny-llava/sft/config_demo.yaml",
        "llava-1.5-7b/sft/config_full.yaml",
        "llava-1.5-7b/sft/config_lora.yaml",
        "idefics3-8b/sft/config_lora.yaml",
    } <= names
    assert {p.stem for p in ACCELERATE_CONFIGS} == {
        "ddp",
        "zero2",
        "zero3",
        "fsdp",
        "ddp_cpu",
        "zero2_cpu",
        "zero3_cpu",
    }


@pytest.mark.parametrize("recipe", SFT_RECIPES, ids=lambda p: str(p.relative_to(RECIPES)))
def test_recipe_parses_with_the_script_parser(recipe):
    """Every key is a field of ScriptArguments, SFTConfig or ModelConfig, and the values build the dataclasses.

    GPU recipes ask for bf16, which SFTConfig refuses on a machine without a GPU unless use_cpu is set."""
    from dataclasses import fields

    keys = set(yaml.safe_load(recipe.read_text()))
    known = {f.name for cls in (ScriptArguments, SFTConfig, ModelConfig) for f in fields(cls)}
    assert keys <= known, f"unknown keys: {sorted(keys - known)}"
    script_args, training_args, model_args = (
        load_script().make_parser().parse_args_and_config(["--config", str(recipe), "--use_cpu", "true"])
    )
    assert script_args.dataset_name and model_args.model_name_or_path
    assert script_args.dataset_test_split == "validation"  # not TRL's default "test": kept for the calibrated detector
    assert training_args.assistant_only_loss
    assert training_args.max_length is None  # no truncation into the image tokens
    assert model_args.attn_implementation == "sdpa"
    if training_args.chat_template_path:
        assert (REPO / training_args.chat_template_path).is_file()


def test_llava_recipes_follow_the_brief():
    parse = load_script().make_parser().parse_args_and_config
    _, full, full_model = parse(["--config", str(RECIPES / "llava-1.5-7b/sft/config_full.yaml"), "--use_cpu", "true"])
    assert full_model.model_name_or_path == "llava-hf/llava-1.5-7b-hf" and full_model.dtype == "bfloat16"
    assert (full.learning_rate, full.num_train_epochs, full.bf16, full.gradient_checkpointing) == (2e-5, 2, True, True)
    assert full.per_device_train_batch_size * full.gradient_accumulation_steps * 8 == 32  # on 8 GPUs
    assert full.gradient_accumulation_steps > 1
    _, lora, lora_model = parse(["--config", str(RECIPES / "llava-1.5-7b/sft/config_lora.yaml"), "--use_cpu", "true"])
    assert lora_model.use_peft and lora_model.lora_modules_to_save == ["multi_modal_projector"]
    assert lora_model.lora_target_modules == LANGUAGE_MODEL_LORA
    assert lora.per_device_train_batch_size * lora.gradient_accumulation_steps * 8 == 32


def test_idefics3_recipe_follows_the_brief():
    recipe = RECIPES / "idefics3-8b/sft/config_lora.yaml"
    _, args, model = load_script().make_parser().parse_args_and_config(["--config", str(recipe), "--use_cpu", "true"])
    assert model.model_name_or_path == "HuggingFaceM4/Idefics3-8B-Llama3" and model.dtype == "bfloat16"
    assert tiny_arch({"model_name_or_path": model.model_name_or_path}) == "idefics3"
    assert model.use_peft and model.lora_modules_to_save == ["connector"]
    assert model.lora_target_modules == IDEFICS3_TEXT_MODEL_LORA
    assert (args.learning_rate, args.num_train_epochs, args.bf16, args.gradient_checkpointing) == (1e-4, 2, True, True)
    assert args.per_device_train_batch_size * args.gradient_accumulation_steps * 8 == 32  # on 8 GPUs
    assert args.gradient_accumulation_steps > 1
    assert args.assistant_only_loss and args.chat_template_path == "recipes/idefics3-8b/chat_template.jinja"
    others = [p for p in SFT_RECIPES if p.parent.parent.name != "idefics3-8b"]
    assert {tiny_arch(yaml.safe_load(p.read_text())) for p in others} == {"llava"}


@pytest.mark.parametrize("config", ACCELERATE_CONFIGS, ids=lambda p: p.stem)
def test_accelerate_config_is_valid(config):
    """accelerate reads the file, and every nested option is one that `accelerate launch` knows."""
    from accelerate.commands.config.config_args import ClusterConfig
    from accelerate.commands.launch import launch_command_parser

    cluster = ClusterConfig.from_yaml_file(config)
    options = {action.dest for action in launch_command_parser()._actions}
    nested = {**cluster.deepspeed_config, **cluster.fsdp_config}
    unknown = [key for key in nested if key not in options]
    assert not unknown, unknown
    if config.stem.endswith("_cpu"):  # 2 processes in fp32: DeepSpeed refuses bf16 that a CPU recipe does not use
        gpu = ClusterConfig.from_yaml_file(config.with_name(config.stem.removesuffix("_cpu") + ".yaml"))
        assert (cluster.num_processes, cluster.mixed_precision) == (2, "no")
        assert cluster.distributed_type == gpu.distributed_type and cluster.deepspeed_config == gpu.deepspeed_config
    else:
        assert cluster.num_processes == 8 and cluster.mixed_precision == "bf16" and not cluster.use_cpu


def test_launch_slurm_builds_one_launcher_per_node(tmp_path):
    """Dry run with stand-ins for scontrol and srun: 2 nodes x 8 GPUs, accumulation from the recipe or override."""
    script = RECIPES / "launch.slurm"
    subprocess.run(["bash", "-n", str(script)], check=True)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "scontrol").write_text("#!/bin/bash\nprintf 'node-a\\nnode-b\\n'\n")
    (bin_dir / "srun").write_text('#!/bin/bash\nprintf "%s\\n" "$@"\n')
    for tool in bin_dir.iterdir():
        tool.chmod(0o755)
    env = dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}", SLURM_NNODES="2", SLURM_JOB_NODELIST="node-[a-b]")
    env["VENV"] = sys.prefix
    recipe = "recipes/llava-1.5-7b/sft/config_full.yaml"

    def launch(*extra: str) -> str:
        result = subprocess.run(
            ["bash", str(script), recipe, *extra], cwd=REPO, env=env, capture_output=True, text=True, check=True
        )
        return result.stdout.splitlines()[-1]  # the command srun would run on every node

    command = launch()
    assert "--config_file recipes/accelerate_configs/zero3.yaml" in " ".join(command.split())
    assert "--num_processes 16" in " ".join(command.split()) and "--main_process_ip node-a" in command
    assert "--gradient_accumulation_steps 2" in " ".join(command.split())  # read from the recipe
    assert command.endswith(
        f"--machine_rank $SLURM_PROCID scripts/sft.py --config {recipe} --resume_from_checkpoint auto"
    )
    assert "TORCH_ELASTIC_SHUTDOWN_TIMEOUT" in script.read_text() and "#SBATCH --signal=TERM@" in script.read_text()
    command = " ".join(launch("--gradient_accumulation_steps", "1", "--output_dir", "/ckpt/a b").split())
    assert "launch --config_file" in command and "--gradient_accumulation_steps 1 --num_machines 2" in command
    assert command.endswith("--gradient_accumulation_steps 1 --output_dir /ckpt/a\\ b")


@pytest.mark.slow
def test_fsdp_config_on_cpu_is_refused_not_run_as_separate_processes(tiny_model, fakeinstruct_dir, tmp_path):
    """accelerate selects FSDP only for GPU-class devices: on CPU each process would train alone."""
    command = [
        str(Path(sys.prefix) / "bin" / "accelerate"),
        "launch",
        "--config_file",
        str(RECIPES / "accelerate_configs" / "fsdp.yaml"),
        "--num_processes",
        "2",
        "--mixed_precision",
        "no",
        "scripts/sft.py",
        "--config",
        "recipes/tiny-llava/sft/config_demo.yaml",
        "--model_name_or_path",
        str(tiny_model),
        "--dataset_name",
        str(fakeinstruct_dir),
        "--output_dir",
        str(tmp_path / "out"),
        "--use_cpu",
        "false",
        "--max_steps",
        "1",
    ]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode != 0
    assert "launched as 2 processes but the Trainer sees a world of 1" in result.stdout + result.stderr
    assert not (tmp_path / "out" / "model.safetensors").exists()


SHORT_TURNS = conversation(("Real or fake?", "Fake. Edges."), ("Why?", "Texture."))


def test_llava_chat_template_trains_answers_and_their_eos(tiny_model):
    """The LLaVA-1.5 training template: the assistant mask covers each answer and its </s>, nothing else."""
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(tiny_model)
    template = (RECIPES / "llava-1.5-7b" / "chat_template.jinja").read_text()
    messages = SHORT_TURNS
    text = processor.apply_chat_template(messages, chat_template=template)
    assert text == "<s>USER: <image>\nReal or fake? ASSISTANT: Fake. Edges.</s>USER: Why? ASSISTANT: Texture.</s>"
    prompt = processor.apply_chat_template(messages[:1], chat_template=template, add_generation_prompt=True)
    assert text.startswith(prompt) and prompt.endswith("ASSISTANT:")
    out = processor.tokenizer.apply_chat_template(
        messages, chat_template=template, tokenize=True, return_dict=True, return_assistant_tokens_mask=True
    )
    runs = masked_runs(out["input_ids"], out["assistant_masks"])
    assert [processor.tokenizer.decode(r).strip() for r in runs] == ["Fake. Edges.</s>", "Texture.</s>"]


def test_idefics3_chat_template_trains_answers_and_their_end_of_utterance(tiny_idefics3_model):
    """The Idefics3 training template: the assistant mask covers each answer (with its leading space) and its
    <end_of_utterance>, nothing else; the generation prompt is "Assistant:" as in Idefics3's own template."""
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(tiny_idefics3_model)
    template = (RECIPES / "idefics3-8b" / "chat_template.jinja").read_text()
    messages = SHORT_TURNS
    text = processor.apply_chat_template(messages, chat_template=template)
    assert text == (
        "<|begin_of_text|>User:<image>Real or fake?<end_of_utterance>\nAssistant: Fake. Edges.<end_of_utterance>\n"
        "User: Why?<end_of_utterance>\nAssistant: Texture.<end_of_utterance>\n"
    )
    prompt = processor.apply_chat_template(messages[:1], chat_template=template, add_generation_prompt=True)
    assert text.startswith(prompt) and prompt.endswith("Assistant:")
    out = processor.tokenizer.apply_chat_template(
        messages, chat_template=template, tokenize=True, return_dict=True, return_assistant_tokens_mask=True
    )
    runs = masked_runs(out["input_ids"], out["assistant_masks"])
    decoded = [processor.tokenizer.decode(r) for r in runs]
    assert decoded == [" Fake. Edges.<end_of_utterance>", " Texture.<end_of_utterance>"]


# ---- recipes, run ----------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("path", SFT_RECIPES, ids=lambda p: str(p.relative_to(RECIPES)))
def test_recipe_runs_with_its_own_options(path, fakeinstruct_dir, tmp_path, request):
    recipe = yaml.safe_load(path.read_text(encoding="utf-8"))
    arch = tiny_arch(recipe)
    tiny_model = request.getfixturevalue({"llava": "tiny_model", "idefics3": "tiny_idefics3_model"}[arch])
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
    assert resolved["model_name_or_path"] == str(tiny_model)
    assert json.loads((tiny_model / "config.json").read_text())["model_type"] == arch
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
        assert not [k for k in weights if "lora_" in k and "vision" in k]  # the language model only
        for module in recipe.get("lora_modules_to_save") or []:  # trained in full and saved with the adapter
            assert any(f".{module}." in k and "lora_" not in k for k in weights), module
    else:
        assert "model.safetensors" in names and "adapter_model.safetensors" not in names
