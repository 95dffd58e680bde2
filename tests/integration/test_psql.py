"""psql through pgcoro: simple-protocol features end to end."""

import os


def test_multi_statement(pgcoro, psql):
    r = psql(pgcoro, "-A", "-t", "-c", "select 1; select 2")
    assert r.stdout.split() == ["1", "2"]
    r = psql(pgcoro, "-A", "-t", "-c", "select 'a' as x, 1 as y", "-c", "select current_user")
    assert r.stdout.splitlines() == ["a|1", "app"]


def test_error_keeps_sqlstate_and_position(pgcoro, psql):
    r = psql(pgcoro, "-c", r"\set VERBOSITY verbose", "-c", "select * from nosuch", check=False)
    assert r.returncode != 0
    lines = r.stderr.splitlines()
    assert any("ERROR:  42P01: relation \"nosuch\" does not exist" in ln for ln in lines), r.stderr
    i = next(i for i, ln in enumerate(lines) if ln.startswith("LINE 1: "))
    assert lines[i] == "LINE 1: select * from nosuch"
    # the caret sits under "nosuch": position 15 of the statement
    assert lines[i + 1] == " " * (len("LINE 1: ") + 14) + "^"
    assert any(ln.startswith("LOCATION:") for ln in lines), r.stderr


def test_error_then_session_continues(pgcoro, psql):
    # without ON_ERROR_STOP the session carries on after the error on the same connection
    r = psql(pgcoro, "-q", "-A", "-t", "-v", "ON_ERROR_STOP=0",
             input="select 1/0;\nselect 'after';\nbegin;\nselect nosuch;\nselect 1;\n"
                   "rollback;\nselect 'end';\n", check=False)
    assert "division by zero" in r.stderr
    assert "current transaction is aborted" in r.stderr
    assert r.stdout.split() == ["after", "end"]


def test_notice(pgcoro, psql):
    r = psql(pgcoro, "-c", "DO $$ BEGIN RAISE NOTICE 'hello'; END $$")
    assert "NOTICE:  hello" in r.stderr
    assert r.stdout.strip() == "DO"


def test_empty_query(pgcoro, psql):
    r = psql(pgcoro, "-A", "-t", "-c", ";")
    assert r.stdout.strip() == ""
    r = psql(pgcoro, "-A", "-t", "-c", "select 'x'; ; select 'y'")
    assert r.stdout.split() == ["x", "y"]


def test_copy_in_out(pgcoro, psql, tmp_path):
    src = tmp_path / "in.csv"
    out = tmp_path / "out.csv"
    rows = []
    for i in range(20000):
        note = f'row {i}, "quoted" \u00e9\u4e2d' if i % 3 else ""
        v = "" if i % 7 == 0 else f"{i * 1.5:g}"
        rows.append(f'{i},"{note.replace(chr(34), chr(34) * 2)}",{v}')
    src.write_text("\n".join(rows) + "\n", encoding="utf-8")
    os.chmod(tmp_path, 0o755)
    r = psql(pgcoro, "-A", "-t",
             "-c", "create temp table t (id int primary key, note text, v float8)",
             "-c", rf"\copy t from '{src}' with (format csv)",
             "-c", "select count(*), count(v), sum(id) from t",
             "-c", rf"\copy (select * from t order by id) to '{out}' with (format csv)")
    assert "20000|17142|199990000" in r.stdout.splitlines()
    assert out.read_text(encoding="utf-8") == src.read_text(encoding="utf-8")


def test_copy_stdin_stdout(pgcoro, psql):
    data = "".join(f"{i}\tline {i}\n" for i in range(5000))
    r = psql(pgcoro, "-q", "-A", "-t", "-c", "create temp table c (a int, b text)", "-c",
             r"\copy c from stdin", "-c", r"\copy c to stdout", input=data)
    assert r.stdout == data


def test_unix_socket_and_tcp(pgcoro, psql):
    r = psql(pgcoro, "-A", "-t", "-c", "select current_user, current_database()", unix=True)
    assert r.stdout.strip() == "app|postgres"
    r = psql(pgcoro, "-A", "-t", "-c", "select current_user, current_database()")
    assert r.stdout.strip() == "app|postgres"
    r = psql(pgcoro, "-A", "-t", "-c", "select count(*) from pgbench_accounts", db="bench")
    assert r.stdout.strip() == "100000"
