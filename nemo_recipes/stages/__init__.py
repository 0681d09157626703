"""The stages of the recipe: one short explicit loop each, composed from shared components."""
