"""Modeling side of FakeScope-Kit, one subpackage per stage of the pipeline:

- ``training``: supervised fine-tuning (``scripts/sft.py``), preemption-safe checkpoints and resuming, LoRA merge
- ``scoring``: token-probability scores, greedy answers, the labelled images of a split and their cached scores
- ``calibration``: the calibration head and the stage that fits it (``scripts/calibrate.py``)
- ``evaluation``: the evaluation stage (``scripts/evaluate.py``), its metrics, plots and tables
- ``hub``: the publishable folder and model card (``scripts/push_to_hub.py``)
- ``tiny``: tiny LLaVA and Idefics3 checkpoints built offline (tests, demo, CPU recipes)

and at the top: the detector users load (``detector``, ``detector_config``), safe checkpoint loading and the
``fakescope`` command.
"""
