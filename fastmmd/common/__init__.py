"""Layer 0: argument checks and the numpy-in, numpy-out convention, shared by every layer above."""
