"""load_csv(): real sample files, type inference, if_exists, errors and atomicity, on both backends."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa

from segjob.errors import DataError, UsageError
from segjob.source import csvload
from segjob.source.csvload import LoadResult, load_csv

MALL_COLUMNS = ["CustomerID", "Gender", "Age", "Annual Income (k$)", "Spending Score (1-100)"]
TELCO_COLUMNS = (
    "customerID,gender,SeniorCitizen,Partner,Dependents,tenure,PhoneService,MultipleLines,InternetService,"
    "OnlineSecurity,OnlineBackup,DeviceProtection,TechSupport,StreamingTV,StreamingMovies,Contract,"
    "PaperlessBilling,PaymentMethod,MonthlyCharges,TotalCharges,Churn"
).split(",")


@pytest.fixture
def engine(db_url):
    engine = sa.create_engine(db_url)
    yield engine
    engine.dispose()


def is_pg(engine: sa.Engine) -> bool:
    return engine.dialect.name == "postgresql"


def write(tmp_path: Path, text: str, name: str = "data.csv", encoding: str = "utf-8") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


def kinds(engine: sa.Engine, table: str, schema: str | None = None) -> dict[str, str]:
    """Reflected column name -> kind, in table order, comparable across backends."""

    def kind(sql_type) -> str:
        for cls, name in [
            (sa.Boolean, "boolean"),
            (sa.BigInteger, "bigint"),
            (sa.Float, "double"),
            (sa.DateTime, "timestamp"),
            (sa.Date, "date"),
            (sa.Text, "text"),
        ]:
            if isinstance(sql_type, cls):
                return name
        return repr(sql_type)

    return {c["name"]: kind(c["type"]) for c in sa.inspect(engine).get_columns(table, schema=schema)}


def rows(engine: sa.Engine, table: str, *columns: str, schema: str | None = None) -> list[tuple]:
    """All rows of the given columns, typed by reflection, in insertion order."""
    reflected = sa.Table(table, sa.MetaData(), schema=schema, autoload_with=engine)
    selected = [reflected.c[name] for name in columns] if columns else list(reflected.c)
    with engine.connect() as conn:
        return [tuple(row) for row in conn.execute(sa.select(*selected))]


def has_table(engine: sa.Engine, table: str, schema: str | None = None) -> bool:
    return sa.inspect(engine).has_table(table, schema=schema)


# the real samples


def test_mall_customers_crlf(engine, data_dir):
    result = load_csv(engine, data_dir / "mall_customers.csv", "customers")

    assert result.table == "customers"
    assert result.rows == 200
    assert list(result.columns) == MALL_COLUMNS
    assert result.columns["Annual Income (k$)"] == "BIGINT"
    assert kinds(engine, "customers") == dict(zip(MALL_COLUMNS, ["bigint", "text", "bigint", "bigint", "bigint"]))
    first = rows(engine, "customers")[0]
    assert first == (1, "Male", 19, 15, 39)  # the last column parsed despite CRLF line ends


def test_marketing_campaign_tab_separated_with_day_first_dates(engine, data_dir):
    result = load_csv(engine, data_dir / "marketing_campaign.csv", "campaign")

    assert result.rows == 2240
    assert len(result.columns) == 29
    found = kinds(engine, "campaign")
    assert list(found)[:8] == (
        ["ID", "Year_Birth", "Education", "Marital_Status", "Income", "Kidhome", "Teenhome", "Dt_Customer"]
    )
    assert found["Dt_Customer"] == "date"
    assert found["Income"] == "bigint"
    assert found["Education"] == "text"
    assert result.columns["Dt_Customer"] == "DATE"
    values = rows(engine, "campaign", "ID", "Dt_Customer", "Income")
    assert values[0] == (5524, dt.date(2012, 9, 4), 58138)  # 04-09-2012 is 4 September
    assert sum(income is None for _, _, income in values) == 24
    assert all(isinstance(day, dt.date) for _, day, _ in values)


def test_telco_churn_blank_total_charges_become_null(engine, data_dir):
    result = load_csv(engine, data_dir / "telco_customer_churn.csv", "telco")

    assert result.rows == 7043
    assert list(result.columns) == TELCO_COLUMNS
    found = kinds(engine, "telco")
    assert found["customerID"] == "text"
    assert found["SeniorCitizen"] == "bigint"
    assert found["tenure"] == "bigint"
    assert found["MonthlyCharges"] == "double"
    assert found["TotalCharges"] == "double"
    assert found["Churn"] == "text"
    assert result.columns["TotalCharges"] == ("DOUBLE PRECISION" if is_pg(engine) else "DOUBLE")
    values = rows(engine, "telco", "customerID", "MonthlyCharges", "TotalCharges")
    assert values[0] == ("7590-VHVEG", 29.85, 29.85)
    assert sum(total is None for _, _, total in values) == 11


# type inference


def test_leading_zeros_keep_an_id_as_text(engine, tmp_path):
    path = write(tmp_path, "id,n\n007,1\n010,2\n123,3\n")
    load_csv(engine, path, "ids")

    assert kinds(engine, "ids") == {"id": "text", "n": "bigint"}
    assert rows(engine, "ids", "id") == [("007",), ("010",), ("123",)]


def test_inferred_types(engine, tmp_path):
    header = "int,big,dec,flag,iso,us,ts,word,blank,mixed_date,zero_dec"
    lines = [
        " 1 ,99999999999999999999,1.5,true,2024-02-29,12/31/2023,2024-01-02T03:04:05,a,,2024-01-01,0.5",
        "-2,1,-2e3,FALSE,2024-03-01,1/2/2024,2024-01-02 03:04,b,  ,01-02-2024,0",
        "+3,,.25,, ,,2024-01-03,c,,,",
    ]
    path = write(tmp_path, "\n".join([header, *lines]) + "\n")
    result = load_csv(engine, path, "typed")

    assert kinds(engine, "typed") == {
        "int": "bigint",
        "big": "text",  # beyond BIGINT: kept exactly, as text
        "dec": "double",
        "flag": "boolean",
        "iso": "date",
        "us": "date",
        "ts": "timestamp",
        "word": "text",
        "blank": "text",
        "mixed_date": "text",  # two date formats in one column
        "zero_dec": "double",
    }
    assert result.columns["int"] == "BIGINT"
    got = rows(engine, "typed")
    day, moment = dt.date, dt.datetime
    assert got[0][:4] == (1, "99999999999999999999", 1.5, True)
    assert got[0][4:7] == (day(2024, 2, 29), day(2023, 12, 31), moment(2024, 1, 2, 3, 4, 5))
    assert got[1][:7] == (-2, "1", -2000.0, False, day(2024, 3, 1), day(2024, 1, 2), moment(2024, 1, 2, 3, 4))
    assert got[2][:8] == (3, None, 0.25, None, None, None, dt.datetime(2024, 1, 3), "c")
    assert [row[8] for row in got] == [None, None, None]  # blank and whitespace-only are NULL


@pytest.mark.parametrize(
    "values, expected",
    [
        (["1", "2"], "bigint"),
        (["9223372036854775807", "-9223372036854775808"], "bigint"),
        (["9223372036854775808"], "text"),
        (["1", "2.5"], "double"),
        (["1e-05", "2.5E+07", "-0.5", "0"], "double"),
        (["1e400"], "text"),
        (["nan", "1"], "text"),
        (["inf"], "text"),
        (["1-2"], "text"),
        (["1_000"], "text"),
        (["-0.5", "00.5"], "text"),
        (["true", "False", "TRUE"], "boolean"),
        (["yes", "no"], "text"),
        (["0", "1"], "bigint"),
        (["2024-02-30"], "text"),
        (["31-12-2023", "01-01-2024"], "date:%d-%m-%Y"),
        (["12-31-2023", "01-01-2024"], "date:%m-%d-%Y"),  # day first fails on 31, month first fits all
        (["12/31/2023", "1/1/2024"], "date:%m/%d/%Y"),
        (["31/12/2023"], "date:%d/%m/%Y"),
        (["2024-01-01", "2024-01-01 10:00:00.123456"], "timestamp"),
        (["2024-01-01T10:00:00+01:00"], "text"),  # an offset: not a plain TIMESTAMP
        (["2024-01"], "text"),  # ISO 8601 would read a year-month; segjob does not
        (["2024-01", "2024-01-01"], "text"),
        ([" ", ""], "text"),
    ],
)
def test_inference_rules(values, expected):
    inference = csvload._Inference()
    for half in (values[: len(values) // 2], values[len(values) // 2 :]):  # two chunks
        inference.feed(np.array(half, dtype=object))
    kind, fmt = inference.result()
    assert (f"{kind}:{fmt}" if fmt else kind) == expected


@pytest.mark.parametrize("delimiter", [",", "\t", ";", "|"])
def test_delimiters_line_ends_and_bom(engine, tmp_path, delimiter):
    text = delimiter.join(["Name", "Score (%)", "When"]) + "\r\n"
    text += delimiter.join(["Ann", "1.5", "2024-01-31"]) + "\r\n"
    text += delimiter.join(["Bob", "2", "2024-02-01"]) + "\r\n"
    path = write(tmp_path, "\ufeff" + text)
    load_csv(engine, path, "scores")

    assert kinds(engine, "scores") == {"Name": "text", "Score (%)": "double", "When": "date"}
    assert rows(engine, "scores") == [("Ann", 1.5, dt.date(2024, 1, 31)), ("Bob", 2.0, dt.date(2024, 2, 1))]


def test_text_values_round_trip(engine, tmp_path):
    tricky = ["tab\there", "back\\slash", "\\N", 'multi\nline "quoted"', "comma, semicolon; pipe|"]
    body = "".join(f'{i},"{value.replace(chr(34), chr(34) * 2)}"\r\n' for i, value in enumerate(tricky))
    path = write(tmp_path, "id,note\r\n" + body + "\r\n \t\r\n" + "9,  padded  \r\n")
    result = load_csv(engine, path, "notes")

    assert result.rows == len(tricky) + 1  # blank and whitespace-only lines are skipped
    assert rows(engine, "notes", "note") == [(v.replace("\r\n", "\n"),) for v in tricky] + [("padded",)]


def test_hostile_header_names_are_literal_column_names(engine, tmp_path):
    names = ['a "quoted" name', "x; drop table victims; --", "Robert'); DROP TABLE students;--", "100% (k$)", "select"]
    header = ",".join('"' + name.replace('"', '""') + '"' for name in names)
    path = write(tmp_path, header + "\n1,2,3,4,5\n")
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE victims (id INTEGER)"))
        conn.execute(sa.text("CREATE TABLE students (id INTEGER)"))
    result = load_csv(engine, path, "weird; drop table victims")

    assert list(result.columns) == names
    assert list(kinds(engine, "weird; drop table victims")) == names
    assert rows(engine, "weird; drop table victims") == [(1, 2, 3, 4, 5)]
    assert has_table(engine, "victims") and has_table(engine, "students")


def test_header_only_file_creates_an_empty_table(engine, tmp_path):
    result = load_csv(engine, write(tmp_path, "a,b\n"), "empty")

    assert result.rows == 0
    assert kinds(engine, "empty") == {"a": "text", "b": "text"}


def test_progress_is_reported_after_each_chunk(engine, tmp_path, monkeypatch):
    monkeypatch.setattr(csvload, "CHUNK_CELLS", 20)  # 10 rows of 2 columns per chunk
    path = write(tmp_path, "a,b\n" + "".join(f"{i},x\n" for i in range(25)))
    seen: list[int] = []
    result = load_csv(engine, path, "chunked", progress=seen.append)

    assert seen == [10, 20, 25]
    assert result.rows == 25
    assert rows(engine, "chunked", "a") == [(i,) for i in range(25)]


# if_exists


def test_existing_table_fails_by_default(engine, tmp_path):
    path = write(tmp_path, "a\n1\n")
    load_csv(engine, path, "customers")

    with pytest.raises(UsageError) as raised:
        load_csv(engine, path, "customers")
    assert str(raised.value) == 'table "customers" already exists; use --if-exists replace or append'


def test_replace_drops_and_recreates(engine, tmp_path):
    load_csv(engine, write(tmp_path, "a,b\n1,2\n3,4\n", "old.csv"), "customers")
    result = load_csv(engine, write(tmp_path, "c\nx\n", "new.csv"), "customers", if_exists="replace")

    assert result.rows == 1
    assert kinds(engine, "customers") == {"c": "text"}
    assert rows(engine, "customers") == [("x",)]


def test_append_inserts_and_lets_the_database_convert(engine, tmp_path):
    load_csv(engine, write(tmp_path, "id,score,day,code\n1,1.5,2024-01-31,A\n", "first.csv"), "customers")
    # Columns in another order; whole numbers into DOUBLE; day-first dates into DATE.
    second = write(tmp_path, "code,day,score,id\nB,01-02-2024,2,2\n", "second.csv")
    result = load_csv(engine, second, "customers", if_exists="append")

    assert result.rows == 1
    assert list(result.columns) == ["code", "day", "score", "id"]
    assert result.columns["id"] == "BIGINT"
    assert kinds(engine, "customers") == {"id": "bigint", "score": "double", "day": "date", "code": "text"}
    assert rows(engine, "customers") == [(1, 1.5, dt.date(2024, 1, 31), "A"), (2, 2.0, dt.date(2024, 2, 1), "B")]


def test_append_to_a_text_column_keeps_the_text_as_written(engine, tmp_path):
    load_csv(engine, write(tmp_path, "id,when\n007,someday\n", "first.csv"), "events")
    load_csv(engine, write(tmp_path, "id,when\n8,01-02-2024\n", "second.csv"), "events", if_exists="append")

    assert rows(engine, "events") == [("007", "someday"), ("8", "01-02-2024")]


def test_append_creates_a_missing_table(engine, tmp_path):
    result = load_csv(engine, write(tmp_path, "a\n1\n"), "fresh", if_exists="append")

    assert result.rows == 1
    assert kinds(engine, "fresh") == {"a": "bigint"}


def test_append_with_other_columns_lists_them(engine, tmp_path):
    load_csv(engine, write(tmp_path, "id,age,city\n1,30,Oslo\n", "first.csv"), "customers")
    other = write(tmp_path, "id,Age,zip\n2,40,0150\n", "second.csv")

    with pytest.raises(UsageError) as raised:
        load_csv(engine, other, "customers", if_exists="append")
    assert str(raised.value) == (
        f'cannot append {other} to table "customers": columns missing from the CSV: age, city; '
        "CSV columns not in the table: Age, zip (table columns: id, age, city)"
    )
    assert rows(engine, "customers") == [(1, 30, "Oslo")]


def test_bad_if_exists(engine, tmp_path):
    with pytest.raises(UsageError, match="if_exists must be fail, replace or append"):
        load_csv(engine, write(tmp_path, "a\n1\n"), "t", if_exists="merge")


# errors and atomicity


def test_missing_file(engine, tmp_path):
    path = tmp_path / "nope.csv"
    with pytest.raises(UsageError) as raised:
        load_csv(engine, path, "customers")
    assert str(raised.value) == f"CSV file not found: {path}"
    assert not has_table(engine, "customers")


def test_empty_file(engine, tmp_path):
    path = write(tmp_path, "")
    with pytest.raises(UsageError) as raised:
        load_csv(engine, path, "customers")
    assert str(raised.value) == f"CSV file {path} is empty: it needs a header line naming the columns"


def test_blank_first_line(engine, tmp_path):
    path = write(tmp_path, "\na,b\n1,2\n")
    with pytest.raises(UsageError) as raised:
        load_csv(engine, path, "customers")
    assert str(raised.value) == f"CSV file {path} starts with a blank line: the first line must name the columns"


@pytest.mark.parametrize(
    "header, message",
    [
        ("id,,name", "header column 2 has no name"),
        ("id, ,name", "header column 2 has no name"),
        ("id,name,id", "duplicate column names in the header: 'id'"),
    ],
)
def test_bad_header(engine, tmp_path, header, message):
    path = write(tmp_path, header + "\n1,2,3\n")
    with pytest.raises(UsageError) as raised:
        load_csv(engine, path, "customers")
    assert str(raised.value) == f"CSV file {path}: {message}"


def test_wrong_field_count_names_the_line_and_leaves_nothing(engine, tmp_path):
    # Line 3 holds a quoted value spanning two lines and line 5 is blank, so the short row is on line 7.
    path = write(tmp_path, 'id,note,n\n1,a,1\n2,"two\nlines",2\n\n3,c,3\n4,d\n5,e,5\n')
    with pytest.raises(DataError) as raised:
        load_csv(engine, path, "customers")
    assert str(raised.value) == f"CSV file {path}, line 7: expected 3 fields like the header, found 2"
    assert not has_table(engine, "customers")


def test_too_many_fields(engine, tmp_path):
    path = write(tmp_path, "a,b\n1,2,\n")
    with pytest.raises(DataError, match=r"line 2: expected 2 fields like the header, found 3"):
        load_csv(engine, path, "customers")


def test_not_utf8(engine, tmp_path):
    path = write(tmp_path, "name\nJosé\n", encoding="latin-1")
    with pytest.raises(DataError, match="is not UTF-8 text"):
        load_csv(engine, path, "customers")
    assert not has_table(engine, "customers")


def many_rows(monkeypatch, tmp_path) -> Path:
    monkeypatch.setattr(csvload, "CHUNK_CELLS", 10)  # 5 rows of 2 columns per chunk
    return write(tmp_path, "a,b\n" + "".join(f"{i},x\n" for i in range(30)), "new.csv")


def crash(written: int) -> None:
    raise KeyboardInterrupt  # after the first chunk has been written


def test_failure_mid_way_leaves_no_table(engine, tmp_path, monkeypatch):
    path = many_rows(monkeypatch, tmp_path)
    with pytest.raises(KeyboardInterrupt):
        load_csv(engine, path, "customers", progress=crash)
    assert not has_table(engine, "customers")


def test_failure_mid_way_keeps_the_replaced_table(engine, tmp_path, monkeypatch):
    load_csv(engine, write(tmp_path, "old\nkept\n", "old.csv"), "customers")
    path = many_rows(monkeypatch, tmp_path)
    with pytest.raises(KeyboardInterrupt):
        load_csv(engine, path, "customers", if_exists="replace", progress=crash)
    assert kinds(engine, "customers") == {"old": "text"}
    assert rows(engine, "customers") == [("kept",)]


def test_file_removed_mid_way(engine, tmp_path, monkeypatch):
    path = many_rows(monkeypatch, tmp_path)
    with pytest.raises(UsageError) as raised:
        load_csv(engine, path, "customers", progress=lambda written: path.unlink(missing_ok=True))
    assert str(raised.value) == f"CSV file not found: {path} (it was removed during the load)"
    assert not has_table(engine, "customers")


def test_file_changed_mid_way(engine, tmp_path, monkeypatch):
    path = many_rows(monkeypatch, tmp_path)

    def append_a_row(written: int) -> None:
        with path.open("a") as f:
            f.write("99,y\n")

    with pytest.raises(DataError) as raised:
        load_csv(engine, path, "customers", progress=append_a_row)
    assert str(raised.value) == f"CSV file {path} changed while it was being loaded; nothing was loaded"
    assert not has_table(engine, "customers")


def test_rejected_value_on_append_rolls_back_and_names_the_line(engine, tmp_path):
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE customers (id BIGINT NOT NULL, name TEXT)"))
        conn.execute(sa.text("INSERT INTO customers VALUES (1, 'old')"))
    path = write(tmp_path, "id,name\n2,ok\n\n,missing id\n")

    with pytest.raises(DataError) as raised:
        load_csv(engine, path, "customers", if_exists="append")
    message = str(raised.value)
    assert message.startswith(f"CSV file {path}")
    assert 'cannot load into table "customers"' in message
    assert "null" in message.lower()
    if is_pg(engine):
        assert message.startswith(f"CSV file {path}, line 4:")
    assert rows(engine, "customers") == [(1, "old")]


def test_unconvertible_value_on_append_names_line_and_column_on_postgresql(engine, tmp_path):
    if not is_pg(engine):
        pytest.skip("SQLite stores what it cannot convert as text, by design of its column affinity")
    load_csv(engine, write(tmp_path, "id,age\n1,30\n", "first.csv"), "customers")
    path = write(tmp_path, "id,age\n2,31\n3,thirty\n", "second.csv")

    with pytest.raises(DataError) as raised:
        load_csv(engine, path, "customers", if_exists="append")
    assert str(raised.value) == (
        f'CSV file {path}, line 3: cannot load into table "customers": '
        'invalid input syntax for type bigint: "thirty" (column age)'
    )
    assert rows(engine, "customers") == [(1, 30)]


# table names and schemas


def test_schema_qualified_table_on_postgresql(engine, tmp_path):
    path = write(tmp_path, "a\n1\n")
    if not is_pg(engine):
        with pytest.raises(UsageError, match="SQLite tables take no schema"):
            load_csv(engine, path, "sales.customers")
        return
    with engine.begin() as conn:
        conn.execute(sa.text('CREATE SCHEMA "Sales Data"'))
    result = load_csv(engine, path, "Sales Data.customers")

    assert result == LoadResult(table="Sales Data.customers", rows=1, columns={"a": "BIGINT"})
    assert has_table(engine, "customers", schema="Sales Data")
    assert not has_table(engine, "customers", schema="public")
    assert rows(engine, "customers", schema="Sales Data") == [(1,)]
    with pytest.raises(UsageError, match="already exists"):
        load_csv(engine, path, "Sales Data.customers")


def test_unqualified_table_goes_to_the_default_schema(engine, tmp_path):
    load_csv(engine, write(tmp_path, "a\n1\n"), "customers")
    if is_pg(engine):
        assert has_table(engine, "customers", schema="public")


@pytest.mark.parametrize("table", ["a.b.c", ".customers", "customers."])
def test_bad_table_names(engine, tmp_path, table):
    with pytest.raises(UsageError) as raised:
        load_csv(engine, write(tmp_path, "a\n1\n"), table)
    assert str(raised.value) == f"bad table name {table!r}: use name or schema.name"


def test_segjob_schema_is_refused_on_postgresql(engine, tmp_path):
    if not is_pg(engine):
        pytest.skip("PostgreSQL schemas only")
    with pytest.raises(UsageError) as raised:
        load_csv(engine, write(tmp_path, "a\n1\n"), "segjob.customers")
    assert str(raised.value) == "schema 'segjob' holds segjob's own tables; load 'customers' into another schema"


def test_unknown_schema_on_postgresql(engine, tmp_path):
    if not is_pg(engine):
        pytest.skip("PostgreSQL schemas only")
    with pytest.raises(UsageError) as raised:
        load_csv(engine, write(tmp_path, "a\n1\n"), "nowhere.customers")
    assert str(raised.value) == 'schema "nowhere" does not exist; create it first or pick another schema'
