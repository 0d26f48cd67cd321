"""scripts/sft.py: a CPU run on the tiny LLaVA trains on assistant tokens only, saves safetensors that reload to the
same model in a fresh process (same eval loss, same logits as the model in memory), resumes exactly, and LoRA saves
the adapter with the projector. Multi-process DDP and DeepSpeed ZeRO-2/3 runs are marked slow (`make slow_test`).
The recipes' own checks are in test_recipes_run; interrupted and resumed runs in test_preemption and
test_resume_training.

The tiny model and a 20-record FakeInstruct folder (detection pairs only) are built once per module."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest
import torch
from conftest import assert_assistant_only_labels
from conftest import run_logged as run
from trl import ModelConfig, SFTConfig

from modeling.tiny.llava import ANSWER_WORDS, IMAGE_SIZE, PATCH_SIZE, chat_template
from modeling.training.data import load_sft_datasets
from modeling.training.sft import ScriptArguments, build_trainer, load_model, peft_config

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "sft.py"
RECIPES = REPO / "recipes"
DEMO_RECIPE = RECIPES / "tiny-llava" / "sft" / "config_demo.yaml"
IMAGE_TOKENS = (IMAGE_SIZE // PATCH_SIZE) ** 2
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")
LANGUAGE_MODEL_LORA = r".*language_model.*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)"
STEPS, SAVE_STEPS, EVAL_ROWS = 8, 4, 8


def load_script():
    """scripts/sft.py as a module (scripts/ is not a package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("sft_script", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def sft_args(model: Path, data: Path, out: Path, *extra: str) -> list[str]:
    """The demo recipe, pointed at the test's model and data, with a schedule that makes the loss fall quickly."""
    return [
        "--config", str(DEMO_RECIPE),
        "--model_name_or_path", str(model),
        "--dataset_name", str(data),
        "--output_dir", str(out),
        "--max_steps", str(STEPS),
        "--per_device_train_batch_size", "8",
        "--learning_rate", "3e-3",
        "--lr_scheduler_type", "constant",
        "--warmup_steps", "0",
        "--logging_steps", "1",
        "--max_eval_samples", str(EVAL_ROWS),
        "--per_device_eval_batch_size", str(EVAL_ROWS),
        *extra,
    ]  # fmt: skip


# scripts/sft.py with one more callback: at the end of training, every process runs the model it holds in memory on
# the first eval rows (ZeRO-3 gathers the weights collectively), and the main one writes inputs and logits to argv[1].
PROBE = """
import runpy, sys
import torch
from safetensors.torch import save_file
from transformers import TrainerCallback
import modeling.training.sft as sft

path, sys.argv = sys.argv[1], [sys.argv[2], *sys.argv[3:]]
build = sft.build_trainer

def build_with_probe(*args):
    trainer = build(*args)

    class Probe(TrainerCallback):
        def on_train_end(self, args, state, control, **kwargs):
            batch = trainer.data_collator([trainer.eval_dataset[i] for i in range(4)])
            inputs = {k: batch[k].to(args.device) for k in ("input_ids", "attention_mask", "pixel_values")}
            model, training = trainer.model, trainer.model.training
            with torch.no_grad():
                logits = model.eval()(**inputs).logits
            model.train(training)
            if state.is_world_process_zero:
                save_file({"logits": logits, **inputs}, path)

    trainer.add_callback(Probe())
    return trainer

sft.build_trainer = build_with_probe
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def logits_file(out: Path) -> Path:
    return out.with_name(f"{out.name}.logits.safetensors")


def run_sft(args: list[str], log: Path, launcher: list[str] | None = None, probe: bool = False) -> str:
    """scripts/sft.py; with ``probe``, also the logits of the trained model in memory (:func:`logits_file`)."""
    if not probe:
        return run([*(launcher or [sys.executable]), str(SCRIPT), *args], log)
    out = Path(args[args.index("--output_dir") + 1])
    wrapper = out.with_name(f"{out.name}_with_probe.py")
    wrapper.write_text(PROBE, encoding="utf-8")
    return run([*(launcher or [sys.executable]), str(wrapper), str(logits_file(out)), str(SCRIPT), *args], log)


def losses(out: Path) -> dict[int, float]:
    history = json.loads((out / "trainer_state.json").read_text())["log_history"]
    return {entry["step"]: entry["loss"] for entry in history if "loss" in entry}


def assert_loss_falls(out: Path, steps: int = STEPS) -> None:
    logged = losses(out)
    assert sorted(logged) == list(range(1, steps + 1))
    values = [logged[s] for s in sorted(logged)]
    assert all(math.isfinite(v) for v in values), values
    first, last = sum(values[:3]) / 3, sum(values[-3:]) / 3
    assert last < first - 0.3, f"loss did not fall: {values}"


# The reload check runs in a fresh process: it loads the saved checkpoint with from_pretrained and evaluates it
# with TRL's own loop on the eval rows the script used. The script's eval_loss came from the trained model in
# memory, so equal losses mean the saved weights are the trained ones; the base model must score differently.
# It also runs both on the batch the training process probed (PROBE), for the raw logits.
RELOAD = """
import json, sys
import torch
from safetensors.torch import load_file, save_file
from transformers import AutoModelForImageTextToText, AutoProcessor
from trl import SFTConfig, SFTTrainer
from modeling.training.data import load_sft_datasets
from modeling.training.sft import ScriptArguments

checkpoint, base, data, out, rows, batch, probe = sys.argv[1:8]
script_args = ScriptArguments(dataset_name=data, dataset_test_split="validation", max_eval_samples=int(rows))
_, rows = load_sft_datasets(script_args, seed=42)
args = SFTConfig(output_dir=out, use_cpu=True, bf16=False, max_length=None, assistant_only_loss=True,
                 per_device_eval_batch_size=int(batch), report_to="none")
inputs = {k: v for k, v in load_file(probe).items() if k != "logits"}
result, logits = {}, {}
for name, path in (("checkpoint", checkpoint), ("base", base)):
    model, info = AutoModelForImageTextToText.from_pretrained(path, output_loading_info=True)
    with torch.no_grad():
        logits[name] = model.eval()(**inputs).logits
    trainer = SFTTrainer(model=model.eval(), args=args, train_dataset=rows, eval_dataset=rows,
                         processing_class=AutoProcessor.from_pretrained(path))
    result[name] = {"eval_loss": trainer.evaluate()["eval_loss"], "type": type(model).__name__,
                    "missing": sorted(info["missing_keys"]), "unexpected": sorted(info["unexpected_keys"])}
save_file(logits, f"{out}/reloaded-logits.safetensors")
print("RELOAD " + json.dumps(result))
"""


def assert_reloads_to_trained_model(out: Path, base: Path, data: Path, tmp: Path, eval_batch: int = EVAL_ROWS):
    """``out`` must come from ``run_sft(..., probe=True)``."""
    from safetensors.torch import load_file

    args = [str(out), str(base), str(data), str(tmp), str(EVAL_ROWS), str(eval_batch), str(logits_file(out))]
    output = run([sys.executable, "-c", RELOAD, *args], tmp / "reload.log")
    result = json.loads(next(line for line in output.splitlines() if line.startswith("RELOAD "))[7:])
    trained = json.loads((out / "eval_results.json").read_text())["eval_loss"]
    assert result["checkpoint"]["type"] == "LlavaForConditionalGeneration"
    assert result["checkpoint"]["missing"] == result["checkpoint"]["unexpected"] == []
    assert result["checkpoint"]["eval_loss"] == pytest.approx(trained, rel=1e-5)
    assert abs(result["base"]["eval_loss"] - trained) > 0.1  # the comparison can tell trained from untrained
    in_memory, reloaded = load_file(logits_file(out))["logits"], load_file(tmp / "reloaded-logits.safetensors")
    torch.testing.assert_close(reloaded["checkpoint"], in_memory, atol=1e-5, rtol=1e-5)
    assert (reloaded["base"] - in_memory).abs().max() > 1e-2


def assert_saved_safetensors_only(out: Path) -> None:
    names = {p.name for p in out.iterdir() if p.is_file()}
    assert "model.safetensors" in names
    assert not [n for n in names if n.endswith(PICKLE_SUFFIXES)], names


@pytest.fixture(scope="module")
def trained(tiny_model, fakeinstruct_dir, tmp_path_factory):
    """One CPU run of scripts/sft.py: 8 steps, checkpoints at 4 and 8, an evaluation at the end."""
    out = tmp_path_factory.mktemp("sft") / "run"
    log = out.parent / "sft.log"
    args = sft_args(tiny_model, fakeinstruct_dir, out, "--save_strategy", "steps", "--save_steps", str(SAVE_STEPS))
    return out, run_sft(args, log, probe=True)


# ---- script pieces, in process ------------------------------------------------------------------------------


def test_help_lists_the_script_arguments():
    text = load_script().make_parser().format_help()
    for option in (
        "--dataset_name",
        "--freeze_vision_tower",
        "--dataset_tasks",
        "--use_peft",
        "--resume_from_checkpoint",
    ):
        assert option in text


def test_script_arguments_are_trls_with_fakeinstructs_options():
    import trl

    args = ScriptArguments(dataset_name="data", dataset_tasks=["detection"])
    assert isinstance(args, trl.ScriptArguments) and args.dataset_train_split == "train"
    with pytest.raises(ValueError, match="dataset_name is required"):
        ScriptArguments()
    with pytest.raises(ValueError, match="dataset_streaming is not supported"):
        ScriptArguments(dataset_name="data", dataset_streaming=True)


@pytest.mark.parametrize(
    ("trust_remote_code", "init_kwargs"),
    [(True, None), (False, {"trust_remote_code": True}), (False, {"use_safetensors": False})],
)
def test_remote_code_and_pickle_weights_are_refused(tiny_model, trust_remote_code, init_kwargs):
    from types import SimpleNamespace

    model_args = ModelConfig(model_name_or_path=str(tiny_model))
    training_args = SimpleNamespace(trust_remote_code=trust_remote_code, model_init_kwargs=init_kwargs)
    with pytest.raises(ValueError, match="not supported"):
        load_model(str(tiny_model), model_args, training_args)


def test_dataset_loading_keeps_trl_columns_and_checks_names(fakeinstruct_dir):
    def load(evaluate=True, **options):
        return load_sft_datasets(ScriptArguments(dataset_name=str(fakeinstruct_dir), **options), evaluate=evaluate)

    train, test = load(dataset_test_split="validation", max_eval_samples=4)
    assert train.column_names == ["messages", "images"] and len(test) == 4
    assert type(train[0]["images"][0]).__module__.startswith("PIL")  # relative paths resolved, decoded
    detection, none = load(evaluate=False, dataset_tasks=["detection"], max_train_samples=10)
    assert len(detection) == 10 and none is None
    with pytest.raises(ValueError, match="no split 'dev'"):
        load(dataset_test_split="dev")
    with pytest.raises(ValueError, match="explanation"):
        load(evaluate=False, dataset_tasks=["explanation"])


def test_lora_needs_named_target_modules():
    with pytest.raises(ValueError, match="lora_target_modules"):
        peft_config(ModelConfig(use_peft=True))


def test_collated_labels_ignore_prompt_and_image_tokens(tiny_model, fakeinstruct_dir, tmp_path):
    """Labels are the answer tokens and their </s>; the prompt, the 16 image tokens and padding are -100."""
    script_args = ScriptArguments(dataset_name=str(fakeinstruct_dir))
    training_args = SFTConfig(
        output_dir=str(tmp_path / "out"),
        use_cpu=True,
        bf16=False,
        max_length=None,
        assistant_only_loss=True,
        activation_checkpointing=False,
        report_to="none",
    )
    trainer = build_trainer(script_args, training_args, ModelConfig(model_name_or_path=str(tiny_model)))
    assert all(p.requires_grad for p in trainer.model.parameters())  # full fine-tuning: everything trains
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(4)])
    tokenizer = trainer.processing_class.tokenizer
    assert_assistant_only_labels(batch, tokenizer, trainer.model.config.image_token_id, IMAGE_TOKENS)
    for labels in batch["labels"].tolist():
        supervised = [label for label in labels if label != -100]
        assert supervised[-1] == tokenizer.eos_token_id
        assert tokenizer.decode(supervised[:1]) in ANSWER_WORDS  # closed-ended answers start with their word


def test_freeze_vision_tower(tiny_model, fakeinstruct_dir, tmp_path):
    script_args = ScriptArguments(dataset_name=str(fakeinstruct_dir), freeze_vision_tower=True)
    training_args = SFTConfig(output_dir=str(tmp_path), use_cpu=True, bf16=False, activation_checkpointing=False)
    trainer = build_trainer(script_args, training_args, ModelConfig(model_name_or_path=str(tiny_model)))
    frozen = {n for n, p in trainer.model.named_parameters() if not p.requires_grad}
    assert frozen == {n for n, _ in trainer.model.named_parameters() if ".vision_tower." in n} != set()


# ---- one CPU run of the script ------------------------------------------------------------------------------


def test_run_logs_a_finite_falling_loss(trained):
    out, output = trained
    assert_loss_falls(out)
    assert "training on 1 process(es)" in output
    assert json.loads((out / "train_results.json").read_text())["world_size"] == 1


def test_run_saves_model_and_processor_as_safetensors(trained, tiny_model):
    from transformers import AutoProcessor

    out, _ = trained
    assert_saved_safetensors_only(out)
    assert (out / "chat_template.jinja").read_text() == chat_template()
    processor = AutoProcessor.from_pretrained(out)
    assert processor.chat_template == chat_template() and processor.image_token == "<image>"
    recipe = json.loads((out / "sft_config.json").read_text())
    assert recipe["model_args"]["model_name_or_path"] == str(tiny_model)
    assert recipe["training_args"]["assistant_only_loss"] is True
    assert {p.name for p in out.glob("checkpoint-*")} == {"checkpoint-4", "checkpoint-8"}


def test_saved_checkpoint_reloads_to_the_trained_model(trained, tiny_model, fakeinstruct_dir, tmp_path):
    out, _ = trained
    assert_reloads_to_trained_model(out, tiny_model, fakeinstruct_dir, tmp_path)


def test_resume_from_checkpoint_continues_the_same_run(trained, tiny_model, fakeinstruct_dir, tmp_path):
    """Resuming at step 4 gives the losses of steps 5-8 of the uninterrupted run: the weights, optimizer, schedule
    and data order all come back (transformers alone would restart from the initial weights, see modeling.training.resume)."""
    out, _ = trained
    resumed = tmp_path / "resumed"
    extra = ("--resume_from_checkpoint", str(out / f"checkpoint-{SAVE_STEPS}"), "--do_eval", "false")
    output = run_sft(sft_args(tiny_model, fakeinstruct_dir, resumed, *extra), tmp_path / "resume.log")
    first, second = losses(out), losses(resumed)
    for step in range(SAVE_STEPS + 1, STEPS + 1):
        assert second[step] == pytest.approx(first[step], abs=1e-4), (step, first, second)
    assert "loading the weights of" in output


def test_lora_run_saves_the_adapter_and_the_projector(tiny_model, fakeinstruct_dir, tmp_path):
    from peft import PeftModel
    from safetensors.torch import load_file
    from transformers import AutoModelForImageTextToText

    out = tmp_path / "lora"
    extra = ["--max_steps", "2", "--do_eval", "false", "--learning_rate", "1e-2", "--use_peft", "true"]
    extra += ["--lora_r", "8", "--lora_alpha", "16", "--lora_target_modules", LANGUAGE_MODEL_LORA]
    extra += ["--lora_modules_to_save", "multi_modal_projector"]
    output = run_sft(sft_args(tiny_model, fakeinstruct_dir, out, *extra), tmp_path / "lora.log")  # last one wins
    assert "LoRA:" in output
    names = {p.name for p in out.iterdir()}
    assert {"adapter_model.safetensors", "adapter_config.json", "chat_template.jinja"} <= names
    assert "model.safetensors" not in names and not [n for n in names if n.endswith(PICKLE_SUFFIXES)]
    config = json.loads((out / "adapter_config.json").read_text())
    assert config["modules_to_save"] == ["multi_modal_projector"] and config["target_modules"] == LANGUAGE_MODEL_LORA

    adapter = load_file(out / "adapter_model.safetensors")
    lora = [k for k in adapter if "lora_" in k]
    projector = {k: v for k, v in adapter.items() if "multi_modal_projector" in k}
    assert lora and all("language_model" in k for k in lora)  # the vision tower is not adapted
    assert len(projector) == 4  # two linear layers, weight and bias

    base = AutoModelForImageTextToText.from_pretrained(tiny_model)
    before = {k: v.clone() for k, v in base.model.multi_modal_projector.state_dict().items()}
    model = PeftModel.from_pretrained(base, out)
    after = model.get_base_model().model.multi_modal_projector.modules_to_save["default"].state_dict()
    assert not torch.equal(after["linear_1.weight"], before["linear_1.weight"])  # the projector was trained
    saved = next(v for k, v in projector.items() if k.endswith("linear_1.weight"))
    torch.testing.assert_close(after["linear_1.weight"], saved)  # and reloads as saved


# ---- multi-process and DeepSpeed (slow) ---------------------------------------------------------------------


def accelerate(config: str, *options: str) -> list[str]:
    launcher = [str(Path(sys.executable).with_name("accelerate")), "launch"]
    return [*launcher, "--config_file", str(RECIPES / "accelerate_configs" / f"{config}.yaml"), *options]


@pytest.mark.slow
def test_ddp_two_cpu_processes(tiny_model, fakeinstruct_dir, tmp_path):
    """`--multi_gpu --num_processes 2` on CPU (the script sets use_cpu): two gloo processes, one model saved."""
    out = tmp_path / "ddp"
    args = sft_args(tiny_model, fakeinstruct_dir, out, "--per_device_train_batch_size", "4")
    args += ["--per_device_eval_batch_size", str(EVAL_ROWS // 2)]
    launcher = accelerate("ddp_cpu")  # two processes, fp32: the CPU config the README shows
    output = run_sft(args, tmp_path / "ddp.log", launcher, probe=True)
    assert "training on 2 process(es): MULTI_CPU" in output  # DDP over gloo
    assert json.loads((out / "train_results.json").read_text())["world_size"] == 2
    assert_loss_falls(out)
    assert_saved_safetensors_only(out)
    assert_reloads_to_trained_model(out, tiny_model, fakeinstruct_dir, tmp_path, eval_batch=EVAL_ROWS // 2)


@pytest.mark.slow
@pytest.mark.parametrize(("stage", "processes"), [(2, 1), (3, 1), (3, 2)], ids=["zero2", "zero3", "zero3-2proc"])
def test_deepspeed_zero_on_cpu(stage, processes, tiny_model, fakeinstruct_dir, tmp_path):
    """DeepSpeed ZeRO-2/3 on CPU processes; ZeRO-3 gathers the sharded weights for the final save."""
    out = tmp_path / f"zero{stage}"
    batch = 8 // processes
    args = sft_args(tiny_model, fakeinstruct_dir, out, "--per_device_train_batch_size", str(batch))
    args += ["--per_device_eval_batch_size", str(EVAL_ROWS // processes)]
    launcher = accelerate(f"zero{stage}_cpu", "--num_processes", str(processes))
    output = run_sft(args, tmp_path / f"zero{stage}.log", launcher, probe=True)
    assert f"training on {processes} process(es): DEEPSPEED, ZeRO stage {stage}" in output
    assert_loss_falls(out)
    assert_saved_safetensors_only(out)
    assert_reloads_to_trained_model(out, tiny_model, fakeinstruct_dir, tmp_path, eval_batch=EVAL_ROWS // processes)


@pytest.mark.slow
def test_readme_cpu_launch_runs_as_written(tiny_model, fakeinstruct_dir, tmp_path):
    """The README's command for trying a recipe without GPUs, as written there (plus this test's model, data,
    output folder and 2 steps): ZeRO-2 on 2 CPU processes, no flag added on the command line."""
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    line = next(t for t in readme.splitlines() if "accelerate_configs/zero2_cpu.yaml" in t and "scripts/sft.py" in t)
    command = line.strip().rstrip("\\").split()
    assert command[:4] == ["accelerate", "launch", "--config_file", "recipes/accelerate_configs/zero2_cpu.yaml"]
    out = tmp_path / "readme"
    command[0] = str(Path(sys.executable).with_name("accelerate"))
    command += ["--model_name_or_path", str(tiny_model), "--dataset_name", str(fakeinstruct_dir)]
    command += ["--output_dir", str(out), "--max_steps", "2", "--per_device_train_batch_size", "4"]
    command += ["--do_eval", "false"]
    output = run(command, tmp_path / "readme.log")
    assert "training on 2 process(es): DEEPSPEED, ZeRO stage 2" in output
    assert (out / "model.safetensors").is_file()
