"""The files that make a folder a runnable Gradio app, locally or as a Hugging Face Space.

:func:`write_app` adds ``app.py`` (:mod:`modeling.hub.app_template`), ``requirements.txt`` and the toolkit's own code
in ``src/`` (``modeling``, ``fakeinstruct`` without the bundled sample), so that ``pip install -r requirements.txt``
then ``python app.py`` works in the folder with nothing else installed. A Space repo holds those
files, ``app_config.json`` naming the model repo to load, and a README whose front matter says ``sdk: gradio``
(:func:`stage_space`; :func:`modeling.hub.export.push_space` pushes it).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

GRADIO_VERSION = "6.31.0"
# What the app imports at run time: the toolkit's base dependencies and the model side's (pyproject.toml).
REQUIREMENTS = (
    "torch>=2.4",
    "transformers>=5.23,<6",
    "safetensors>=0.4",
    "huggingface_hub>=2.4,<3",
    "pydantic>=2.7,<3",
    "jinja2>=3.1,<4",
    "pyyaml>=6",
    "orjson>=3.9",
    "pyarrow>=15",
    "pillow>=10",
    "numpy>=1.26",
    "tqdm>=4.66",
    "matplotlib>=3.8",
    f"gradio=={GRADIO_VERSION}",
)
VENDORED = ("modeling", "fakeinstruct")
APP_FILES = ("app.py", "requirements.txt", "src")


def requirements_text() -> str:
    return (
        "# FakeScope-Kit detector app: pip install -r requirements.txt && python app.py\n"
        + "\n".join(REQUIREMENTS)
        + "\n"
    )


def write_app(folder: str | Path, *, model: str | None = None, revision: str | None = None) -> list[str]:
    """Write app.py, requirements.txt and src/ into ``folder`` (and app_config.json when ``model`` is given: the
    checkpoint the app loads, else the folder itself). Returns the names written."""
    import fakeinstruct
    import modeling

    folder = Path(folder)
    shutil.copyfile(Path(__file__).with_name("app_template.py"), folder / "app.py")
    (folder / "requirements.txt").write_text(requirements_text(), encoding="utf-8")
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.tmp")
    for package in (modeling, fakeinstruct):
        source = Path(package.__file__).resolve().parent

        def skip(directory, names, source=source):
            # the bundled sample (images) is data, not code the app runs
            extra = ["data"] if Path(directory) == source and source.name == "fakeinstruct" else []
            return set(ignore(directory, names)) | set(extra)

        shutil.copytree(source, folder / "src" / source.name, ignore=skip, dirs_exist_ok=True)
    written = list(APP_FILES)
    if model is not None:
        config = {"model": model, **({"revision": revision} if revision else {})}
        (folder / "app_config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
        written.append("app_config.json")
    return written


def space_card(model: str, *, title: str = "FakeScope detector", license: str = "apache-2.0") -> str:
    """README.md of a Space running the app over ``model``."""
    import yaml

    meta = {
        "title": title,
        "emoji": "🔍",
        "colorFrom": "gray",
        "colorTo": "blue",
        "sdk": "gradio",
        "sdk_version": GRADIO_VERSION,
        "app_file": "app.py",
        "pinned": False,
        "license": license,
        "models": [model],
    }
    front = yaml.safe_dump(meta, sort_keys=False, allow_unicode=True)
    return (
        f"---\n{front}---\n\n# {title}\n\nUpload an image to see the probability that it is AI-generated (calibrated and "
        f"raw), p(anomalous) per forgery attribute, the model's explanation, and its test metrics with their "
        f"intervals. Model: [{model}](https://huggingface.co/{model}). Built with FakeScope-Kit; run it locally with "
        "`pip install -r requirements.txt && python app.py`. A 7B model needs GPU hardware for the Space.\n"
    )


def stage_space(
    folder: str | Path, model: str, *, model_revision: str | None = None, license: str = "apache-2.0"
) -> Path:
    """Fill ``folder`` with a Gradio Space over the model repo ``model`` (at ``model_revision``): the app files,
    app_config.json and the Space's README; :func:`modeling.hub.export.push_space` pushes it."""
    folder = Path(folder)
    write_app(folder, model=model, revision=model_revision)
    (folder / "README.md").write_text(space_card(model, license=license), encoding="utf-8")
    return folder
