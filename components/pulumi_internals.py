"""The one place that uses Pulumi's private runtime API; everything else uses the public SDK.

Two things the public API cannot do:

- list every config key a stack sets (to refuse unknown and misspelt ones; ``pulumi.Config`` reads a key it is
  told), with whether each is a secret: ``stack_config_keys``;
- record what a program registers, with the options the engine sees (parent, protect, ignoreChanges...), for
  the offline engine: the mock monitor, the wire format of secrets and properties, the root resource.

``tests/test_pulumi_internals.py`` pins this module to the SDK version in requirements.txt: an SDK upgrade that
moves any of these names fails there, in one place, instead of wherever they would be used.
"""

from __future__ import annotations

from typing import Any

import pulumi
from google.protobuf import struct_pb2
from pulumi.runtime import config as _runtime_config
from pulumi.runtime import mocks as _mocks
from pulumi.runtime import rpc as _rpc
from pulumi.runtime import settings as _settings

SECRET_SIG_KEY: str = _rpc._special_sig_key
"""The key marking a special value in Pulumi's wire format of properties."""
SECRET_SIG_VALUE: str = _rpc._special_secret_sig
"""The marker value of a secret under ``SECRET_SIG_KEY``."""

MockMonitor = _mocks.MockMonitor
"""The in-process monitor ``pulumi.runtime.set_mocks`` uses; subclassed to record registrations."""


def stack_config_keys() -> dict[str, bool]:
    """Every config key (``namespace:key``) the running stack sets, and whether its value is a secret."""
    keys = {**_runtime_config.get_config_env(), **_runtime_config.CONFIG.get()}
    secret_env = set(_runtime_config.get_config_secret_keys_env())
    return {key: _runtime_config.is_config_secret(key) or key in secret_env for key in keys}


def ensure_event_loop() -> None:
    """The mock monitor's registrations run on the event loop of the program under test."""
    _mocks._ensure_event_loop()  # type: ignore[attr-defined,no-untyped-call]


def register_resource(monitor: Any, request: Any) -> Any:
    """The mock monitor's own handling of a registration (what a recording subclass calls first)."""
    return _mocks.MockMonitor.RegisterResource(monitor, request)  # type: ignore[no-untyped-call]


def test(function: Any) -> Any:
    """``pulumi.runtime.test``: runs ``function`` under the mocks and waits for every output it returns."""
    return pulumi.runtime.test(function)  # type: ignore[no-untyped-call]


def deserialize_properties(struct: Any) -> Any:
    """A registration request's properties as Python values, secrets kept wrapped."""
    return _rpc.deserialize_properties(struct)


def replacement_trigger(request: Any) -> Any:
    """A registration request's ``replacement_trigger`` option (a ``google.protobuf.Value``) as a Python value,
    secrets kept wrapped; ``None`` when the resource sets none."""
    if not request.HasField("replacement_trigger"):
        return None
    wrapper = struct_pb2.Struct()
    wrapper.fields["trigger"].CopyFrom(request.replacement_trigger)
    return _rpc.deserialize_properties(wrapper)["trigger"]


def reset_root_resource() -> None:
    """Forget the previous program's stack resource, so that the next run registers its own."""
    _settings.set_root_resource(None)  # type: ignore[arg-type]


def root_resource_outputs() -> dict[str, Any]:
    """The outputs the program exported (``pulumi.export``), as the stack resource holds them."""
    return dict(getattr(_settings.get_root_resource(), "outputs", {}))
