"""`redone run`: the recipe's units in order (`runner.py`: the unit table and the loop), what each unit
leaves (`outputs.py`), manifests, preflight, child processes, errors and the final report."""
