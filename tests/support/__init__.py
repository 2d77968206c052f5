"""Helpers the tests share (plain functions; fixtures live in ``tests/conftest.py``).

- ``stacks``: run the program for a committed stack, or build a component's config from stack-file values;
- ``bundles``: stand-ins for what one component hands another, to test a consumer on its own;
- ``aws``: what AWS would do with a value: botocore's API models, parliament, EventBridge pattern matching,
  moto_server on 127.0.0.1;
- ``tools``: the local CI tools (git, gitlab-ci-local, check-jsonschema, shellcheck) in a clean environment.
"""
