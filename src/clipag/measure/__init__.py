"""Measurements: zero-shot accuracy clean and under attack (metrics, robustness, apgd), the targeted measure
of PAG (pag), evaluator scores and aesthetics (evaluate, aesthetic), and guides side by side (compare)."""
