"""The secrets file: the main file's shape, holding only secrets, with list items keyed.

An installer writes the password of account `sip:1001@pbx.example` as
`sip: {accounts: {"sip:1001@pbx.example": {password: ...}}}`: items are named by their key
field rather than by position, so reordering accounts in the main file cannot hand one
account's password to another.
"""

from __future__ import annotations

from yaml.nodes import Node

from firmware.config.checks import show
from firmware.config.errors import Issue
from firmware.config.fields import ListKind, Secret, SectionKind, Spec, specs
from firmware.config.walk import Address, Override, Secrets, Walk, join, line_of


def holds_secrets(spec: Spec) -> bool:
    """Whether a setting is a secret or contains one the secrets file can address."""
    if spec.is_secret:
        return True
    if isinstance(spec.kind, SectionKind):
        return any(holds_secrets(inner) for inner in specs(spec.kind.cls))
    if isinstance(spec.kind, ListKind) and isinstance(spec.kind.item, SectionKind):
        inner_specs = specs(spec.kind.item.cls)
        return spec.about.key is not None and any(holds_secrets(inner) for inner in inner_specs)
    return False


def read_secrets(
    walk: Walk, cls: type, node: Node | None, path: str, *, address: Address, main_file: str
) -> None:
    """Record the secrets under `node` in `walk.secrets`, reporting anything else as an issue."""
    entries = walk.entries(node, path)
    if entries is None:
        return
    settings = {spec.name: spec for spec in specs(cls)}
    addressable = [name for name, spec in settings.items() if holds_secrets(spec)]
    for name, (key, value) in entries.items():
        spec = settings.get(name)
        sub, sub_address = join(path, name), (*address, name)
        if spec is None:
            walk.unknown(key, path, addressable)
        elif not holds_secrets(spec):
            walk.report(key, sub, f"not a secret; set it in {main_file}")
        elif spec.is_secret:
            secret = walk.convert(spec.kind, spec.about, value, sub, address=None, secret=True)
            if isinstance(secret, Secret):
                walk.secrets.values[sub_address] = Override(secret, line_of(value))
        elif isinstance(spec.kind, SectionKind):
            read_secrets(walk, spec.kind.cls, value, sub, address=sub_address, main_file=main_file)
        else:
            _read_items(walk, spec, value, sub, address=sub_address, main_file=main_file)


def _read_items(
    walk: Walk, spec: Spec, node: Node, path: str, *, address: Address, main_file: str
) -> None:
    assert isinstance(spec.kind, ListKind) and isinstance(spec.kind.item, SectionKind)
    entries = walk.entries(node, path)
    if entries is None:
        return
    for item_key, (key, value) in entries.items():
        item_path = f"{path}[{show(item_key)}]"
        item_address = (*address, item_key)
        message = f"no item of {path} in {main_file} has {spec.about.key} {show(item_key)}"
        walk.secrets.items[item_address] = (line_of(key), item_path, message)
        item_cls = spec.kind.item.cls
        read_secrets(walk, item_cls, value, item_path, address=item_address, main_file=main_file)


def unmatched_items(secrets: Secrets) -> list[Issue]:
    """Issues for list items of the secrets file that no item of the main file matched."""
    return [
        Issue(secrets.file, line, path, message)
        for address, (line, path, message) in secrets.items.items()
        if address not in secrets.matched
    ]
