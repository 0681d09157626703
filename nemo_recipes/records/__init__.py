"""Typed records at the project's boundaries (torch-free): chat records (`chat.py`), task records
(`task.py`) and rollout records (`rollout.py`). The bottom of the data model: every layer may read them."""
