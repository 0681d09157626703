"""Pure tensor math of the stages' losses: tensors in, tensors and metrics out."""
