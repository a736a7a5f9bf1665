"""STM32 / CMSIS-NN target: int8 quantization, C project generation, host and QEMU verification."""
