"""What every Trainyard trainer shares (docs/trainer-contract.md): the callback client
(`callbacks`), stop requests and SIGTERM (`control`), heartbeats and the keep-alive thread
(`progress`) with their system metrics (`system_metrics`), object storage (`storage`,
`publishing`), dataset and checkpoint locations (`sources`, `resume`), atomic saves
(`atomic_save`), the environment contract's common part (`settings`), how an attempt starts
(`entrypoint`) and ends (`outcome`). Test helpers for the trainers' suites are in
`trainer_kit.testing`.

Like the trainers, it talks to the platform only over HTTP and environment variables and imports
nothing from it. Each trainer depends on it as a path dependency (``../kit``).
"""
