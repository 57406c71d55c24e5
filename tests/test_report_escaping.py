"""The report page escapes every value that comes from the database or the user: a real table
named `<script>` (the job's default name too) and a column named `<i>spend</i>`, on both databases.
Its pictures draw names as text too: `$...$` in a column name is not read as a math formula."""

from __future__ import annotations

from helpers import invoke


def test_a_table_named_script_is_text_on_the_page(migrated_db_url, tmp_path):
    rows = [f"c{i},{(i % 3) * 100 + i % 5},{(i % 3) * 10 + i % 2}" for i in range(60)]
    csv = tmp_path / "customers.csv"
    csv.write_text("id,<i>spend</i>,visits $\\q$\n" + "\n".join(rows) + "\n")
    assert invoke(migrated_db_url, "load-csv", str(csv), "--table", "<script>").exit_code == 0
    ran = invoke(
        migrated_db_url, "run", "--source", "<script>", "--id", "id", "--features", "<i>spend</i>,visits $\\q$"
    )
    assert ran.exit_code == 0, ran.output

    written = invoke(migrated_db_url, "report", "1", "--out", str(tmp_path / "report"), "--quiet")
    assert written.exit_code == 0, written.output
    page = (tmp_path / "report" / "report.html").read_text()
    assert "<script" not in page.lower() and "<i>" not in page
    assert "segjob run 1 of job &lt;script&gt;" in page
    assert "&lt;script&gt; holds 60 rows now" in page  # the customer sample's source
    assert "&lt;i&gt;spend&lt;/i&gt;" in page and "visits $\\q$" in page
    assert written.stderr == ""  # every picture drawn: no "Note: ..." about one left out
