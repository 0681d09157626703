"""Shared training components: optimizer and schedule, the forward/backward step."""
