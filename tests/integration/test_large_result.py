"""A 1 GB COPY result through pgcoro in bounded memory (back-pressure, not buffering)."""

from conftest import APP_PASS, APP_USER, RssSampler, clean_env, read_copy_out, vmrss_kb

ROWS = 1_000_000
WIDTH = 1000
LIMIT_KB = 100 * 1024


def test_1gb_copy_out_bounded_rss(pgcoro, pg, direct):
    pgcoro.assert_serving()  # warm up: one login, one server connection
    baseline = None if direct else vmrss_kb(pgcoro.pid)
    sql = f"COPY (SELECT repeat('x', {WIDTH}) FROM generate_series(1, {ROWS})) TO STDOUT"
    with RssSampler(pgcoro.pid) as rss:
        rc, total, err = read_copy_out(
            [pg.psql_bin, "-X", "-v", "ON_ERROR_STOP=1", "-h", pgcoro.host, "-p",
             str(pgcoro.port), "-U", APP_USER, "-d", pgcoro.db("postgres"), "-c", sql],
            clean_env(PGPASSWORD=APP_PASS))
    assert rc == 0, err
    assert total == ROWS * (WIDTH + 1), f"received {total} bytes"
    if not direct:
        assert rss.count > 0
        growth = rss.peak - baseline
        print(f"pgcoro RSS: baseline {baseline} kB, peak {rss.peak} kB over {rss.count} samples")
        assert growth < LIMIT_KB, (
            f"pgcoro RSS grew by {growth} kB (baseline {baseline} kB, peak {rss.peak} kB)")
    pgcoro.assert_serving()
