"""Targets: what a converted model becomes (kmodel file, K210 SDK project, STM32 CMSIS-NN project)."""
