"""The arena memory plan: TFLM's greedy planner, its tail, offline plans and the board budget."""

from firmware_export.plan.arena import ArenaPlan, MemoryPlan, plan_arena, plan_memory
from firmware_export.plan.planner import (
    BufferRequest,
    GreedyMemoryPlanner,
    align_up,
    find_overlaps,
    lower_bound,
)

__all__ = ["ArenaPlan", "BufferRequest", "GreedyMemoryPlanner", "MemoryPlan", "align_up",
           "find_overlaps", "lower_bound", "plan_arena", "plan_memory"]
