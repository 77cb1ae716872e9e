"""The suite as one package, so that a test folder named like a product package (tests/unit/workloads)
is never importable as that package: pytest puts the checkout root on sys.path, not tests/unit."""
