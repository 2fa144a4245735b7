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
