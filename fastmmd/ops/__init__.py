"""The public ops, one per module: forward, backward and dispatch to a backend."""
