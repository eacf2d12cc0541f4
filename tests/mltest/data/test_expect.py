"""The inline API: expect(df)... .check() and validate(df, [...])."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from mltest.errors import MLCheckFailure, MLUsageError

RunPytest = Callable[..., pytest.RunResult]

pd = pytest.importorskip("pandas")
gxe = pytest.importorskip("great_expectations.expectations")

from mltest.data import expect, validate  # noqa: E402


@pytest.fixture
def frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "tag": ["sport", "tech", "sprot", "tech", None, "tehc"],
            "p": [0.1, 0.5, 1.5, 0.2, 0.3, -0.1],
        },
        index=[10, 11, 12, 13, 14, 15],
    )


def test_fluent_failure_lists_every_failed_expectation(frame: pd.DataFrame) -> None:
    with pytest.raises(MLCheckFailure) as info:
        (
            expect(frame, name="train", max_examples=1)
            .row_count_between(1, None)
            .column("tag")
            .in_set(["sport", "tech"])
            .not_null()
            .column("p")
            .between(0, 1)
            .check()
        )
    assert str(info.value) == (
        "3 of 4 expectations failed on train (6 rows)\n"
        "\n"
        "expect_column_values_to_be_in_set(column='tag', value_set=['sport', 'tech'])\n"
        "  unexpected: 2 of 5 non-missing rows (40.00%; 1 missing)\n"
        "  row  value\n"
        "   12  'sprot'\n"
        "  ... and 1 more\n"
        "\n"
        "expect_column_values_to_not_be_null(column='tag')\n"
        "  unexpected: 1 of 6 rows (16.67%)\n"
        "  row  value\n"
        "   14  nan\n"
        "\n"
        "expect_column_values_to_be_between(column='p', min_value=0, max_value=1)\n"
        "  unexpected: 2 of 6 rows (33.33%)\n"
        "  row  value\n"
        "   12  1.5\n"
        "  ... and 1 more\n"
        "\n"
        "Fix the rows shown, or relax the expectation (mostly=0.99 tolerates 1% "
        "unexpected rows)."
    )


def test_passing_checks_return_outcomes_and_mostly_relaxes(frame: pd.DataFrame) -> None:
    outcomes = expect(frame).column("tag").in_set(["sport", "tech"], mostly=0.5).check()
    assert [o.success for o in outcomes] == [True]
    assert outcomes[0].unexpected_count == 2


def test_list_form_takes_gx_objects_and_dicts(frame: pd.DataFrame) -> None:
    with pytest.raises(MLCheckFailure) as info:
        validate(
            frame,
            [
                gxe.ExpectColumnValuesToBeInSet(column="tag", value_set=["sport", "tech"]),
                {"expect_column_mean_to_be_between": {"column": "p", "max_value": 0.2}},
                gxe.ExpectTableRowCountToEqual(value=6),
            ],
            name="batch-7",
        )
    text = str(info.value)
    assert text.startswith("2 of 3 expectations failed on batch-7 (6 rows)\n")
    assert "expect_column_mean_to_be_between(column='p', max_value=0.2)\n  observed: 0.416667" in (
        text
    )
    assert "   12  'sprot'\n   15  'tehc'\n" in text


@pytest.mark.parametrize(
    ("expectations", "message"),
    [
        (
            [gxe.ExpectColumnValuesToNotBeNull(column="label")],
            "train: expectation #1 expect_column_values_to_not_be_null(column='label'): "
            "column 'label' is not in the data (columns: p, tag)",
        ),
        (
            [{"expect_column_values_to_be_in_sett": {"column": "tag", "value_set": ["a"]}}],
            "train: expectation #1 expect_column_values_to_be_in_sett(column='tag', "
            "value_set=['a']): unknown expectation 'expect_column_values_to_be_in_sett': "
            "did you mean expect_column_values_to_be_in_set?",
        ),
        (
            [{"expect_column_values_to_be_between": {"column": "p", "min_value": "low"}}],
            "train: expectation #1 expect_column_values_to_be_between(column='p', "
            "min_value='low'): bad arguments: min_value: value is not a valid float; "
            "arguments: min_value and max_value cannot both be None",
        ),
        ([42], "train: expectation #1 is a int: give GX expectation objects"),
        ([], "train: no expectations given"),
    ],
)
def test_bad_expectations_raise_one_line(
    frame: pd.DataFrame, expectations: list[object], message: str
) -> None:
    with pytest.raises(MLUsageError) as info:
        validate(frame, expectations, name="train")
    assert str(info.value).startswith(message)
    assert "\n" not in str(info.value)


def test_inline_failure_as_a_user_sees_it(pytester: pytest.Pytester, run_pytest: RunPytest) -> None:
    pytester.makepyfile(
        """
        import pandas as pd
        import pytest
        from mltest.data import expect

        @pytest.mark.data
        def test_tags():
            df = pd.DataFrame({"tag": ["sport", "sprot"]})
            expect(df, name="train").column("tag").in_set(["sport"]).check()
        """
    )
    result = run_pytest("--ml", "--ml-report", "r.json")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            '>       expect(df, name="train").column("tag").in_set([[]"sport"[]]).check()',
            "E       mltest.errors.MLCheckFailure: 1 of 1 expectations failed on train (2 rows)",
            "E       ",
            "E       expect_column_values_to_be_in_set(column='tag', value_set=['sport'])",
            "E         unexpected: 1 of 2 rows (50.00%)",
            "E         row  value",
            "E           1  'sprot'",
            "checks  data: 0 passed, 1 failed",
            "data:",
            "  check*cases*failed*fail rate",
            "  expectations*1*1*100.0%",
        ]
    )
