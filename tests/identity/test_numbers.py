"""GB 11643 / GB 32100 check characters, against published examples."""

from __future__ import annotations

import pytest

from identity.numbers import id_number_error, uscc_error


@pytest.mark.parametrize("value", ["11010519491231002X", "440524188001010014", "110101199003074477"])
def test_valid_id_numbers(value: str) -> None:
    assert id_number_error(value) is None


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("110105194912310021", "check digit"),
        ("11010519491331002X", "birth date"),
        ("1101051949123100", "18 characters"),
        ("11010519491231002A", "17 digits"),
        ("", "18 characters"),
    ],
)
def test_invalid_id_numbers(value: str, why: str) -> None:
    assert why in (id_number_error(value) or "")


@pytest.mark.parametrize("value", ["91350100M000100Y43", "911100006000373410"[:17] + "L"])
def test_valid_usccs(value: str) -> None:
    assert uscc_error(value) is None


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("91350100M000100Y44", "check character"),
        ("91350100M000100I43", "character set"),
        ("9135010", "18 characters"),
        ("913501X0M000100Y43", "division code"),
    ],
)
def test_invalid_usccs(value: str, why: str) -> None:
    assert why in (uscc_error(value) or "")
