"""KMS's tag rules, as pure functions of a key: what TagResource, UntagResource and CreateKey's Tags may do.

A tag key is 1 to 128 characters and a value 0 to 256 (the input models check those lengths: ValidationException);
the rules here are KMS's TagException: at most :data:`MAX_TAGS` tags on a key, a tag key given once per request, and
no tag key starting with ``aws:`` in any case (reserved for AWS). A key pending deletion cannot be tagged or untagged
(KMSInvalidStateException, as KMS's key states table says). No I/O: ``syncsvc.kms.lifecycle`` applies these through
the compare-and-set core, so the tags stay in the key's own hash (``meta``) and one HGETALL still reads a key.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from syncsvc.errors import TagError
from syncsvc.kms.model import MasterKey

MAX_TAGS = 50
_RESERVED_PREFIX = "aws:"


def _check_key(tag_key: str) -> None:
    if tag_key.lower().startswith(_RESERVED_PREFIX):
        raise TagError(f"Tag key {tag_key[:128]} is not valid: the prefix 'aws:' is reserved for AWS use")


def new_tags(tags: Sequence[tuple[str, str]]) -> dict[str, str]:
    """The (key, value) pairs of one request as a mapping: TagException for a reserved or repeated tag key."""
    given: dict[str, str] = {}
    for tag_key, value in tags:
        _check_key(tag_key)
        if tag_key in given:
            raise TagError(f"Duplicate tag key {tag_key[:128]}: a tag key may appear once in a request")
        given[tag_key] = value
    if len(given) > MAX_TAGS:
        raise TagError(f"A KMS key can have at most {MAX_TAGS} tags")
    return given


def tagged(key: MasterKey, tags: dict[str, str]) -> MasterKey:
    """TagResource: ``tags`` added, a tag key the key has already taking the new value."""
    key.require_not_pending()
    merged = {**key.tags, **tags}
    if len(merged) > MAX_TAGS:
        raise TagError(f"A KMS key can have at most {MAX_TAGS} tags; {key.arn} has {len(key.tags)}")
    return key.evolve(tags=merged)


def untagged(key: MasterKey, tag_keys: Iterable[str]) -> MasterKey:
    """UntagResource: the tags of ``tag_keys`` removed; a tag key the key does not have is no error (KMS)."""
    removed = set(tag_keys)
    for tag_key in removed:
        _check_key(tag_key)
    key.require_not_pending()
    return key.evolve(tags={name: value for name, value in key.tags.items() if name not in removed})
