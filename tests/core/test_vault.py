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
    from sqlalchemy import select

    from identity.models import Person

    with rt.db.transaction() as s:
        # every personal field on record (ours, and the bootstrap administrator `eauth init` made)
        fields = sum(1 for p_ in s.execute(select(Person)).scalars() for f in (p_.id_number_ct, p_.phone_ct, p_.email_ct) if f)
        assert fields >= 2
        new = rt.vault.rotate(s)
        assert reencrypt_all(rt, s) == fields
        assert reencrypt_all(rt, s) == 0  # all under the new key now
    assert new != old
    with rt.db.read() as s:
        assert person_secrets(rt, s, p.id).id_number == idn
