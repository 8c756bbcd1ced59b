"""The program evaluated offline: the mock harness, plans, and the checks CI runs on them."""
