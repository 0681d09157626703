"""`redone run`: the recipe's units in order (`runner.py`), their manifests, preflight, child processes
and the final report."""
