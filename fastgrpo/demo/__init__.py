"""The CPU demo: fast-slow thinking reproduced in miniature (sums of k digits, a tiny Qwen2)."""
