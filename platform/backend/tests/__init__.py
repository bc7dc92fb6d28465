"""Backend tests (a package so pytest names its modules tests.*, not platform.*)."""
