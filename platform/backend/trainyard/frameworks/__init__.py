"""What the backend knows about each training framework: valid models and hyperparameters.

Adding a framework means a module here, a `framework` literal in `jobs.schemas` and a
trainer under `trainers/<framework>/` that honours docs/trainer-contract.md.
"""
