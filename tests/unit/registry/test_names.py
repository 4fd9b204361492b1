from __future__ import annotations

import pytest

from mlsd.errors import ValidationError
from mlsd.registry.names import (
    ModelRef,
    check_alias,
    check_filename,
    check_name,
    check_tag,
    format_uri,
    parse_uri,
)


@pytest.mark.parametrize("name", ["fraud", "Fraud_v2", "a.b-c", "x" * 64])
def test_good_names_pass(name: str) -> None:
    assert check_name(name) == name


@pytest.mark.parametrize(
    "name", ["../evil", "..", "a/b", "/etc/passwd", "", "a b", ".hidden", "x" * 65, "a..b", 3]
)
def test_escaping_or_malformed_names_are_rejected(name: object) -> None:
    with pytest.raises(ValidationError) as info:
        check_name(name)
    assert info.value.field == "name"


@pytest.mark.parametrize("filename", ["../model.txt", "/abs.onnx", "a/b.txt", "..", ""])
def test_artifact_file_names_cannot_escape(filename: str) -> None:
    with pytest.raises(ValidationError) as info:
        check_filename(filename)
    assert info.value.field == "artifacts"


@pytest.mark.parametrize("alias", ["3", "Champion", "", "a@b", "-x"])
def test_bad_aliases_are_rejected(alias: str) -> None:
    with pytest.raises(ValidationError):
        check_alias(alias)


def test_tags_need_a_sane_key_and_a_short_string_value() -> None:
    assert check_tag("release", "v3.2-prod") == ("release", "v3.2-prod")
    with pytest.raises(ValidationError):
        check_tag("bad key", "x")
    with pytest.raises(ValidationError):
        check_tag("k", "x" * 257)


@pytest.mark.parametrize(
    ("uri", "ref"),
    [
        ("models:/fraud@champion", ModelRef("fraud", None, "champion")),
        ("models:/fraud/3", ModelRef("fraud", 3, None)),
        ("fraud@challenger", ModelRef("fraud", None, "challenger")),
        ("fraud/12", ModelRef("fraud", 12, None)),
    ],
)
def test_uris_parse(uri: str, ref: ModelRef) -> None:
    assert parse_uri(uri) == ref


@pytest.mark.parametrize(
    "uri", ["fraud", "fraud/0", "fraud/x", "fraud/-1", "models:/../x/1", "models:/a/b/1", "f@"]
)
def test_bad_uris_are_rejected(uri: str) -> None:
    with pytest.raises(ValidationError):
        parse_uri(uri)


def test_format_uri_round_trips() -> None:
    assert parse_uri(format_uri("fraud", 7)) == ModelRef("fraud", 7, None)
