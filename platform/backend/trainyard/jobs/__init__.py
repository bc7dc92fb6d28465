"""Training jobs: submission, the state machine, events and cancellation."""
