"""Slurm: the sbatch template and `redone slurm submit` (a local test cluster: tests/slurm/)."""
