"""Strict names for models, aliases, tags and artifact files, and model URIs.

Names end up in file paths, SQL rows and URLs, so they are checked once, here,
with a strict pattern: nothing like `../x`, `/etc/passwd` or `a b` gets in.

>>> parse_uri("models:/fraud@champion")
ModelRef(name='fraud', version=None, alias='champion')
>>> parse_uri("fraud/3")
ModelRef(name='fraud', version=3, alias=None)
"""

from __future__ import annotations

import re
from typing import NamedTuple

from mlsd.errors import ValidationError

NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
ALIAS_RE = re.compile(r"[a-z][a-z0-9_-]{0,31}")
TAG_KEY_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:/-]{0,63}")
FILENAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
MAX_TAG_VALUE = 256
URI_SCHEME = "models:/"


class ModelRef(NamedTuple):
    """A parsed model reference: a name and either a version or an alias."""

    name: str
    version: int | None
    alias: str | None


def _check(pattern: re.Pattern[str], value: object, field: str, what: str) -> str:
    if not isinstance(value, str) or not pattern.fullmatch(value) or ".." in value:
        raise ValidationError(
            f"invalid {what} {value!r}: expected {pattern.pattern} without '..'", field=field
        )
    return value


def check_name(name: object) -> str:
    """A model name: letters, digits, `_ . -`; no slash, no `..`, not absolute."""
    return _check(NAME_RE, name, "name", "model name")


def check_alias(alias: object) -> str:
    """An alias such as `champion`: lower-case, starts with a letter (so never a version)."""
    return _check(ALIAS_RE, alias, "alias", "alias")


def check_filename(filename: object) -> str:
    """An artifact file name such as `model.lgb.txt`: one path component, no `..`."""
    return _check(FILENAME_RE, filename, "artifacts", "artifact file name")


def check_tag(key: object, value: object) -> tuple[str, str]:
    """A free tag `key=value`, e.g. `release=v3.2-prod`."""
    _check(TAG_KEY_RE, key, "tags", "tag key")
    if not isinstance(value, str) or len(value) > MAX_TAG_VALUE:
        raise ValidationError(
            f"tag {key!r} needs a string value of at most {MAX_TAG_VALUE} characters",
            field="tags",
        )
    return str(key), value


def check_version(version: object) -> int:
    """A version number: a positive integer."""
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ValidationError(
            f"invalid version {version!r}: expected an integer >= 1", field="version"
        )
    return version


def parse_uri(uri: str) -> ModelRef:
    """Parse `models:/fraud@champion`, `models:/fraud/3`, `fraud@champion` or `fraud/3`."""
    text = uri.strip()
    if text.startswith(URI_SCHEME):
        text = text[len(URI_SCHEME) :]
    if "@" in text:
        name, _, alias = text.partition("@")
        return ModelRef(check_name(name), None, check_alias(alias))
    if "/" in text:
        name, _, number = text.partition("/")
        if not number.isdecimal():
            raise ValidationError(
                f"invalid model URI {uri!r}: version must be a number", field="uri"
            )
        return ModelRef(check_name(name), check_version(int(number)), None)
    raise ValidationError(
        f"invalid model URI {uri!r}: expected models:/NAME/VERSION or models:/NAME@ALIAS",
        field="uri",
    )


def format_uri(name: str, version: int) -> str:
    """The canonical URI of one version."""
    return f"{URI_SCHEME}{name}/{version}"
