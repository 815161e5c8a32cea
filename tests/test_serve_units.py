"""The server's pure pieces without a server: text checks, media types, start-up checks, the
OpenAPI schema's constraints against the checks the server runs, security headers."""

from __future__ import annotations

import functools
import json
import shutil
import socket

import pytest

pytest.importorskip("fastapi", reason="serving needs the serve extra (fastapi)")

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from rankkit.errors import RankkitError  # noqa: E402
from rankkit.index.kinds import index_kind  # noqa: E402
from rankkit.index.manifest import CorpusInfo, Manifest  # noqa: E402
from rankkit.serve.app import Server, create_app, is_json_media_type  # noqa: E402
from rankkit.serve.config import ServeConfig  # noqa: E402
from rankkit.serve.errors import ApiError  # noqa: E402
from rankkit.serve.security import csp_hash, with_security_headers  # noqa: E402
from rankkit.serve.startup import check_api_key, check_startup  # noqa: E402
from rankkit.serve.text import has_visible_text, normalise_query, unencodable  # noqa: E402


@pytest.mark.parametrize(
    "text, visible",
    [
        ("sky", True),
        ("", False),
        (" \t\n", False),
        ("\u200b\u200d", False),
        ("\ufeff\u2060 \u00ad", False),
        ("\x00\x07", False),
        ("\u200bx", True),
        ("日本", True),
        ("🙂", True),
    ],
)
def test_has_visible_text(text, visible):
    assert has_visible_text(text) is visible


def test_unencodable_names_the_lone_surrogate():
    assert unencodable("sky blue") is None and unencodable("🙂") is None
    assert "'\\ud800' at position 6" in unencodable("stars \ud800")


def test_normalise_query():
    assert normalise_query("  why is\tthe sky\n blue ") == "why is the sky blue"


@pytest.mark.parametrize(
    "value, ok",
    [
        ("application/json", True),
        ("application/json; charset=utf-8", True),
        ("APPLICATION/JSON ;charset=UTF-8", True),
        ("text/plain; x=json", False),
        ("application/jsonp", False),
        ("", False),
        ("json", False),
    ],
)
def test_is_json_media_type(value, ok):
    assert is_json_media_type(value) is ok


@pytest.mark.parametrize("key", ["", "clé", "two words", "tab\there", "\x7f"])
def test_check_api_key_refuses(key):
    with pytest.raises(RankkitError, match="API key.*Fix:"):
        check_api_key(key)


def test_check_api_key_accepts():
    check_api_key(None)
    check_api_key("s3cr3t-K3y_~!")


def write_manifest(folder, kind: str) -> None:
    """A manifest over placeholder files of the kind's layout (what check_startup checks)."""
    folder.mkdir()
    for name in index_kind(kind).required_files:
        (folder / name).mkdir() if name == "lucene" else (folder / name).write_text("x")
    if kind == "bm25":
        (folder / "lucene" / "segments_1").write_text("x")
    Manifest(kind=kind, count=1, corpus=CorpusInfo("c.tsv", "tsv", "", 0), index_type="Flat").write(folder)


def test_check_startup(tmp_path):
    write_manifest(tmp_path / "bm25", "bm25")
    check_startup(ServeConfig(indexes=(str(tmp_path / "bm25"),), api_key="k"))
    with pytest.raises(RankkitError, match="nothing to serve"):
        check_startup(ServeConfig())
    with pytest.raises(RankkitError, match="API key is empty"):
        check_startup(ServeConfig(indexes=(str(tmp_path / "bm25"),), api_key=""))
    (tmp_path / "bm25" / "lucene" / "segments_1").write_text("truncated")
    with pytest.raises(RankkitError, match="segments_1: 9 bytes, but 1 when the index was built.*Fix: rebuild"):
        check_startup(ServeConfig(indexes=(str(tmp_path / "bm25"),)))


def test_check_port_refuses_a_port_in_use():
    from rankkit.serve.startup import check_port

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(RankkitError, match=f"127.0.0.1:{port}: cannot listen there.*Fix: choose another --port"):
            check_port("127.0.0.1", port)
    check_port("127.0.0.1", port)  # free again


def test_two_indexes_of_one_kind_are_two_modes_and_one_folder_twice_is_refused(tmp_path):
    for name, kind in (("a", "dense"), ("b", "dense"), ("c", "bm25")):
        write_manifest(tmp_path / name, kind)
    folders = [str(tmp_path / name) for name in "abc"]
    assert ServeConfig(indexes=tuple(folders)).index_modes == {
        "dense:a": folders[0],
        "dense:b": folders[1],
        "bm25": folders[2],
    }
    with pytest.raises(RankkitError, match=r"c: given twice with -i. Fix: pass each index once"):
        check_startup(ServeConfig(indexes=(folders[2], folders[2])))
    (tmp_path / "other").mkdir()
    shutil.copytree(tmp_path / "a", tmp_path / "other" / "a")
    with pytest.raises(RankkitError, match=r"would both be served as the mode 'dense:a'. Fix: pass each index once"):
        check_startup(ServeConfig(indexes=(folders[0], str(tmp_path / "other" / "a"))))


def test_security_headers_keep_a_policy_the_response_set():
    added = dict(with_security_headers([(b"content-security-policy", b"default-src 'self'")]))
    assert added[b"content-security-policy"] == b"default-src 'self'"
    assert added[b"x-content-type-options"] == b"nosniff" and added[b"x-frame-options"] == b"DENY"
    assert b"frame-ancestors 'none'" in dict(with_security_headers([]))[b"content-security-policy"]


def test_csp_hash():
    # the SHA-256 of "" in base64, as browsers compute it for an empty inline script
    assert csp_hash("") == "'sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU='"


CONFIG = ServeConfig(max_query_chars=40)  # no index: the schema reads no manifest


@functools.cache
def query_validator():
    jsonschema = pytest.importorskip("jsonschema")
    schema = create_app(CONFIG).openapi()["components"]["schemas"]["SearchRequest"]["properties"]["query"]
    return jsonschema.Draft202012Validator(schema)


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet=st.characters(exclude_categories=()), max_size=60))
def test_the_schema_accepts_exactly_the_queries_the_server_accepts(text):
    # the OpenAPI constraints of `query` (minLength, maxLength, pattern) and Server.check_query agree,
    # so schemathesis (or any client generated from the schema) meets no undocumented refusal
    try:
        Server(CONFIG).check_query(text)
        accepted = True
    except ApiError:
        accepted = False
    valid = query_validator().is_valid(text)
    assert accepted == (valid and unencodable(text) is None), (json.dumps(text), accepted, valid)
