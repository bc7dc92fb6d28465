"""Test helpers every trainer's test suite uses: a recording callback server, a real S3 endpoint
(moto in server mode) and launching the trainer under test as a process. Loaded as a pytest
plugin (``-p trainer_kit.testing.fixtures`` in the suite's ``addopts``); not part of trainer
images."""
