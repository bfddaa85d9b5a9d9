from __future__ import annotations

import pytest

from core.errors import Problem


def test_round_trip_context_binding_and_blind_index(rt) -> None:  # type: ignore[no-untyped-def]
    v = rt.vault
    blob = v.encrypt("46010219900101123X", context="person.id_number")
    assert "46010219900101123X" not in blob
    assert v.decrypt(blob, context="person.id_number") == "46010219900101123X"
    with pytest.raises(Problem):
        v.decrypt(blob, context="person.phone")  # bound to its column
    assert v.encrypt("x", context="c") != v.encrypt("x", context="c")  # random nonces
    assert v.blind_index("x", context="c") == v.blind_index("x", context="c")
    assert v.blind_index("x", context="c") != v.blind_index("x", context="d")


def test_rotation_reencrypts(fresh_rt) -> None:  # type: ignore[no-untyped-def]
    from core.security import Actor
    from identity.service import person_secrets, reencrypt_all, register_person
    from tests.factories import unique_id_number

    rt = fresh_rt
    idn = unique_id_number()
    with rt.db.transaction() as s:
        p = register_person(rt, s, Actor.cli(), name="轮换", id_number=idn, phone="13700000001")
    old = rt.vault.active_key_id
    with rt.db.transaction() as s:
        new = rt.vault.rotate(s)
        assert reencrypt_all(rt, s) == 2
    assert new != old
    with rt.db.read() as s:
        assert person_secrets(rt, s, p.id).id_number == idn
