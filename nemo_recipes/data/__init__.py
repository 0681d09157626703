"""Trainer-side data: tokenising chat records, packing them into rows, collating tensor batches."""
