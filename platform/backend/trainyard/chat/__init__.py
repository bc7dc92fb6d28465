"""The chat planner: a conversation turns into a typed, previewed `TrainingPlan`."""
