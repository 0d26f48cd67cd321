"""A Gradio app over a detector: upload an image, see p_fake (calibrated and raw), a bar per forgery attribute, the
explanation, and the model card's test metrics with their intervals.

    python app.py --model DIR                       # in a folder exported with scripts/push_to_hub.py --app
    python -m modeling.hub.app --model outputs/demo/publish --port 7861

The model is ``--model``, else ``$FAKESCOPE_MODEL``, else ``app_config.json`` beside ``app.py`` (what a Space is
pushed with), else the folder ``app.py`` is in. ``eval/metrics.json`` of the model folder, when there is one, gives the
test metrics: every AUC and accuracy it holds, with the ``low``/``high`` of its interval where it has one. On a
Space (``GRADIO_SERVER_NAME``/``GRADIO_SERVER_PORT`` set) the app listens where the Space says.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
from pathlib import Path

from modeling.scoring.results import NO_TEXT

logger = logging.getLogger(__name__)
MODEL_ENV = "FAKESCOPE_MODEL"
APP_CONFIG = "app_config.json"
# where an export keeps the test metrics (modeling.hub.export puts eval files under eval/); older exports had them
# at the root
METRICS_FILES = ("eval/metrics.json", "metrics.json")
METRIC_NAMES = {"auc": "AUC", "accuracy": "Accuracy"}


def metric_rows(metrics: dict | None) -> list[dict]:
    """Every AUC/accuracy of ``metrics.json``'s detector (and baselines) with its interval bounds when present.

    Tolerant of the layouts metrics.json has had: a plain number, a number with ``intervals: {auc: {low, high}}``
    beside it, or ``{"value", "low", "high"}`` in place of the number.
    """
    rows = []
    for section, prefix in (("detector", "model"), ("baselines", "baseline")):
        for name, entry in ((metrics or {}).get(section) or {}).items():
            if not isinstance(entry, dict):
                continue
            intervals = entry.get("intervals") if isinstance(entry.get("intervals"), dict) else {}
            for key, label in METRIC_NAMES.items():
                value, interval = entry.get(key), intervals.get(key) or {}
                if isinstance(value, dict):
                    value, interval = value.get("value"), value
                if not isinstance(value, (int, float)):
                    continue
                rows.append(
                    {
                        "scores": f"{prefix} ({name})" if prefix == "model" else f"{prefix}: {name}",
                        "metric": label,
                        "value": float(value),
                        "low": interval.get("low") if isinstance(interval, dict) else None,
                        "high": interval.get("high") if isinstance(interval, dict) else None,
                        "level": interval.get("level") if isinstance(interval, dict) else None,
                        "n": entry.get("n"),
                    }
                )
    return rows


def metrics_markdown(metrics: dict | None) -> str:
    """The test metrics as a markdown table, or a line saying there are none."""
    rows = metric_rows(metrics)
    if not rows:
        return "No test metrics were published with this model (no `metrics.json` with AUC or accuracy)."
    levels = {r["level"] for r in rows if r["level"]}
    interval = f"{round(100 * levels.pop())} % interval" if len(levels) == 1 else "interval"
    lines = [f"| p_fake | metric | value | {interval} | images |", "|---|---|---|---|---|"]
    for r in rows:
        bounds = f"[{r['low']:.3f}, {r['high']:.3f}]" if r["low"] is not None and r["high"] is not None else "n/a"
        lines.append(f"| {r['scores']} | {r['metric']} | {r['value']:.3f} | {bounds} | {r['n'] or ''} |")
    split = (metrics or {}).get("split")
    head = f"**Test metrics** ({split} split)" if split else "**Test metrics**"
    return head + "\n\n" + "\n".join(lines)


def load_metrics(folder: str | Path | None) -> dict | None:
    paths = [Path(folder) / name for name in METRICS_FILES] if folder is not None else []
    path = next((p for p in paths if p.is_file()), None)
    if path is None:
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        logger.warning("cannot read %s: %s", path, err)
        return None


def analyse(detector, image, explain: bool = True):
    """What the page shows for one image: verdict bars, p_fake, p_fake_raw, attribute bars, explanation."""
    if image is None:
        return None, None, None, None, ""
    result = detector(image, explain=explain, attributes=bool(detector.config.attributes))
    p = result["p_fake"]
    return (
        {"fake": p, "real": 1.0 - p},
        round(p, 4),
        round(result["p_fake_raw"], 4),
        result.get("attributes") or {},
        (result.get("explanation") or NO_TEXT) if explain else "",
    )


def build_demo(detector, metrics: dict | None = None, title: str = "FakeScope detector"):
    """The Gradio Blocks app for ``detector``."""
    import gradio as gr

    calibrated = "calibrated" if detector.calibration is not None else "uncalibrated: no head was fitted"
    with gr.Blocks(title=title) as demo:
        gr.Markdown(
            f"# {title}\nUpload an image. **p_fake** is the probability that it is AI-generated ({calibrated}); "
            '**p_fake_raw** is the model\'s token probability of answering "Fake" before calibration. The bars per '
            "forgery attribute are p(anomalous) from the attribute questions."
        )
        with gr.Row():
            with gr.Column():
                image = gr.Image(type="pil", label="Image", elem_id="image-input", sources=["upload"])
                explain = gr.Checkbox(value=True, label="Generate an explanation")
                button = gr.Button("Analyse", variant="primary", elem_id="analyse")
            with gr.Column():
                verdict = gr.Label(label="Verdict", elem_id="verdict")
                with gr.Row():
                    p_fake = gr.Number(label="p_fake (calibrated)", elem_id="p-fake", precision=4)
                    p_raw = gr.Number(label="p_fake_raw", elem_id="p-fake-raw", precision=4)
                attributes = gr.Label(
                    label="Forgery attributes: p(anomalous)",
                    num_top_classes=max(1, len(detector.config.attributes)),
                    elem_id="attributes",
                )
                explanation = gr.Textbox(label="Explanation", lines=5, elem_id="explanation")
        gr.Markdown(metrics_markdown(metrics), elem_id="metrics")
        outputs = [verdict, p_fake, p_raw, attributes, explanation]

        def run(img, want_explanation):
            return analyse(detector, img, explain=want_explanation)

        image.upload(run, [image, explain], outputs)
        button.click(run, [image, explain], outputs)
    return demo


def default_model(here: Path | None) -> tuple[str | None, str | None]:
    """(model, revision) from ``$FAKESCOPE_MODEL``, ``app_config.json`` beside the app, or the app's own folder."""
    if os.environ.get(MODEL_ENV):
        return os.environ[MODEL_ENV], None
    if here is not None and (here / APP_CONFIG).is_file():
        config = json.loads((here / APP_CONFIG).read_text(encoding="utf-8"))
        return config.get("model"), config.get("revision")
    if here is not None and (here / "config.json").is_file():
        return str(here), None
    return None, None


def main(argv: list[str] | None = None, here: str | Path | None = None) -> None:
    from fakeinstruct.arguments import HelpFormatter, both_spellings

    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    here = Path(here) if here is not None else None
    model, revision = default_model(here)
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=HelpFormatter, epilog=__doc__.split("\n\n", 1)[1]
    )
    parser.add_argument("--model", default=model, required=model is None, help="checkpoint folder or Hub repo id")
    parser.add_argument("--revision", default=revision, help="Hub branch, tag or commit")
    parser.add_argument("--device", help="torch device (default: where the model loads)")
    parser.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"), help="address to serve")
    parser.add_argument(
        "--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", "7860")), help="port to serve"
    )
    parser.add_argument(*both_spellings("--batch_size"), type=int, default=1, help="images per forward pass")
    parser.add_argument("-v", "--verbose", action="store_true", help="log what happens")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    from modeling.detector import FakeScopeDetector

    detector = FakeScopeDetector.from_pretrained(
        args.model, revision=args.revision, device=args.device, batch_size=args.batch_size
    )
    metrics = load_metrics(detector.source)
    demo = build_demo(detector, metrics)
    logger.info("serving %s on http://%s:%d", args.model, args.host, args.port)
    demo.launch(server_name=args.host, server_port=args.port, share=False, show_error=True)


if __name__ == "__main__":
    main()
