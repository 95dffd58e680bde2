"""Startup parameters reach the server: plain ones, and "options" with -c / -- settings
(backslash-escaped spaces, list values parsed as PostgreSQL does at startup). What the
pooler cannot honour is refused with a clear error: other option switches, a replication
value PostgreSQL would refuse, a parameter PostgreSQL does not know (replication
connections themselves: test_replication.py)."""

import pytest

from conftest import APP_PASS, APP_USER, PgError, Wire


@pytest.fixture
def inst(pgcoro_factory):
    return pgcoro_factory()


def login_error(inst, **params):
    """Logs in with PARAMS; returns the ErrorResponse fields (the login must fail)."""
    with Wire.to(inst) as w:
        w.send_startup(APP_USER, "postgres", **params)
        with pytest.raises(PgError) as e:
            w.authenticate(APP_USER, APP_PASS)
        return e.value.fields


def test_options_settings_applied(inst):
    with Wire.to(inst) as w:
        w.login(APP_USER, APP_PASS, "postgres",
                options=r"-c search_path=pg_catalog,public --statement-timeout=4321 "
                        r"-c application_name=two\ words",
                DateStyle="SQL, DMY")
        assert w.params.get("application_name") == "two words", w.params
        # parsed as a list of two schemas, as at startup (a single quoted name would
        # match no schema and leave current_schemas empty)
        assert w.query("select current_schemas(false)") == [["{pg_catalog,public}"]]
        assert w.query("show statement_timeout") == [["4321ms"]]
        assert w.query("show application_name") == [["two words"]]
        assert w.query("show datestyle") == [["SQL, DMY"]]
        w.terminate()
    # the next session on the same (reset) server has none of it
    with Wire.to(inst) as w:
        w.login(APP_USER, APP_PASS, "postgres")
        assert w.query("show statement_timeout") == [["0"]]
        w.terminate()
    inst.assert_serving()


@pytest.mark.pooler_only
@pytest.mark.parametrize("options", ["-e", "-c", "-c noequals", "--=1"])
def test_unsupported_options_refused(inst, options):
    fields = login_error(inst, options=options)
    assert fields.get("C") == "0A000", fields
    assert fields.get("M") == ("unsupported options startup parameter: only '-c config=val' "
                               "and '--config=val' are allowed"), fields
    inst.assert_serving()


def test_bad_replication_value_refused(inst):
    fields = login_error(inst, replication="databases")
    assert fields.get("C") == "22023", fields
    assert fields.get("M") == 'invalid value for parameter "replication": "databases"', fields
    inst.assert_serving()


def test_unknown_parameter_gets_postgres_error(inst):
    # PostgreSQL refuses it at startup; pgcoro applies it with set_config() and passes on
    # the same SQLSTATE; the server it used stays in the pool and serves the next client
    fields = login_error(inst, no_such_setting="1")
    assert fields.get("C") == "42704", fields
    assert fields.get("S") == "FATAL", fields
    inst.assert_serving()


@pytest.mark.pooler_only
@pytest.mark.parametrize("pool_mode", ["session", "transaction"])
def test_ignore_startup_parameters(pgcoro_factory, pool_mode):
    """ignore_startup_parameters, as PgBouncer's: the listed parameters are dropped (the
    server keeps its default), as a startup parameter or an "options" setting, whatever
    their value; a tracked parameter listed is still applied; the others are applied."""
    inst = pgcoro_factory(settings={
        "pool_mode": pool_mode,
        "ignore_startup_parameters": "extra_float_digits, DateStyle,statement_timeout"})
    with Wire.to(inst) as w:
        w.login(APP_USER, APP_PASS, "postgres", extra_float_digits="3",
                options="-c statement_timeout=4321 -c lock_timeout=1234 "
                        "-c extra_float_digits=" + "1" * 5000,
                DateStyle="SQL, DMY")
        assert w.query("show extra_float_digits") == [["1"]]
        assert w.query("show statement_timeout") == [["0"]]
        assert w.query("show lock_timeout") == [["1234ms"]]
        assert w.query("show datestyle") == [["SQL, DMY"]]  # tracked: applied
        w.terminate()
    inst.assert_serving()


@pytest.mark.pooler_only
def test_ignore_startup_parameters_options(pgcoro_factory):
    """"options" in ignore_startup_parameters: the untracked settings of "options" are
    dropped, its tracked ones applied; plain startup parameters are not affected."""
    inst = pgcoro_factory(settings={"ignore_startup_parameters": "options"})
    with Wire.to(inst) as w:
        w.login(APP_USER, APP_PASS, "postgres", lock_timeout="1234",
                options=r"-c enable_seqscan=false -c TimeZone=Europe/Lisbon "
                        r"-c application_name=two\ words")
        assert w.query("show enable_seqscan") == [["on"]]
        assert w.query("show timezone") == [["Europe/Lisbon"]]
        assert w.query("show application_name") == [["two words"]]
        assert w.query("show lock_timeout") == [["1234ms"]]
        w.terminate()
    inst.assert_serving()
