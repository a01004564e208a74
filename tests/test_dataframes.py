"""pandas, pyarrow, polars, Dask and DuckDB read and write envelope files through the ``envelope`` filesystem.

Each runs on local files and on a bucket of the moto server.  Two costs are
counted as well: key manager calls (one per object version however often
pyarrow opens it) and chunks decrypted for a one-column read.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

fsspec = pytest.importorskip("fsspec")
pd = pytest.importorskip("pandas")
pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")
pytest.importorskip("boto3")

from fsspec_world import World, make_world  # noqa: E402

CHUNK = 1 << 14
ROWS = 6_000


@pytest.fixture(params=["local", "s3"])
def world(request: pytest.FixtureRequest, tmp_path: Path, kek: str) -> World:
    return make_world(request.param, tmp_path, kek, request)


def frame(rows: int = ROWS, offset: int = 0) -> Any:
    import numpy as np

    rng = np.random.default_rng(offset)
    return pd.DataFrame({"id": np.arange(offset, offset + rows), "region": rng.choice(["n", "s", "e", "w"], rows),
                         "amount": rng.random(rows), "qty": rng.integers(0, 100, rows),
                         "note": [f"row {i}" for i in range(offset, offset + rows)]})


def options(world: World, **more: Any) -> dict[str, Any]:
    return {**world.options, "chunk_size": CHUNK, **more}


def test_pandas_writes_and_reads_parquet_csv_and_json(world: World) -> None:
    df = frame()
    df.to_parquet(world.url("t.parquet"), storage_options=options(world), row_group_size=2000)
    assert pd.read_parquet(world.url("t.parquet"), storage_options=world.options).equals(df)
    assert pd.read_parquet(world.url("t.parquet"), storage_options=world.options,
                           columns=["amount"])["amount"].equals(df["amount"])
    df.to_csv(world.url("t.csv"), storage_options=options(world), index=False)
    pd.testing.assert_frame_equal(pd.read_csv(world.url("t.csv"), storage_options=world.options), df,
                                  check_dtype=False)
    df.to_json(world.url("t.json"), storage_options=options(world), orient="records", lines=True)
    pd.testing.assert_frame_equal(pd.read_json(world.url("t.json"), storage_options=world.options, orient="records",
                                               lines=True), df, check_dtype=False)
    assert not world.stored("t.csv").startswith(b"id,region")  # what is stored is ciphertext


def test_pyarrow_read_table_with_columns_and_filters(world: World) -> None:
    frame().to_parquet(world.url("t.parquet"), storage_options=options(world), row_group_size=4000)
    fs = world.fs
    table = pq.read_table(world.path("t.parquet"), filesystem=fs, columns=["id", "amount"],
                          filters=[("id", ">=", ROWS - 10)])
    assert table.column_names == ["id", "amount"] and table.column("id").to_pylist() == list(range(ROWS - 10, ROWS))


def test_pyarrow_dataset_over_a_prefix_of_encrypted_files(world: World) -> None:
    import pyarrow.dataset as ds

    for i in range(3):
        frame(1000, i * 1000).to_parquet(world.url(f"lake/part-{i}.parquet"), storage_options=options(world))
    dataset = ds.dataset(world.path("lake"), filesystem=world.fs, format="parquet")
    table = dataset.to_table(columns=["id"], filter=ds.field("qty") < 1000)
    assert sorted(table.column("id").to_pylist()) == list(range(3000))


def test_polars_reads_through_pyarrow_and_natively_from_an_open_file(world: World) -> None:
    pl = pytest.importorskip("polars")
    frame().to_parquet(world.url("t.parquet"), storage_options=options(world))
    # polars takes only an unchained URL and string-valued storage_options: keys as one comma-separated
    # string, the inner filesystem named by target_protocol and its options flat.
    flat = {k: v for k, v in world.options.items() if k != "s3"}
    if world.kind == "s3":
        flat.update(target_protocol="s3", **{k: str(v) for k, v in world.options["s3"].items()})
    got = pl.read_parquet(f"envelope://{world.path('t.parquet')}", storage_options=flat, use_pyarrow=True,
                          columns=["id", "amount"])
    assert got.shape == (ROWS, 2) and got["id"].to_list() == list(range(ROWS))
    # Its native reader does not take the envelope:// URL (it looks for a local file of that name); given an
    # open file, it reads all of it, so every chunk is decrypted, whatever columns were asked for (but the
    # final one, proven and kept when the file was first read).
    fs = world.fs
    before = fs.stats.chunks
    with fs.open(world.path("t.parquet")) as f:
        native = pl.read_parquet(f, columns=["qty"])
    assert native.shape == (ROWS, 1)
    assert fs.stats.chunks - before >= -(-fs.size(world.path("t.parquet")) // CHUNK) - 1


def test_dask_read_parquet_over_a_prefix_on_a_local_cluster(world: World, cluster: Any) -> None:
    dd = pytest.importorskip("dask.dataframe")
    for i in range(4):
        frame(500, i * 500).to_parquet(world.url(f"lake/part-{i}.parquet"), storage_options=options(world))
    ddf = dd.read_parquet(world.url("lake"), storage_options=world.options, columns=["region", "amount"])
    assert ddf.npartitions == 4
    expected = pd.concat([frame(500, i * 500) for i in range(4)]).groupby("region")["amount"].sum()
    got = ddf.groupby("region")["amount"].sum().compute()
    pd.testing.assert_series_equal(got.sort_index(), expected.sort_index(), check_index_type=False)


@pytest.fixture(scope="module")
def cluster() -> Any:
    distributed = pytest.importorskip("dask.distributed")
    with distributed.LocalCluster(processes=False, n_workers=1, threads_per_worker=2,
                                  dashboard_address=None) as c, distributed.Client(c):
        yield c


def test_duckdb_sql_over_encrypted_parquet(world: World) -> None:
    duckdb = pytest.importorskip("duckdb")
    frame().to_parquet(world.url("t.parquet"), storage_options=options(world))
    con = duckdb.connect()
    con.register_filesystem(world.fs)
    rows = con.sql(f"SELECT region, count(*) FROM read_parquet('envelope://{world.path('t.parquet')}') "
                   "WHERE qty < 50 GROUP BY region ORDER BY region").fetchall()
    df = frame()
    expected = df[df.qty < 50].groupby("region").size()
    assert rows == list(expected.items())


def test_one_column_read_decrypts_only_the_chunks_that_hold_it(world: World) -> None:
    df = frame(100_000)
    df.to_parquet(world.url("t.parquet"), storage_options=options(world), row_group_size=20_000)
    fs = world.fs
    before = fs.stats.chunks
    pq.read_table(world.path("t.parquet"), filesystem=fs, columns=["qty"])
    used = fs.stats.chunks - before
    # The chunks a perfect reader needs: those under the column's pages.  pyarrow also reads the file's
    # last 64 KiB for the footer, on each of its two opens.
    with fs.open(world.path("t.parquet")) as f:
        meta = pq.ParquetFile(f).metadata
    col = [meta.row_group(g).column(3) for g in range(meta.num_row_groups)]
    spans = [(c.dictionary_page_offset or c.data_page_offset, c.total_compressed_size) for c in col]
    needed = {i for o, n in spans for i in range(o // CHUNK, (o + n - 1) // CHUNK + 1)}
    total = -(-fs.size(world.path("t.parquet")) // CHUNK)
    footer = (64 << 10) // CHUNK + 1
    assert len(needed) + footer < total / 4
    assert used <= len(needed) + 2 * footer, (used, len(needed), total)


def test_kms_is_asked_once_per_object_version_however_often_pyarrow_opens_it(
        aws_env: Any, kms_server: Any, tmp_path: Path, request: pytest.FixtureRequest, kind: str) -> None:
    import boto3

    gate = aws_env
    arn = boto3.client("kms", endpoint_url=kms_server[1]).create_key()["KeyMetadata"]["Arn"]
    world = make_world(kind, tmp_path, f"aws-kms:{arn}", request)
    frame(1000).to_parquet(world.url("t.parquet"), storage_options=options(world), row_group_size=400)
    gate.reset()
    fs = world.fs
    for _ in range(2):
        pq.read_table(world.path("t.parquet"), filesystem=fs, columns=["id"])
        pd.read_parquet(world.url("t.parquet"), storage_options=world.options, columns=["qty"])
    assert len(gate.operations("Decrypt")) == 1
    frame(10).to_parquet(world.url("t.parquet"), storage_options=options(world))  # a new version
    gate.reset()
    for _ in range(2):
        assert pq.read_table(world.path("t.parquet"), filesystem=fs).num_rows == 10
    assert len(gate.operations("Decrypt")) == 1


@pytest.fixture(params=["local", "s3"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)
