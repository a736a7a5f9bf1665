"""Static memory planners (arena, main memory, KPU RAM)."""
