"""K210 target: KPU quantization, lowering to kmodel v3 layers, memory planning, SDK project."""
