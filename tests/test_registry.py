import pytest

from evocl.errors import UserError
from evocl.registry import Registry


def test_lazy_load_check_and_register():
    reg = Registry("thing", {"json": ("json:dumps", "JSON text")})
    assert reg.names() == ("json",) and "json" in reg
    assert reg.load("json")({"a": 1}) == '{"a": 1}'
    assert reg.help() == "json (JSON text)"
    reg.register("path-join", "os.path:join")
    assert reg.load("path-join")("a", "b") == "a/b"
    with pytest.raises(UserError, match="thing: must be one of json, path-join, got 'jsn'; did you mean 'json'"):
        reg.check("jsn")
    with pytest.raises(ValueError):
        reg.register("bad", "no_colon")


def test_engine_table_loads_engines_named_as_registered():
    from evocl.evolution import Engine
    from evocl.registry import ENGINES

    for name in ENGINES:
        cls = ENGINES.load(name)
        assert issubclass(cls, Engine) and cls.algorithm == name   # state() names it so
        assert ENGINES.summary(name)


def test_executor_table_and_create_executor():
    from evocl.execution import LocalExecutor, create_executor, resolve_kind
    from evocl.registry import EXECUTORS

    assert EXECUTORS.path("ray") == "evocl.execution.ray_executor:RayExecutor"  # not imported here
    ex = create_executor("local", target="evocl.execution.testing:noop")
    assert isinstance(ex, LocalExecutor)
    with pytest.raises(UserError, match="executor: must be auto or one of local, ray"):
        resolve_kind("dask", 1, None)
