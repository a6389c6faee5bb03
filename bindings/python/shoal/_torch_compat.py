"""Makes torch 1.13's torch.distributed._shard.checkpoint import on Python 3.11 (Debian 12:
python3-torch 1.13 with Python 3.11); shoal.dcp applies it before importing DCP.

The bug is torch's: sharded_tensor/metadata.py declares a dataclass field whose default is an
instance of another (non-frozen, hence unhashable) dataclass, which Python 3.11's dataclasses
refuse ("mutable default ... is not allowed: use default_factory"). While that module is
imported, this patch turns such a default into default_factory returning a copy of it, which
is what torch meant. It applies itself only where needed: when the module imports as it is
(torch >= 2, Python < 3.11, a fixed torch) nothing is touched, and the standard library's
function is put back as soon as torch's module is imported.
"""
import copy
import dataclasses
import sys


def apply():
    if sys.version_info < (3, 11):
        return
    try:
        import torch.distributed._shard.checkpoint  # noqa: F401
        return  # imports fine: nothing to do
    except ValueError:
        pass
    except ImportError:
        return
    for name in list(sys.modules):  # drop the half-imported modules
        if name.startswith("torch.distributed._shard"):
            del sys.modules[name]
    original = dataclasses._get_field

    def unhashable_instance(v):
        return (dataclasses.is_dataclass(v) and not isinstance(v, type)
                and v.__class__.__hash__ is None)

    def lenient(cls, a_name, a_type, *rest):
        default = cls.__dict__.get(a_name, dataclasses.MISSING)
        if isinstance(default, dataclasses.Field) and unhashable_instance(default.default):
            value = default.default
            default.default = dataclasses.MISSING
            default.default_factory = lambda d=value: copy.deepcopy(d)
        elif unhashable_instance(default):
            setattr(cls, a_name, dataclasses.field(
                default_factory=lambda d=default: copy.deepcopy(d)))
        return original(cls, a_name, a_type, *rest)

    dataclasses._get_field = lenient
    try:
        import torch.distributed._shard.checkpoint  # noqa: F401,F811
    finally:
        dataclasses._get_field = original
