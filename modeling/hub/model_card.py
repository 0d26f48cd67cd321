"""The model card: ``MODEL_CARD.md`` rendered with huggingface_hub's ``ModelCard``, metadata and model-index.

The Hub builds its results widget from ``model-index`` in the card's YAML front matter, so the evaluation
numbers go in twice: as ``EvalResult`` entries (machine-readable) and as the tables of ``results.md`` (for people).
"""

from __future__ import annotations

import json
from pathlib import Path

TEMPLATE = Path(__file__).resolve().parents[2] / "MODEL_CARD.md"
# (metric key in metrics.json, model-index metric type, display name)
DETECTOR_METRICS = (
    ("auc", "roc_auc", "ROC AUC"),
    ("ap", "average_precision", "Average precision"),
    ("accuracy", "accuracy", "Accuracy"),
    ("f1", "f1", "F1"),
    ("ece", "ece", "Expected calibration error (15 bins)"),
    ("brier", "brier_score", "Brier score"),
)
EXPLANATION_METRICS = (("rouge_l", "rougeL", "ROUGE-L"), ("css", "css", "CSS (all-MiniLM-L6-v2)"))


def _read_json(path: Path) -> dict | None:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def eval_results(metrics: dict, dataset_id: str, model_name: str) -> list:
    """Model-index entries: the detector's image-level metrics, open-ended ROUGE-L/CSS of explanations."""
    from huggingface_hub import EvalResult

    split = metrics["split"]
    common = {"dataset_type": dataset_id, "dataset_name": f"FakeInstruct ({split} split)", "dataset_split": split}

    def entries(task_type: str, task_name: str, values: dict, names) -> list:
        return [
            EvalResult(
                task_type=task_type,
                task_name=task_name,
                metric_type=metric_type,
                metric_name=name,
                metric_value=round(float(values[key]), 4),
                **common,
            )
            for key, metric_type, name in names
            if values.get(key) is not None
        ]

    detector = metrics["detector"].get("calibrated") or metrics["detector"]["raw"]
    results = entries("image-classification", "AI-generated image detection", detector, DETECTOR_METRICS)
    explanation = (metrics["by_task"].get("explanation") or {}).get("open")
    if explanation:
        results += entries("image-text-to-text", "Authenticity explanation", explanation, EXPLANATION_METRICS)
    return results


def training_procedure(config: dict | None, dataset_id: str | None = None) -> str | None:
    """The recipe in words; the data is named by its Hub id, never by the path it had on the training machine."""
    if not config:
        return None
    model, train, script = config["model_args"], config["training_args"], config["script_args"]
    method = (
        f"LoRA (r={model.get('lora_r')}, alpha={model.get('lora_alpha')})"
        if model.get("use_peft")
        else "full fine-tuning"
    )
    lines = [
        f"- Base model: `{model['model_name_or_path']}`",
        f"- Method: {method}, TRL SFTTrainer, loss on assistant tokens only",
        f"- Data: {data_name(script['dataset_name'], dataset_id)}, split `{script['dataset_train_split']}`"
        + (f", tasks {script['dataset_tasks']}" if script.get("dataset_tasks") else ""),
        f"- Learning rate {train['learning_rate']} ({train['lr_scheduler_type']}), "
        f"epochs {train['num_train_epochs']}"
        + (f", max steps {train['max_steps']}" if train.get("max_steps", -1) > 0 else ""),
        f"- Batch: {train['per_device_train_batch_size']} per device x {train['gradient_accumulation_steps']} accumulation",
        f"- Precision: {'bf16' if train.get('bf16') else 'fp16' if train.get('fp16') else 'fp32'}; "
        f"attention: {model.get('attn_implementation') or 'default'}; seed {train['seed']}",
    ]
    return "\n".join(lines)


def data_name(dataset_name: str, dataset_id: str | None) -> str:
    """The training data as a reader can find it: its Hub id, else a Hub id given in the recipe, else "a local
    FakeInstruct folder" (its path on the training machine means nothing to anyone else)."""
    if dataset_id:
        return f"[`{dataset_id}`](https://huggingface.co/datasets/{dataset_id})"
    if not Path(dataset_name).is_absolute() and dataset_name.count("/") == 1 and not Path(dataset_name).exists():
        return f"`{dataset_name}`"
    return f"a local FakeInstruct folder (`{Path(dataset_name).name}`)"


def training_data(dataset_dir: str | Path | None, dataset_id: str | None) -> str | None:
    stats = _read_json(Path(dataset_dir) / "stats.json") if dataset_dir else None
    if stats is None:
        return f"FakeInstruct dataset `{dataset_id}`." if dataset_id else None
    per_task = ", ".join(f"{task} {n:,}" for task, n in sorted(stats["per_task"].items()))
    per_split = ", ".join(f"{split} {n:,}" for split, n in sorted(stats["per_split"].items()))
    where = f" (`{dataset_id}`)" if dataset_id else ""
    return (
        f"FakeInstruct{where}: {stats['pairs']:,} instruction pairs expanded from FakeChain records.\n\n"
        f"- Per task family: {per_task}\n- Per split: {per_split}\n\n"
        "Splits are grouped by source (`source.group`: photograph or author): no image or source appears in two splits."
    )


def calibration_text(model_dir: Path) -> str | None:
    head = _read_json(model_dir / "calibration" / "config.json")
    if head is None:
        return None
    report = _read_json(model_dir / "calibration_report.json")
    text = (
        f"A {head['method']} scaling head (`calibration/`, safetensors) maps the raw token-probability logit "
        "z = log p(Fake) - log p(Real) at the answer position to a calibrated p_fake."
    )
    if report:
        info = report["calibration_split"]
        before, after = report["before"], report["after"]
        text += (
            f" Fitted on the `{info['name']}` split ({info['n']} images): weight {report['weight']:.4f}, "
            f"bias {report['bias']:.4f}. On the `{report['test_split']}` split ({before['n']} images) ECE "
            f"{before['ece']:.4f} -> {after['ece']:.4f}, NLL {before['nll']:.4f} -> {after['nll']:.4f}."
        )
    return text


def render_card(
    model_dir: str | Path,
    *,
    metrics: dict | None = None,
    results_table: str | None = None,
    repo_id: str | None = None,
    dataset_id: str | None = None,
    dataset_dir: str | Path | None = None,
    license: str = "apache-2.0",
    model_name: str | None = None,
    limitations: str | None = None,
    template: str | Path = TEMPLATE,
    **template_vars,
):
    """The rendered ``ModelCard`` for the checkpoint in ``model_dir``; ``template_vars`` go to the template."""
    from huggingface_hub import ModelCard, ModelCardData

    model_dir = Path(model_dir)
    config = _read_json(model_dir / "sft_config.json")
    base = config["model_args"]["model_name_or_path"] if config else None
    name = model_name or (repo_id.split("/")[-1] if repo_id else "FakeScope-Kit detector")
    dataset = dataset_id or "fakeinstruct"
    data = ModelCardData(
        license=license,
        library_name="transformers",
        pipeline_tag="image-text-to-text",
        base_model=base if base and not Path(base).exists() else None,  # a local folder is no Hub model
        datasets=[dataset_id] if dataset_id else None,
        tags=["fakescope-kit", "ai-generated-image-detection", "image-forensics", "calibrated"],
        model_name=name,
        eval_results=eval_results(metrics, dataset, name) if metrics else None,
    )
    return ModelCard.from_template(
        data,
        template_path=str(template),
        model_name=name,
        repo_id=repo_id,
        training_data=training_data(dataset_dir, dataset_id),
        training_procedure=training_procedure(config, dataset_id),
        results_table=results_table,
        calibration=calibration_text(model_dir),
        limitations=limitations,
        **template_vars,
    )
