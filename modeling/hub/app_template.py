#!/usr/bin/env python
"""FakeScope detector demo: a Gradio app over the checkpoint in this folder, or any other.

    pip install -r requirements.txt
    python app.py                    # the model in this folder (or app_config.json's), http://127.0.0.1:7860
    python app.py --model DIR        # another checkpoint folder or Hub repo id; --port, --host, --device

Copied as app.py by FakeScope-Kit's export (scripts/push_to_hub.py --app, --space_repo_id). The toolkit's code it
runs comes with it in src/ (modeling, fakeinstruct), so the folder runs on its own, on a Hugging Face Space too.
"""

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
if (HERE / "src" / "modeling").is_dir():
    sys.path.insert(0, str(HERE / "src"))

from modeling.hub.app import main  # noqa: E402

if __name__ == "__main__":
    main(here=HERE)
