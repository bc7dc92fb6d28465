"""Tests of the chat planner."""
